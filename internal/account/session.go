package account

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/chatvault/chatvault"
)

// LoginRequest is a sign-in from one device.
type LoginRequest struct {
	Org        string // org slug; may be empty when the server hosts exactly one org
	Username   string
	Password   string
	DeviceName string
	// Source is the network address the attempt came from, for per-source throttling ("" for
	// none: the console).
	Source string
}

// LoginResult is what a device keeps after signing in. Token is shown once and stored only hashed.
type LoginResult struct {
	Token    string `json:"token"`
	OrgID    string `json:"org_id"`
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
	// MustChangePassword: the token may only change the password (PUT /api/v1/me/password) until
	// the user has set their own.
	MustChangePassword bool `json:"must_change_password"`
}

var errBadCredentials = chatvault.Errorf(chatvault.EUNAUTHORIZED, "wrong org, username or password")

// Login checks a password and registers a new device with its own token.
//
// An unknown org, an unknown username and a wrong password take the same path: the same throttle
// (keyed by what was typed, not by what exists), one argon2id check (against a dummy hash when
// there is no user), and the same answer. Throttled attempts are refused before the hash and
// before the hashing semaphore, so guessing costs the server almost nothing.
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
	if len(req.Password) > maxPasswordBytes {
		return nil, chatvault.Invalidf("password", "a password may have at most %d bytes", maxPasswordBytes)
	}
	username, err := NormalizeUsername(req.Username)
	if err != nil {
		return nil, err
	}
	org, slug, err := s.loginOrg(ctx, req.Org)
	if err != nil {
		return nil, err
	}
	acct, src := accountKey(slug, username), sourceKey(req.Source)
	if wait, locked := s.throttle.wait(s.clock.Now(), acct, src); wait > 0 {
		return nil, errTooMany(wait, locked)
	}
	release, err := s.hashSlot(ctx)
	if err != nil {
		return nil, err
	}
	var u *chatvault.User
	if org != nil {
		u, err = s.store.FindUserByUsername(ctx, org.ID, username)
		if chatvault.ErrorCode(err) == chatvault.ENOTFOUND {
			u = nil
		} else if err != nil {
			release()
			return nil, err
		}
	}
	hash := dummyHash()
	if u != nil {
		hash = u.PasswordHash
	}
	ok, err := verifyPassword(hash, req.Password)
	release()
	if err != nil {
		return nil, err
	}
	if u == nil || !ok {
		if s.throttle.fail(s.clock.Now(), acct, src) && u != nil {
			// Recorded for known accounts only: an unknown one has no org log to hold it.
			if err := s.audit(ctx, chatvault.Actor{OrgID: org.ID, UserID: u.ID}, "user.locked", u.ID, "ok",
				map[string]any{"source": req.Source, "failures": s.cfg.Login.MaxFailures}); err != nil {
				return nil, err
			}
		}
		return nil, errBadCredentials
	}
	s.throttle.succeed(acct)
	if u.Disabled {
		return nil, chatvault.Errorf(chatvault.EUNAUTHORIZED, "this account is disabled; ask an org admin")
	}
	token, tokenHash, err := newToken()
	if err != nil {
		return nil, err
	}
	d := &chatvault.Device{OrgID: org.ID, ID: newID(), UserID: u.ID, Name: strings.TrimSpace(req.DeviceName),
		CreatedAt: s.clock.Now(), TokenHash: tokenHash}
	if err := s.audit(ctx, chatvault.Actor{OrgID: org.ID, UserID: u.ID}, "device.create", d.ID, "ok",
		map[string]any{"name": d.Name, "source": req.Source}); err != nil {
		return nil, err
	}
	if err := s.store.CreateDevice(ctx, d); err != nil {
		return nil, err
	}
	return &LoginResult{Token: token, OrgID: org.ID, UserID: u.ID, DeviceID: d.ID, MustChangePassword: u.MustChangePassword}, nil
}

// loginOrg finds the org a login names, and the slug its throttle is keyed by. An unknown slug
// is not an error: the login goes on against no user, so it costs and answers the same.
func (s *Service) loginOrg(ctx context.Context, slug string) (*chatvault.Org, string, error) {
	slug = strings.ToLower(strings.TrimSpace(slug))
	if slug != "" {
		org, err := s.store.FindOrgBySlug(ctx, slug)
		if chatvault.ErrorCode(err) == chatvault.ENOTFOUND {
			return nil, slug, nil
		}
		return org, slug, err
	}
	orgs, err := s.store.FindOrgs(ctx)
	if err != nil {
		return nil, "", err
	}
	// Without a slug a login goes to the server's first org (the one made at first start), so
	// the walk-through keeps working after an operator adds another org; users of the other
	// orgs give theirs.
	if len(orgs) == 0 {
		return nil, "", nil
	}
	return orgs[0], orgs[0].Slug, nil
}

// Unlock lifts a sign-in lock on a user of the actor's org, and forgets its failures.
func (s *Service) Unlock(ctx context.Context, a chatvault.Actor, userID string) error {
	if err := chatvault.Authorize(a, chatvault.PermManageSecurity); err != nil {
		return err
	}
	u, err := s.store.FindUserByID(ctx, a.OrgID, userID)
	if err != nil {
		return err
	}
	org, err := s.store.FindOrg(ctx, a.OrgID)
	if err != nil {
		return err
	}
	if err := s.audit(ctx, a, "user.unlock", userID, "ok", nil); err != nil {
		return err
	}
	s.throttle.unlock(accountKey(org.Slug, u.Username))
	return nil
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
	now := s.clock.Now()
	if life := s.cfg.SessionLifetime; life > 0 && now.Sub(sess.Device.CreatedAt) >= life {
		return chatvault.Actor{}, chatvault.Errorf(chatvault.EUNAUTHORIZED, "this session has expired; sign in again")
	}
	last := sess.Device.CreatedAt
	if sess.Device.LastSeenAt != nil {
		last = *sess.Device.LastSeenAt
	}
	if idle := s.cfg.IdleTimeout; idle > 0 && now.Sub(last) >= idle {
		return chatvault.Actor{}, chatvault.Errorf(chatvault.EUNAUTHORIZED, "this session was idle too long; sign in again")
	}
	// Last use is kept to the minute: a write per device per minute, not per request.
	if now.Sub(last) >= time.Minute {
		if err := s.store.TouchDevice(ctx, sess.User.OrgID, sess.User.ID, sess.Device.ID, now); err != nil {
			return chatvault.Actor{}, err
		}
	}
	a := chatvault.Actor{OrgID: sess.User.OrgID, UserID: sess.User.ID, DeviceID: sess.Device.ID, Roles: sess.User.Roles,
		RetentionDays: sess.User.RetentionDays, MustChangePassword: sess.User.MustChangePassword}
	if a.MustChangePassword {
		// Until the user sets their own password, whoever knows the one someone else chose holds
		// no role: the transport lets such a session change the password and nothing else, and
		// this keeps every permission check closed even where it would not.
		a.Roles = []chatvault.Role{chatvault.RoleMember}
	}
	return a, nil
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
	org, err := s.store.FindOrg(ctx, a.OrgID)
	if err != nil {
		return err
	}
	// A stolen token must not become a way to guess the password: wrong current passwords count
	// against the account as failed sign-ins do.
	acct := accountKey(org.Slug, u.Username)
	if wait, locked := s.throttle.wait(s.clock.Now(), acct, ""); wait > 0 {
		return errTooMany(wait, locked)
	}
	release, err := s.hashSlot(ctx)
	if err != nil {
		return err
	}
	ok, err := verifyPassword(u.PasswordHash, current)
	release()
	if err != nil {
		return err
	}
	if !ok {
		s.throttle.fail(s.clock.Now(), acct, "")
		return &chatvault.Error{Code: chatvault.EFORBIDDEN, Field: "current_password", Message: "the current password is wrong"}
	}
	if next == "" {
		return chatvault.Invalidf("new_password", "new_password is required")
	}
	if err := validPassword("new_password", next, s.cfg.PasswordMinLength, u.Username); err != nil {
		return err
	}
	if err := s.audit(ctx, a, "user.password_change", a.UserID, "ok", nil); err != nil {
		return err
	}
	if current == next {
		return chatvault.Invalidf("new_password", "the new password must differ from the current one")
	}
	if _, err = s.setPassword(ctx, a.OrgID, a.UserID, "new_password", next, false); err != nil {
		return err
	}
	// Whoever knew the old password is signed out everywhere; the device that proved it stays.
	_, err = s.revokeSessions(ctx, a.OrgID, a.UserID, a.DeviceID)
	return err
}
