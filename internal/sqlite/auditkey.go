package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
)

// Audit keys (chatvault.AuditKeyStore). internal/audit makes, wraps and uses them; the store only
// keeps them: wrapped ones in the keys database under the reserved conversation "~audit" (so KEK
// rotation re-wraps them and a data backup never holds one), plain ones (a store without
// encryption at rest) in audit_keys (migration 0008).

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
	var out []chatvault.WrappedKey
	rows, err := db.read.QueryContext(ctx, `SELECT n, key FROM audit_keys WHERE org_id = ?`, orgID)
	if err != nil {
		return nil, fmt.Errorf("read audit keys: %w", err)
	}
	defer rows.Close()
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
	if db.enc == nil {
		return out, nil
	}
	wrows, err := db.enc.keys.db.QueryContext(ctx, `SELECT id, kek_id, wrapped FROM data_keys WHERE org_id = ? AND conversation_id = ?`,
		orgID, keyring.AuditKeyConversation)
	if err != nil {
		return nil, fmt.Errorf("read wrapped audit keys: %w", err)
	}
	defer wrows.Close()
	for wrows.Next() {
		var k chatvault.WrappedKey
		if err := wrows.Scan(&k.N, &k.KEKID, &k.Wrapped); err != nil {
			return nil, fmt.Errorf("read wrapped audit keys: %w", err)
		}
		out = append(out, k)
	}
	return out, wrows.Err()
}

// AddAuditKey keeps k unless the org has a key numbered k.N, and returns the one kept.
func (db *DB) AddAuditKey(ctx context.Context, orgID string, k chatvault.WrappedKey) (*chatvault.WrappedKey, error) {
	kept := chatvault.WrappedKey{N: k.N}
	if k.KEKID == "" {
		err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO audit_keys (org_id, n, key) VALUES (?, ?, ?)`, orgID, k.N, k.Wrapped); err != nil {
				return err
			}
			return tx.QueryRowContext(ctx, `SELECT key FROM audit_keys WHERE org_id = ? AND n = ?`, orgID, k.N).Scan(&kept.Wrapped)
		})
		if err != nil {
			return nil, fmt.Errorf("store audit key: %w", err)
		}
		return &kept, nil
	}
	if db.enc == nil {
		return nil, errors.New("store audit key: a wrapped key, and this store runs without encryption at rest")
	}
	// Committed to the keys database before any entry is sealed under it, like a data key.
	id := keyring.AuditKeyID(orgID, k.N)
	if _, err := db.enc.keys.db.ExecContext(ctx, `INSERT OR IGNORE INTO data_keys (org_id, conversation_id, id, kek_id, wrapped, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`, id.Org, id.Conversation, id.N, k.KEKID, k.Wrapped, millis(db.enc.now())); err != nil {
		return nil, fmt.Errorf("store audit key %s: %w", id, err)
	}
	var err error
	if kept.KEKID, kept.Wrapped, err = db.enc.keys.get(ctx, id); err != nil {
		return nil, err
	}
	return &kept, nil
}
