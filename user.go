package chatvault

import (
	"context"
	"slices"
	"time"
)

// Role is what a user may do beyond taking part in their own conversations. A user may hold several.
type Role string

const (
	RoleMember            Role = "member"
	RoleOrgAdmin          Role = "org_admin"
	RoleComplianceOfficer Role = "compliance_officer"
	RoleAuditor           Role = "auditor"
	RoleSecurityAdmin     Role = "security_admin"
)

// Roles lists every role, in a stable order.
var Roles = []Role{RoleMember, RoleOrgAdmin, RoleComplianceOfficer, RoleAuditor, RoleSecurityAdmin}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// User is a person (or a service account) inside one org.
type User struct {
	OrgID       string    `json:"org_id"`
	ID          string    `json:"id"`
	Username    string    `json:"username"` // unique in the org, stored case-folded
	DisplayName string    `json:"display_name"`
	Roles       []Role    `json:"roles"`
	Disabled    bool      `json:"disabled"`
	CreatedAt   time.Time `json:"created_at"`
	// RetentionDays is the user's own visibility window: nil for none, 0 for forever.
	RetentionDays *int `json:"retention_days"`
	// MustChangePassword is set when someone else chose the password (the bootstrap's one-time
	// password, an administrator's reset): until the user sets their own, their sessions may do
	// nothing else.
	MustChangePassword bool `json:"must_change_password"`

	PasswordHash string `json:"-"` // PHC-formatted argon2id hash; never leaves the server
}

// HasRole reports whether the user holds r.
func (u *User) HasRole(r Role) bool { return slices.Contains(u.Roles, r) }

// UserUpdate changes the fields that are set.
type UserUpdate struct {
	DisplayName  *string
	Roles        []Role // nil leaves roles as they are
	Disabled     *bool
	PasswordHash *string
	// MustChangePassword is stored only with PasswordHash in practice (account sets both).
	MustChangePassword *bool
}

// UserFilter pages through an org's users by username.
type UserFilter struct {
	AfterUsername string
	Limit         int
	EnabledOnly   bool
}

// UserStore persists users.
type UserStore interface {
	// CreateUser returns ECONFLICT when the username is taken in the org.
	CreateUser(ctx context.Context, u *User) error
	FindUserByID(ctx context.Context, orgID, userID string) (*User, error)
	FindUserByUsername(ctx context.Context, orgID, username string) (*User, error)
	FindUsers(ctx context.Context, orgID string, f UserFilter) ([]*User, error)
	UpdateUser(ctx context.Context, orgID, userID string, upd UserUpdate) (*User, error)
}

// Device is one login session of a user on one device. Its bearer token is stored only as a hash.
type Device struct {
	OrgID     string     `json:"-"`
	ID        string     `json:"id"`
	UserID    string     `json:"user_id"`
	Name      string     `json:"name"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// LastSeenAt is the device's last authenticated request, to the minute (nil: none since sign-in).
	LastSeenAt *time.Time `json:"last_seen_at,omitempty"`

	TokenHash []byte `json:"-"`
}

// Session is what a valid token resolves to.
type Session struct {
	Device Device
	User   User
}

// DeviceStore persists devices and resolves tokens.
type DeviceStore interface {
	CreateDevice(ctx context.Context, d *Device) error
	// FindDevices lists the user's devices that are not revoked.
	FindDevices(ctx context.Context, orgID, userID string) ([]*Device, error)
	// RevokeDevice revokes one device of the user; ENOTFOUND if the user has no such live device.
	RevokeDevice(ctx context.Context, orgID, userID, deviceID string, at time.Time) error
	// TouchDevice records the device's last use (Device.LastSeenAt); a revoked device is left as is.
	TouchDevice(ctx context.Context, orgID, userID, deviceID string, at time.Time) error
	// FindSession resolves a token hash to its device and user, whether or not either is still
	// usable: the caller decides (revoked, disabled). ENOTFOUND when no device has the hash.
	FindSession(ctx context.Context, tokenHash []byte) (*Session, error)
}

// Actor is the authenticated caller of a request: the only identity domain services accept.
type Actor struct {
	OrgID    string
	UserID   string
	DeviceID string
	Roles    []Role
	// RetentionDays is the user's own visibility window (nil: none; 0: forever).
	RetentionDays *int
	// MustChangePassword: the session may only change the password (and read its own account,
	// sign out) until the user sets their own.
	MustChangePassword bool
}

// HasRole reports whether the actor holds r.
func (a Actor) HasRole(r Role) bool { return slices.Contains(a.Roles, r) }
