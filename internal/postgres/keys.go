package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/sqlstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Encryption at rest is the core's (internal/sqlstore/keys.go). Here: the key store, the schema
// chatvault_keys, or another database (Options.KeysURL), so a data backup (pg_dump
// --exclude-schema=chatvault_keys) never holds a key, and a destroyed key is in no later key
// backup. The key material is always written through its own small pool, in its own transactions,
// as with SQLite's separate keys database. (A separate pool also means a transaction holding a
// data connection never waits for a second data connection, which could exhaust the pool.)
//
// PostgreSQL keeps a deleted row's bytes until VACUUM reuses the space, and in WAL until the
// segment is recycled: key backups are logical (pg_dump), so they never hold a destroyed key, but
// WAL archives of the keys database must expire on the key-backup schedule (docs/decisions.md).

// KeyStore holds the wrapped material of every data key (table chatvault_keys.data_keys).
type KeyStore struct {
	pool *pgxpool.Pool
}

// OpenKeyStore connects to the keys database at url and migrates its schema chatvault_keys.
func OpenKeyStore(ctx context.Context, url string) (*KeyStore, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse keys database url: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to keys database: %w", err)
	}
	if err := migrate(ctx, pool, keyMigrations, "keymigrations", "schema_migrations", KeysSchema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate keys schema: %w", err)
	}
	return &KeyStore{pool: pool}, nil
}

// Close closes the keys pool.
func (ks *KeyStore) Close() { ks.pool.Close() }

// Get reads a key's KEK and wrapped material.
func (ks *KeyStore) Get(ctx context.Context, id keyring.DataKeyID) (string, []byte, error) {
	var kekID string
	var wrapped []byte
	err := ks.pool.QueryRow(ctx, `SELECT kek_id, wrapped FROM chatvault_keys.data_keys WHERE org_id = $1 AND conversation_id = $2 AND id = $3`,
		id.Org, id.Conversation, id.N).Scan(&kekID, &wrapped)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, fmt.Errorf("%w: data key %s is not in the keys schema (it was crypto-shredded, or these are not this data's keys)",
			keyring.ErrDataKeyDestroyed, id)
	} else if err != nil {
		return "", nil, fmt.Errorf("read data key %s: %w", id, err)
	}
	return kekID, wrapped, nil
}

// Put stores a key, replacing one under the same id.
func (ks *KeyStore) Put(ctx context.Context, id keyring.DataKeyID, kekID string, wrapped []byte, at time.Time) error {
	_, err := ks.pool.Exec(ctx, `INSERT INTO chatvault_keys.data_keys (org_id, conversation_id, id, kek_id, wrapped, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, conversation_id, id)
		DO UPDATE SET kek_id = excluded.kek_id, wrapped = excluded.wrapped, created_at = excluded.created_at`,
		id.Org, id.Conversation, id.N, kekID, wrapped, sqlstore.Millis(at))
	if err != nil {
		return fmt.Errorf("store data key %s: %w", id, err)
	}
	return nil
}

// PutIfAbsent stores a key under id unless one is there already, and returns the one that is
// there after: two processes that make an org's index key at once both end up with the first.
func (ks *KeyStore) PutIfAbsent(ctx context.Context, id keyring.DataKeyID, kekID string, wrapped []byte, at time.Time) (string, []byte, error) {
	if _, err := ks.pool.Exec(ctx, `INSERT INTO chatvault_keys.data_keys (org_id, conversation_id, id, kek_id, wrapped, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, conversation_id, id) DO NOTHING`,
		id.Org, id.Conversation, id.N, kekID, wrapped, sqlstore.Millis(at)); err != nil {
		return "", nil, fmt.Errorf("store key %s: %w", id, err)
	}
	return ks.Get(ctx, id)
}

// List returns every key of a conversation.
func (ks *KeyStore) List(ctx context.Context, orgID, convID string) ([]chatvault.WrappedKey, error) {
	rows, err := ks.pool.Query(ctx, `SELECT id, kek_id, wrapped FROM chatvault_keys.data_keys WHERE org_id = $1 AND conversation_id = $2`,
		orgID, convID)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(r pgx.CollectableRow) (chatvault.WrappedKey, error) {
		var k chatvault.WrappedKey
		err := r.Scan(&k.N, &k.KEKID, &k.Wrapped)
		return k, err
	})
}

// Destroy deletes a key's material.
func (ks *KeyStore) Destroy(ctx context.Context, id keyring.DataKeyID) error {
	if _, err := ks.pool.Exec(ctx, `DELETE FROM chatvault_keys.data_keys WHERE org_id = $1 AND conversation_id = $2 AND id = $3`,
		id.Org, id.Conversation, id.N); err != nil {
		return fmt.Errorf("destroy data key %s: %w", id, err)
	}
	return nil
}

// WrappedBy counts the data keys wrapped by KEK kekID.
func (ks *KeyStore) WrappedBy(ctx context.Context, kekID string) (int, error) {
	var n int
	if err := ks.pool.QueryRow(ctx, `SELECT count(*) FROM chatvault_keys.data_keys WHERE kek_id = $1`, kekID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count data keys: %w", err)
	}
	return n, nil
}

// Shredded does nothing: a deleted row's bytes go with VACUUM (see above).
func (ks *KeyStore) Shredded(context.Context) error { return nil }

// String names the key store in messages.
func (ks *KeyStore) String() string { return "keys schema " + KeysSchema }

// Samples returns one wrapped key per KEK, with how many keys that KEK wraps.
func (ks *KeyStore) Samples(ctx context.Context) ([]sqlstore.KeySample, error) {
	rows, err := ks.pool.Query(ctx, `SELECT DISTINCT ON (kek_id) kek_id, count(*) OVER (PARTITION BY kek_id), org_id, conversation_id, id, wrapped
		FROM chatvault_keys.data_keys ORDER BY kek_id`)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(r pgx.CollectableRow) (sqlstore.KeySample, error) {
		var s sqlstore.KeySample
		err := r.Scan(&s.KEK, &s.N, &s.ID.Org, &s.ID.Conversation, &s.ID.N, &s.Wrapped)
		return s, err
	})
}

// openEncryption checks the keys against the data and, for a store opened with a keyring, seals
// any plain bodies left from before.
func (db *DB) openEncryption(ctx context.Context, opts Options) error {
	sealed, live, err := sqlstore.EncryptionState(ctx, poolQ{db.pool})
	if err != nil {
		return err
	}
	if opts.Keyring == nil {
		if sealed || live > 0 {
			return errors.New("the database holds encrypted messages: open it with its keys (chatvault serve does, from the key file or CHATVAULT_KEK)")
		}
		return nil
	}
	url := opts.KeysURL
	if url == "" {
		url = db.url
	}
	keys, err := OpenKeyStore(ctx, url)
	if err != nil {
		return err
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if err := db.SetEncryption(ctx, &sqlstore.Encryption{Keyring: opts.Keyring, Keys: keys, Now: now}, live); err != nil {
		keys.Close()
		return err
	}
	db.keys = keys
	if !sealed {
		// (The old row versions go with autovacuum; unlike SQLite's VACUUM this does not rewrite
		// the files at once.)
		if _, err := db.SealPlainBodies(ctx); err != nil {
			return fmt.Errorf("seal plain bodies: %w", err)
		}
	}
	return nil
}
