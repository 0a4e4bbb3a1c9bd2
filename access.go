package chatvault

// Permission names an action that needs a role beyond membership. Membership of a conversation is
// checked by the chat service on its single content read path; everything else is decided here, in
// one table, so a reviewer can see every grant at once.
type Permission string

const (
	PermManageUsers     Permission = "manage_users"     // create users, rename, disable, enable, reset passwords, grant org_admin
	PermViewUsers       Permission = "view_users"       // list and read accounts (no content)
	PermManageOrg       Permission = "manage_org"       // the org's own settings (its time zone)
	PermManageRetention Permission = "manage_retention" // policies, overrides, rules, flags, batch deletes, purge runs
	PermManageHolds     Permission = "manage_holds"
	PermReadAudit       Permission = "read_audit"
	PermSearchOrg       Permission = "search_org" // search every conversation of the org (each search is audited)
	PermExportOrg       Permission = "export_org" // export any conversation of the org (each export is audited)
	// PermGrantPrivileged grants and revokes the roles that reach content or watch the others
	// (compliance_officer, auditor, security_admin). It is kept from org_admin so that no single
	// administrator can make themselves, or an account they control, a reader of every DM.
	PermGrantPrivileged Permission = "grant_privileged_roles"
	PermManageSecurity  Permission = "manage_security" // lockouts, sessions, MFA resets
)

var grants = map[Permission][]Role{
	PermManageUsers:     {RoleOrgAdmin},
	PermViewUsers:       {RoleOrgAdmin, RoleSecurityAdmin},
	PermManageOrg:       {RoleOrgAdmin},
	PermManageRetention: {RoleOrgAdmin},
	PermManageHolds:     {RoleComplianceOfficer},
	PermReadAudit:       {RoleAuditor, RoleComplianceOfficer, RoleOrgAdmin},
	PermSearchOrg:       {RoleComplianceOfficer},
	PermExportOrg:       {RoleComplianceOfficer},
	PermGrantPrivileged: {RoleSecurityAdmin},
	PermManageSecurity:  {RoleSecurityAdmin},
}

// Permissions lists every permission, in the order the documentation shows them.
var Permissions = []Permission{PermManageUsers, PermViewUsers, PermManageOrg, PermManageRetention, PermManageHolds,
	PermReadAudit, PermSearchOrg, PermExportOrg, PermGrantPrivileged, PermManageSecurity}

// grantedBy names the permission needed to grant or revoke each role. Member is every user's and
// is never granted or revoked.
var grantedBy = map[Role]Permission{
	RoleOrgAdmin:          PermManageUsers,
	RoleComplianceOfficer: PermGrantPrivileged,
	RoleAuditor:           PermGrantPrivileged,
	RoleSecurityAdmin:     PermGrantPrivileged,
}

// Authorize returns nil when the actor holds a role that grants p, and EFORBIDDEN otherwise.
func Authorize(a Actor, p Permission) error {
	if RoleGrants(a.Roles, p) {
		return nil
	}
	return Errorf(EFORBIDDEN, "this action needs one of the roles %v", grants[p])
}

// RoleGrants reports whether any of roles grants p.
func RoleGrants(roles []Role, p Permission) bool {
	for _, r := range grants[p] {
		for _, h := range roles {
			if h == r {
				return true
			}
		}
	}
	return false
}

// AuthorizeRoleChange returns nil when the actor may grant or revoke r, and EFORBIDDEN otherwise.
func AuthorizeRoleChange(a Actor, r Role) error {
	p, ok := grantedBy[r]
	if !ok {
		return &Error{Code: EINVALID, Field: "roles", Message: "every user holds the member role; it cannot be granted or revoked"}
	}
	if RoleGrants(a.Roles, p) {
		return nil
	}
	return &Error{Code: EFORBIDDEN, Field: "roles", Message: "granting or revoking " + string(r) + " needs one of the roles " + rolesString(grants[p])}
}

func rolesString(rs []Role) string {
	s := ""
	for i, r := range rs {
		if i > 0 {
			s += ", "
		}
		s += string(r)
	}
	return s
}
