package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Encryption at rest, exactly as internal/sqlite/keys.go: every body is sealed with AES-256-GCM
// under a data key of its conversation and month, bound to org, conversation, message id and
// version (keyring.BodyAAD). data_keys in the data schema holds each key's number, month, seq range
// and dates; the wrapped material lives in the schema chatvault_keys, or in another database
// (Options.KeysURL), so a data backup (pg_dump --exclude-schema=chatvault_keys) never holds a key,
// and a destroyed key is in no later key backup.
//
// The key material is always written through its own small pool, in its own transactions, as
// with SQLite's separate keys database, and in the same order:
//   - a new data key is committed before the data transaction that uses it; if that transaction
//     rolls back, an unused key remains under a number that is then reused (upsert);
//   - a destroyed key's material is deleted inside the data transaction that marks it destroyed
//     (before its commit), after checking its range is empty; if that transaction rolls back,
//     the next message that would use the key marks it destroyed and makes a new one.
// (A separate pool also means a transaction holding a data connection never waits for a second
// data connection, which could exhaust the pool.)
//
// PostgreSQL keeps a deleted row's bytes until VACUUM reuses the space, and in WAL until the
// segment is recycled: key backups are logical (pg_dump), so they never hold a destroyed key, but
// WAL archives of the keys database must expire on the key-backup schedule (docs/decisions.md).

// encryption is the store's sealing state; nil when the store runs without a keyring.
type encryption struct {
	kr   *keyring.Keyring
	keys *KeyStore
	now  func() time.Time
}

func (e *encryption) close() {
	if e != nil {
		e.keys.Close()
	}
}

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

func (ks *KeyStore) get(ctx context.Context, id keyring.DataKeyID) (string, []byte, error) {
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

func (ks *KeyStore) put(ctx context.Context, id keyring.DataKeyID, kekID string, wrapped []byte, at time.Time) error {
	_, err := ks.pool.Exec(ctx, `INSERT INTO chatvault_keys.data_keys (org_id, conversation_id, id, kek_id, wrapped, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, conversation_id, id)
		DO UPDATE SET kek_id = excluded.kek_id, wrapped = excluded.wrapped, created_at = excluded.created_at`,
		id.Org, id.Conversation, id.N, kekID, wrapped, millis(at))
	if err != nil {
		return fmt.Errorf("store data key %s: %w", id, err)
	}
	return nil
}

// putIfAbsent stores a key under id unless one is there already, and returns the one that is
// there after: two processes that make an org's index key at once both end up with the first.
func (ks *KeyStore) putIfAbsent(ctx context.Context, id keyring.DataKeyID, kekID string, wrapped []byte, at time.Time) (string, []byte, error) {
	if _, err := ks.pool.Exec(ctx, `INSERT INTO chatvault_keys.data_keys (org_id, conversation_id, id, kek_id, wrapped, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, conversation_id, id) DO NOTHING`,
		id.Org, id.Conversation, id.N, kekID, wrapped, millis(at)); err != nil {
		return "", nil, fmt.Errorf("store key %s: %w", id, err)
	}
	return ks.get(ctx, id)
}

func (ks *KeyStore) destroy(ctx context.Context, id keyring.DataKeyID) error {
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

// openEncryption checks the keys against the data and, for a store opened with a keyring, seals
// any plain bodies left from before.
func (db *DB) openEncryption(ctx context.Context, opts Options) error {
	var sealed, live int
	if err := db.pool.QueryRow(ctx, `SELECT sealed FROM store_encryption`).Scan(&sealed); err != nil {
		return fmt.Errorf("read encryption state: %w", err)
	}
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM data_keys WHERE destroyed_at IS NULL`).Scan(&live); err != nil {
		return fmt.Errorf("count data keys: %w", err)
	}
	if opts.Keyring == nil {
		if sealed == 1 || live > 0 {
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
	enc := &encryption{kr: opts.Keyring, keys: keys, now: now}
	if err := enc.check(ctx, live); err != nil {
		keys.Close()
		return err
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
	rows, err := e.keys.pool.Query(ctx, `SELECT DISTINCT ON (kek_id) kek_id, count(*) OVER (PARTITION BY kek_id), org_id, conversation_id, id, wrapped
		FROM chatvault_keys.data_keys ORDER BY kek_id`)
	if err != nil {
		return fmt.Errorf("read keys schema: %w", err)
	}
	type sample struct {
		kek   string
		n     int
		id    keyring.DataKeyID
		wrapd []byte
	}
	samples, err := collect(rows, func(r pgx.CollectableRow) (sample, error) {
		var s sample
		err := r.Scan(&s.kek, &s.n, &s.id.Org, &s.id.Conversation, &s.id.N, &s.wrapd)
		return s, err
	})
	if err != nil {
		return fmt.Errorf("read keys schema: %w", err)
	}
	if len(samples) == 0 && live > 0 {
		return fmt.Errorf("the keys schema holds no data keys, but the data uses %d: it is not this data's keys; restore them from your key backup", live)
	}
	for _, s := range samples {
		if _, err := e.kr.Unwrap(ctx, s.id, s.kek, s.wrapd); err != nil {
			return fmt.Errorf("cannot open the %d data keys wrapped by KEK %s with %s: %w", s.n, s.kek, e.kr.Provider(), err)
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
// the message's month when there is none yet. Without a keyring it returns the plain text. The
// caller holds the conversation's lock, so two transactions never make the same key.
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

// sealEdit seals a new version of a message's body under the same data key as its current body.
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

func (db *DB) openBody(ctx context.Context, orgID, convID, msgID string, version int, body []byte) (string, error) {
	return db.openBodyWith(ctx, nil, orgID, convID, msgID, version, body)
}

// openBodyWith returns the text of a stored body, with a one-key memo (nil: none).
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

// dataKey returns an unwrapped data key, from the cache or the keys schema.
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

// keyForSeq returns the data key for a new body at seq, sent at sentAt: the conversation's newest
// key when it is for this month or a later one, else a new key whose range starts at seq.
func (db *DB) keyForSeq(ctx context.Context, tx *wtx, orgID, convID string, seq int64, sentAt time.Time) (*keyring.DataKey, error) {
	bucket := sentAt.UTC().Format("2006-01")
	var n, first int64
	var latestBucket string
	var destroyed *int64
	err := tx.QueryRow(ctx, `SELECT id, bucket, first_seq, destroyed_at FROM data_keys
		WHERE org_id = $1 AND conversation_id = $2 ORDER BY id DESC LIMIT 1`, orgID, convID).Scan(&n, &latestBucket, &first, &destroyed)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		n = 0
	case err != nil:
		return nil, fmt.Errorf("find data key: %w", err)
	case first > seq:
		return nil, fmt.Errorf("conversation %s: data key %d starts at seq %d, after seq %d", convID, n, first, seq)
	case destroyed == nil && latestBucket >= bucket:
		id := keyring.DataKeyID{Org: orgID, Conversation: convID, N: n}
		dk, err := db.dataKey(ctx, id)
		if err == nil {
			return dk, nil
		}
		if !errors.Is(err, keyring.ErrDataKeyDestroyed) {
			return nil, err
		}
		// Its material was shredded by a transaction that then rolled back: finish the job.
		if _, err := tx.Exec(ctx, `UPDATE data_keys SET destroyed_at = $1 WHERE org_id = $2 AND conversation_id = $3 AND id = $4`,
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
	if _, err := tx.Exec(ctx, `INSERT INTO data_keys (org_id, conversation_id, id, bucket, first_seq, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
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
		// The conversation's lock keeps appends (which may use its newest key) out until commit.
		if _, err := db.FindConversationIn(ctx, coreTx{tx}, orgID, convID, true); err != nil {
			return err
		}
		type dkey struct {
			n, first  int64
			destroyed bool
		}
		rows, err := tx.Query(ctx, `SELECT id, first_seq, destroyed_at IS NOT NULL FROM data_keys
			WHERE org_id = $1 AND conversation_id = $2 ORDER BY id`, orgID, convID)
		if err != nil {
			return fmt.Errorf("query data keys: %w", err)
		}
		keys, err := collect(rows, func(r pgx.CollectableRow) (dkey, error) {
			var k dkey
			err := r.Scan(&k.n, &k.first, &k.destroyed)
			return k, err
		})
		if err != nil {
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
			err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM messages
					WHERE org_id = $1 AND conversation_id = $2 AND seq >= $3 AND seq < $4 AND body IS NOT NULL)
				OR EXISTS (SELECT 1 FROM message_versions
					WHERE org_id = $1 AND conversation_id = $2 AND seq >= $3 AND seq < $4 AND body IS NOT NULL)`,
				orgID, convID, k.first, hi).Scan(&used)
			if err != nil {
				return fmt.Errorf("check data key %d: %w", k.n, err)
			}
			if used {
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE data_keys SET destroyed_at = $1 WHERE org_id = $2 AND conversation_id = $3 AND id = $4`,
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
	return len(gone), nil
}

// sealChunk is how many messages one step of the sealing pass rewrites.
const sealChunk = 500

// sealPlainBodies seals every plain body left from a store that ran without encryption,
// conversation by conversation in seq order, in bounded transactions, then marks the store
// sealed. It resumes after a crash: sealed bodies are skipped. (The old row versions go with
// autovacuum; unlike SQLite's VACUUM this does not rewrite the files at once.)
func (db *DB) sealPlainBodies(ctx context.Context) error {
	type conv struct{ org, id string }
	rows, err := db.pool.Query(ctx, `SELECT org_id, id FROM conversations ORDER BY org_id, id`)
	if err != nil {
		return fmt.Errorf("list conversations: %w", err)
	}
	convs, err := collect(rows, func(r pgx.CollectableRow) (conv, error) {
		var c conv
		err := r.Scan(&c.org, &c.id)
		return c, err
	})
	if err != nil {
		return fmt.Errorf("list conversations: %w", err)
	}
	for _, c := range convs {
		after := int64(0)
		for done := false; !done; {
			err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
				if _, err := db.FindConversationIn(ctx, coreTx{tx}, c.org, c.id, true); err != nil {
					return err
				}
				n, last, err := db.sealStep(ctx, tx, c.org, c.id, after)
				done, after = n == 0, last
				return err
			})
			if err != nil {
				return err
			}
		}
	}
	if _, err := db.pool.Exec(ctx, `UPDATE store_encryption SET sealed = 1`); err != nil {
		return fmt.Errorf("mark store sealed: %w", err)
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
	rows, err := tx.Query(ctx, `SELECT seq, id, sent_at, version, body FROM messages
		WHERE org_id = $1 AND conversation_id = $2 AND seq > $3 ORDER BY seq LIMIT $4`, orgID, convID, after, sealChunk)
	if err != nil {
		return 0, after, fmt.Errorf("read messages: %w", err)
	}
	ms, err := collect(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.seq, &x.id, &x.sent, &x.version, &x.body)
		return x, err
	})
	if err != nil || len(ms) == 0 {
		return 0, after, err
	}
	type vrow struct {
		seq     int64
		version int
		body    []byte
	}
	vrows, err := tx.Query(ctx, `SELECT seq, version, body FROM message_versions
		WHERE org_id = $1 AND conversation_id = $2 AND seq > $3 AND seq <= $4`, orgID, convID, after, ms[len(ms)-1].seq)
	if err != nil {
		return 0, after, fmt.Errorf("read message versions: %w", err)
	}
	vs, err := collect(vrows, func(r pgx.CollectableRow) (vrow, error) {
		var v vrow
		err := r.Scan(&v.seq, &v.version, &v.body)
		return v, err
	})
	if err != nil {
		return 0, after, fmt.Errorf("read message versions: %w", err)
	}
	versions := map[int64][]vrow{}
	for _, v := range vs {
		if v.body != nil && !keyring.IsSealed(v.body) {
			versions[v.seq] = append(versions[v.seq], v)
		}
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
			if _, err := tx.Exec(ctx, `UPDATE messages SET body = $1 WHERE org_id = $2 AND conversation_id = $3 AND seq = $4`,
				dk.Seal(m.body, keyring.BodyAAD(orgID, convID, m.id, m.version)), orgID, convID, m.seq); err != nil {
				return 0, after, fmt.Errorf("seal message: %w", err)
			}
		}
		for _, v := range versions[m.seq] {
			if _, err := tx.Exec(ctx, `UPDATE message_versions SET body = $1 WHERE org_id = $2 AND conversation_id = $3 AND seq = $4 AND version = $5`,
				dk.Seal(v.body, keyring.BodyAAD(orgID, convID, m.id, v.version)), orgID, convID, m.seq, v.version); err != nil {
				return 0, after, fmt.Errorf("seal message version: %w", err)
			}
		}
	}
	return len(ms), ms[len(ms)-1].seq, nil
}
