package http_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/chatvault/chatvault"
	cvhttp "github.com/chatvault/chatvault/internal/http"
)

// auditEntries returns the org's audit log, newest first, read by the bootstrap admin.
func (ts *testServer) auditEntries() []chatvault.AuditEntry {
	ts.t.Helper()
	var out struct{ Entries []chatvault.AuditEntry }
	ts.must(http.StatusOK, "GET", "/api/v1/admin/audit?limit=1000", ts.adminToken, nil).decode(ts.t, &out)
	return out.Entries
}

// findAudit returns the newest entry with the action, target, actor and an outcome starting with
// outcome, or nil.
func findAudit(es []chatvault.AuditEntry, action, target, actor, outcome string) *chatvault.AuditEntry {
	for i := range es {
		if es[i].Action == action && es[i].Target == target && es[i].ActorID == actor && strings.HasPrefix(es[i].Outcome, outcome) {
			return &es[i]
		}
	}
	return nil
}

func (ts *testServer) patchUser(token, userID string, body any) response {
	ts.t.Helper()
	return ts.do("PATCH", "/api/v1/admin/users/"+userID, token, body)
}

func (ts *testServer) grant(userID string, roles ...chatvault.Role) {
	ts.t.Helper()
	if roles == nil {
		roles = []chatvault.Role{}
	}
	if r := ts.patchUser(ts.adminToken, userID, map[string]any{"roles": roles}); r.Status != http.StatusOK {
		ts.t.Fatalf("grant %v: %d %s", roles, r.Status, r.Body)
	}
}

func TestRoleGrantsNeedSecurityAdminForPrivilegedRoles(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	olga, alice, sam := ts.newUser("olga"), ts.newUser("alice"), ts.newUser("sam")
	ts.grant(olga.ID, chatvault.RoleOrgAdmin)
	ts.grant(sam.ID, chatvault.RoleSecurityAdmin)

	// An org_admin alone can never make a reader of every DM, nor an auditor or security_admin.
	for _, role := range []chatvault.Role{chatvault.RoleComplianceOfficer, chatvault.RoleAuditor, chatvault.RoleSecurityAdmin} {
		r := ts.patchUser(olga.Token, alice.ID, map[string]any{"roles": []chatvault.Role{role}})
		if code, field := r.errorCode(t); r.Status != http.StatusForbidden || field != "roles" {
			t.Errorf("org_admin grants %s: %d %s %s; want 403 naming roles", role, r.Status, code, field)
		}
		r = ts.do("POST", "/api/v1/admin/users", olga.Token, map[string]any{"username": "puppet-" + string(role),
			"password": "password-puppet", "roles": []chatvault.Role{role}})
		if r.Status != http.StatusForbidden {
			t.Errorf("org_admin creates a %s: %d; want 403", role, r.Status)
		}
	}
	es := ts.auditEntries()
	if e := findAudit(es, "user.roles", alice.ID, olga.ID, "refused: "); e == nil {
		t.Fatalf("refused grant audit entry = %+v; want one with a refused outcome", e)
	}
	// org_admin is an org_admin's to give.
	ts.must(http.StatusOK, "PATCH", "/api/v1/admin/users/"+alice.ID, olga.Token, map[string]any{"roles": []string{"org_admin"}})

	// A security_admin grants the privileged roles, and only those.
	var u chatvault.User
	ts.must(http.StatusOK, "PATCH", "/api/v1/admin/users/"+alice.ID, sam.Token,
		map[string]any{"roles": []string{"org_admin", "auditor"}}).decode(t, &u)
	if !slices.Equal(u.Roles, []chatvault.Role{chatvault.RoleMember, chatvault.RoleOrgAdmin, chatvault.RoleAuditor}) {
		t.Fatalf("roles after grant = %v; want member, org_admin, auditor", u.Roles)
	}
	if r := ts.patchUser(sam.Token, alice.ID, map[string]any{"roles": []string{"auditor"}}); r.Status != http.StatusForbidden {
		t.Errorf("security_admin revokes org_admin: %d; want 403", r.Status)
	}
	if r := ts.patchUser(sam.Token, alice.ID, map[string]any{"display_name": "Alice"}); r.Status != http.StatusForbidden {
		t.Errorf("security_admin renames: %d; want 403", r.Status)
	}
	// Nobody changes their own roles, even a security_admin.
	if r := ts.patchUser(sam.Token, sam.ID, map[string]any{"roles": []string{"security_admin", "compliance_officer"}}); r.Status != http.StatusForbidden {
		t.Errorf("security_admin grants themselves compliance_officer: %d; want 403", r.Status)
	}
	if r := ts.patchUser(alice.Token, alice.ID, map[string]any{"roles": []string{}}); r.Status != http.StatusForbidden {
		t.Errorf("member of no privileged role patches themselves: %d; want 403", r.Status)
	}

	es = ts.auditEntries()
	if e := findAudit(es, "user.roles", alice.ID, sam.ID, "ok"); e == nil {
		t.Fatalf("grant audit entry = %+v; want ok", e)
	} else if added, _ := e.Details["added"].([]any); len(added) != 1 || added[0] != "auditor" {
		t.Fatalf("grant audit details = %v; want added [auditor]", e.Details)
	}
	if e := findAudit(es, "user.create", alice.ID, mustAdminID(t, ts), "ok"); e == nil {
		t.Fatalf("no audit entry says who created alice")
	}
	if e := findAudit(es, "device.create", findDevice(t, ts, alice), alice.ID, "ok"); e == nil {
		t.Fatalf("no audit entry for alice's sign-in")
	}
}

func findDevice(t *testing.T, ts *testServer, u user) string {
	t.Helper()
	var out struct{ Devices []chatvault.Device }
	ts.must(http.StatusOK, "GET", "/api/v1/devices", u.Token, nil).decode(t, &out)
	if len(out.Devices) == 0 {
		t.Fatalf("%s has no device", u.Name)
	}
	return out.Devices[0].ID
}

func TestPatchUserInput(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	bob := ts.newUser("bob")
	for _, tc := range []struct {
		body  string
		want  int
		field string
	}{
		{`{}`, http.StatusBadRequest, ""},
		{`{"roles":["superuser"]}`, http.StatusBadRequest, "roles"},
		{`{"display_name":""}`, http.StatusBadRequest, "display_name"},
		{`{"disabled":"yes"}`, http.StatusBadRequest, "disabled"},
		{`{"role":["auditor"]}`, http.StatusBadRequest, ""},
		{`{"display_name":"鲍勃"}`, http.StatusOK, ""},
	} {
		r := ts.doRaw("PATCH", "/api/v1/admin/users/"+bob.ID, ts.adminToken, "application/json", []byte(tc.body))
		if r.Status != tc.want {
			t.Errorf("PATCH %s: %d %s; want %d", tc.body, r.Status, r.Body, tc.want)
			continue
		}
		if tc.want != http.StatusOK && tc.field != "" {
			if _, field := r.errorCode(t); field != tc.field {
				t.Errorf("PATCH %s: field %q; want %q", tc.body, field, tc.field)
			}
		}
	}
	if r := ts.patchUser(ts.adminToken, "0193a000-0000-7000-8000-000000000000", map[string]any{"display_name": "x"}); r.Status != http.StatusNotFound {
		t.Errorf("PATCH unknown user: %d; want 404", r.Status)
	}
	if r := ts.patchUser(bob.Token, bob.ID, map[string]any{"display_name": "x"}); r.Status != http.StatusForbidden {
		t.Errorf("member PATCH: %d; want 403", r.Status)
	}
}

func TestRoleRemovalSignsOutAtOnce(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	bob := ts.newUser("bob")
	ts.grant(bob.ID, chatvault.RoleAuditor)
	// A grant takes effect on the session already open.
	ts.must(http.StatusOK, "GET", "/api/v1/admin/audit", bob.Token, nil)
	ws := ts.dialWS(t, bob.Token, "", 0)
	ws.must()

	ts.grant(bob.ID) // revokes auditor
	_, err := ws.next()
	if got := websocket.CloseStatus(err); got != cvhttp.CloseSignedOut {
		t.Fatalf("after the role removal, read = %v (status %d); want close %d", err, got, cvhttp.CloseSignedOut)
	}
	if r := ts.do("GET", "/api/v1/me", bob.Token, nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("old token after role removal: %d; want 401", r.Status)
	}
	again := ts.login("bob", "password-bob", "")
	if r := ts.do("GET", "/api/v1/admin/audit", again.Token, nil); r.Status != http.StatusForbidden {
		t.Fatalf("audit log without the role: %d; want 403", r.Status)
	}
	// A password reset signs out every device too.
	ts.must(http.StatusOK, "POST", "/api/v1/admin/users/"+bob.ID+"/password", ts.adminToken, nil)
	if r := ts.do("GET", "/api/v1/me", again.Token, nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("token after a password reset: %d; want 401", r.Status)
	}
	es := ts.auditEntries()
	for _, action := range []string{"user.roles", "user.password_reset"} {
		if findAudit(es, action, bob.ID, mustAdminID(t, ts), "ok") == nil {
			t.Errorf("no %s audit entry for bob", action)
		}
	}
}

// TestResettingAPrivilegedPasswordNeedsSecurityAdmin: a reset password signs in to choose the
// next one, so an org_admin resetting a compliance officer's password would become that officer.
func TestResettingAPrivilegedPasswordNeedsSecurityAdmin(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	olga, officer, member := ts.newUser("olga"), ts.newUser("officer"), ts.newUser("member")
	ts.grant(olga.ID, chatvault.RoleOrgAdmin)
	ts.grant(officer.ID, chatvault.RoleComplianceOfficer)
	r := ts.do("POST", "/api/v1/admin/users/"+officer.ID+"/password", olga.Token, nil)
	if code, _ := r.errorCode(t); r.Status != http.StatusForbidden || code != chatvault.EFORBIDDEN {
		t.Fatalf("org_admin resets a compliance officer's password: %d %s; want 403", r.Status, code)
	}
	ts.login("officer", "password-officer", "") // unchanged
	if findAudit(ts.auditEntries(), "user.password_reset", officer.ID, olga.ID, "refused: ") == nil {
		t.Errorf("no refused user.password_reset audit entry")
	}
	ts.must(http.StatusOK, "POST", "/api/v1/admin/users/"+member.ID+"/password", olga.Token, nil)
	ts.must(http.StatusOK, "POST", "/api/v1/admin/users/"+officer.ID+"/password", ts.adminToken, nil)
}
