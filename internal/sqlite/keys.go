package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
)

// Encryption at rest. Every body (messages.body, message_versions.body) is sealed with AES-256-GCM
// under a data key of its conversation and month, bound to org, conversation, message id and
// version. The data key's seq range and dates live in this database (data_keys, migration 0003);
// its material, wrapped by a KEK, lives in a separate keys database (KeyStore), so that a copy of
// the data alone never holds a key, and a key destroyed in the keys database is gone from every
// data backup too (the keys database has its own backups with short retention).
//
// Ordering between the two databases, which commit separately:
//   - a new data key is committed to the keys database (fsync) before the data transaction that
//     uses it; if that transaction rolls back, an unused key remains under a number that is
//     then reused (INSERT OR REPLACE), never referenced by any body.
//   - a destroyed key's material is deleted from the keys database inside the data transaction
//     that marks it destroyed, after checking that no body in its range is left; if that
//     transaction rolls back, the key's row says "live" but its range is empty, and the next
//     message that would use it marks it destroyed and makes a new key.

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

// encryption is the store's sealing state; nil when the store runs without a keyring.
type encryption struct {
	kr     *keyring.Keyring
	keys   *KeyStore
	now    func() time.Time
	latest *sql.Stmt // on the write connection
}

func (e *encryption) close() error {
	if e == nil {
		return nil
	}
	return errors.Join(e.latest.Close(), e.keys.Close())
}

// openEncryption checks the keys against the data and, for a store opened with a keyring, seals
// any plain bodies left from before. It runs in OpenWith once the writer is running.
func (db *DB) openEncryption(ctx context.Context, dir string, opts Options) error {
	var sealed, live int
	if err := db.write.QueryRowContext(ctx, `SELECT sealed FROM store_encryption`).Scan(&sealed); err != nil {
		return fmt.Errorf("read encryption state: %w", err)
	}
	if err := db.write.QueryRowContext(ctx, `SELECT count(*) FROM data_keys WHERE destroyed_at IS NULL`).Scan(&live); err != nil {
		return fmt.Errorf("count data keys: %w", err)
	}
	if opts.Keyring == nil {
		if sealed == 1 || live > 0 {
			return fmt.Errorf("the database %s holds encrypted messages: open it with its keys (chatvault serve does, from the key file or CHATVAULT_KEK)", db.path)
		}
		return nil
	}
	path := opts.KeysPath
	if path == "" {
		path = KeysPath(dir)
	}
	_, err := os.Stat(path)
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
	enc := &encryption{kr: opts.Keyring, keys: keys, now: now}
	if err := enc.check(ctx, live); err != nil {
		keys.Close()
		return err
	}
	enc.latest, err = db.write.PrepareContext(ctx, `SELECT id, bucket, first_seq, destroyed_at FROM data_keys
		WHERE org_id = ? AND conversation_id = ? ORDER BY id DESC LIMIT 1`)
	if err != nil {
		keys.Close()
		return fmt.Errorf("prepare data key lookup: %w", err)
	}
	db.enc = enc
	if sealed == 0 {
		if err := db.sealPlainBodies(ctx); err != nil {
			return fmt.Errorf("seal plain bodies: %w", err)
		}
	}
	return nil
}

// check makes sure the provider opens the data keys there are, and has a KEK for new ones.
func (e *encryption) check(ctx context.Context, live int) error {
	rows, err := e.keys.db.QueryContext(ctx, `SELECT kek_id, count(*), org_id, conversation_id, id, wrapped FROM data_keys GROUP BY kek_id`)
	if err != nil {
		return fmt.Errorf("read keys database: %w", err)
	}
	type sample struct {
		kek   string
		n     int
		id    keyring.DataKeyID
		wrapd []byte
	}
	var samples []sample
	for rows.Next() {
		var s sample
		if err := rows.Scan(&s.kek, &s.n, &s.id.Org, &s.id.Conversation, &s.id.N, &s.wrapd); err != nil {
			rows.Close()
			return fmt.Errorf("read keys database: %w", err)
		}
		samples = append(samples, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read keys database: %w", err)
	}
	if len(samples) == 0 && live > 0 {
		return fmt.Errorf("the keys database %s holds no data keys, but the data uses %d: it is not this data's keys database; restore the right one from your key backup", e.keys.path, live)
	}
	for _, s := range samples {
		if _, err := e.kr.Unwrap(ctx, s.id, s.kek, s.wrapd); err != nil {
			return fmt.Errorf("cannot open the %d data keys wrapped by KEK %s (keys database %s) with %s: %w", s.n, s.kek, e.keys.path, e.kr.Provider(), err)
		}
	}
	if init, ok := e.kr.Provider().(keyring.Initializer); ok {
		if _, err := init.Init(ctx); err != nil {
			return fmt.Errorf("create the first key-encryption key: %w", err)
		}
	}
	keks, err := e.kr.Provider().KEKs(ctx)
	if err != nil {
		return err
	}
	for _, k := range keks {
		if k.Primary {
			return nil
		}
	}
	return fmt.Errorf("%s has no key-encryption key that is not retired: run chatvault keys rotate", e.kr.Provider())
}

// sealBody seals the text of a new message (version 1), making the conversation's data key for
// the message's month when there is none yet. Without a keyring it returns the plain text.
func (db *DB) sealBody(ctx context.Context, tx *wtx, m *chatvault.Message) ([]byte, error) {
	if db.enc == nil {
		return []byte(m.Text), nil
	}
	dk, err := db.keyForSeq(ctx, tx, m.OrgID, m.ConversationID, m.Seq, m.SentAt)
	if err != nil {
		return nil, err
	}
	return dk.Seal([]byte(m.Text), keyring.BodyAAD(m.OrgID, m.ConversationID, m.ID, m.Version)), nil
}

// sealEdit seals a new version of a message's body under the same data key as its current body
// (prior), so every version of a message lives and dies with one key.
func (db *DB) sealEdit(ctx context.Context, orgID, convID, msgID string, version int, prior []byte, text string) ([]byte, error) {
	if db.enc == nil {
		return []byte(text), nil
	}
	n, err := keyring.EnvelopeKey(prior)
	if err != nil {
		return nil, fmt.Errorf("message %s: %w", msgID, err)
	}
	dk, err := db.dataKey(ctx, keyring.DataKeyID{Org: orgID, Conversation: convID, N: n})
	if err != nil {
		return nil, err
	}
	return dk.Seal([]byte(text), keyring.BodyAAD(orgID, convID, msgID, version)), nil
}

// openBody returns the text of a stored body.
func (db *DB) openBody(ctx context.Context, orgID, convID, msgID string, version int, body []byte) (string, error) {
	return db.openBodyWith(ctx, nil, orgID, convID, msgID, version, body)
}

// openBodyWith is openBody with a one-key memo (nil: none) for reading many bodies in a row.
func (db *DB) openBodyWith(ctx context.Context, last **keyring.DataKey, orgID, convID, msgID string, version int, body []byte) (string, error) {
	if body == nil {
		return "", nil
	}
	if !keyring.IsSealed(body) {
		if db.enc != nil {
			return "", fmt.Errorf("message %s version %d: %w: a plain body in an encrypted store", msgID, version, keyring.ErrIntegrity)
		}
		return string(body), nil
	}
	if db.enc == nil {
		return "", fmt.Errorf("message %s is encrypted and the store was opened without its keys", msgID)
	}
	n, err := keyring.EnvelopeKey(body)
	if err != nil {
		return "", fmt.Errorf("message %s version %d: %w", msgID, version, err)
	}
	id := keyring.DataKeyID{Org: orgID, Conversation: convID, N: n}
	var dk *keyring.DataKey
	if last != nil && *last != nil && (*last).ID == id {
		dk = *last
	} else if dk, err = db.dataKey(ctx, id); err != nil {
		return "", fmt.Errorf("message %s: %w", msgID, err)
	} else if last != nil {
		*last = dk
	}
	plain, err := dk.Open(body, keyring.BodyAAD(orgID, convID, msgID, version))
	if err != nil {
		return "", fmt.Errorf("open message %s version %d: %w", msgID, version, err)
	}
	return string(plain), nil
}

// dataKey returns an unwrapped data key, from the cache or the keys database.
func (db *DB) dataKey(ctx context.Context, id keyring.DataKeyID) (*keyring.DataKey, error) {
	if dk, ok := db.enc.kr.Cached(id); ok {
		return dk, nil
	}
	kekID, wrapped, err := db.enc.keys.get(ctx, id)
	if err != nil {
		return nil, err
	}
	return db.enc.kr.Unwrap(ctx, id, kekID, wrapped)
}

// keyForSeq returns the data key for a new body at seq, sent at sentAt: the conversation's
// newest key when it is for this month or a later one (a body sent a moment before the month
// turned may land under the new month's key: ranges stay contiguous in seq), else a new key
// whose range starts at seq.
func (db *DB) keyForSeq(ctx context.Context, tx *wtx, orgID, convID string, seq int64, sentAt time.Time) (*keyring.DataKey, error) {
	bucket := sentAt.UTC().Format("2006-01")
	var n, first int64
	var latestBucket string
	var destroyed sql.NullInt64
	err := tx.StmtContext(ctx, db.enc.latest).QueryRowContext(ctx, orgID, convID).Scan(&n, &latestBucket, &first, &destroyed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		n = 0
	case err != nil:
		return nil, fmt.Errorf("find data key: %w", err)
	case first > seq:
		return nil, fmt.Errorf("conversation %s: data key %d starts at seq %d, after seq %d", convID, n, first, seq)
	case !destroyed.Valid && latestBucket >= bucket:
		id := keyring.DataKeyID{Org: orgID, Conversation: convID, N: n}
		dk, err := db.dataKey(ctx, id)
		if err == nil {
			return dk, nil
		}
		if !errors.Is(err, keyring.ErrDataKeyDestroyed) {
			return nil, err
		}
		// Its material was shredded by a transaction that then rolled back: finish the job.
		if _, err := tx.ExecContext(ctx, `UPDATE data_keys SET destroyed_at = ? WHERE org_id = ? AND conversation_id = ? AND id = ?`,
			millis(db.enc.now()), orgID, convID, n); err != nil {
			return nil, fmt.Errorf("mark data key destroyed: %w", err)
		}
	}
	id := keyring.DataKeyID{Org: orgID, Conversation: convID, N: n + 1}
	dk, kekID, wrapped, err := db.enc.kr.NewDataKey(ctx, id)
	if err != nil {
		return nil, err
	}
	now := db.enc.now()
	if err := db.enc.keys.put(ctx, id, kekID, wrapped, now); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO data_keys (org_id, conversation_id, id, bucket, first_seq, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		orgID, convID, id.N, bucket, seq, millis(now)); err != nil {
		return nil, fmt.Errorf("insert data key: %w", err)
	}
	return dk, nil
}

// DestroyEmptyDataKeys destroys the data keys of a conversation that no longer protect any body
// (of a message or of any of its versions): crypto-shredding. The retention job calls it after a
// purge. It returns how many keys it destroyed. Without a keyring it does nothing.
func (db *DB) DestroyEmptyDataKeys(ctx context.Context, orgID, convID string) (int, error) {
	if db.enc == nil {
		return 0, nil
	}
	var gone []keyring.DataKeyID
	err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
		gone = gone[:0]
		type dkey struct {
			n, first  int64
			destroyed bool
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, first_seq, destroyed_at IS NOT NULL FROM data_keys
			WHERE org_id = ? AND conversation_id = ? ORDER BY id`, orgID, convID)
		if err != nil {
			return fmt.Errorf("query data keys: %w", err)
		}
		var keys []dkey
		for rows.Next() {
			var k dkey
			if err := rows.Scan(&k.n, &k.first, &k.destroyed); err != nil {
				rows.Close()
				return fmt.Errorf("scan data key: %w", err)
			}
			keys = append(keys, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("query data keys: %w", err)
		}
		now := millis(db.enc.now())
		for i, k := range keys {
			if k.destroyed {
				continue
			}
			hi := int64(math.MaxInt64)
			if i+1 < len(keys) {
				hi = keys[i+1].first
			}
			var used bool
			err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM messages
					WHERE org_id = ?1 AND conversation_id = ?2 AND seq >= ?3 AND seq < ?4 AND body IS NOT NULL)
				OR EXISTS (SELECT 1 FROM message_versions
					WHERE org_id = ?1 AND conversation_id = ?2 AND seq >= ?3 AND seq < ?4 AND body IS NOT NULL)`,
				orgID, convID, k.first, hi).Scan(&used)
			if err != nil {
				return fmt.Errorf("check data key %d: %w", k.n, err)
			}
			if used {
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE data_keys SET destroyed_at = ? WHERE org_id = ? AND conversation_id = ? AND id = ?`,
				now, orgID, convID, k.n); err != nil {
				return fmt.Errorf("mark data key destroyed: %w", err)
			}
			gone = append(gone, keyring.DataKeyID{Org: orgID, Conversation: convID, N: k.n})
		}
		for _, id := range gone {
			if err := db.enc.keys.destroy(ctx, id); err != nil {
				return err
			}
			db.enc.kr.Forget(id)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(gone) > 0 {
		if err := db.enc.keys.checkpoint(ctx); err != nil {
			return len(gone), err
		}
	}
	return len(gone), nil
}

// sealChunk is how many messages one step of the sealing pass rewrites.
const sealChunk = 500

// sealPlainBodies seals every plain body left from a store that ran without encryption (or a
// data set bulk-loaded in plain text), conversation by conversation in seq order, in bounded
// transactions, then marks the store sealed. It resumes after a crash: sealed bodies are skipped.
// secure_delete overwrites the plain text in the pages it frees, and a VACUUM at the end rewrites
// the file from live content.
func (db *DB) sealPlainBodies(ctx context.Context) error {
	if _, err := db.write.ExecContext(ctx, `PRAGMA secure_delete = ON`); err != nil {
		return fmt.Errorf("enable secure_delete: %w", err)
	}
	type conv struct{ org, id string }
	var convs []conv
	rows, err := db.read.QueryContext(ctx, `SELECT org_id, id FROM conversations ORDER BY org_id, id`)
	if err != nil {
		return fmt.Errorf("list conversations: %w", err)
	}
	for rows.Next() {
		var c conv
		if err := rows.Scan(&c.org, &c.id); err != nil {
			rows.Close()
			return err
		}
		convs = append(convs, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	sealedAny := false
	for _, c := range convs {
		after := int64(0)
		for done := false; !done; {
			err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
				n, last, err := db.sealStep(ctx, tx, c.org, c.id, after)
				done, after = n == 0, last
				sealedAny = sealedAny || n > 0
				return err
			})
			if err != nil {
				return err
			}
		}
	}
	err = db.update(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `UPDATE store_encryption SET sealed = 1`)
		return err
	})
	if err != nil {
		return fmt.Errorf("mark store sealed: %w", err)
	}
	if sealedAny {
		// Rebuild the file from live content only, so no page keeps an old plain body, and empty
		// the WAL. Once, when a plain store is first opened with its keys.
		for _, q := range []string{`VACUUM`, `PRAGMA wal_checkpoint(TRUNCATE)`} {
			if _, err := db.write.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
	}
	return nil
}

// sealStep seals the plain bodies of up to sealChunk messages after seq after, and their
// versions. It returns how many messages it looked at and the last seq.
func (db *DB) sealStep(ctx context.Context, tx *wtx, orgID, convID string, after int64) (int, int64, error) {
	type row struct {
		seq     int64
		id      string
		sent    int64
		version int
		body    []byte
	}
	rows, err := tx.QueryContext(ctx, `SELECT seq, id, sent_at, version, body FROM messages
		WHERE org_id = ? AND conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?`, orgID, convID, after, sealChunk)
	if err != nil {
		return 0, after, fmt.Errorf("read messages: %w", err)
	}
	var ms []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.seq, &r.id, &r.sent, &r.version, &r.body); err != nil {
			rows.Close()
			return 0, after, err
		}
		ms = append(ms, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(ms) == 0 {
		return 0, after, err
	}
	type vrow struct {
		seq     int64
		version int
		body    []byte
	}
	versions := map[int64][]vrow{}
	vrows, err := tx.QueryContext(ctx, `SELECT seq, version, body FROM message_versions
		WHERE org_id = ? AND conversation_id = ? AND seq > ? AND seq <= ?`, orgID, convID, after, ms[len(ms)-1].seq)
	if err != nil {
		return 0, after, fmt.Errorf("read message versions: %w", err)
	}
	for vrows.Next() {
		var v vrow
		if err := vrows.Scan(&v.seq, &v.version, &v.body); err != nil {
			vrows.Close()
			return 0, after, err
		}
		if v.body != nil && !keyring.IsSealed(v.body) {
			versions[v.seq] = append(versions[v.seq], v)
		}
	}
	vrows.Close()
	if err := vrows.Err(); err != nil {
		return 0, after, err
	}
	for _, m := range ms {
		plain := m.body != nil && !keyring.IsSealed(m.body)
		if !plain && len(versions[m.seq]) == 0 {
			continue
		}
		dk, err := db.keyForSeq(ctx, tx, orgID, convID, m.seq, fromMillis(m.sent))
		if err != nil {
			return 0, after, err
		}
		if plain {
			if _, err := tx.ExecContext(ctx, `UPDATE messages SET body = ? WHERE org_id = ? AND conversation_id = ? AND seq = ?`,
				dk.Seal(m.body, keyring.BodyAAD(orgID, convID, m.id, m.version)), orgID, convID, m.seq); err != nil {
				return 0, after, fmt.Errorf("seal message: %w", err)
			}
		}
		for _, v := range versions[m.seq] {
			if _, err := tx.ExecContext(ctx, `UPDATE message_versions SET body = ? WHERE org_id = ? AND conversation_id = ? AND seq = ? AND version = ?`,
				dk.Seal(v.body, keyring.BodyAAD(orgID, convID, m.id, v.version)), orgID, convID, m.seq, v.version); err != nil {
				return 0, after, fmt.Errorf("seal message version: %w", err)
			}
		}
	}
	return len(ms), ms[len(ms)-1].seq, nil
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

// Path is the keys database's path.
func (ks *KeyStore) Path() string { return ks.path }

// Close closes the keys database.
func (ks *KeyStore) Close() error { return ks.db.Close() }

func (ks *KeyStore) get(ctx context.Context, id keyring.DataKeyID) (string, []byte, error) {
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

func (ks *KeyStore) put(ctx context.Context, id keyring.DataKeyID, kekID string, wrapped []byte, at time.Time) error {
	_, err := ks.db.ExecContext(ctx, `INSERT OR REPLACE INTO data_keys (org_id, conversation_id, id, kek_id, wrapped, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		id.Org, id.Conversation, id.N, kekID, wrapped, millis(at))
	if err != nil {
		return fmt.Errorf("store data key %s: %w", id, err)
	}
	return nil
}

func (ks *KeyStore) destroy(ctx context.Context, id keyring.DataKeyID) error {
	if _, err := ks.db.ExecContext(ctx, `DELETE FROM data_keys WHERE org_id = ? AND conversation_id = ? AND id = ?`,
		id.Org, id.Conversation, id.N); err != nil {
		return fmt.Errorf("destroy data key %s: %w", id, err)
	}
	return nil
}

// checkpoint moves the WAL into the file and truncates it, so destroyed keys do not linger in it.
func (ks *KeyStore) checkpoint(ctx context.Context) error {
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
		u.Oldest, u.Newest = fromMillis(oldest), fromMillis(newest)
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
