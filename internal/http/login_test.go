package http_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/account"
	cvhttp "github.com/chatvault/chatvault/internal/http"
)

// withoutRequestID is an error body with its request id blanked, so two answers can be compared.
func withoutRequestID(t *testing.T, r response) string {
	t.Helper()
	var b cvhttp.ErrorBody
	r.decode(t, &b)
	b.Error.RequestID = ""
	out, _ := json.Marshal(b)
	return string(out)
}

func retryAfter(t *testing.T, r response) time.Duration {
	t.Helper()
	n, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || n < 1 {
		t.Fatalf("429 Retry-After = %q; want whole seconds >= 1", r.Header.Get("Retry-After"))
	}
	return time.Duration(n) * time.Second
}

// TestBruteForceIsThrottledAndLocked: 1,000 wrong passwords from one address reach the password
// check only a handful of times, lock the account, and then the right password is refused too
// until the lock ends.
func TestBruteForceIsThrottledAndLocked(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.newUser("bob")
	policy := account.DefaultLoginPolicy()

	checked, throttled := 0, 0
	for i := range 1000 {
		r := ts.do("POST", "/api/v1/auth/login", "", loginBody("bob", "guess-"+strconv.Itoa(i)))
		switch r.Status {
		case http.StatusUnauthorized:
			checked++
		case http.StatusTooManyRequests:
			throttled++
			retryAfter(t, r)
		default:
			t.Fatalf("attempt %d: %d %s; want 401 or 429", i, r.Status, r.Body)
		}
	}
	if checked != policy.FreeFailures {
		t.Fatalf("1,000 quick guesses reached the password check %d times; want %d (the free failures)", checked, policy.FreeFailures)
	}

	// Waiting out each delay, the guesser reaches the lock after MaxFailures in all.
	var locked response
	for i := checked; ; i++ {
		r := ts.do("POST", "/api/v1/auth/login", "", loginBody("bob", "guess-"+strconv.Itoa(i)))
		if r.Status == http.StatusTooManyRequests {
			wait := retryAfter(t, r)
			if wait > policy.MaxDelay {
				locked = r
				break
			}
			ts.clock.Advance(wait)
			continue
		}
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d %s", i, r.Status, r.Body)
		}
		if checked++; checked > policy.MaxFailures {
			t.Fatalf("%d wrong passwords checked without a lock; want a lock after %d", checked, policy.MaxFailures)
		}
	}
	if checked != policy.MaxFailures {
		t.Fatalf("locked after %d checked failures; want %d", checked, policy.MaxFailures)
	}
	if got := retryAfter(t, locked); got > policy.Lockout || got < policy.Lockout-policy.MaxDelay {
		t.Fatalf("lock Retry-After = %v; want about %v", got, policy.Lockout)
	}
	// The right password is refused while the lock lasts ...
	ts.clock.Advance(policy.Lockout - time.Minute)
	if r := ts.do("POST", "/api/v1/auth/login", "", loginBody("bob", "password-bob")); r.Status != http.StatusTooManyRequests {
		t.Fatalf("right password during the lock: %d %s; want 429", r.Status, r.Body)
	}
	// ... and accepted once it ends.
	ts.clock.Advance(time.Minute)
	ts.login("bob", "password-bob", "")

	es := ts.auditEntries()
	found := false
	for _, e := range es {
		found = found || e.Action == "user.locked"
	}
	if !found {
		t.Errorf("no user.locked audit entry after the lock")
	}
}

// TestUnknownAndKnownUsersAnswerAlike: the same guesses against a known account, an unknown
// username and an unknown org get the same statuses, bodies and Retry-After, to the lock.
func TestUnknownAndKnownUsersAnswerAlike(t *testing.T) {
	t.Parallel()
	trace := func(username, org string) []string {
		ts := newTestServer(t)
		ts.newUser("bob")
		var out []string
		for i := range 40 {
			r := ts.do("POST", "/api/v1/auth/login", "", map[string]string{"org": org, "username": username,
				"password": "guess-" + strconv.Itoa(i), "device_name": "d"})
			out = append(out, strconv.Itoa(r.Status)+" "+r.Header.Get("Retry-After")+" "+withoutRequestID(t, r))
			if r.Status == http.StatusTooManyRequests {
				ts.clock.Advance(retryAfter(t, r))
			}
		}
		return out
	}
	known := trace("bob", "")
	for _, other := range []struct{ username, org string }{{"nobody", ""}, {"bob", "no-such-org"}, {"nobody", "default"}} {
		got := trace(other.username, other.org)
		for i := range known {
			if got[i] != known[i] {
				t.Fatalf("attempt %d as %s@%q: %s; as bob: %s", i, other.username, other.org, got[i], known[i])
			}
		}
	}
}

// TestSourceThrottleSpansAccounts: guessing across many usernames from one address is slowed once
// the address's allowance is spent, though each account is fresh.
func TestSourceThrottleSpansAccounts(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(c *account.Config) { c.Login.SourceFreeFailures = 5 })
	for i := range 5 {
		if r := ts.do("POST", "/api/v1/auth/login", "", loginBody("user"+strconv.Itoa(i), "guess-guess")); r.Status != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d; want 401", i, r.Status)
		}
	}
	r := ts.do("POST", "/api/v1/auth/login", "", loginBody("fresh-user", "guess-guess"))
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("sixth account from one address: %d; want 429", r.Status)
	}
	retryAfter(t, r)
}

func TestSecurityAdminLiftsALock(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(c *account.Config) { c.Login.MaxFailures, c.Login.FreeFailures = 2, 5 })
	bob, olga := ts.newUser("bob"), ts.newUser("olga")
	ts.grant(olga.ID, chatvault.RoleOrgAdmin)
	for range 2 {
		ts.must(http.StatusUnauthorized, "POST", "/api/v1/auth/login", "", loginBody("bob", "guess-guess"))
	}
	ts.must(http.StatusTooManyRequests, "POST", "/api/v1/auth/login", "", loginBody("bob", "password-bob"))
	// Lifting locks is a security_admin's, not an org_admin's.
	ts.must(http.StatusForbidden, "POST", "/api/v1/admin/users/"+bob.ID+"/unlock", olga.Token, nil)
	ts.must(http.StatusNoContent, "POST", "/api/v1/admin/users/"+bob.ID+"/unlock", ts.adminToken, nil)
	ts.login("bob", "password-bob", "")
	if findAudit(ts.auditEntries(), "user.unlock", bob.ID, mustAdminID(t, ts), "ok") == nil {
		t.Errorf("no user.unlock audit entry")
	}
}

func TestPasswordPolicy(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, pw := range []string{"short", "password123", "Qwerty123", "12345678", "WangFang.2026"} {
		r := ts.do("POST", "/api/v1/admin/users", ts.adminToken, map[string]string{"username": "wangfang.2026", "password": pw})
		wantRefused(t, "password "+pw, r, "password")
	}
	ts.must(http.StatusCreated, "POST", "/api/v1/admin/users", ts.adminToken, map[string]string{"username": "wangfang.2026", "password": "长城-月光-2026"})
}

// TestOneTimePasswordOnlyChangesItself: a password someone else chose (an org's first admin, an
// administrator's reset) signs in, but the session may only choose the user's own password; the
// same password does not do, and afterwards the one-time password is gone.
func TestOneTimePasswordOnlyChangesItself(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	_, _, pw, err := ts.accounts.CreateOrg(context.Background(), "acme", "Acme 公司", "root")
	if err != nil {
		t.Fatal(err)
	}
	var res account.LoginResult
	ts.must(http.StatusOK, "POST", "/api/v1/auth/login", "", map[string]string{"org": "acme", "username": "root",
		"password": pw, "device_name": "d"}).decode(t, &res)
	if !res.MustChangePassword {
		t.Fatalf("first sign-in with the one-time password: must_change_password = false; want true")
	}
	for _, ep := range []struct{ method, path string }{
		{"GET", "/api/v1/conversations"},
		{"GET", "/api/v1/admin/users"},
		{"GET", "/api/v1/admin/audit"},
	} {
		if r := ts.do(ep.method, ep.path, res.Token, nil); r.Status != http.StatusForbidden {
			t.Errorf("%s %s before the password change: %d; want 403", ep.method, ep.path, r.Status)
		}
	}
	u := "ws" + strings.TrimPrefix(ts.URL, "http") + "/api/v1/ws?access_token=" + res.Token
	if _, resp, err := websocket.Dial(context.Background(), u, nil); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("WebSocket before the password change: %v %v; want 403", err, resp)
	}
	ts.must(http.StatusOK, "GET", "/api/v1/me", res.Token, nil)
	wantRefused(t, "the same password again", ts.do("PUT", "/api/v1/me/password", res.Token,
		map[string]string{"current_password": pw, "new_password": pw}), "new_password")
	ts.must(http.StatusNoContent, "PUT", "/api/v1/me/password", res.Token, map[string]string{"current_password": pw, "new_password": "根的新密码-2026"})
	ts.must(http.StatusOK, "GET", "/api/v1/admin/users", res.Token, nil)
	ts.must(http.StatusUnauthorized, "POST", "/api/v1/auth/login", "", map[string]string{"org": "acme", "username": "root",
		"password": pw, "device_name": "d"})

	// An administrator's reset: the admin learns a password that signs in to nothing but a
	// password change, and the user's sessions are gone.
	bob := user{}
	{
		var u chatvault.User
		ts.must(http.StatusCreated, "POST", "/api/v1/admin/users", ts.adminToken, map[string]any{
			"username": "bob", "password": "password-bob"}).decode(t, &u)
		bob = user{ID: u.ID, Name: "bob", Token: ts.login("bob", "password-bob", "default").Token}
	}
	var reset struct{ Password string }
	ts.must(http.StatusOK, "POST", "/api/v1/admin/users/"+bob.ID+"/password", ts.adminToken, nil).decode(t, &reset)
	ts.must(http.StatusUnauthorized, "GET", "/api/v1/me", bob.Token, nil)
	asAdmin := ts.login("bob", reset.Password, "default")
	if !asAdmin.MustChangePassword {
		t.Fatalf("sign-in with a reset password: must_change_password = false; want true")
	}
	ts.must(http.StatusForbidden, "GET", "/api/v1/conversations", asAdmin.Token, nil)
}

// TestSessionsExpire: a token stops working after the session lifetime, and after the idle
// timeout without a request; requests keep an active session alive until its lifetime ends.
func TestSessionsExpire(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(c *account.Config) { c.SessionLifetime, c.IdleTimeout = 24*time.Hour, time.Hour })
	bob := ts.newUser("bob")
	for range 23 {
		ts.clock.Advance(59 * time.Minute)
		ts.must(http.StatusOK, "GET", "/api/v1/me", bob.Token, nil)
	}
	ts.clock.Advance(time.Hour) // 23 h 37 m + 1 h: past the lifetime, though not idle that long
	r := ts.must(http.StatusUnauthorized, "GET", "/api/v1/me", bob.Token, nil)
	if code, _ := r.errorCode(t); code != chatvault.EUNAUTHORIZED {
		t.Fatalf("expired session: %s; want unauthorized", code)
	}

	idle := ts.login("bob", "password-bob", "")
	ts.clock.Advance(59 * time.Minute)
	ts.must(http.StatusOK, "GET", "/api/v1/me", idle.Token, nil)
	ts.clock.Advance(time.Hour)
	ts.must(http.StatusUnauthorized, "GET", "/api/v1/me", idle.Token, nil)
	var devs struct{ Devices []chatvault.Device }
	fresh := ts.login("bob", "password-bob", "")
	ts.clock.Advance(2 * time.Minute)
	ts.must(http.StatusOK, "GET", "/api/v1/devices", fresh.Token, nil).decode(t, &devs)
	if len(devs.Devices) == 0 || devs.Devices[len(devs.Devices)-1].LastSeenAt == nil {
		t.Fatalf("devices = %+v; want the current one with last_seen_at", devs.Devices)
	}
}

// TestWrongCurrentPasswordsAreThrottled: a stolen token cannot guess the password through the
// password change faster than through sign-in.
func TestWrongCurrentPasswordsAreThrottled(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	bob := ts.newUser("bob")
	free := account.DefaultLoginPolicy().FreeFailures
	for i := range free {
		ts.must(http.StatusForbidden, "PUT", "/api/v1/me/password", bob.Token, map[string]string{
			"current_password": "guess-" + strconv.Itoa(i), "new_password": "鲍勃的新密码-1"})
	}
	r := ts.must(http.StatusTooManyRequests, "PUT", "/api/v1/me/password", bob.Token, map[string]string{
		"current_password": "password-bob", "new_password": "鲍勃的新密码-1"})
	retryAfter(t, r)
	ts.must(http.StatusTooManyRequests, "POST", "/api/v1/auth/login", "", loginBody("bob", "password-bob"))
}
