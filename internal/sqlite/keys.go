package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/sqlstore"
)

// Encryption at rest is the core's (internal/sqlstore/keys.go). Here: the keys database, a
// separate SQLite file (KeyStore) so that a copy of the data alone never holds a key, and a key
// destroyed in it is gone from every data backup too (it has its own backups, with short
// retention); and the scrubbing of plain pages once a plain store is sealed.

// KeysDir is the directory in the data directory that holds the key file and keys database by
// default. Back it up apart from the data.
const KeysDir = "keys"

// KeysFileName is the keys database's file name.
const KeysFileName = "keys.db"

// KeysPath is the default keys database of the data directory dir.
func KeysPath(dir string) string { return filepath.Join(dir, KeysDir, KeysFileName) }

// Options are OpenWith's settings.
type Options struct {
	// Keyring seals and opens bodies. Nil stores bodies in plain text: for tests and for the
	// encryption-off side of benchmarks. A store that holds sealed bodies refuses to open without it.
	Keyring *keyring.Keyring
	// KeysPath is the keys database; default KeysPath(dir).
	KeysPath string
	// Now is the clock for key dates; default time.Now.
	Now func() time.Time
	// NoSearchIndex stores messages without search index entries, so a benchmark can measure what
	// the index costs. The next open without it indexes what was stored meanwhile.
	NoSearchIndex bool
}

// openEncryption checks the keys against the data and, for a store opened with a keyring, seals
// any plain bodies left from before. It runs in OpenWith once the writer is running.
func (db *DB) openEncryption(ctx context.Context, dir string, opts Options) error {
	sealed, live, err := sqlstore.EncryptionState(ctx, pool{db.write})
	if err != nil {
		return err
	}
	if opts.Keyring == nil {
		if sealed || live > 0 {
			return fmt.Errorf("the database %s holds encrypted messages: open it with its keys (chatvault serve does, from the key file or CHATVAULT_KEK)", db.path)
		}
		return nil
	}
	path := opts.KeysPath
	if path == "" {
		path = KeysPath(dir)
	}
	_, err = os.Stat(path)
	missing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !missing {
		return fmt.Errorf("stat keys database: %w", err)
	}
	if missing && live > 0 {
		return fmt.Errorf("the keys database %s is missing, and the data uses %d data keys that live only there: restore it from your key backup (chatvault never makes a new one over existing data)", path, live)
	}
	keys, err := OpenKeyStore(path)
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
		if err := db.sealPlainBodies(ctx); err != nil {
			return fmt.Errorf("seal plain bodies: %w", err)
		}
	}
	return nil
}

// sealPlainBodies seals the plain bodies left from a store that ran without encryption (or a data
// set bulk-loaded in plain text). secure_delete overwrites the plain text in the pages it frees,
// and a VACUUM at the end rewrites the file from live content.
func (db *DB) sealPlainBodies(ctx context.Context) error {
	if _, err := db.write.ExecContext(ctx, `PRAGMA secure_delete = ON`); err != nil {
		return fmt.Errorf("enable secure_delete: %w", err)
	}
	sealedAny, err := db.SealPlainBodies(ctx)
	if err != nil || !sealedAny {
		return err
	}
	// Rebuild the file from live content only, so no page keeps an old plain body, and empty the
	// WAL. Once, when a plain store is first opened with its keys.
	for _, q := range []string{`VACUUM`, `PRAGMA wal_checkpoint(TRUNCATE)`} {
		if _, err := db.write.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// KeyStore is the keys database: the wrapped material of every data key. It is a separate SQLite
// file so that it can be backed up apart from the data, with a short retention.
type KeyStore struct {
	path string
	db   *sql.DB
}

// OpenKeyStore opens (creating if needed) the keys database at path.
func OpenKeyStore(path string) (*KeyStore, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create keys directory: %w", err)
	}
	if err := privateDatabase(path); err != nil {
		return nil, fmt.Errorf("keys database: %w", err)
	}
	q := url.Values{}
	// secure_delete: a destroyed key's wrapped bytes are overwritten in the file, not left in a
	// free page.
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "secure_delete(1)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open keys database %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	db.SetConnMaxLifetime(0)
	ks := &KeyStore{path: path, db: db}
	if err := ks.migrate(); err != nil {
		db.Close()
		return nil, fmt.Errorf("keys database %s: %w", path, err)
	}
	return ks, nil
}

func (ks *KeyStore) migrate() error {
	var v int
	if err := ks.db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		return err
	}
	switch {
	case v == 1:
		return nil
	case v > 1:
		return fmt.Errorf("schema version %d is newer than this chatvault knows: run a newer chatvault", v)
	}
	_, err := ks.db.Exec(`BEGIN;
		CREATE TABLE data_keys (
			org_id          TEXT NOT NULL,
			conversation_id TEXT NOT NULL,
			id              INTEGER NOT NULL,
			kek_id          TEXT NOT NULL,
			wrapped         BLOB NOT NULL, -- AES-256-GCM under the KEK: nonce | ciphertext | tag
			created_at      INTEGER NOT NULL,
			PRIMARY KEY (org_id, conversation_id, id)
		) WITHOUT ROWID;
		CREATE INDEX data_keys_kek ON data_keys (kek_id);
		PRAGMA user_version = 1;
		COMMIT;`)
	return err
}

// String names the keys database in messages.
func (ks *KeyStore) String() string { return "keys database " + ks.path }

// Samples returns one wrapped key per KEK, with how many keys that KEK wraps.
func (ks *KeyStore) Samples(ctx context.Context) ([]sqlstore.KeySample, error) {
	rows, err := ks.db.QueryContext(ctx, `SELECT kek_id, count(*), org_id, conversation_id, id, wrapped FROM data_keys GROUP BY kek_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []sqlstore.KeySample
	for rows.Next() {
		var s sqlstore.KeySample
		if err := rows.Scan(&s.KEK, &s.N, &s.ID.Org, &s.ID.Conversation, &s.ID.N, &s.Wrapped); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Path is the keys database's path.
func (ks *KeyStore) Path() string { return ks.path }

// Close closes the keys database.
func (ks *KeyStore) Close() error { return ks.db.Close() }

// Get reads a key's KEK and wrapped material.
func (ks *KeyStore) Get(ctx context.Context, id keyring.DataKeyID) (string, []byte, error) {
	var kekID string
	var wrapped []byte
	err := ks.db.QueryRowContext(ctx, `SELECT kek_id, wrapped FROM data_keys WHERE org_id = ? AND conversation_id = ? AND id = ?`,
		id.Org, id.Conversation, id.N).Scan(&kekID, &wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, fmt.Errorf("%w: data key %s is not in the keys database %s (it was crypto-shredded, or this is not the keys database of this data)",
			keyring.ErrDataKeyDestroyed, id, ks.path)
	} else if err != nil {
		return "", nil, fmt.Errorf("read data key %s: %w", id, err)
	}
	return kekID, wrapped, nil
}

// Put stores a key, replacing one under the same id.
func (ks *KeyStore) Put(ctx context.Context, id keyring.DataKeyID, kekID string, wrapped []byte, at time.Time) error {
	_, err := ks.db.ExecContext(ctx, `INSERT OR REPLACE INTO data_keys (org_id, conversation_id, id, kek_id, wrapped, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		id.Org, id.Conversation, id.N, kekID, wrapped, sqlstore.Millis(at))
	if err != nil {
		return storageFull(fmt.Errorf("store data key %s: %w", id, err), filepath.Dir(ks.path))
	}
	return nil
}

// PutIfAbsent stores a key unless one is there already, and returns the one there after.
func (ks *KeyStore) PutIfAbsent(ctx context.Context, id keyring.DataKeyID, kekID string, wrapped []byte, at time.Time) (string, []byte, error) {
	if _, err := ks.db.ExecContext(ctx, `INSERT OR IGNORE INTO data_keys (org_id, conversation_id, id, kek_id, wrapped, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		id.Org, id.Conversation, id.N, kekID, wrapped, sqlstore.Millis(at)); err != nil {
		return "", nil, storageFull(fmt.Errorf("store key %s: %w", id, err), filepath.Dir(ks.path))
	}
	return ks.Get(ctx, id)
}

// List returns every key of a conversation.
func (ks *KeyStore) List(ctx context.Context, orgID, convID string) ([]chatvault.WrappedKey, error) {
	rows, err := ks.db.QueryContext(ctx, `SELECT id, kek_id, wrapped FROM data_keys WHERE org_id = ? AND conversation_id = ?`, orgID, convID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []chatvault.WrappedKey
	for rows.Next() {
		var k chatvault.WrappedKey
		if err := rows.Scan(&k.N, &k.KEKID, &k.Wrapped); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// Destroy deletes a key's material.
func (ks *KeyStore) Destroy(ctx context.Context, id keyring.DataKeyID) error {
	if _, err := ks.db.ExecContext(ctx, `DELETE FROM data_keys WHERE org_id = ? AND conversation_id = ? AND id = ?`,
		id.Org, id.Conversation, id.N); err != nil {
		return fmt.Errorf("destroy data key %s: %w", id, err)
	}
	return nil
}

// Shredded moves the WAL into the file and truncates it, so destroyed keys do not linger in it.
func (ks *KeyStore) Shredded(ctx context.Context) error {
	if _, err := ks.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("checkpoint keys database: %w", err)
	}
	return nil
}

// KEKUse is how many data keys one KEK wraps.
type KEKUse struct {
	KEKID    string
	DataKeys int
	Oldest   time.Time
	Newest   time.Time
}

// Uses counts the data keys by the KEK that wraps them.
func (ks *KeyStore) Uses(ctx context.Context) ([]KEKUse, error) {
	rows, err := ks.db.QueryContext(ctx, `SELECT kek_id, count(*), min(created_at), max(created_at) FROM data_keys GROUP BY kek_id ORDER BY min(created_at)`)
	if err != nil {
		return nil, fmt.Errorf("count data keys: %w", err)
	}
	defer rows.Close()
	var out []KEKUse
	for rows.Next() {
		var u KEKUse
		var oldest, newest int64
		if err := rows.Scan(&u.KEKID, &u.DataKeys, &oldest, &newest); err != nil {
			return nil, err
		}
		u.Oldest, u.Newest = sqlstore.FromMillis(oldest), sqlstore.FromMillis(newest)
		out = append(out, u)
	}
	return out, rows.Err()
}

// Rewrap re-wraps every data key that is not wrapped by the provider's primary KEK, in small
// transactions, while the server keeps running: the data keys themselves do not change, so no
// body is touched. Each row is replaced only if it is still what was read (a concurrent writer
// wins). It returns how many keys it re-wrapped.
func (ks *KeyStore) Rewrap(ctx context.Context, kr *keyring.Keyring) (int, error) {
	keks, err := kr.Provider().KEKs(ctx)
	if err != nil {
		return 0, err
	}
	primary := ""
	for _, k := range keks {
		if k.Primary {
			primary = k.ID
		}
	}
	if primary == "" {
		return 0, fmt.Errorf("%s has no primary KEK", kr.Provider())
	}
	type row struct {
		id      keyring.DataKeyID
		kek     string
		wrapped []byte
	}
	total := 0
	var from keyring.DataKeyID
	for {
		rows, err := ks.db.QueryContext(ctx, `SELECT org_id, conversation_id, id, kek_id, wrapped FROM data_keys
			WHERE kek_id != ? AND (org_id, conversation_id, id) > (?, ?, ?) ORDER BY org_id, conversation_id, id LIMIT 256`,
			primary, from.Org, from.Conversation, from.N)
		if err != nil {
			return total, fmt.Errorf("read data keys: %w", err)
		}
		var batch []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id.Org, &r.id.Conversation, &r.id.N, &r.kek, &r.wrapped); err != nil {
				rows.Close()
				return total, err
			}
			batch = append(batch, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return total, err
		}
		if len(batch) == 0 {
			return total, nil
		}
		tx, err := ks.db.BeginTx(ctx, nil)
		if err != nil {
			return total, err
		}
		for _, r := range batch {
			kekID, wrapped, err := kr.Rewrap(ctx, r.id, r.kek, r.wrapped)
			if err != nil {
				tx.Rollback()
				return total, err
			}
			res, err := tx.ExecContext(ctx, `UPDATE data_keys SET kek_id = ?, wrapped = ?
				WHERE org_id = ? AND conversation_id = ? AND id = ? AND kek_id = ? AND wrapped = ?`,
				kekID, wrapped, r.id.Org, r.id.Conversation, r.id.N, r.kek, r.wrapped)
			if err != nil {
				tx.Rollback()
				return total, fmt.Errorf("re-wrap data key %s: %w", r.id, err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				total++
			}
		}
		if err := tx.Commit(); err != nil {
			return total, fmt.Errorf("re-wrap data keys: %w", err)
		}
		from = batch[len(batch)-1].id
	}
}

// WrappedBy counts the data keys wrapped by KEK kekID.
func (ks *KeyStore) WrappedBy(ctx context.Context, kekID string) (int, error) {
	var n int
	if err := ks.db.QueryRowContext(ctx, `SELECT count(*) FROM data_keys WHERE kek_id = ?`, kekID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count data keys: %w", err)
	}
	return n, nil
}
