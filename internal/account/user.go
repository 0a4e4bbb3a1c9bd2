package account

import (
	"context"
	"slices"
	"strings"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/search"
)

// NewUser is an admin's request to create a user.
type NewUser struct {
	Username    string
	Password    string
	DisplayName string
	Roles       []chatvault.Role
}

// CreateUser creates a user in the admin's org. Every user holds the member role; any other role
// needs the actor to be allowed to grant it, as a later change would.
func (s *Service) CreateUser(ctx context.Context, a chatvault.Actor, req NewUser) (*chatvault.User, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageUsers); err != nil {
		return nil, err
	}
	username, err := NormalizeUsername(req.Username)
	if err != nil {
		return nil, err
	}
	if err := validPassword("password", req.Password, s.cfg.PasswordMinLength, username); err != nil {
		return nil, err
	}
	display := strings.TrimSpace(req.DisplayName)
	if display == "" {
		display = username
	}
	if err := chatvault.CheckName("display_name", display, 128); err != nil {
		return nil, err
	}
	roles, err := normalizeRoles(req.Roles)
	if err != nil {
		return nil, err
	}
	u := &chatvault.User{OrgID: a.OrgID, ID: newID(), Username: username, DisplayName: display, Roles: roles,
		CreatedAt: s.clock.Now()}
	details := map[string]any{"username": username, "roles": roles}
	for _, r := range roles[1:] {
		if err := chatvault.AuthorizeRoleChange(a, r); err != nil {
			return nil, s.refused(ctx, a, "user.create", "", err, details)
		}
	}
	if u.PasswordHash, err = HashPassword(req.Password); err != nil {
		return nil, err
	}
	if err := s.audit(ctx, a, "user.create", u.ID, "ok", details); err != nil {
		return nil, err
	}
	if err := s.store.CreateUser(ctx, u); err != nil {
		// The entry above over-reports; this one says the account was not made.
		if rerr := s.audit(ctx, a, "user.create", u.ID, "failed: "+chatvault.ErrorMessage(err), details); rerr != nil {
			return nil, rerr
		}
		return nil, err
	}
	return u, nil
}

func normalizeRoles(in []chatvault.Role) ([]chatvault.Role, error) {
	out := []chatvault.Role{chatvault.RoleMember}
	for _, r := range in {
		if !r.Valid() {
			return nil, chatvault.Invalidf("roles", "unknown role %q; roles are %v", r, chatvault.Roles)
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// Users pages through the admin's org by username.
// With a query, only the users it finds by name (see findUsers).
func (s *Service) Users(ctx context.Context, a chatvault.Actor, f chatvault.UserFilter, query string) ([]*chatvault.User, error) {
	if err := chatvault.Authorize(a, chatvault.PermViewUsers); err != nil {
		return nil, err
	}
	us, err := s.findUsers(ctx, a.OrgID, f, query)
	if us == nil {
		us = []*chatvault.User{}
	}
	return us, err
}

// User returns one user of the admin's org.
func (s *Service) User(ctx context.Context, a chatvault.Actor, userID string) (*chatvault.User, error) {
	if err := chatvault.Authorize(a, chatvault.PermViewUsers); err != nil {
		return nil, err
	}
	return s.store.FindUserByID(ctx, a.OrgID, userID)
}

// UserPatch is an administrator's change to an account; nil fields stay as they are.
type UserPatch struct {
	DisplayName *string
	// Roles is the full set the user should hold (member is implied).
	Roles    []chatvault.Role
	Disabled *bool
}

// UpdateUser renames, grants and revokes roles, disables or enables a user. Each role is granted
// or revoked only by those the permission table allows (chatvault.AuthorizeRoleChange); nobody
// changes their own roles. Every change is audited before it takes effect, and removing a role or
// disabling the account signs out every device of the user at once, closing its sockets.
func (s *Service) UpdateUser(ctx context.Context, a chatvault.Actor, userID string, p UserPatch) (*chatvault.User, error) {
	if !chatvault.RoleGrants(a.Roles, chatvault.PermManageUsers) && !chatvault.RoleGrants(a.Roles, chatvault.PermGrantPrivileged) {
		return nil, chatvault.Authorize(a, chatvault.PermManageUsers)
	}
	if p.DisplayName == nil && p.Roles == nil && p.Disabled == nil {
		return nil, chatvault.Errorf(chatvault.EINVALID, "nothing to change: send display_name, roles or disabled")
	}
	var upd chatvault.UserUpdate
	if p.DisplayName != nil || p.Disabled != nil {
		if err := chatvault.Authorize(a, chatvault.PermManageUsers); err != nil {
			return nil, err
		}
	}
	if p.DisplayName != nil {
		display := strings.TrimSpace(*p.DisplayName)
		if display == "" {
			return nil, chatvault.Invalidf("display_name", "display_name cannot be empty")
		}
		if err := chatvault.CheckName("display_name", display, 128); err != nil {
			return nil, err
		}
		upd.DisplayName = &display
	}
	if p.Disabled != nil && *p.Disabled && userID == a.UserID {
		return nil, chatvault.Errorf(chatvault.ECONFLICT, "you cannot disable your own account")
	}
	var roles []chatvault.Role
	if p.Roles != nil {
		var err error
		if roles, err = normalizeRoles(p.Roles); err != nil {
			return nil, err
		}
	}
	u, err := s.store.FindUserByID(ctx, a.OrgID, userID)
	if err != nil {
		return nil, err
	}
	var added, removed []chatvault.Role
	if roles != nil {
		for _, r := range roles {
			if !u.HasRole(r) {
				added = append(added, r)
			}
		}
		for _, r := range u.Roles {
			if !slices.Contains(roles, r) {
				removed = append(removed, r)
			}
		}
	}
	if len(added)+len(removed) > 0 {
		details := map[string]any{"added": added, "removed": removed}
		if userID == a.UserID {
			return nil, s.refused(ctx, a, "user.roles", userID, &chatvault.Error{Code: chatvault.EFORBIDDEN, Field: "roles",
				Message: "you cannot change your own roles; another administrator must"}, details)
		}
		for _, r := range slices.Concat(added, removed) {
			if err := chatvault.AuthorizeRoleChange(a, r); err != nil {
				return nil, s.refused(ctx, a, "user.roles", userID, err, details)
			}
		}
		if err := s.audit(ctx, a, "user.roles", userID, "ok", details); err != nil {
			return nil, err
		}
		upd.Roles = roles
	}
	if upd.DisplayName != nil && *upd.DisplayName != u.DisplayName {
		if err := s.audit(ctx, a, "user.rename", userID, "ok", map[string]any{"display_name": *upd.DisplayName}); err != nil {
			return nil, err
		}
	}
	if p.Disabled != nil && *p.Disabled != u.Disabled {
		action := "user.enable"
		if *p.Disabled {
			action = "user.disable"
		}
		if err := s.audit(ctx, a, action, userID, "ok", nil); err != nil {
			return nil, err
		}
		upd.Disabled = p.Disabled
	}
	if upd.DisplayName == nil && upd.Roles == nil && upd.Disabled == nil {
		return u, nil
	}
	if u, err = s.store.UpdateUser(ctx, a.OrgID, userID, upd); err != nil {
		return nil, err
	}
	if len(removed) > 0 || u.Disabled {
		if _, err := s.revokeSessions(ctx, a.OrgID, userID, ""); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// SetDisabled disables or re-enables a user. Disabling signs out every device of the user, so
// re-enabling never revives an old token.
func (s *Service) SetDisabled(ctx context.Context, a chatvault.Actor, userID string, disabled bool) (*chatvault.User, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageUsers); err != nil {
		return nil, err
	}
	return s.UpdateUser(ctx, a, userID, UserPatch{Disabled: &disabled})
}

// ResetPassword sets a user's password (a generated one when password is "") and returns it.
// Every device of the user is signed out, and the password works only to choose a new one: a
// session signed in with it can do nothing else, so the administrator who knows it cannot act
// as the user without the user finding their password changed (and the reset is audited).
func (s *Service) ResetPassword(ctx context.Context, a chatvault.Actor, userID, password string) (string, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageUsers); err != nil {
		return "", err
	}
	u, err := s.store.FindUserByID(ctx, a.OrgID, userID)
	if err != nil {
		return "", err
	}
	// Whoever resets a password can sign in with it and choose the next one, so resetting the
	// password of a privileged user is as good as granting their roles: it needs the same right.
	for _, r := range u.Roles {
		if r == chatvault.RoleMember || r == chatvault.RoleOrgAdmin {
			continue
		}
		if err := chatvault.AuthorizeRoleChange(a, r); err != nil {
			return "", s.refused(ctx, a, "user.password_reset", userID, &chatvault.Error{Code: chatvault.EFORBIDDEN,
				Message: "resetting the password of a " + string(r) + " needs a security_admin"}, nil)
		}
	}
	if err := s.audit(ctx, a, "user.password_reset", userID, "ok", nil); err != nil {
		return "", err
	}
	pw, err := s.setPassword(ctx, a.OrgID, userID, "password", password, true)
	if err != nil {
		return "", err
	}
	if _, err := s.revokeSessions(ctx, a.OrgID, userID, ""); err != nil {
		return "", err
	}
	return pw, nil
}

// Person is how a user appears to other members of the org.
type Person struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
}

// Directory pages through the enabled users of the actor's org, so members can find whom to talk
// to; with a query, only the users it finds by name (see findUsers).
func (s *Service) Directory(ctx context.Context, a chatvault.Actor, f chatvault.UserFilter, query string) ([]Person, error) {
	f.EnabledOnly = true // filtered in the store, so a page is never cut short
	us, err := s.findUsers(ctx, a.OrgID, f, query)
	if err != nil {
		return nil, err
	}
	out := make([]Person, 0, len(us))
	for _, u := range us {
		out = append(out, Person{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName})
	}
	return out, nil
}

// Me returns the actor's own account.
func (s *Service) Me(ctx context.Context, a chatvault.Actor) (*chatvault.User, error) {
	return s.store.FindUserByID(ctx, a.OrgID, a.UserID)
}

// nameScanPage is how many users findUsers reads from the store at a time while it looks for a
// page of matches.
const nameScanPage = 500

// findUsers pages through the org's users by username as f says; with a query, it keeps only the
// users whose display name or username the query finds (search.ParseName: as written, by full
// pinyin or by initials: zs and zhangsan find 张三), reading on until it has f.Limit of them, so
// the next page starts after the last username returned, as without a query.
func (s *Service) findUsers(ctx context.Context, orgID string, f chatvault.UserFilter, query string) ([]*chatvault.User, error) {
	if query == "" {
		return s.store.FindUsers(ctx, orgID, f)
	}
	q := search.ParseName(query)
	if q == nil {
		return nil, chatvault.Invalidf("q", "q has no letters, digits or characters to look for")
	}
	want := f.Limit
	f.Limit = nameScanPage
	var out []*chatvault.User
	for {
		us, err := s.store.FindUsers(ctx, orgID, f)
		if err != nil {
			return nil, err
		}
		for _, u := range us {
			if q.Matches(u.DisplayName, u.Username) {
				if out = append(out, u); len(out) == want {
					return out, nil
				}
			}
		}
		if len(us) < f.Limit {
			return out, nil
		}
		f.AfterUsername = us[len(us)-1].Username
	}
}
