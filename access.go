package chatvault

// Permission names an action that needs a role beyond membership. Membership of a conversation is
// checked by the chat service on its single content read path; everything else is decided here, in
// one table, so a reviewer can see every grant at once.
type Permission string

const (
	PermManageUsers     Permission = "manage_users"
	PermManageOrg       Permission = "manage_org"       // the org's own settings (its time zone)
	PermManageRetention Permission = "manage_retention" // policies, overrides, rules, flags, batch deletes, purge runs
	PermManageHolds     Permission = "manage_holds"
	PermReadAudit       Permission = "read_audit"
	PermSearchOrg       Permission = "search_org" // search every conversation of the org (each search is audited)
	PermExportOrg       Permission = "export_org" // export any conversation of the org (each export is audited)
)

var grants = map[Permission][]Role{
	PermManageUsers:     {RoleOrgAdmin},
	PermManageOrg:       {RoleOrgAdmin},
	PermManageRetention: {RoleOrgAdmin},
	PermManageHolds:     {RoleComplianceOfficer},
	PermReadAudit:       {RoleAuditor, RoleComplianceOfficer, RoleOrgAdmin},
	PermSearchOrg:       {RoleComplianceOfficer},
	PermExportOrg:       {RoleComplianceOfficer},
}

// Authorize returns nil when the actor holds a role that grants p, and EFORBIDDEN otherwise.
func Authorize(a Actor, p Permission) error {
	for _, r := range grants[p] {
		if a.HasRole(r) {
			return nil
		}
	}
	return Errorf(EFORBIDDEN, "this action needs one of the roles %v", grants[p])
}
