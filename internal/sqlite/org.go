package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/chatvault/chatvault"
)

// CreateOrg creates the org and its first admin in one transaction.
func (db *DB) CreateOrg(ctx context.Context, org *chatvault.Org, admin *chatvault.User) error {
	return db.update(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO orgs (id, slug, name, created_at) VALUES (?, ?, ?, ?)`,
			org.ID, org.Slug, org.Name, millis(org.CreatedAt))
		if isUniqueViolation(err) {
			return chatvault.Errorf(chatvault.ECONFLICT, "an org with slug %q already exists", org.Slug)
		} else if err != nil {
			return fmt.Errorf("insert org: %w", err)
		}
		return insertUser(ctx, tx, admin)
	})
}

// FindOrgs lists every org, oldest first.
func (db *DB) FindOrgs(ctx context.Context) ([]*chatvault.Org, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT id, slug, name, created_at FROM orgs ORDER BY created_at, slug`)
	if err != nil {
		return nil, fmt.Errorf("query orgs: %w", err)
	}
	defer rows.Close()
	var out []*chatvault.Org
	for rows.Next() {
		var o chatvault.Org
		var created int64
		if err := rows.Scan(&o.ID, &o.Slug, &o.Name, &created); err != nil {
			return nil, fmt.Errorf("scan org: %w", err)
		}
		o.CreatedAt = fromMillis(created)
		out = append(out, &o)
	}
	return out, rows.Err()
}

// FindOrgBySlug finds one org.
func (db *DB) FindOrgBySlug(ctx context.Context, slug string) (*chatvault.Org, error) {
	var o chatvault.Org
	var created int64
	err := db.read.QueryRowContext(ctx, `SELECT id, slug, name, created_at FROM orgs WHERE slug = ?`, slug).
		Scan(&o.ID, &o.Slug, &o.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "org %q not found", slug)
	} else if err != nil {
		return nil, fmt.Errorf("query org: %w", err)
	}
	o.CreatedAt = fromMillis(created)
	return &o, nil
}
