package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/chatvault/chatvault"
)

const userColumns = `org_id, id, username, display_name, roles, disabled, password_hash, created_at`

// userSelect adds the columns later migrations gave users.
const userSelect = userColumns + `, retention_days`

// CreateUser inserts a user.
func (db *DB) CreateUser(ctx context.Context, u *chatvault.User) error {
	return db.update(ctx, func(ctx context.Context, tx *wtx) error { return insertUser(ctx, tx, u) })
}

func insertUser(ctx context.Context, tx *wtx, u *chatvault.User) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		u.OrgID, u.ID, u.Username, u.DisplayName, joinRoles(u.Roles), u.Disabled, u.PasswordHash, millis(u.CreatedAt))
	if isUniqueViolation(err) {
		return &chatvault.Error{Code: chatvault.ECONFLICT, Field: "username", Message: fmt.Sprintf("username %q is taken", u.Username)}
	} else if err != nil {
		return fmt.Errorf("insert user: %w", err)
	}
	return nil
}

// FindUserByID finds a user of the org.
func (db *DB) FindUserByID(ctx context.Context, orgID, userID string) (*chatvault.User, error) {
	return findUser(ctx, db.cached, `org_id = ? AND id = ?`, orgID, userID)
}

// FindUserByUsername finds a user of the org by their (case-folded) username.
func (db *DB) FindUserByUsername(ctx context.Context, orgID, username string) (*chatvault.User, error) {
	return findUser(ctx, db.cached, `org_id = ? AND username = ?`, orgID, username)
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func findUser(ctx context.Context, q queryer, where string, args ...any) (*chatvault.User, error) {
	u, err := scanUser(q.QueryRowContext(ctx, `SELECT `+userSelect+` FROM users WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "user not found")
	}
	return u, err
}

// FindUsers pages through an org's users by username.
func (db *DB) FindUsers(ctx context.Context, orgID string, f chatvault.UserFilter) ([]*chatvault.User, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+userSelect+` FROM users
		WHERE org_id = ? AND username > ? AND (? = 0 OR disabled = 0) ORDER BY username LIMIT ?`,
		orgID, f.AfterUsername, f.EnabledOnly, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("query users: %w", err)
	}
	defer rows.Close()
	var out []*chatvault.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// UpdateUser applies the set fields of upd.
func (db *DB) UpdateUser(ctx context.Context, orgID, userID string, upd chatvault.UserUpdate) (*chatvault.User, error) {
	var out *chatvault.User
	err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
		u, err := findUser(ctx, tx, `org_id = ? AND id = ?`, orgID, userID)
		if err != nil {
			return err
		}
		if upd.DisplayName != nil {
			u.DisplayName = *upd.DisplayName
		}
		if upd.Roles != nil {
			u.Roles = upd.Roles
		}
		if upd.Disabled != nil {
			u.Disabled = *upd.Disabled
		}
		if upd.PasswordHash != nil {
			u.PasswordHash = *upd.PasswordHash
		}
		_, err = tx.ExecContext(ctx, `UPDATE users SET display_name = ?, roles = ?, disabled = ?, password_hash = ? WHERE org_id = ? AND id = ?`,
			u.DisplayName, joinRoles(u.Roles), u.Disabled, u.PasswordHash, orgID, userID)
		if err != nil {
			return fmt.Errorf("update user: %w", err)
		}
		out = u
		if u.Disabled {
			_, err = tx.emit(ctx, chatvault.Event{OrgID: orgID, Kind: chatvault.EventUserDisabled, Subject: userID})
		}
		return err
	})
	return out, err
}

type scanner interface{ Scan(dest ...any) error }

func scanUser(s scanner) (*chatvault.User, error) {
	var u chatvault.User
	var roles string
	var created int64
	var retention sql.NullInt64
	if err := s.Scan(&u.OrgID, &u.ID, &u.Username, &u.DisplayName, &roles, &u.Disabled, &u.PasswordHash, &created, &retention); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
		return nil, fmt.Errorf("scan user: %w", err)
	}
	u.Roles = splitRoles(roles)
	u.CreatedAt = fromMillis(created)
	u.RetentionDays = fromNullInt(retention)
	return &u, nil
}

func joinRoles(roles []chatvault.Role) string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}

func splitRoles(s string) []chatvault.Role {
	if s == "" {
		return []chatvault.Role{}
	}
	parts := strings.Split(s, ",")
	out := make([]chatvault.Role, len(parts))
	for i, p := range parts {
		out[i] = chatvault.Role(p)
	}
	return out
}
