package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/jackc/pgx/v5"
)

// Audit keys (chatvault.AuditKeyStore), as in internal/sqlite/auditkey.go: wrapped ones in
// chatvault_keys.data_keys under the reserved conversation "~audit", plain ones (a store without
// encryption at rest) in audit_keys (migration 0003). internal/audit makes and uses them.

var _ chatvault.AuditKeyStore = (*DB)(nil)

// Keyring is the keyring the store seals bodies with; nil when it runs without encryption at rest.
func (db *DB) Keyring() *keyring.Keyring {
	if db.enc == nil {
		return nil
	}
	return db.enc.kr
}

// FindAuditKeys returns the org's audit keys.
func (db *DB) FindAuditKeys(ctx context.Context, orgID string) ([]chatvault.WrappedKey, error) {
	rows, err := db.pool.Query(ctx, `SELECT n, key FROM audit_keys WHERE org_id = $1`, orgID)
	if err != nil {
		return nil, fmt.Errorf("read audit keys: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (chatvault.WrappedKey, error) {
		var k chatvault.WrappedKey
		err := row.Scan(&k.N, &k.Wrapped)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("read audit keys: %w", err)
	}
	if db.enc == nil {
		return out, nil
	}
	rows, err = db.enc.keys.pool.Query(ctx, `SELECT id, kek_id, wrapped FROM chatvault_keys.data_keys WHERE org_id = $1 AND conversation_id = $2`,
		orgID, keyring.AuditKeyConversation)
	if err != nil {
		return nil, fmt.Errorf("read wrapped audit keys: %w", err)
	}
	wrapped, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (chatvault.WrappedKey, error) {
		var k chatvault.WrappedKey
		err := row.Scan(&k.N, &k.KEKID, &k.Wrapped)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("read wrapped audit keys: %w", err)
	}
	return append(out, wrapped...), nil
}

// AddAuditKey keeps k unless the org has a key numbered k.N, and returns the one kept: two
// processes that make an org's first audit key at once both use the first stored.
func (db *DB) AddAuditKey(ctx context.Context, orgID string, k chatvault.WrappedKey) (*chatvault.WrappedKey, error) {
	kept := chatvault.WrappedKey{N: k.N}
	if k.KEKID == "" {
		if _, err := db.pool.Exec(ctx, `INSERT INTO audit_keys (org_id, n, key) VALUES ($1, $2, $3) ON CONFLICT (org_id, n) DO NOTHING`,
			orgID, k.N, k.Wrapped); err != nil {
			return nil, fmt.Errorf("store audit key: %w", err)
		}
		if err := db.pool.QueryRow(ctx, `SELECT key FROM audit_keys WHERE org_id = $1 AND n = $2`, orgID, k.N).Scan(&kept.Wrapped); err != nil {
			return nil, fmt.Errorf("read audit key: %w", err)
		}
		return &kept, nil
	}
	if db.enc == nil {
		return nil, errors.New("store audit key: a wrapped key, and this store runs without encryption at rest")
	}
	var err error
	kept.KEKID, kept.Wrapped, err = db.enc.keys.putIfAbsent(ctx, keyring.AuditKeyID(orgID, k.N), k.KEKID, k.Wrapped, db.enc.now())
	if err != nil {
		return nil, err
	}
	return &kept, nil
}
