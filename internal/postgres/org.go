package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/chatvault/chatvault"
	"github.com/jackc/pgx/v5"
)

// CreateOrg creates the org and its first admin in one transaction.
func (db *DB) CreateOrg(ctx context.Context, org *chatvault.Org, admin *chatvault.User) error {
	return db.update(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.Exec(ctx, `INSERT INTO orgs (id, slug, name, created_at) VALUES ($1, $2, $3, $4)`,
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
	rows, err := db.pool.Query(ctx, `SELECT id, slug, name, created_at FROM orgs ORDER BY created_at, slug`)
	if err != nil {
		return nil, fmt.Errorf("query orgs: %w", err)
	}
	out, err := collect(rows, func(r pgx.CollectableRow) (*chatvault.Org, error) { return scanOrg(r) })
	if err != nil {
		return nil, fmt.Errorf("query orgs: %w", err)
	}
	return out, nil
}

// FindOrgBySlug finds one org.
func (db *DB) FindOrgBySlug(ctx context.Context, slug string) (*chatvault.Org, error) {
	o, err := scanOrg(db.pool.QueryRow(ctx, `SELECT id, slug, name, created_at FROM orgs WHERE slug = $1`, slug))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "org %q not found", slug)
	} else if err != nil {
		return nil, fmt.Errorf("query org: %w", err)
	}
	return o, nil
}

func scanOrg(s pgx.Row) (*chatvault.Org, error) {
	var o chatvault.Org
	var created int64
	if err := s.Scan(&o.ID, &o.Slug, &o.Name, &created); err != nil {
		return nil, err
	}
	o.CreatedAt = fromMillis(created)
	return &o, nil
}
