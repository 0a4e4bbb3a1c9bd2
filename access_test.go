package chatvault_test

import (
	"os"
	"strings"
	"testing"

	"github.com/chatvault/chatvault"
)

// permissionMatrix renders the permission table as the Markdown table docs/operations.md shows, so
// the documentation cannot drift from the code that decides.
func permissionMatrix() string {
	var b strings.Builder
	b.WriteString("| permission |")
	for _, r := range chatvault.Roles[1:] {
		b.WriteString(" " + string(r) + " |")
	}
	b.WriteString("\n| --- |" + strings.Repeat(" :-: |", len(chatvault.Roles)-1) + "\n")
	for _, p := range chatvault.Permissions {
		b.WriteString("| `" + string(p) + "` |")
		for _, r := range chatvault.Roles[1:] {
			if chatvault.RoleGrants([]chatvault.Role{r}, p) {
				b.WriteString(" yes |")
			} else {
				b.WriteString(" |")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestPermissionMatrixIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := permissionMatrix(); !strings.Contains(string(doc), want) {
		t.Fatalf("docs/operations.md lacks the permission matrix of access.go; put this there:\n%s", want)
	}
}

func TestRoleChangesFollowSeparationOfDuties(t *testing.T) {
	// Membership of conversations is checked elsewhere; the member role alone holds no permission.
	for _, p := range chatvault.Permissions {
		if chatvault.RoleGrants([]chatvault.Role{chatvault.RoleMember}, p) {
			t.Errorf("member holds %s", p)
		}
	}
	for _, tc := range []struct {
		actor chatvault.Role
		role  chatvault.Role
		ok    bool
	}{
		{chatvault.RoleOrgAdmin, chatvault.RoleOrgAdmin, true},
		{chatvault.RoleOrgAdmin, chatvault.RoleComplianceOfficer, false},
		{chatvault.RoleOrgAdmin, chatvault.RoleAuditor, false},
		{chatvault.RoleOrgAdmin, chatvault.RoleSecurityAdmin, false},
		{chatvault.RoleSecurityAdmin, chatvault.RoleComplianceOfficer, true},
		{chatvault.RoleSecurityAdmin, chatvault.RoleAuditor, true},
		{chatvault.RoleSecurityAdmin, chatvault.RoleSecurityAdmin, true},
		{chatvault.RoleSecurityAdmin, chatvault.RoleOrgAdmin, false},
		{chatvault.RoleComplianceOfficer, chatvault.RoleComplianceOfficer, false},
		{chatvault.RoleAuditor, chatvault.RoleAuditor, false},
	} {
		a := chatvault.Actor{Roles: []chatvault.Role{chatvault.RoleMember, tc.actor}}
		if err := chatvault.AuthorizeRoleChange(a, tc.role); (err == nil) != tc.ok {
			t.Errorf("AuthorizeRoleChange(%s, %s) = %v; want allowed %v", tc.actor, tc.role, err, tc.ok)
		}
	}
}
