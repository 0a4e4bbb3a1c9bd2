package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/chatvault/chatvault"
)

// CreateDevice stores a new device and its token hash.
func (c *Core) CreateDevice(ctx context.Context, d *chatvault.Device) error {
	return c.update(ctx, func(ctx context.Context, tx Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO devices (org_id, user_id, id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			d.OrgID, d.UserID, d.ID, d.Name, d.TokenHash, Millis(d.CreatedAt))
		if err != nil {
			return fmt.Errorf("insert device: %w", err)
		}
		return nil
	})
}

// FindDevices lists the user's live devices, oldest first.
func (c *Core) FindDevices(ctx context.Context, orgID, userID string) ([]*chatvault.Device, error) {
	rows, err := c.read.Query(ctx, `SELECT id, name, created_at, last_seen_at FROM devices
		WHERE org_id = $1 AND user_id = $2 AND revoked_at IS NULL ORDER BY created_at, id`, orgID, userID)
	if err != nil {
		return nil, fmt.Errorf("query devices: %w", err)
	}
	defer rows.Close()
	var out []*chatvault.Device
	for rows.Next() {
		d := chatvault.Device{OrgID: orgID, UserID: userID}
		var created int64
		var lastSeen sql.NullInt64
		if err := rows.Scan(&d.ID, &d.Name, &created, &lastSeen); err != nil {
			return nil, fmt.Errorf("scan device: %w", err)
		}
		d.CreatedAt = FromMillis(created)
		d.LastSeenAt = fromNullMillis(lastSeen)
		out = append(out, &d)
	}
	return out, rows.Err()
}

// RevokeDevice marks a live device revoked; its token stops resolving to a usable session at once.
func (c *Core) RevokeDevice(ctx context.Context, orgID, userID, deviceID string, at time.Time) error {
	return c.update(ctx, func(ctx context.Context, tx Tx) error {
		n, err := tx.Exec(ctx, `UPDATE devices SET revoked_at = $1 WHERE org_id = $2 AND user_id = $3 AND id = $4 AND revoked_at IS NULL`,
			Millis(at), orgID, userID, deviceID)
		if err != nil {
			return fmt.Errorf("revoke device: %w", err)
		}
		if n == 0 {
			return chatvault.Errorf(chatvault.ENOTFOUND, "device %s not found", deviceID)
		}
		_, err = tx.Emit(ctx, chatvault.Event{OrgID: orgID, Kind: chatvault.EventDeviceRevoked, Subject: userID, DeviceID: deviceID, At: at})
		return err
	})
}

// TouchDevice records that a device was used at the time given (for the idle timeout).
func (c *Core) TouchDevice(ctx context.Context, orgID, userID, deviceID string, at time.Time) error {
	return c.update(ctx, func(ctx context.Context, tx Tx) error {
		_, err := tx.Exec(ctx, `UPDATE devices SET last_seen_at = $1 WHERE org_id = $2 AND user_id = $3 AND id = $4 AND revoked_at IS NULL`,
			Millis(at), orgID, userID, deviceID)
		if err != nil {
			return fmt.Errorf("touch device: %w", err)
		}
		return nil
	})
}

// sessionQuery runs on every authenticated request: SQLite prepares it once (cached).
const sessionQuery = `SELECT d.org_id, d.user_id, d.id, d.name, d.created_at, d.revoked_at, d.last_seen_at,
		u.username, u.display_name, u.roles, u.disabled <> 0, u.created_at, u.retention_days, u.must_change_password <> 0
	FROM devices d JOIN users u ON u.org_id = d.org_id AND u.id = d.user_id WHERE d.token_hash = $1`

// FindSession resolves a token hash to its device and user.
func (c *Core) FindSession(ctx context.Context, tokenHash []byte) (*chatvault.Session, error) {
	var s chatvault.Session
	var roles string
	var created, userCreated int64
	var revoked, lastSeen, retention sql.NullInt64
	err := c.cached.QueryRow(ctx, sessionQuery, tokenHash).Scan(
		&s.Device.OrgID, &s.Device.UserID, &s.Device.ID, &s.Device.Name, &created, &revoked, &lastSeen,
		&s.User.Username, &s.User.DisplayName, &roles, &s.User.Disabled, &userCreated, &retention, &s.User.MustChangePassword)
	if isNoRows(err) {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "no device has this token")
	} else if err != nil {
		return nil, fmt.Errorf("query session: %w", err)
	}
	s.Device.CreatedAt = FromMillis(created)
	s.Device.RevokedAt = fromNullMillis(revoked)
	s.Device.LastSeenAt = fromNullMillis(lastSeen)
	s.Device.TokenHash = tokenHash
	s.User.OrgID, s.User.ID = s.Device.OrgID, s.Device.UserID
	s.User.Roles = splitRoles(roles)
	s.User.CreatedAt = FromMillis(userCreated)
	s.User.RetentionDays = fromNullInt(retention)
	return &s, nil
}
