package http_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/account"
)

func TestLoginErrors(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.newUser("alice")
	for _, tc := range []struct {
		name  string
		body  any
		code  string
		field string
	}{
		{"wrong password", map[string]string{"username": "alice", "password": "nope-nope", "device_name": "d"}, "unauthorized", ""},
		{"unknown user", map[string]string{"username": "nobody", "password": "nope-nope", "device_name": "d"}, "unauthorized", ""},
		{"unknown org", map[string]string{"org": "nope", "username": "alice", "password": "password-alice", "device_name": "d"}, "unauthorized", ""},
		{"missing device name", map[string]string{"username": "alice", "password": "password-alice"}, "invalid", "device_name"},
		{"missing password", map[string]string{"username": "alice", "device_name": "d"}, "invalid", "password"},
		{"unknown field", map[string]string{"username": "alice", "password": "x", "device_name": "d", "extra": "1"}, "invalid", "extra"},
		{"wrong type", []byte(`{"username": 5}`), "invalid", "username"},
		{"malformed JSON", []byte(`{"username": "alice",`), "invalid", ""},
		{"two JSON values", []byte(`{} {}`), "invalid", ""},
		{"empty body", []byte(``), "invalid", ""},
	} {
		r := ts.do("POST", "/api/v1/auth/login", "", tc.body)
		code, field := r.errorCode(t)
		if code != tc.code || field != tc.field {
			t.Errorf("%s: error %s field %q; want %s field %q (%s)", tc.name, code, field, tc.code, tc.field, r.Body)
		}
	}
	// Usernames are case-folded: ALICE is alice.
	ts.login("ALICE", "password-alice", "")
}

func TestTokensStopWorkingAtOnce(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.newUser("alice")
	second := ts.login("alice", "password-alice", "")

	var devices struct {
		Devices []struct {
			ID      string `json:"id"`
			Current bool   `json:"current"`
		} `json:"devices"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/devices", alice.Token, nil).decode(t, &devices)
	if len(devices.Devices) != 2 {
		t.Fatalf("devices = %d; want 2", len(devices.Devices))
	}
	// Revoking the second device from the first: its token fails on the very next request.
	ts.must(http.StatusNoContent, "DELETE", "/api/v1/devices/"+second.DeviceID, alice.Token, nil)
	if code, _ := ts.must(http.StatusUnauthorized, "GET", "/api/v1/me", second.Token, nil).errorCode(t); code != "unauthorized" {
		t.Fatalf("revoked token: code %s", code)
	}
	// Logout revokes the caller's own device.
	ts.must(http.StatusNoContent, "POST", "/api/v1/auth/logout", alice.Token, nil)
	ts.must(http.StatusUnauthorized, "GET", "/api/v1/me", alice.Token, nil)

	// Disabling a user revokes every device; re-enabling does not bring old tokens back.
	bob := ts.newUser("bob")
	ts.must(http.StatusOK, "GET", "/api/v1/me", bob.Token, nil)
	ts.must(http.StatusOK, "POST", "/api/v1/admin/users/"+bob.ID+"/disable", ts.adminToken, nil)
	// The token's message names the cause: "signed out; sign in again" would send bob to a login
	// that cannot work.
	if r := ts.must(http.StatusUnauthorized, "GET", "/api/v1/me", bob.Token, nil); !strings.Contains(string(r.Body), "account is disabled") {
		t.Fatalf("disabled user's token: %s; want a message saying the account is disabled", r.Body)
	}
	r := ts.do("POST", "/api/v1/auth/login", "", map[string]string{"username": "bob", "password": "password-bob", "device_name": "d"})
	if r.Status != http.StatusUnauthorized || !strings.Contains(string(r.Body), "disabled") {
		t.Fatalf("login of disabled user: %d %s; want 401 saying disabled", r.Status, r.Body)
	}
	ts.must(http.StatusOK, "POST", "/api/v1/admin/users/"+bob.ID+"/enable", ts.adminToken, nil)
	ts.must(http.StatusUnauthorized, "GET", "/api/v1/me", bob.Token, nil)
	ts.login("bob", "password-bob", "")

	for _, h := range []string{"", "Bearer", "Bearer cvt_forged", "Basic abc"} {
		req, _ := http.NewRequest("GET", ts.URL+"/api/v1/me", nil)
		if h != "" {
			req.Header.Set("Authorization", h)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: status %d; want 401 with WWW-Authenticate", h, resp.StatusCode)
		}
	}
}

func TestAdminEndpointsNeedOrgAdmin(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.newUser("alice")
	for _, ep := range []struct{ method, path string }{
		{"POST", "/api/v1/admin/users"},
		{"GET", "/api/v1/admin/users"},
		{"GET", "/api/v1/admin/users/" + alice.ID},
		{"POST", "/api/v1/admin/users/" + alice.ID + "/disable"},
		{"POST", "/api/v1/admin/users/" + alice.ID + "/password"},
	} {
		var body any
		if ep.method == "POST" && strings.HasSuffix(ep.path, "users") {
			body = map[string]string{"username": "mallory", "password": "password-x"}
		}
		r := ts.do(ep.method, ep.path, alice.Token, body)
		if code, _ := r.errorCode(t); r.Status != http.StatusForbidden || code != "forbidden" {
			t.Errorf("%s %s as member: %d %s; want 403 forbidden", ep.method, ep.path, r.Status, code)
		}
	}
	if _, err := ts.accounts.Login(context.Background(), loginReq("mallory", "password-x")); chatvault.ErrorCode(err) != chatvault.EUNAUTHORIZED {
		t.Fatalf("a refused create stored a user: login = %v", err)
	}
}

func TestUserManagement(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	var u chatvault.User
	ts.must(http.StatusCreated, "POST", "/api/v1/admin/users", ts.adminToken, map[string]any{
		"username": "Zhang.Wei", "password": "初始密码-123", "display_name": "张伟", "roles": []string{"compliance_officer"}}).decode(t, &u)
	if u.Username != "zhang.wei" || u.DisplayName != "张伟" || len(u.Roles) != 2 {
		t.Fatalf("created user = %+v; want folded username, Chinese display name, member+compliance_officer", u)
	}
	r := ts.do("POST", "/api/v1/admin/users", ts.adminToken, map[string]any{"username": "zhang.wei", "password": "password-2"})
	if code, field := r.errorCode(t); r.Status != http.StatusConflict || field != "username" {
		t.Fatalf("duplicate username: %d %s %s; want 409 naming username", r.Status, code, field)
	}
	for _, bad := range []map[string]any{
		{"username": "has space", "password": "password-1"},
		{"username": "ok", "password": "short"},
		{"username": "ok2", "password": "password-1", "roles": []string{"superuser"}},
	} {
		if r := ts.do("POST", "/api/v1/admin/users", ts.adminToken, bad); r.Status != http.StatusBadRequest {
			t.Errorf("create %v: status %d; want 400", bad, r.Status)
		}
	}
	// Password reset: the old password stops working, the new one works.
	var reset struct{ Password string }
	ts.must(http.StatusOK, "POST", "/api/v1/admin/users/"+u.ID+"/password", ts.adminToken, nil).decode(t, &reset)
	if len(reset.Password) < 20 {
		t.Fatalf("generated password %q is too short", reset.Password)
	}
	ts.login("zhang.wei", reset.Password, "")
	if r := ts.do("POST", "/api/v1/auth/login", "", loginBody("zhang.wei", "初始密码-123")); r.Status != http.StatusUnauthorized {
		t.Fatalf("old password after reset: %d; want 401", r.Status)
	}
	// Users change their own password, proving the current one.
	me := ts.login("zhang.wei", reset.Password, "")
	if r := ts.do("PUT", "/api/v1/me/password", me.Token, map[string]string{"current_password": "wrong-one", "new_password": "新的密码-456"}); r.Status != http.StatusForbidden {
		t.Fatalf("change password with wrong current: %d; want 403", r.Status)
	}
	ts.must(http.StatusNoContent, "PUT", "/api/v1/me/password", me.Token, map[string]string{"current_password": reset.Password, "new_password": "新的密码-456"})
	ts.login("zhang.wei", "新的密码-456", "")
	if r := ts.do("POST", "/api/v1/admin/users/"+mustAdminID(t, ts)+"/disable", ts.adminToken, nil); r.Status != http.StatusConflict {
		t.Fatalf("admin disabling themselves: %d; want 409", r.Status)
	}
}

func mustAdminID(t *testing.T, ts *testServer) string {
	var me chatvault.User
	ts.must(http.StatusOK, "GET", "/api/v1/me", ts.adminToken, nil).decode(t, &me)
	return me.ID
}

func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.newUser("alice")
	for _, scheme := range []string{"bearer", "BEARER", "Bearer"} {
		req, _ := http.NewRequest("GET", ts.URL+"/api/v1/me", nil)
		req.Header.Set("Authorization", scheme+" "+alice.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("scheme %q: %d; want 200", scheme, resp.StatusCode)
		}
	}
}

func TestPasswordErrorsNameTheirField(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.newUser("alice")
	r := ts.do("PUT", "/api/v1/me/password", alice.Token, map[string]string{"current_password": "password-alice", "new_password": "short"})
	if code, field := r.errorCode(t); r.Status != http.StatusBadRequest || field != "new_password" {
		t.Fatalf("short new password: %d %s field %q; want 400 naming new_password", r.Status, code, field)
	}
	// An empty body sent chunked is no body: the admin gets a generated password.
	req, _ := http.NewRequest("POST", ts.URL+"/api/v1/admin/users/"+alice.ID+"/password", strings.NewReader(""))
	req.ContentLength = -1
	req.TransferEncoding = []string{"chunked"}
	req.Header.Set("Authorization", "Bearer "+ts.adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reset with an empty chunked body: %d; want 200", resp.StatusCode)
	}
}

func TestDirectoryPagesPastDisabledUsers(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.newUser("bea")
	b := ts.newUser("bob")
	ts.newUser("cat")
	ts.must(http.StatusOK, "POST", "/api/v1/admin/users/"+b.ID+"/disable", ts.adminToken, nil)
	var page struct{ Users []account.Person }
	ts.must(http.StatusOK, "GET", "/api/v1/users?after=bea&limit=1", ts.adminToken, nil).decode(t, &page)
	if len(page.Users) != 1 || page.Users[0].Username != "cat" {
		t.Fatalf("page after bea = %+v; want cat (bob is disabled and must not cut the page short)", page.Users)
	}
	if r := ts.do("GET", "/api/v1/users?limit=0", ts.adminToken, nil); r.Status != http.StatusBadRequest {
		t.Fatalf("limit=0: %d; want 400", r.Status)
	}
}
