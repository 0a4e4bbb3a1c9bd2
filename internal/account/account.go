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

// Recorder writes audit entries and fails closed: an error means the entry was not written
// (internal/audit).
type Recorder interface {
	Record(ctx context.Context, e *chatvault.AuditEntry) error
}

// Config holds what an operator may change about sign-in and user management.
type Config struct {
	// Audit records every user, role, password and device change. Without it such changes are
	// refused: no entry, no change.
	Audit Recorder
	// Login is how sign-in resists guessing; zero fields take DefaultLoginPolicy's values.
	Login LoginPolicy
	// SessionLifetime ends a session that long after sign-in; IdleTimeout ends one unused that
	// long (to the minute). 0: never.
	SessionLifetime time.Duration
	IdleTimeout     time.Duration
	// PasswordMinLength is the fewest characters a new password may have (default 8, as NIST
	// SP 800-63B asks; longer is the operator's choice).
	PasswordMinLength int
}

// DefaultPasswordMinLength is the shortest password accepted unless configured otherwise.
const DefaultPasswordMinLength = 8

// Service implements sign-in and user management.
type Service struct {
	store    Stores
	clock    chatvault.Clock
	cfg      Config
	throttle *throttle
	hashes   chan struct{} // one token per argon2id check running
}

// NewService returns a Service over store, telling time by clock.
func NewService(store Stores, clock chatvault.Clock, cfg Config) *Service {
	cfg.Login = cfg.Login.withDefaults()
	if cfg.PasswordMinLength <= 0 {
		cfg.PasswordMinLength = DefaultPasswordMinLength
	}
	return &Service{store: store, clock: clock, cfg: cfg, throttle: newThrottle(cfg.Login),
		hashes: make(chan struct{}, cfg.Login.HashConcurrency)}
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

// CreateOrg creates an org and its first administrator, and returns the admin's one-time password.
// The first administrator holds org_admin and security_admin: someone must be able to grant the
// privileged roles (compliance_officer, auditor, security_admin), which org_admin alone cannot.
// An org that wants the duties apart grants security_admin to a second person, who then revokes
// it from the first (nobody changes their own roles).
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
		Roles: []chatvault.Role{chatvault.RoleMember, chatvault.RoleOrgAdmin, chatvault.RoleSecurityAdmin}, PasswordHash: hash, CreatedAt: now,
		MustChangePassword: true}
	if err := s.store.CreateOrg(ctx, org, admin); err != nil {
		return nil, nil, "", err
	}
	// The org's audit log cannot hold an entry before the org exists, so this one follows. The
	// operator at the console has no account: the entry names the admin as their own creator.
	if err := s.audit(ctx, chatvault.Actor{OrgID: org.ID, UserID: admin.ID}, "user.create", admin.ID, "ok",
		map[string]any{"username": admin.Username, "roles": admin.Roles, "bootstrap": true}); err != nil {
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
	if err := s.audit(ctx, chatvault.Actor{OrgID: org.ID, UserID: u.ID}, "user.password_reset", u.ID, "ok",
		map[string]any{"by": "console"}); err != nil {
		return "", err
	}
	pw, err := s.setPassword(ctx, org.ID, u.ID, "password", "", true)
	if err != nil {
		return "", err
	}
	if _, err := s.revokeSessions(ctx, org.ID, u.ID, ""); err != nil {
		return "", err
	}
	return pw, nil
}

// setPassword stores a hash of password (or of a generated one when password is "") and returns
// the password. mustChange marks a password someone other than the user chose.
func (s *Service) setPassword(ctx context.Context, orgID, userID, field, password string, mustChange bool) (string, error) {
	if password == "" {
		password = GeneratePassword()
	} else if err := validPassword(field, password, s.cfg.PasswordMinLength, ""); err != nil {
		return "", err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return "", err
	}
	if _, err := s.store.UpdateUser(ctx, orgID, userID, chatvault.UserUpdate{PasswordHash: &hash, MustChangePassword: &mustChange}); err != nil {
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

// maxPasswordBytes bounds what argon2id is asked to hash.
const maxPasswordBytes = 1024

// validPassword applies the password policy: at least minLen characters, at most
// maxPasswordBytes bytes, not one of the commonly used passwords, and not the username itself.
func validPassword(field, p string, minLen int, username string) error {
	switch n := utf8.RuneCountInString(p); {
	case n < minLen:
		return chatvault.Invalidf(field, "a password needs at least %d characters", minLen)
	case len(p) > maxPasswordBytes:
		return chatvault.Invalidf(field, "a password may have at most %d bytes", maxPasswordBytes)
	}
	folded := strings.ToLower(p)
	if commonPassword(folded) {
		return chatvault.Invalidf(field, "this password is on the list of commonly used passwords; choose another")
	}
	if username != "" && folded == strings.ToLower(username) {
		return chatvault.Invalidf(field, "a password may not be the username")
	}
	return nil
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }
