package sqlstore

import (
	"cmp"
	"context"
	"fmt"

	"github.com/chatvault/chatvault"
)

// CreateOrg creates the org and its first admin in one transaction.
func (c *Core) CreateOrg(ctx context.Context, org *chatvault.Org, admin *chatvault.User) error {
	return c.update(ctx, func(ctx context.Context, tx Tx) error {
		org.TimeZone = cmp.Or(org.TimeZone, chatvault.DefaultTimeZone)
		_, err := tx.Exec(ctx, `INSERT INTO orgs (id, slug, name, created_at, time_zone) VALUES ($1, $2, $3, $4, $5)`,
			org.ID, org.Slug, org.Name, Millis(org.CreatedAt), org.TimeZone)
		if c.d.UniqueViolation(err) {
			return chatvault.Errorf(chatvault.ECONFLICT, "an org with slug %q already exists", org.Slug)
		} else if err != nil {
			return fmt.Errorf("insert org: %w", err)
		}
		org.SearchStemming = true // the column's default
		return c.insertUser(ctx, tx, admin)
	})
}

// FindOrgs lists every org, oldest first.
func (c *Core) FindOrgs(ctx context.Context) ([]*chatvault.Org, error) {
	rows, err := c.read.Query(ctx, `SELECT `+orgColumns+` FROM orgs ORDER BY created_at, slug`)
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
	o, err := scanOrg(c.read.QueryRow(ctx, `SELECT `+orgColumns+` FROM orgs WHERE slug = $1`, slug))
	if isNoRows(err) {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "org %q not found", slug)
	} else if err != nil {
		return nil, fmt.Errorf("query org: %w", err)
	}
	return o, nil
}

// FindOrg finds one org by id.
func (c *Core) FindOrg(ctx context.Context, id string) (*chatvault.Org, error) {
	o, err := scanOrg(c.read.QueryRow(ctx, `SELECT `+orgColumns+` FROM orgs WHERE id = $1`, id))
	if isNoRows(err) {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "org %s not found", id)
	} else if err != nil {
		return nil, fmt.Errorf("query org: %w", err)
	}
	return o, nil
}

// SetOrgTimeZone sets the org's time zone.
func (c *Core) SetOrgTimeZone(ctx context.Context, id, tz string) error {
	return c.update(ctx, func(ctx context.Context, tx Tx) error {
		n, err := tx.Exec(ctx, `UPDATE orgs SET time_zone = $2 WHERE id = $1`, id, tz)
		if err != nil {
			return fmt.Errorf("set org time zone: %w", err)
		}
		if n == 0 {
			return chatvault.Errorf(chatvault.ENOTFOUND, "org %s not found", id)
		}
		return nil
	})
}

// SetOrgSearchStemming turns the org's query stemming on or off.
func (c *Core) SetOrgSearchStemming(ctx context.Context, id string, on bool) error {
	v := 0
	if on {
		v = 1
	}
	return c.update(ctx, func(ctx context.Context, tx Tx) error {
		n, err := tx.Exec(ctx, `UPDATE orgs SET search_stemming = $2 WHERE id = $1`, id, v)
		if err != nil {
			return fmt.Errorf("set org search stemming: %w", err)
		}
		if n == 0 {
			return chatvault.Errorf(chatvault.ENOTFOUND, "org %s not found", id)
		}
		return nil
	})
}

const orgColumns = `id, slug, name, created_at, time_zone, search_stemming`

func scanOrg(s Row) (*chatvault.Org, error) {
	var o chatvault.Org
	var created int64
	var stemming int
	if err := s.Scan(&o.ID, &o.Slug, &o.Name, &created, &o.TimeZone, &stemming); err != nil {
		return nil, err
	}
	o.CreatedAt, o.SearchStemming = FromMillis(created), stemming != 0
	return &o, nil
}
