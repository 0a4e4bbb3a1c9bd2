package sqlstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
)

// Audit keys (chatvault.AuditKeyStore). internal/audit makes, wraps and uses them; the store only
// keeps them: wrapped ones in the key store under the reserved conversation "~audit" (so KEK
// rotation re-wraps them and a copy of the data alone never holds one), plain ones (a store
// without encryption at rest) in audit_keys. The plain keys a store kept before it was given
// encryption stay, to open the entries sealed under them.

// Keyring is the keyring the store seals with; nil when it runs without encryption at rest.
func (c *Core) Keyring() *keyring.Keyring {
	if c.enc == nil {
		return nil
	}
	return c.enc.Keyring
}

// FindAuditKeys returns the org's audit keys, plain and wrapped.
func (c *Core) FindAuditKeys(ctx context.Context, orgID string) ([]chatvault.WrappedKey, error) {
	rows, err := c.read.Query(ctx, `SELECT n, key FROM audit_keys WHERE org_id = $1`, orgID)
	if err != nil {
		return nil, fmt.Errorf("read audit keys: %w", err)
	}
	defer rows.Close()
	var out []chatvault.WrappedKey
	for rows.Next() {
		var k chatvault.WrappedKey
		if err := rows.Scan(&k.N, &k.Wrapped); err != nil {
			return nil, fmt.Errorf("read audit keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit keys: %w", err)
	}
	if c.enc == nil {
		return out, nil
	}
	wrapped, err := c.enc.Keys.List(ctx, orgID, keyring.AuditKeyConversation)
	if err != nil {
		return nil, fmt.Errorf("read wrapped audit keys: %w", err)
	}
	return append(out, wrapped...), nil
}

// AddAuditKey keeps k unless the org has a key numbered k.N, and returns the one kept: two
// processes that make an org's first audit key at once both use the first stored.
func (c *Core) AddAuditKey(ctx context.Context, orgID string, k chatvault.WrappedKey) (*chatvault.WrappedKey, error) {
	kept := chatvault.WrappedKey{N: k.N}
	if k.KEKID == "" {
		err := c.update(ctx, func(ctx context.Context, tx Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO audit_keys (org_id, n, key) VALUES ($1, $2, $3) ON CONFLICT (org_id, n) DO NOTHING`,
				orgID, k.N, k.Wrapped); err != nil {
				return err
			}
			return tx.QueryRow(ctx, `SELECT key FROM audit_keys WHERE org_id = $1 AND n = $2`, orgID, k.N).Scan(&kept.Wrapped)
		})
		if err != nil {
			return nil, fmt.Errorf("store audit key: %w", err)
		}
		return &kept, nil
	}
	if c.enc == nil {
		return nil, errors.New("store audit key: a wrapped key, and this store runs without encryption at rest")
	}
	// Committed to the key store before any entry is sealed under it, like a data key.
	var err error
	kept.KEKID, kept.Wrapped, err = c.enc.Keys.PutIfAbsent(ctx, keyring.AuditKeyID(orgID, k.N), k.KEKID, k.Wrapped, c.enc.Now())
	if err != nil {
		return nil, err
	}
	return &kept, nil
}
