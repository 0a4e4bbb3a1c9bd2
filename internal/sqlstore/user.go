package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/chatvault/chatvault"
)

const userColumns = `org_id, id, username, display_name, roles, disabled, password_hash, created_at, must_change_password`

// userSelect reads the users columns, disabled as a boolean, and the columns later migrations
// gave users.
const userSelect = `org_id, id, username, display_name, roles, disabled <> 0, password_hash, created_at, retention_days,
	must_change_password <> 0`

// CreateUser inserts a user.
func (c *Core) CreateUser(ctx context.Context, u *chatvault.User) error {
	return c.update(ctx, func(ctx context.Context, tx Tx) error { return c.insertUser(ctx, tx, u) })
}

func (c *Core) insertUser(ctx context.Context, tx Tx, u *chatvault.User) error {
	_, err := tx.Exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		u.OrgID, u.ID, u.Username, u.DisplayName, JoinRoles(u.Roles), b2i(u.Disabled), u.PasswordHash, Millis(u.CreatedAt),
		b2i(u.MustChangePassword))
	if c.d.UniqueViolation(err) {
		return &chatvault.Error{Code: chatvault.ECONFLICT, Field: "username", Message: fmt.Sprintf("username %q is taken", u.Username)}
	} else if err != nil {
		return fmt.Errorf("insert user: %w", err)
	}
	return nil
}

// FindUserByID finds a user of the org.
func (c *Core) FindUserByID(ctx context.Context, orgID, userID string) (*chatvault.User, error) {
	return findUser(ctx, c.cached, `SELECT `+userSelect+` FROM users WHERE org_id = $1 AND id = $2`, orgID, userID)
}

// FindUserByUsername finds a user of the org by their (case-folded) username.
func (c *Core) FindUserByUsername(ctx context.Context, orgID, username string) (*chatvault.User, error) {
	return findUser(ctx, c.cached, `SELECT `+userSelect+` FROM users WHERE org_id = $1 AND username = $2`, orgID, username)
}

func findUser(ctx context.Context, q Querier, query string, args ...any) (*chatvault.User, error) {
	u, err := scanUser(q.QueryRow(ctx, query, args...))
	if isNoRows(err) {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "user not found")
	}
	return u, err
}

// FindUsers pages through an org's users by username.
func (c *Core) FindUsers(ctx context.Context, orgID string, f chatvault.UserFilter) ([]*chatvault.User, error) {
	rows, err := c.read.Query(ctx, `SELECT `+userSelect+` FROM users
		WHERE org_id = $1 AND username > $2 AND ($3 = 0 OR disabled = 0) ORDER BY username LIMIT $4`,
		orgID, f.AfterUsername, b2i(f.EnabledOnly), f.Limit)
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
func (c *Core) UpdateUser(ctx context.Context, orgID, userID string, upd chatvault.UserUpdate) (*chatvault.User, error) {
	var out *chatvault.User
	err := c.update(ctx, func(ctx context.Context, tx Tx) error {
		u, err := findUser(ctx, tx, c.d.pick(
			`SELECT `+userSelect+` FROM users WHERE org_id = $1 AND id = $2`,
			`SELECT `+userSelect+` FROM users WHERE org_id = $1 AND id = $2 FOR UPDATE`), orgID, userID)
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
		if upd.MustChangePassword != nil {
			u.MustChangePassword = *upd.MustChangePassword
		}
		_, err = tx.Exec(ctx, `UPDATE users SET display_name = $1, roles = $2, disabled = $3, password_hash = $4, must_change_password = $5
			WHERE org_id = $6 AND id = $7`,
			u.DisplayName, JoinRoles(u.Roles), b2i(u.Disabled), u.PasswordHash, b2i(u.MustChangePassword), orgID, userID)
		if err != nil {
			return fmt.Errorf("update user: %w", err)
		}
		out = u
		if u.Disabled {
			_, err = tx.Emit(ctx, chatvault.Event{OrgID: orgID, Kind: chatvault.EventUserDisabled, Subject: userID})
		}
		return err
	})
	return out, err
}

// scanUser reads the userSelect columns; a missing row's error is returned as is.
func scanUser(s Row) (*chatvault.User, error) {
	var u chatvault.User
	var roles string
	var created int64
	var retention sql.NullInt64
	if err := s.Scan(&u.OrgID, &u.ID, &u.Username, &u.DisplayName, &roles, &u.Disabled, &u.PasswordHash, &created, &retention,
		&u.MustChangePassword); err != nil {
		if isNoRows(err) {
			return nil, err
		}
		return nil, fmt.Errorf("scan user: %w", err)
	}
	u.Roles = splitRoles(roles)
	u.CreatedAt = FromMillis(created)
	u.RetentionDays = fromNullInt(retention)
	return &u, nil
}

// JoinRoles stores roles as one comma-separated column.
func JoinRoles(roles []chatvault.Role) string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}

// splitRoles reads the roles column.
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
