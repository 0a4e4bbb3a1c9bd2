package account

import (
	"context"
	"strings"
	"sync"

	"github.com/chatvault/chatvault"
)

// LoginRequest is a sign-in from one device.
type LoginRequest struct {
	Org        string // org slug; may be empty when the server hosts exactly one org
	Username   string
	Password   string
	DeviceName string
}

// LoginResult is what a device keeps after signing in. Token is shown once and stored only hashed.
type LoginResult struct {
	Token    string `json:"token"`
	OrgID    string `json:"org_id"`
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
}

var errBadCredentials = chatvault.Errorf(chatvault.EUNAUTHORIZED, "wrong username or password")

// Login checks a password and registers a new device with its own token.
func (s *Service) Login(ctx context.Context, req LoginRequest) (*LoginResult, error) {
	if err := chatvault.CheckName("device_name", strings.TrimSpace(req.DeviceName), 128); err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.DeviceName) == "" {
		return nil, chatvault.Invalidf("device_name", "device_name is required: name the device, for example \"Alice's phone\"")
	}
	if req.Password == "" {
		return nil, chatvault.Invalidf("password", "password is required")
	}
	org, err := s.loginOrg(ctx, req.Org)
	if err != nil {
		return nil, err
	}
	username, err := NormalizeUsername(req.Username)
	if err != nil {
		return nil, err
	}
	u, err := s.store.FindUserByUsername(ctx, org.ID, username)
	if chatvault.ErrorCode(err) == chatvault.ENOTFOUND {
		// Spend the same time as a real check, so response times do not reveal who exists.
		verifyPassword(dummyHash(), req.Password)
		return nil, errBadCredentials
	} else if err != nil {
		return nil, err
	}
	ok, err := verifyPassword(u.PasswordHash, req.Password)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errBadCredentials
	}
	if u.Disabled {
		return nil, chatvault.Errorf(chatvault.EUNAUTHORIZED, "this account is disabled; ask an org admin")
	}
	token, hash, err := newToken()
	if err != nil {
		return nil, err
	}
	d := &chatvault.Device{OrgID: org.ID, ID: newID(), UserID: u.ID, Name: strings.TrimSpace(req.DeviceName),
		CreatedAt: s.clock.Now(), TokenHash: hash}
	if err := s.audit(ctx, chatvault.Actor{OrgID: org.ID, UserID: u.ID}, "device.create", d.ID, "ok",
		map[string]any{"name": d.Name}); err != nil {
		return nil, err
	}
	if err := s.store.CreateDevice(ctx, d); err != nil {
		return nil, err
	}
	return &LoginResult{Token: token, OrgID: org.ID, UserID: u.ID, DeviceID: d.ID}, nil
}

func (s *Service) loginOrg(ctx context.Context, slug string) (*chatvault.Org, error) {
	if slug != "" {
		org, err := s.store.FindOrgBySlug(ctx, strings.ToLower(strings.TrimSpace(slug)))
		if chatvault.ErrorCode(err) == chatvault.ENOTFOUND {
			return nil, errBadCredentials
		}
		return org, err
	}
	orgs, err := s.store.FindOrgs(ctx)
	if err != nil {
		return nil, err
	}
	// Without a slug a login goes to the server's first org (the one made at first start), so
	// the walk-through keeps working after an operator adds another org; users of the other
	// orgs give theirs.
	if len(orgs) == 0 {
		return nil, errBadCredentials
	}
	return orgs[0], nil
}

var dummyHash = sync.OnceValue(func() string {
	h, _ := HashPassword("chatvault timing equaliser")
	return h
})

// Authenticate resolves a bearer token to the actor it speaks for. A revoked device or a disabled
// user is refused at once: nothing is cached.
func (s *Service) Authenticate(ctx context.Context, token string) (chatvault.Actor, error) {
	if !strings.HasPrefix(token, tokenPrefix) {
		return chatvault.Actor{}, chatvault.Errorf(chatvault.EUNAUTHORIZED, "missing or malformed bearer token")
	}
	sess, err := s.store.FindSession(ctx, hashToken(token))
	if chatvault.ErrorCode(err) == chatvault.ENOTFOUND {
		return chatvault.Actor{}, chatvault.Errorf(chatvault.EUNAUTHORIZED, "invalid token")
	} else if err != nil {
		return chatvault.Actor{}, err
	}
	// Disabling a user also signs out their devices, so the account is checked first: "signed
	// out; sign in again" would send them to a login that cannot work.
	if sess.User.Disabled {
		return chatvault.Actor{}, chatvault.Errorf(chatvault.EUNAUTHORIZED, "this account is disabled; ask an org admin")
	}
	if sess.Device.RevokedAt != nil {
		return chatvault.Actor{}, chatvault.Errorf(chatvault.EUNAUTHORIZED, "this device was signed out; sign in again")
	}
	return chatvault.Actor{OrgID: sess.User.OrgID, UserID: sess.User.ID, DeviceID: sess.Device.ID, Roles: sess.User.Roles,
		RetentionDays: sess.User.RetentionDays}, nil
}

// Logout signs the actor's own device out.
func (s *Service) Logout(ctx context.Context, a chatvault.Actor) error {
	return s.RevokeDevice(ctx, a, a.DeviceID)
}

// Devices lists the actor's signed-in devices.
func (s *Service) Devices(ctx context.Context, a chatvault.Actor) ([]*chatvault.Device, error) {
	ds, err := s.store.FindDevices(ctx, a.OrgID, a.UserID)
	if ds == nil {
		ds = []*chatvault.Device{}
	}
	return ds, err
}

// RevokeDevice signs one of the actor's own devices out; its token stops working at once.
func (s *Service) RevokeDevice(ctx context.Context, a chatvault.Actor, deviceID string) error {
	if err := s.audit(ctx, a, "device.revoke", deviceID, "ok", nil); err != nil {
		return err
	}
	return s.store.RevokeDevice(ctx, a.OrgID, a.UserID, deviceID, s.clock.Now())
}

// ChangePassword sets the actor's own password after checking the current one.
func (s *Service) ChangePassword(ctx context.Context, a chatvault.Actor, current, next string) error {
	u, err := s.store.FindUserByID(ctx, a.OrgID, a.UserID)
	if err != nil {
		return err
	}
	ok, err := verifyPassword(u.PasswordHash, current)
	if err != nil {
		return err
	}
	if !ok {
		return &chatvault.Error{Code: chatvault.EFORBIDDEN, Field: "current_password", Message: "the current password is wrong"}
	}
	if next == "" {
		return chatvault.Invalidf("new_password", "new_password is required")
	}
	if err := validPassword("new_password", next); err != nil {
		return err
	}
	if err := s.audit(ctx, a, "user.password_change", a.UserID, "ok", nil); err != nil {
		return err
	}
	if _, err = s.setPassword(ctx, a.OrgID, a.UserID, "new_password", next); err != nil {
		return err
	}
	// Whoever knew the old password is signed out everywhere; the device that proved it stays.
	_, err = s.revokeSessions(ctx, a.OrgID, a.UserID, a.DeviceID)
	return err
}
