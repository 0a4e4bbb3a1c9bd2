package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
)

// Encryption at rest. Every body (messages.body, message_versions.body) is sealed with AES-256-GCM
// under a data key of its conversation and month, bound to org, conversation, message id and
// version (keyring.BodyAAD). data_keys in the data holds each key's number, month, seq range and
// dates; the wrapped material lives in a KeyStore apart from the data (SQLite: a separate keys
// database; PostgreSQL: the schema chatvault_keys, or another database), so that a copy of the
// data alone never holds a key, and a key destroyed in the key store is gone from every data
// backup too.
//
// Ordering between the two, which commit separately:
//   - a new data key is committed to the key store before the data transaction that uses it; if
//     that transaction rolls back, an unused key remains under a number that is then reused
//     (the key store's Put replaces), never referenced by any body.
//   - a destroyed key's material is deleted from the key store inside the data transaction that
//     marks it destroyed, after checking that no body in its range is left; if that transaction
//     rolls back, the key's row says "live" but its range is empty, and the next message that
//     would use it marks it destroyed and makes a new key.

// KeyStore holds the wrapped material of every data key, apart from the data.
type KeyStore interface {
	// Get returns a key's wrapping KEK and wrapped material; keyring.ErrDataKeyDestroyed when the
	// key is not there.
	Get(ctx context.Context, id keyring.DataKeyID) (kekID string, wrapped []byte, err error)
	// Put stores a key, replacing one under the same id, durably before it returns.
	Put(ctx context.Context, id keyring.DataKeyID, kekID string, wrapped []byte, at time.Time) error
	// PutIfAbsent stores a key unless one is there already, and returns the one there after.
	PutIfAbsent(ctx context.Context, id keyring.DataKeyID, kekID string, wrapped []byte, at time.Time) (string, []byte, error)
	// Destroy deletes a key's material.
	Destroy(ctx context.Context, id keyring.DataKeyID) error
	// List returns every key of a conversation (its number, KEK and wrapped material).
	List(ctx context.Context, orgID, convID string) ([]chatvault.WrappedKey, error)
	// Samples returns one wrapped key per KEK, with how many keys that KEK wraps.
	Samples(ctx context.Context) ([]KeySample, error)
	// Shredded runs after keys were destroyed, so that their material leaves the store's files
	// (SQLite checkpoints its WAL).
	Shredded(ctx context.Context) error
	// String names the key store in messages.
	String() string
}

// A KeySample is one wrapped key of a KEK, to check that the keyring opens that KEK's keys.
type KeySample struct {
	KEK     string
	N       int // keys the KEK wraps
	ID      keyring.DataKeyID
	Wrapped []byte
}

// Encryption is a store's sealing state.
type Encryption struct {
	Keyring *keyring.Keyring
	Keys    KeyStore
	Now     func() time.Time
}

// LatestKeyQuery finds a conversation's newest data key; it runs on every send of an encrypted
// store (SQLite prepares it once).
const LatestKeyQuery = `SELECT id, bucket, first_seq, destroyed_at FROM data_keys
	WHERE org_id = $1 AND conversation_id = $2 ORDER BY id DESC LIMIT 1`

// EncryptionState reads whether the store was sealed and how many data keys are live.
func EncryptionState(ctx context.Context, q Querier) (sealed bool, live int, err error) {
	if err := q.QueryRow(ctx, `SELECT sealed <> 0 FROM store_encryption`).Scan(&sealed); err != nil {
		return false, 0, fmt.Errorf("read encryption state: %w", err)
	}
	if err := q.QueryRow(ctx, `SELECT count(*) FROM data_keys WHERE destroyed_at IS NULL`).Scan(&live); err != nil {
		return false, 0, fmt.Errorf("count data keys: %w", err)
	}
	return sealed, live, nil
}

// SetEncryption checks that e's keyring opens the data keys there are (live of them in use) and
// has a KEK for new ones, and from then on seals every body with it.
func (c *Core) SetEncryption(ctx context.Context, e *Encryption, live int) error {
	samples, err := e.Keys.Samples(ctx)
	if err != nil {
		return fmt.Errorf("read %s: %w", e.Keys, err)
	}
	if len(samples) == 0 && live > 0 {
		return fmt.Errorf("the %s holds no data keys, but the data uses %d: it is not this data's keys; restore the right ones from your key backup", e.Keys, live)
	}
	for _, s := range samples {
		if _, err := e.Keyring.Unwrap(ctx, s.ID, s.KEK, s.Wrapped); err != nil {
			return fmt.Errorf("cannot open the %d data keys wrapped by KEK %s (%s) with %s: %w. Use the key this data was made with: "+
				"restore the key file from your key backup, or set CHATVAULT_KEK (docs/operations.md)", s.N, s.KEK, e.Keys, e.Keyring.Provider(), err)
		}
	}
	if init, ok := e.Keyring.Provider().(keyring.Initializer); ok {
		if _, err := init.Init(ctx); err != nil {
			return fmt.Errorf("create the first key-encryption key: %w", err)
		}
	}
	keks, err := e.Keyring.Provider().KEKs(ctx)
	if err != nil {
		return err
	}
	for _, k := range keks {
		if k.Primary {
			c.enc = e
			return nil
		}
	}
	return fmt.Errorf("%s has no key-encryption key that is not retired: run chatvault keys rotate", e.Keyring.Provider())
}

// SealBody seals the text of a new message (version 1), making the conversation's data key for
// the message's month when there is none yet. Without a keyring it returns the plain text. The
// caller serialises appends to the conversation (SQLite's writer, PostgreSQL's row lock), so two
// transactions never make the same key.
func (c *Core) SealBody(ctx context.Context, tx Tx, m *chatvault.Message) ([]byte, error) {
	if c.enc == nil {
		return []byte(m.Text), nil
	}
	dk, err := c.keyForSeq(ctx, tx, m.OrgID, m.ConversationID, m.Seq, m.SentAt)
	if err != nil {
		return nil, err
	}
	return dk.Seal([]byte(m.Text), keyring.BodyAAD(m.OrgID, m.ConversationID, m.ID, m.Version)), nil
}

// sealEdit seals a new version of a message's body under the same data key as its current body
// (prior), so every version of a message lives and dies with one key.
func (c *Core) sealEdit(ctx context.Context, orgID, convID, msgID string, version int, prior []byte, text string) ([]byte, error) {
	if c.enc == nil {
		return []byte(text), nil
	}
	n, err := keyring.EnvelopeKey(prior)
	if err != nil {
		return nil, fmt.Errorf("message %s: %w", msgID, err)
	}
	dk, err := c.dataKey(ctx, keyring.DataKeyID{Org: orgID, Conversation: convID, N: n})
	if err != nil {
		return nil, err
	}
	return dk.Seal([]byte(text), keyring.BodyAAD(orgID, convID, msgID, version)), nil
}

// OpenMessage replaces the stored body that ScanMessage put in m.Text with its text; last, when
// not nil, remembers the data key across a page of messages (which almost always share one).
func (c *Core) OpenMessage(ctx context.Context, m *chatvault.Message, last **keyring.DataKey) error {
	if m.Text == "" || (c.enc == nil && m.Text[0] != 0xFF) {
		return nil
	}
	text, err := c.OpenBody(ctx, last, m.OrgID, m.ConversationID, m.ID, m.Version, []byte(m.Text))
	if err != nil {
		return err
	}
	m.Text = text
	return nil
}

// OpenBody returns the text of a stored body, with a one-key memo (nil: none) for reading many
// bodies in a row.
func (c *Core) OpenBody(ctx context.Context, last **keyring.DataKey, orgID, convID, msgID string, version int, body []byte) (string, error) {
	if body == nil {
		return "", nil
	}
	if !keyring.IsSealed(body) {
		if c.enc != nil {
			return "", fmt.Errorf("message %s version %d: %w: a plain body in an encrypted store", msgID, version, keyring.ErrIntegrity)
		}
		return string(body), nil
	}
	if c.enc == nil {
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
	} else if dk, err = c.dataKey(ctx, id); err != nil {
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

// prefetchKeys unwraps, in one read of the key store, the data keys of a conversation that a
// page's bodies need and the cache lacks, when there are several: a page read in order (an
// export, a first sync) crosses a key each month, and reading them one by one was a fifth of an
// export's time in a profile. Keys not in the store are left for OpenBody to report.
func (c *Core) prefetchKeys(ctx context.Context, orgID, convID string, ms []*chatvault.Message) error {
	if c.enc == nil {
		return nil
	}
	var missing []int64
	for _, m := range ms {
		if !keyring.IsSealed([]byte(m.Text)) {
			continue
		}
		n, err := keyring.EnvelopeKey([]byte(m.Text))
		if err != nil || slices.Contains(missing, n) {
			continue // OpenBody reports the damage
		}
		if _, ok := c.enc.Keyring.Cached(keyring.DataKeyID{Org: orgID, Conversation: convID, N: n}); !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) < 2 {
		return nil
	}
	wks, err := c.enc.Keys.List(ctx, orgID, convID)
	if err != nil {
		return fmt.Errorf("read data keys: %w", err)
	}
	for _, wk := range wks {
		if !slices.Contains(missing, wk.N) {
			continue
		}
		if _, err := c.enc.Keyring.Unwrap(ctx, keyring.DataKeyID{Org: orgID, Conversation: convID, N: wk.N}, wk.KEKID, wk.Wrapped); err != nil {
			return err
		}
	}
	return nil
}

// dataKey returns an unwrapped data key, from the cache or the key store.
func (c *Core) dataKey(ctx context.Context, id keyring.DataKeyID) (*keyring.DataKey, error) {
	if dk, ok := c.enc.Keyring.Cached(id); ok {
		return dk, nil
	}
	kekID, wrapped, err := c.enc.Keys.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return c.enc.Keyring.Unwrap(ctx, id, kekID, wrapped)
}

// keyForSeq returns the data key for a new body at seq, sent at sentAt: the conversation's
// newest key when it is for this month or a later one (a body sent a moment before the month
// turned may land under the new month's key: ranges stay contiguous in seq), else a new key
// whose range starts at seq.
func (c *Core) keyForSeq(ctx context.Context, tx Tx, orgID, convID string, seq int64, sentAt time.Time) (*keyring.DataKey, error) {
	bucket := sentAt.UTC().Format("2006-01")
	var n, first int64
	var latestBucket string
	var destroyed sql.NullInt64
	err := tx.QueryRow(ctx, LatestKeyQuery, orgID, convID).Scan(&n, &latestBucket, &first, &destroyed)
	switch {
	case isNoRows(err):
		n = 0
	case err != nil:
		return nil, fmt.Errorf("find data key: %w", err)
	case first > seq:
		return nil, fmt.Errorf("conversation %s: data key %d starts at seq %d, after seq %d", convID, n, first, seq)
	case !destroyed.Valid && latestBucket >= bucket:
		id := keyring.DataKeyID{Org: orgID, Conversation: convID, N: n}
		dk, err := c.dataKey(ctx, id)
		if err == nil {
			return dk, nil
		}
		if !errors.Is(err, keyring.ErrDataKeyDestroyed) {
			return nil, err
		}
		// Its material was shredded by a transaction that then rolled back: finish the job.
		if _, err := tx.Exec(ctx, `UPDATE data_keys SET destroyed_at = $1 WHERE org_id = $2 AND conversation_id = $3 AND id = $4`,
			Millis(c.enc.Now()), orgID, convID, n); err != nil {
			return nil, fmt.Errorf("mark data key destroyed: %w", err)
		}
	}
	id := keyring.DataKeyID{Org: orgID, Conversation: convID, N: n + 1}
	dk, kekID, wrapped, err := c.enc.Keyring.NewDataKey(ctx, id)
	if err != nil {
		return nil, err
	}
	now := c.enc.Now()
	if err := c.enc.Keys.Put(ctx, id, kekID, wrapped, now); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO data_keys (org_id, conversation_id, id, bucket, first_seq, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		orgID, convID, id.N, bucket, seq, Millis(now)); err != nil {
		return nil, fmt.Errorf("insert data key: %w", err)
	}
	return dk, nil
}

// DestroyEmptyDataKeys destroys the data keys of a conversation that no longer protect any body
// (of a message or of any of its versions): crypto-shredding. The retention job calls it after a
// purge. It returns how many keys it destroyed. Without a keyring it does nothing.
func (c *Core) DestroyEmptyDataKeys(ctx context.Context, orgID, convID string) (int, error) {
	if c.enc == nil {
		return 0, nil
	}
	var gone []keyring.DataKeyID
	err := c.update(ctx, func(ctx context.Context, tx Tx) error {
		gone = gone[:0]
		// The conversation's lock keeps appends (which may use its newest key) out until commit.
		if err := c.lockConversation(ctx, tx, orgID, convID); err != nil {
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
		keys, err := collect(rows, func(r Row) (dkey, error) {
			var k dkey
			err := r.Scan(&k.n, &k.first, &k.destroyed)
			return k, err
		})
		if err != nil {
			return fmt.Errorf("query data keys: %w", err)
		}
		now := Millis(c.enc.Now())
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
			if err := c.enc.Keys.Destroy(ctx, id); err != nil {
				return err
			}
			c.enc.Keyring.Forget(id)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(gone) > 0 {
		if err := c.enc.Keys.Shredded(ctx); err != nil {
			return len(gone), err
		}
	}
	return len(gone), nil
}

// sealChunk is how many messages one step of the sealing pass rewrites.
const sealChunk = 500

// SealPlainBodies seals every plain body left from a store that ran without encryption (or a
// data set bulk-loaded in plain text), conversation by conversation in seq order, in bounded
// transactions, then marks the store sealed. It resumes after a crash: sealed bodies are
// skipped. It reports whether it sealed anything, for the engine to scrub the old plain pages.
func (c *Core) SealPlainBodies(ctx context.Context) (bool, error) {
	type conv struct{ org, id string }
	rows, err := c.read.Query(ctx, `SELECT org_id, id FROM conversations ORDER BY org_id, id`)
	if err != nil {
		return false, fmt.Errorf("list conversations: %w", err)
	}
	convs, err := collect(rows, func(r Row) (conv, error) {
		var cv conv
		err := r.Scan(&cv.org, &cv.id)
		return cv, err
	})
	if err != nil {
		return false, fmt.Errorf("list conversations: %w", err)
	}
	sealedAny := false
	for _, cv := range convs {
		after := int64(0)
		for done := false; !done; {
			err := c.update(ctx, func(ctx context.Context, tx Tx) error {
				if err := c.lockConversation(ctx, tx, cv.org, cv.id); err != nil {
					return err
				}
				n, last, err := c.sealStep(ctx, tx, cv.org, cv.id, after)
				done, after = n == 0, last
				sealedAny = sealedAny || n > 0
				return err
			})
			if err != nil {
				return sealedAny, err
			}
		}
	}
	err = c.update(ctx, func(ctx context.Context, tx Tx) error {
		_, err := tx.Exec(ctx, `UPDATE store_encryption SET sealed = 1`)
		return err
	})
	if err != nil {
		return sealedAny, fmt.Errorf("mark store sealed: %w", err)
	}
	return sealedAny, nil
}

// sealStep seals the plain bodies of up to sealChunk messages after seq after, and their
// versions. It returns how many messages it looked at and the last seq.
func (c *Core) sealStep(ctx context.Context, tx Tx, orgID, convID string, after int64) (int, int64, error) {
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
	ms, err := collect(rows, func(r Row) (row, error) {
		var m row
		err := r.Scan(&m.seq, &m.id, &m.sent, &m.version, &m.body)
		return m, err
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
	vs, err := collect(vrows, func(r Row) (vrow, error) {
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
		dk, err := c.keyForSeq(ctx, tx, orgID, convID, m.seq, FromMillis(m.sent))
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
