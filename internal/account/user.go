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

// CreateUser creates a user in the admin's org. Every user holds the member role.
func (s *Service) CreateUser(ctx context.Context, a chatvault.Actor, req NewUser) (*chatvault.User, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageUsers); err != nil {
		return nil, err
	}
	username, err := NormalizeUsername(req.Username)
	if err != nil {
		return nil, err
	}
	if err := validPassword("password", req.Password); err != nil {
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
	hash, err := HashPassword(req.Password)
	if err != nil {
		return nil, err
	}
	u := &chatvault.User{OrgID: a.OrgID, ID: newID(), Username: username, DisplayName: display, Roles: roles,
		PasswordHash: hash, CreatedAt: s.clock.Now()}
	if err := s.store.CreateUser(ctx, u); err != nil {
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
	if err := chatvault.Authorize(a, chatvault.PermManageUsers); err != nil {
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
	if err := chatvault.Authorize(a, chatvault.PermManageUsers); err != nil {
		return nil, err
	}
	return s.store.FindUserByID(ctx, a.OrgID, userID)
}

// SetDisabled disables or re-enables a user. Disabling signs out every device of the user, so
// re-enabling never revives an old token.
func (s *Service) SetDisabled(ctx context.Context, a chatvault.Actor, userID string, disabled bool) (*chatvault.User, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageUsers); err != nil {
		return nil, err
	}
	if disabled && userID == a.UserID {
		return nil, chatvault.Errorf(chatvault.ECONFLICT, "you cannot disable your own account")
	}
	u, err := s.store.UpdateUser(ctx, a.OrgID, userID, chatvault.UserUpdate{Disabled: &disabled})
	if err != nil || !disabled {
		return u, err
	}
	devices, err := s.store.FindDevices(ctx, a.OrgID, userID)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	for _, d := range devices {
		if err := s.store.RevokeDevice(ctx, a.OrgID, userID, d.ID, now); err != nil && chatvault.ErrorCode(err) != chatvault.ENOTFOUND {
			return nil, err
		}
	}
	return u, nil
}

// ResetPassword sets a user's password (a generated one when password is "") and returns it.
func (s *Service) ResetPassword(ctx context.Context, a chatvault.Actor, userID, password string) (string, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageUsers); err != nil {
		return "", err
	}
	if _, err := s.store.FindUserByID(ctx, a.OrgID, userID); err != nil {
		return "", err
	}
	return s.setPassword(ctx, a.OrgID, userID, "password", password)
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
