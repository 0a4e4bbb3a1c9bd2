// Package account holds the rules for orgs, users, devices and sign-in: password hashing
// (argon2id), bearer tokens stored only as hashes, and who may manage whom.
package account

import (
	"context"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/chatvault/chatvault"
	"github.com/google/uuid"
	"golang.org/x/text/unicode/norm"
)

// Stores is what the account service needs from a store.
type Stores interface {
	chatvault.OrgStore
	chatvault.UserStore
	chatvault.DeviceStore
}

// Service implements sign-in and user management.
type Service struct {
	store Stores
	clock chatvault.Clock
}

// NewService returns a Service over store, telling time by clock.
func NewService(store Stores, clock chatvault.Clock) *Service {
	return &Service{store: store, clock: clock}
}

// DefaultOrgSlug is the slug of the org a new server creates on first start.
const DefaultOrgSlug = "default"

// Bootstrap creates the first org and its admin when the server has no org yet. It returns the
// admin's one-time password, or "" when the server was already set up.
func (s *Service) Bootstrap(ctx context.Context) (org *chatvault.Org, admin *chatvault.User, password string, err error) {
	orgs, err := s.store.FindOrgs(ctx)
	if err != nil {
		return nil, nil, "", err
	}
	if len(orgs) > 0 {
		return nil, nil, "", nil
	}
	org, admin, password, err = s.CreateOrg(ctx, DefaultOrgSlug, "Default organisation", "admin")
	if chatvault.ErrorCode(err) == chatvault.ECONFLICT {
		return nil, nil, "", nil // another process bootstrapped first
	}
	return org, admin, password, err
}

// CreateOrg creates an org and its first org_admin, and returns the admin's one-time password.
func (s *Service) CreateOrg(ctx context.Context, slug, name, adminUsername string) (*chatvault.Org, *chatvault.User, string, error) {
	slug = strings.ToLower(strings.TrimSpace(slug))
	if !validSlug(slug) {
		return nil, nil, "", chatvault.Invalidf("slug", "an org slug is 1-64 characters of a-z, 0-9 and '-'")
	}
	name = strings.TrimSpace(name)
	if name == "" {
		name = slug
	}
	if err := chatvault.CheckName("name", name, 128); err != nil {
		return nil, nil, "", err
	}
	username, err := NormalizeUsername(adminUsername)
	if err != nil {
		return nil, nil, "", err
	}
	password := GeneratePassword()
	hash, err := HashPassword(password)
	if err != nil {
		return nil, nil, "", err
	}
	now := s.clock.Now()
	org := &chatvault.Org{ID: newID(), Slug: slug, Name: name, CreatedAt: now}
	admin := &chatvault.User{OrgID: org.ID, ID: newID(), Username: username, DisplayName: username,
		Roles: []chatvault.Role{chatvault.RoleMember, chatvault.RoleOrgAdmin}, PasswordHash: hash, CreatedAt: now}
	if err := s.store.CreateOrg(ctx, org, admin); err != nil {
		return nil, nil, "", err
	}
	return org, admin, password, nil
}

// Org returns the actor's org.
func (s *Service) Org(ctx context.Context, a chatvault.Actor) (*chatvault.Org, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageOrg); err != nil {
		return nil, err
	}
	return s.store.FindOrg(ctx, a.OrgID)
}

// SetTimeZone sets the time zone of the actor's org: exports show times in it unless a request
// names another.
func (s *Service) SetTimeZone(ctx context.Context, a chatvault.Actor, tz string) (*chatvault.Org, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageOrg); err != nil {
		return nil, err
	}
	if err := CheckTimeZone(tz); err != nil {
		return nil, err
	}
	if err := s.store.SetOrgTimeZone(ctx, a.OrgID, tz); err != nil {
		return nil, err
	}
	return s.store.FindOrg(ctx, a.OrgID)
}

// SetSearchStemming turns light English stemming of the org's search queries on or off.
func (s *Service) SetSearchStemming(ctx context.Context, a chatvault.Actor, on bool) (*chatvault.Org, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageOrg); err != nil {
		return nil, err
	}
	if err := s.store.SetOrgSearchStemming(ctx, a.OrgID, on); err != nil {
		return nil, err
	}
	return s.store.FindOrg(ctx, a.OrgID)
}

// SetTimeZoneBySlug sets an org's time zone, for operators at the console.
func (s *Service) SetTimeZoneBySlug(ctx context.Context, slug, tz string) (*chatvault.Org, error) {
	if err := CheckTimeZone(tz); err != nil {
		return nil, err
	}
	org, err := s.store.FindOrgBySlug(ctx, slug)
	if err != nil {
		return nil, err
	}
	if err := s.store.SetOrgTimeZone(ctx, org.ID, tz); err != nil {
		return nil, err
	}
	org.TimeZone = tz
	return org, nil
}

// CheckTimeZone accepts an IANA time zone name; field "time_zone" names it otherwise. "Local"
// is refused: it means whatever the server's machine is set to.
func CheckTimeZone(tz string) error {
	if _, err := time.LoadLocation(tz); err != nil || tz == "" || tz == "Local" {
		return chatvault.Invalidf("time_zone", "time_zone %q is not an IANA time zone name such as Asia/Shanghai or UTC", tz)
	}
	return nil
}

// Orgs lists every org on the server (for operators, not for the API).
func (s *Service) Orgs(ctx context.Context) ([]*chatvault.Org, error) { return s.store.FindOrgs(ctx) }

// ResetPasswordByName sets a new one-time password for a user, found by org slug and username.
// It is for operators at the console; admins in the API use ResetPassword.
func (s *Service) ResetPasswordByName(ctx context.Context, orgSlug, username string) (string, error) {
	org, err := s.store.FindOrgBySlug(ctx, orgSlug)
	if err != nil {
		return "", err
	}
	name, err := NormalizeUsername(username)
	if err != nil {
		return "", err
	}
	u, err := s.store.FindUserByUsername(ctx, org.ID, name)
	if err != nil {
		return "", err
	}
	return s.setPassword(ctx, org.ID, u.ID, "password", "")
}

// setPassword stores a hash of password (or of a generated one when password is "") and returns
// the password.
func (s *Service) setPassword(ctx context.Context, orgID, userID, field, password string) (string, error) {
	if password == "" {
		password = GeneratePassword()
	} else if err := validPassword(field, password); err != nil {
		return "", err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return "", err
	}
	if _, err := s.store.UpdateUser(ctx, orgID, userID, chatvault.UserUpdate{PasswordHash: &hash}); err != nil {
		return "", err
	}
	return password, nil
}

// NormalizeUsername folds a username to the form it is stored and compared in (NFKC, lower case),
// and checks it: 1-64 letters, digits or . _ - @.
func NormalizeUsername(s string) (string, error) {
	s = strings.ToLower(norm.NFKC.String(strings.TrimSpace(s)))
	n := utf8.RuneCountInString(s)
	if n == 0 || n > 64 {
		return "", chatvault.Invalidf("username", "a username is 1 to 64 characters")
	}
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("._-@", r) {
			return "", chatvault.Invalidf("username", "a username may hold letters, digits and . _ - @ only; %q is not allowed", r)
		}
	}
	return s, nil
}

func validSlug(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func validPassword(field, p string) error {
	switch n := utf8.RuneCountInString(p); {
	case n < 8:
		return chatvault.Invalidf(field, "a password needs at least 8 characters")
	case len(p) > 1024:
		return chatvault.Invalidf(field, "a password may have at most 1024 bytes")
	}
	return nil
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }
