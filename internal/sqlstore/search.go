package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
)

// The search index itself is each engine's (SQLite: FTS5; PostgreSQL: a GIN-indexed token
// array), as is the query that finds documents; what both share is here.

// ScopeTokenLimit: up to this many conversations, a search's scope goes into the index query as
// conversation tokens, so the index skips everything outside it; beyond it the scope is only a
// filter on the rows found (a user in that many conversations sees most of the org anyway).
const ScopeTokenLimit = 256

// indexKeys caches the orgs' index keys. A key never changes once stored (except when an index
// made under a plain key is rebuilt at open, which resets the cache).
type indexKeys struct {
	mu sync.Mutex
	m  map[string]*keyring.IndexKey
}

// Get returns the org's cached key.
func (k *indexKeys) Get(org string) (*keyring.IndexKey, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ik, ok := k.m[org]
	return ik, ok
}

// Put caches the org's key.
func (k *indexKeys) Put(org string, ik *keyring.IndexKey) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[string]*keyring.IndexKey{}
	}
	k.m[org] = ik
}

// Reset forgets every key.
func (k *indexKeys) Reset() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m = nil
}

// Indexable reports whether a message gets an index entry: live text.
func Indexable(m *chatvault.Message) bool {
	return m.Kind == chatvault.KindText && m.State == chatvault.StateLive && m.ExpiredAt == nil
}

// CandidateColumns are what a search query selects: the document number, then the MessageColumns
// of the messages table aliased m.
const CandidateColumns = `m.doc, m.org_id, m.conversation_id, m.seq, m.id, m.sender_id, m.client_msg_id, m.kind, m.body, m.reply_to,
	m.sent_at, m.edited_at, m.version, m.state, m.state_at, m.importance, m.expired_at`

// Candidates runs an engine's search query (selecting CandidateColumns) and opens each message.
func (c *Core) Candidates(ctx context.Context, query string, args ...any) ([]chatvault.SearchCandidate, error) {
	rows, err := c.read.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	defer rows.Close()
	var out []chatvault.SearchCandidate
	for rows.Next() {
		var sc chatvault.SearchCandidate
		if sc.Message, err = ScanMessage(docScanner{rows, &sc.Doc}); err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	rows.Close() // opening may read a data key through the pool: give the connection back first
	var last *keyring.DataKey
	for _, sc := range out {
		if err := c.OpenMessage(ctx, sc.Message, &last); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// docScanner scans the leading document number before the message's columns.
type docScanner struct {
	rows Rows
	doc  *int64
}

func (s docScanner) Scan(dest ...any) error {
	return s.rows.Scan(append([]any{s.doc}, dest...)...)
}

// IndexKey returns the org's index key, or nil when it has none yet and create is false.
//
// Several processes may index an org's first messages at once (PostgreSQL), and two different
// keys would make half the index unreadable, so a key is stored insert-if-absent and read back:
// whoever stores second gets the first one. With a keyring the key is committed to the key store
// before the data transaction (like a data key; a rollback leaves an unused key, which the next
// write uses). Without one it goes into search_keys inside the writing transaction q (which must
// then be a Tx), and is cached only once read from committed data: a rollback must not leave a
// cached key that the database never kept.
func (c *Core) IndexKey(ctx context.Context, q Querier, org string, create bool) (*keyring.IndexKey, error) {
	if ik, ok := c.ikeys.Get(org); ok {
		return ik, nil
	}
	if c.enc != nil {
		id := keyring.IndexKeyID(org)
		kekID, wrapped, err := c.enc.Keys.Get(ctx, id)
		if errors.Is(err, keyring.ErrDataKeyDestroyed) {
			if !create {
				return nil, nil
			}
			_, newKEK, newWrapped, nerr := c.enc.Keyring.NewIndexKey(ctx, org)
			if nerr != nil {
				return nil, nerr
			}
			kekID, wrapped, err = c.enc.Keys.PutIfAbsent(ctx, id, newKEK, newWrapped, c.enc.Now())
		}
		if err != nil {
			return nil, err
		}
		ik, err := c.enc.Keyring.UnwrapIndexKey(ctx, org, kekID, wrapped)
		if err != nil {
			return nil, err
		}
		c.ikeys.Put(org, ik)
		return ik, nil
	}
	tx, inTx := q.(Tx)
	var raw []byte
	err := q.QueryRow(ctx, `SELECT key FROM search_keys WHERE org_id = $1`, org).Scan(&raw)
	if isNoRows(err) {
		if !create {
			return nil, nil
		}
		if !inTx {
			return nil, errors.New("index key: created outside a write")
		}
		fresh, rerr := keyring.RandomKey()
		if rerr != nil {
			return nil, rerr
		}
		if _, err := tx.Exec(ctx, `INSERT INTO search_keys (org_id, key) VALUES ($1, $2) ON CONFLICT (org_id) DO NOTHING`, org, fresh); err != nil {
			return nil, fmt.Errorf("store index key: %w", err)
		}
		err = tx.QueryRow(ctx, `SELECT key FROM search_keys WHERE org_id = $1`, org).Scan(&raw)
	}
	if err != nil {
		return nil, fmt.Errorf("read index key: %w", err)
	}
	ik, err := keyring.PlainIndexKey(org, raw)
	if err != nil {
		return nil, err
	}
	if !inTx {
		c.ikeys.Put(org, ik)
	}
	return ik, nil
}

// ResetIndexKeys forgets the cached index keys (an index made under a plain key was rebuilt).
func (c *Core) ResetIndexKeys() { c.ikeys.Reset() }
