package postgres

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/search"
	"github.com/chatvault/chatvault/internal/sqlstore"
	"github.com/jackc/pgx/v5"
)

// The search index (migration 0002): one search_docs row of blind tokens per live text message,
// written and removed in the same transaction as the message, exactly as internal/sqlite/search.go
// does with FTS5, so the same data gives the same candidates in the same order on both stores.

// backlogChunk is how many messages one transaction of the backlog indexes.
const backlogChunk = 500

// backlogLock is the pg_advisory_xact_lock key under which the backlog runs, so processes that
// open together index each message once. ("chatsrch" in ASCII.)
const backlogLock = 0x6368617473726368

// blindTokens keys tokens with ik and returns them as the 64-bit integers the index stores.
func blindTokens(ik *keyring.IndexKey, tokens []string) []int64 {
	hexed := ik.AppendTokens(make([]byte, 0, 16*len(tokens)), tokens, 0)
	out := make([]int64, len(tokens))
	var b [8]byte
	for i := range out {
		hex.Decode(b[:], hexed[16*i:16*i+16]) // AppendTokens writes valid lowercase hex
		out[i] = int64(binary.BigEndian.Uint64(b[:]))
	}
	return out
}

// messageTokens are the blind tokens of a message's index entry.
func messageTokens(ik *keyring.IndexKey, m *chatvault.Message) []int64 {
	tokens := append(search.IndexTokens(m.Text), search.ConversationToken(m.ConversationID), search.SenderToken(m.SenderID))
	return blindTokens(ik, tokens)
}

// indexMessage writes m's index entry under doc.
func (db *DB) indexMessage(ctx context.Context, tx *wtx, m *chatvault.Message, doc int64) error {
	ik, err := db.IndexKey(ctx, coreTx{tx}, m.OrgID, true)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO search_docs (org_id, doc, conversation_id, seq, sent_at, tokens) VALUES ($1, $2, $3, $4, $5, $6)`,
		m.OrgID, doc, m.ConversationID, m.Seq, sqlstore.Millis(m.SentAt), messageTokens(ik, m)); err != nil {
		return fmt.Errorf("write search index: %w", err)
	}
	return nil
}

// unindexSeqs deletes the index entries of the listed messages and forgets their document
// numbers. It runs in the transaction that recalls or destroys them.
func unindexSeqs(ctx context.Context, tx *wtx, orgID, convID string, seqs []int64) error {
	if _, err := tx.Exec(ctx, `DELETE FROM search_docs WHERE org_id = $1 AND doc IN (SELECT doc FROM messages
		WHERE org_id = $1 AND conversation_id = $2 AND seq = ANY($3) AND doc IS NOT NULL)`, orgID, convID, seqs); err != nil {
		return fmt.Errorf("delete index entries: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE messages SET doc = NULL WHERE org_id = $1 AND conversation_id = $2 AND seq = ANY($3) AND doc IS NOT NULL`,
		orgID, convID, seqs); err != nil {
		return fmt.Errorf("forget index entries: %w", err)
	}
	return nil
}

// reindex replaces an edited message's index entry, keeping its document number (and so its
// place in newest-first order, which is by sending, not by editing).
func (db *DB) reindex(ctx context.Context, tx *wtx, m *chatvault.Message) error {
	var doc *int64
	if err := tx.QueryRow(ctx, `SELECT doc FROM messages WHERE org_id = $1 AND conversation_id = $2 AND seq = $3`,
		m.OrgID, m.ConversationID, m.Seq).Scan(&doc); err != nil {
		return fmt.Errorf("read index entry: %w", err)
	}
	if doc == nil {
		return nil
	}
	ik, err := db.IndexKey(ctx, coreTx{tx}, m.OrgID, true)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE search_docs SET tokens = $1 WHERE org_id = $2 AND doc = $3`, messageTokens(ik, m), m.OrgID, *doc); err != nil {
		return fmt.Errorf("rewrite index entry: %w", err)
	}
	return nil
}

// SearchMessages returns the candidates of a search, newest first.
func (db *DB) SearchMessages(ctx context.Context, q chatvault.SearchQuery) ([]chatvault.SearchCandidate, error) {
	if len(q.Tokens) == 0 {
		return nil, errors.New("search: no tokens")
	}
	ik, err := db.IndexKey(ctx, poolQ{db.pool}, q.OrgID, false)
	if err != nil || ik == nil {
		return nil, err // no key: the org has indexed nothing
	}
	before := q.Before
	if before <= 0 {
		before = math.MaxInt64
	}
	var a sqlstore.Args
	where := []string{`d.org_id = ` + a.Add(q.OrgID), `d.doc < ` + a.Add(before)}
	// Elements with one alternative go into one containment test, which the GIN index answers
	// by intersecting posting lists; the others become ORs of containments.
	var all []string
	for _, alts := range q.Tokens {
		switch len(alts) {
		case 0:
			return nil, nil // an empty OR holds for nothing
		case 1:
			all = append(all, alts[0]...)
			continue
		}
		ors := make([]string, len(alts))
		for i, ts := range alts {
			ors[i] = `d.tokens @> ` + a.Add(blindTokens(ik, ts))
		}
		where = append(where, "("+strings.Join(ors, " OR ")+")")
	}
	if q.SenderID != "" {
		all = append(all, search.SenderToken(q.SenderID))
		where = append(where, `m.sender_id = `+a.Add(q.SenderID))
	}
	if len(all) > 0 {
		where = append(where, `d.tokens @> `+a.Add(blindTokens(ik, all)))
	}
	if n := len(q.ConversationIDs); n > 0 {
		if n <= sqlstore.ScopeTokenLimit {
			ts := make([]string, n)
			for i, c := range q.ConversationIDs {
				ts[i] = search.ConversationToken(c)
			}
			where = append(where, `d.tokens && `+a.Add(blindTokens(ik, ts)))
		}
		where = append(where, `d.conversation_id = ANY(`+a.Add(q.ConversationIDs)+`)`)
	}
	if !q.From.IsZero() {
		where = append(where, `d.sent_at >= `+a.Add(sqlstore.Millis(q.From)))
	}
	if !q.To.IsZero() {
		where = append(where, `d.sent_at < `+a.Add(sqlstore.Millis(q.To)))
	}
	if len(q.SeqAfter) > 0 {
		bounds, err := json.Marshal(q.SeqAfter)
		if err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		where = append(where, `d.seq > coalesce((`+a.Add(string(bounds))+`::jsonb ->> d.conversation_id)::bigint, 0)`)
	}
	if q.HiddenFor != "" {
		where = append(where, `NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.org_id = d.org_id AND h.conversation_id = d.conversation_id
			AND h.user_id = `+a.Add(q.HiddenFor)+` AND h.seq = d.seq)`)
	}
	query := `SELECT ` + sqlstore.CandidateColumns + ` FROM search_docs d
		JOIN messages m ON m.org_id = d.org_id AND m.conversation_id = d.conversation_id AND m.seq = d.seq AND m.sent_at = d.sent_at AND m.doc = d.doc
		WHERE m.state = 'live' AND m.expired_at IS NULL AND ` + strings.Join(where, " AND ") + ` ORDER BY d.doc DESC`
	if q.Limit >= 0 { // as SQLite: a negative limit is none
		query += ` LIMIT ` + a.Add(q.Limit)
	}
	return db.Candidates(ctx, query, a...)
}

// indexBacklog indexes the live text messages that have no index entry: stored by a bulk load or
// a copy from SQLite, or unexpired after the index passed them by. Oldest first, so document
// numbers follow sending order; one bounded transaction at a time; under an advisory lock, so
// processes that open together do the work once. With a keyring it first drops what was indexed
// under a plain key.
func (db *DB) indexBacklog(ctx context.Context) error {
	if db.keys != nil {
		if err := db.dropPlainIndex(ctx); err != nil {
			return err
		}
	}
	if err := db.forgetCopiedDocs(ctx); err != nil {
		return err
	}
	if err := db.dropStaleIndex(ctx); err != nil {
		return err
	}
	for {
		n := 0
		err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
			var err error
			n, err = db.indexChunk(ctx, tx)
			return err
		})
		if err != nil {
			return fmt.Errorf("index stored messages: %w", err)
		}
		if n == 0 {
			return nil
		}
	}
}

// indexChunk indexes up to backlogChunk unindexed messages and returns how many it indexed.
func (db *DB) indexChunk(ctx context.Context, tx *wtx) (int, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(backlogLock)); err != nil {
		return 0, fmt.Errorf("take backlog lock: %w", err)
	}
	// Locked, so an edit, recall or purge of one of them waits for this entry, or this waits for it
	// and then skips the message.
	rows, err := tx.Query(ctx, `SELECT `+messageColumns+` FROM messages
		WHERE doc IS NULL AND kind = 'text' AND state = 'live' AND expired_at IS NULL ORDER BY sent_at, org_id, conversation_id, seq LIMIT $1 FOR UPDATE`, backlogChunk)
	if err != nil {
		return 0, fmt.Errorf("find unindexed messages: %w", err)
	}
	ms, err := collect(rows, func(r pgx.CollectableRow) (*chatvault.Message, error) { return scanMessage(r) })
	if err != nil || len(ms) == 0 {
		return 0, err
	}
	// One block of event numbers for the chunk; the counter stays locked until commit, so the
	// numbers follow commit order like every other.
	var last int64
	if err := tx.QueryRow(ctx, `UPDATE counters SET value = value + $1 WHERE name = 'event' RETURNING value`, len(ms)).Scan(&last); err != nil {
		return 0, fmt.Errorf("allocate document numbers: %w", err)
	}
	first := last - int64(len(ms)) + 1
	var (
		orgs, convs []string
		seqs, sents []int64
		docs        []int64
		entries     [][]any
		dk          *keyring.DataKey
	)
	for i, m := range ms {
		if err := db.OpenMessage(ctx, m, &dk); err != nil {
			return 0, err
		}
		ik, err := db.IndexKey(ctx, coreTx{tx}, m.OrgID, true)
		if err != nil {
			return 0, err
		}
		doc := first + int64(i)
		orgs, convs, seqs, sents, docs = append(orgs, m.OrgID), append(convs, m.ConversationID), append(seqs, m.Seq), append(sents, sqlstore.Millis(m.SentAt)), append(docs, doc)
		entries = append(entries, []any{m.OrgID, doc, m.ConversationID, m.Seq, sqlstore.Millis(m.SentAt), messageTokens(ik, m)})
	}
	if _, err := tx.Exec(ctx, `UPDATE messages m SET doc = v.doc
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) AS v (org_id, conversation_id, seq, sent_at, doc)
		WHERE m.org_id = v.org_id AND m.conversation_id = v.conversation_id AND m.seq = v.seq AND m.sent_at = v.sent_at`,
		orgs, convs, seqs, sents, docs); err != nil {
		return 0, fmt.Errorf("number index entries: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"search_docs"}, []string{"org_id", "doc", "conversation_id", "seq", "sent_at", "tokens"},
		pgx.CopyFromRows(entries)); err != nil {
		return 0, fmt.Errorf("write search index: %w", err)
	}
	// The numbers taken are covered by an empty outbox row, so live listeners see no gap.
	if _, err := tx.Exec(ctx, `INSERT INTO event_outbox (first_id, last_id, events, created_at) VALUES ($1, $2, '[]', $3)`,
		first, last, time.Now().UnixMilli()); err != nil {
		return 0, fmt.Errorf("insert outbox: %w", err)
	}
	return len(ms), nil
}

// dropStaleIndex empties an index built under another tokenizer version (see search_state): its
// tokens are not the ones the running code asks for. The backlog then indexes every message
// again. Emptying and recording the new version are one transaction, under the backlog lock, so
// of processes that open together one drops the index and the others find the version current.
func (db *DB) dropStaleIndex(ctx context.Context) error {
	return db.update(ctx, func(ctx context.Context, tx *wtx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(backlogLock)); err != nil {
			return fmt.Errorf("take backlog lock: %w", err)
		}
		var version int
		if err := tx.QueryRow(ctx, `SELECT tokenizer FROM search_state`).Scan(&version); err != nil {
			return fmt.Errorf("read search index version: %w", err)
		}
		if version == search.TokenizerVersion {
			return nil
		}
		for _, q := range []string{
			`DELETE FROM search_docs`,
			`UPDATE messages SET doc = NULL WHERE doc IS NOT NULL`,
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("drop search index of tokenizer %d: %w", version, err)
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE search_state SET tokenizer = $1`, search.TokenizerVersion); err != nil {
			return fmt.Errorf("record search index version: %w", err)
		}
		return nil
	})
}

// forgetCopiedDocs clears document numbers that have no index entry behind them: chatvault
// migrate copies messages.doc from SQLite, whose index (FTS5) does not come along. An index
// with no entries at all while messages have numbers can only be such a copy; the backlog then
// indexes the messages afresh, under the org's index key, which did come along with the keys.
func (db *DB) forgetCopiedDocs(ctx context.Context) error {
	return db.update(ctx, func(ctx context.Context, tx *wtx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(backlogLock)); err != nil {
			return fmt.Errorf("take backlog lock: %w", err)
		}
		var copied bool
		if err := tx.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM search_docs) AND EXISTS (SELECT 1 FROM messages WHERE doc IS NOT NULL)`).Scan(&copied); err != nil {
			return fmt.Errorf("check search index: %w", err)
		}
		if !copied {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE messages SET doc = NULL WHERE doc IS NOT NULL`); err != nil {
			return fmt.Errorf("forget copied document numbers: %w", err)
		}
		return nil
	})
}

// dropPlainIndex drops the index entries of orgs whose index key is a plain one (made while the
// store ran without encryption: the key sits beside the data), so the backlog indexes them again
// under a key wrapped in the keys schema.
func (db *DB) dropPlainIndex(ctx context.Context) error {
	var plain int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM search_keys`).Scan(&plain); err != nil {
		return fmt.Errorf("read index keys: %w", err)
	}
	if plain == 0 {
		return nil
	}
	err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(backlogLock)); err != nil {
			return fmt.Errorf("take backlog lock: %w", err)
		}
		for _, q := range []string{
			`DELETE FROM search_docs WHERE org_id IN (SELECT org_id FROM search_keys)`,
			`UPDATE messages SET doc = NULL WHERE doc IS NOT NULL AND org_id IN (SELECT org_id FROM search_keys)`,
			`DELETE FROM search_keys`,
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("drop plain-text search index: %w", err)
			}
		}
		return nil
	})
	db.ResetIndexKeys()
	return err
}
