package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/chatvault/chatvault"
)

// CreateDevice stores a new device and its token hash.
func (db *DB) CreateDevice(ctx context.Context, d *chatvault.Device) error {
	return db.update(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO devices (org_id, user_id, id, name, token_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			d.OrgID, d.UserID, d.ID, d.Name, d.TokenHash, millis(d.CreatedAt))
		if err != nil {
			return fmt.Errorf("insert device: %w", err)
		}
		return nil
	})
}

// FindDevices lists the user's live devices, oldest first.
func (db *DB) FindDevices(ctx context.Context, orgID, userID string) ([]*chatvault.Device, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT id, name, created_at FROM devices
		WHERE org_id = ? AND user_id = ? AND revoked_at IS NULL ORDER BY created_at, id`, orgID, userID)
	if err != nil {
		return nil, fmt.Errorf("query devices: %w", err)
	}
	defer rows.Close()
	var out []*chatvault.Device
	for rows.Next() {
		d := chatvault.Device{OrgID: orgID, UserID: userID}
		var created int64
		if err := rows.Scan(&d.ID, &d.Name, &created); err != nil {
			return nil, fmt.Errorf("scan device: %w", err)
		}
		d.CreatedAt = fromMillis(created)
		out = append(out, &d)
	}
	return out, rows.Err()
}

// RevokeDevice marks a live device revoked; its token stops resolving to a usable session at once.
func (db *DB) RevokeDevice(ctx context.Context, orgID, userID, deviceID string, at time.Time) error {
	return db.update(ctx, func(ctx context.Context, tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE devices SET revoked_at = ? WHERE org_id = ? AND user_id = ? AND id = ? AND revoked_at IS NULL`,
			millis(at), orgID, userID, deviceID)
		if err != nil {
			return fmt.Errorf("revoke device: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return chatvault.Errorf(chatvault.ENOTFOUND, "device %s not found", deviceID)
		}
		_, err = tx.emit(ctx, chatvault.Event{OrgID: orgID, Kind: chatvault.EventDeviceRevoked, Subject: userID, DeviceID: deviceID, At: at})
		return err
	})
}

// FindSession resolves a token hash to its device and user.
func (db *DB) FindSession(ctx context.Context, tokenHash []byte) (*chatvault.Session, error) {
	var s chatvault.Session
	var roles string
	var created, userCreated int64
	var revoked, retention sql.NullInt64
	err := db.stmts.session.QueryRowContext(ctx, tokenHash).Scan(
		&s.Device.OrgID, &s.Device.UserID, &s.Device.ID, &s.Device.Name, &created, &revoked,
		&s.User.Username, &s.User.DisplayName, &roles, &s.User.Disabled, &userCreated, &retention)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "no device has this token")
	} else if err != nil {
		return nil, fmt.Errorf("query session: %w", err)
	}
	s.Device.CreatedAt = fromMillis(created)
	s.Device.RevokedAt = fromNullMillis(revoked)
	s.Device.TokenHash = tokenHash
	s.User.OrgID, s.User.ID = s.Device.OrgID, s.Device.UserID
	s.User.Roles = splitRoles(roles)
	s.User.CreatedAt = fromMillis(userCreated)
	s.User.RetentionDays = fromNullInt(retention)
	return &s, nil
}
