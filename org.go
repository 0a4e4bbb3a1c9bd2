package chatvault

import (
	"context"
	"time"
)

// Org is a tenant. Everything belongs to exactly one org and no request ever crosses orgs.
type Org struct {
	ID   string `json:"id"`
	Slug string `json:"slug"` // stable short name users type at login when a server hosts several orgs
	Name string `json:"name"`
	// TimeZone is the IANA name exports show times in unless a request names another.
	TimeZone string `json:"time_zone"`
	// SearchStemming reads a searched English word as any of its plural, -ing and -ed forms
	// (meeting finds meetings); a word in quotes stays exact. On unless an admin turns it off.
	SearchStemming bool      `json:"search_stemming"`
	CreatedAt      time.Time `json:"created_at"`
}

// DefaultTimeZone is the time zone of an org that never set one.
const DefaultTimeZone = "UTC"

// OrgStore persists orgs.
type OrgStore interface {
	// CreateOrg creates an org together with its first admin, atomically. ECONFLICT if the slug is taken.
	CreateOrg(ctx context.Context, org *Org, admin *User) error
	FindOrgs(ctx context.Context) ([]*Org, error)
	// FindOrgBySlug returns ENOTFOUND when no org has the slug.
	FindOrgBySlug(ctx context.Context, slug string) (*Org, error)
	// FindOrg returns ENOTFOUND when no org has the id.
	FindOrg(ctx context.Context, id string) (*Org, error)
	// SetOrgTimeZone sets the org's time zone; ENOTFOUND when no org has the id.
	SetOrgTimeZone(ctx context.Context, id, tz string) error
	// SetOrgSearchStemming turns light stemming of search queries on or off; ENOTFOUND when no
	// org has the id.
	SetOrgSearchStemming(ctx context.Context, id string, on bool) error
}
