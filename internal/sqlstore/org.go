package sqlstore

import (
	"context"
	"fmt"

	"github.com/chatvault/chatvault"
)

// CreateOrg creates the org and its first admin in one transaction.
func (c *Core) CreateOrg(ctx context.Context, org *chatvault.Org, admin *chatvault.User) error {
	return c.update(ctx, func(ctx context.Context, tx Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO orgs (id, slug, name, created_at) VALUES ($1, $2, $3, $4)`,
			org.ID, org.Slug, org.Name, Millis(org.CreatedAt))
		if c.d.UniqueViolation(err) {
			return chatvault.Errorf(chatvault.ECONFLICT, "an org with slug %q already exists", org.Slug)
		} else if err != nil {
			return fmt.Errorf("insert org: %w", err)
		}
		return c.insertUser(ctx, tx, admin)
	})
}

// FindOrgs lists every org, oldest first.
func (c *Core) FindOrgs(ctx context.Context) ([]*chatvault.Org, error) {
	rows, err := c.read.Query(ctx, `SELECT id, slug, name, created_at FROM orgs ORDER BY created_at, slug`)
	if err != nil {
		return nil, fmt.Errorf("query orgs: %w", err)
	}
	defer rows.Close()
	var out []*chatvault.Org
	for rows.Next() {
		o, err := scanOrg(rows)
		if err != nil {
			return nil, fmt.Errorf("scan org: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// FindOrgBySlug finds one org.
func (c *Core) FindOrgBySlug(ctx context.Context, slug string) (*chatvault.Org, error) {
	o, err := scanOrg(c.read.QueryRow(ctx, `SELECT id, slug, name, created_at FROM orgs WHERE slug = $1`, slug))
	if isNoRows(err) {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "org %q not found", slug)
	} else if err != nil {
		return nil, fmt.Errorf("query org: %w", err)
	}
	return o, nil
}

func scanOrg(s Row) (*chatvault.Org, error) {
	var o chatvault.Org
	var created int64
	if err := s.Scan(&o.ID, &o.Slug, &o.Name, &created); err != nil {
		return nil, err
	}
	o.CreatedAt = FromMillis(created)
	return &o, nil
}
