package http_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/account"
)

func loginReq(username, password string) account.LoginRequest {
	return account.LoginRequest{Username: username, Password: password, DeviceName: "d", Org: "default"}
}

func loginBody(username, password string) map[string]string {
	return map[string]string{"username": username, "password": password, "device_name": "d"}
}

// TestOrgsAreIsolated: a user of one org never sees, reaches or learns of another org's anything.
func TestOrgsAreIsolated(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.newUser("alice")
	bob := ts.newUser("bob")
	c := ts.group(alice, "机密 secret", false, bob)
	m := ts.send(alice, c.ID, "内部消息 internal")

	ts.clock.Advance(time.Hour) // acme is the second org, as on a real server ("acme" sorts first)
	_, _, pw, err := ts.accounts.CreateOrg(context.Background(), "acme", "Acme 公司", "root")
	if err != nil {
		t.Fatal(err)
	}
	// With two orgs, a login without one goes to the first org (alice's), so the other org's
	// users must name theirs.
	ts.login("alice", "password-alice", "")
	r := ts.do("POST", "/api/v1/auth/login", "", loginBody("root", pw))
	if code, _ := r.errorCode(t); r.Status != http.StatusUnauthorized || code != "unauthorized" {
		t.Fatalf("login of acme's root without org on a two-org server: %d %s; want 401 (checked in the first org)", r.Status, code)
	}
	other := ts.login("root", pw, "acme")
	ts.must(http.StatusNoContent, "PUT", "/api/v1/me/password", other.Token, map[string]string{
		"current_password": pw, "new_password": "acme-根-password"})

	for _, ep := range []struct{ method, path string }{
		{"GET", "/api/v1/conversations/" + c.ID},
		{"GET", "/api/v1/conversations/" + c.ID + "/messages"},
		{"GET", "/api/v1/conversations/" + c.ID + "/messages/" + m.ID},
		{"POST", "/api/v1/conversations/" + c.ID + "/read"},
		{"GET", "/api/v1/admin/users/" + alice.ID},
		{"POST", "/api/v1/admin/users/" + alice.ID + "/disable"},
	} {
		var body any
		if ep.path == "/api/v1/conversations/"+c.ID+"/read" {
			body = map[string]int{"seq": 1}
		}
		if r := ts.do(ep.method, ep.path, other.Token, body); r.Status != http.StatusNotFound {
			t.Errorf("other org's admin %s %s: %d %s; want 404", ep.method, ep.path, r.Status, r.Body)
		}
	}
	r = ts.do("POST", "/api/v1/conversations", other.Token, map[string]any{"type": "direct", "members": []string{alice.ID}})
	if code, field := r.errorCode(t); code != "invalid" || field != "members" {
		t.Fatalf("direct with another org's user: %s %s; want invalid members", code, field)
	}
	var dir struct{ Users []account.Person }
	ts.must(http.StatusOK, "GET", "/api/v1/users", other.Token, nil).decode(t, &dir)
	if len(dir.Users) != 1 || dir.Users[0].Username != "root" {
		t.Fatalf("other org's directory = %+v; want only root", dir.Users)
	}
	var list struct{ Conversations []any }
	ts.must(http.StatusOK, "GET", "/api/v1/conversations", other.Token, nil).decode(t, &list)
	if len(list.Conversations) != 0 {
		t.Fatalf("other org lists %d conversations; want 0", len(list.Conversations))
	}
}
