package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/search"
	"github.com/chatvault/chatvault/internal/sqlstore"
)

// The search index (migration 0006): one FTS5 document of blind tokens per live text message,
// written and removed in the same transaction as the message. See internal/search for what the
// tokens are and docs/decisions.md for why FTS5 over a token table.

// indexDocument is the FTS5 text of a message: its blind tokens, space-separated.
func indexDocument(ik *keyring.IndexKey, m *chatvault.Message) string {
	tokens := append(search.IndexTokens(m.Text), search.ConversationToken(m.ConversationID), search.SenderToken(m.SenderID))
	return string(ik.AppendTokens(make([]byte, 0, 17*len(tokens)), tokens, ' '))
}

// indexOp is one write to the search index: insert document text under doc, or (text empty)
// delete doc.
type indexOp struct {
	doc  int64
	text string
}

// applyIndex writes a batch's index operations, in order, just before the batch commits. FTS5
// flushes its pending inserts to a new segment whenever another statement opens a savepoint, and
// every request of a batch runs in one: written as they came, each message cost a segment and
// the merges that follow (4x the cost of the whole insert). Deferred to here, a batch is one
// segment, and still commits with its messages or not at all.
func (db *DB) applyIndex(tx *sql.Tx, ops []indexOp) error {
	for _, op := range ops {
		var err error
		if op.text == "" {
			_, err = tx.Stmt(db.stmts.deleteIndex).Exec(op.doc)
		} else {
			_, err = tx.Stmt(db.stmts.insertIndex).Exec(op.doc, op.text)
		}
		if err != nil {
			return fmt.Errorf("write search index: %w", err)
		}
	}
	return nil
}

// indexMessage queues m's index entry under doc, for the end of the batch.
func (db *DB) indexMessage(ctx context.Context, tx *wtx, m *chatvault.Message, doc int64) error {
	ik, err := db.IndexKey(ctx, tx, m.OrgID, true)
	if err != nil {
		return err
	}
	tx.index = append(tx.index, indexOp{doc: doc, text: indexDocument(ik, m)})
	return nil
}

// unindexSeqs deletes the index entries of the listed messages (a JSON array of seqs) and forgets
// their document numbers. It runs in the transaction that recalls or destroys them.
func unindexSeqs(ctx context.Context, tx *wtx, orgID, convID, seqs string) error {
	// Read first: RETURNING would give the new (NULL) values.
	rows, err := tx.QueryContext(ctx, `SELECT doc FROM messages
		WHERE org_id = ?1 AND conversation_id = ?2 AND seq IN (SELECT value FROM json_each(?3)) AND doc IS NOT NULL`, orgID, convID, seqs)
	if err != nil {
		return fmt.Errorf("find index entries: %w", err)
	}
	defer rows.Close()
	n := len(tx.index)
	for rows.Next() {
		var doc int64
		if err := rows.Scan(&doc); err != nil {
			return err
		}
		tx.index = append(tx.index, indexOp{doc: doc})
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(tx.index) == n {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE messages SET doc = NULL
		WHERE org_id = ?1 AND conversation_id = ?2 AND seq IN (SELECT value FROM json_each(?3)) AND doc IS NOT NULL`,
		orgID, convID, seqs); err != nil {
		return fmt.Errorf("forget index entries: %w", err)
	}
	return nil
}

// reindex replaces an edited message's index entry, keeping its document number (and so its
// place in newest-first order, which is by sending, not by editing).
func (db *DB) reindex(ctx context.Context, tx *wtx, m *chatvault.Message) error {
	var doc sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT doc FROM messages WHERE org_id = ? AND conversation_id = ? AND seq = ?`,
		m.OrgID, m.ConversationID, m.Seq).Scan(&doc); err != nil {
		return fmt.Errorf("read index entry: %w", err)
	}
	if !doc.Valid {
		return nil
	}
	if db.noIndex { // leave it to the backlog of the next open
		return unindexSeqs(ctx, tx, m.OrgID, m.ConversationID, fmt.Sprintf("[%d]", m.Seq))
	}
	tx.index = append(tx.index, indexOp{doc: doc.Int64})
	return db.indexMessage(ctx, tx, m, doc.Int64)
}

// SearchMessages returns the candidates of a search, newest first.
func (db *DB) SearchMessages(ctx context.Context, q chatvault.SearchQuery) ([]chatvault.SearchCandidate, error) {
	if len(q.Tokens) == 0 {
		return nil, errors.New("search: no tokens")
	}
	ik, err := db.IndexKey(ctx, db.cached, q.OrgID, false)
	if err != nil || ik == nil {
		return nil, err // no key: the org has indexed nothing
	}
	var match []string
	for _, alts := range q.Tokens {
		var ors []string
		for _, all := range alts {
			ands := make([]string, len(all))
			for i, t := range all {
				ands[i] = `"` + ik.Token(t) + `"`
			}
			ors = append(ors, "("+strings.Join(ands, " AND ")+")")
		}
		match = append(match, "("+strings.Join(ors, " OR ")+")")
	}
	where, args := []string{}, []any{}
	arg := func(clause string, v any) {
		where = append(where, clause)
		args = append(args, v)
	}
	if n := len(q.ConversationIDs); n > 0 && n <= sqlstore.ScopeTokenLimit {
		ors := make([]string, n)
		for i, c := range q.ConversationIDs {
			ors[i] = `"` + ik.Token(search.ConversationToken(c)) + `"`
		}
		match = append(match, "("+strings.Join(ors, " OR ")+")")
	} else if n > 0 {
		list, _ := json.Marshal(q.ConversationIDs)
		arg(`+m.conversation_id IN (SELECT value FROM json_each(?))`, string(list))
	}
	if q.SenderID != "" {
		match = append(match, `"`+ik.Token(search.SenderToken(q.SenderID))+`"`)
	}
	if !q.From.IsZero() {
		arg(`m.sent_at >= ?`, sqlstore.Millis(q.From))
	}
	if !q.To.IsZero() {
		arg(`m.sent_at < ?`, sqlstore.Millis(q.To))
	}
	if len(q.SeqAfter) > 0 {
		bounds, _ := json.Marshal(q.SeqAfter)
		arg(`m.seq > coalesce(json_extract(?, '$."' || m.conversation_id || '"'), 0)`, string(bounds))
	}
	if q.HiddenFor != "" {
		arg(`NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.org_id = m.org_id AND h.conversation_id = m.conversation_id
			AND h.user_id = ? AND h.seq = m.seq)`, q.HiddenFor)
	}
	before := q.Before
	if before <= 0 {
		before = 1<<63 - 1
	}
	query := `SELECT ` + sqlstore.CandidateColumns + ` FROM search_index f
		JOIN messages m INDEXED BY messages_doc ON m.doc = f.rowid
		WHERE search_index MATCH ? AND f.rowid < ? AND m.org_id = ? AND m.state = 'live' AND m.expired_at IS NULL`
	for _, w := range where {
		query += " AND " + w
	}
	query += ` ORDER BY f.rowid DESC LIMIT ?`
	args = append([]any{strings.Join(match, " AND "), before, q.OrgID}, append(args, q.Limit)...)
	return db.Candidates(ctx, query, args...)
}

// dropPlainIndex empties an index built while the store ran without encryption: its key sits in
// the data file in plain text, so the index is rebuilt under a key wrapped in the keys database.
func (db *DB) dropPlainIndex(ctx context.Context) error {
	var plain int
	if err := db.write.QueryRowContext(ctx, `SELECT count(*) FROM search_keys`).Scan(&plain); err != nil {
		return fmt.Errorf("read index keys: %w", err)
	}
	if plain == 0 {
		return nil
	}
	return db.update(ctx, func(ctx context.Context, tx *wtx) error {
		for _, q := range []string{
			`INSERT INTO search_index (search_index) VALUES ('delete-all')`,
			`UPDATE messages SET doc = NULL WHERE doc IS NOT NULL`,
			`DELETE FROM search_keys`,
			`UPDATE store_encryption SET search_indexed = 0`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("drop plain-text search index: %w", err)
			}
		}
		db.ResetIndexKeys()
		return nil
	})
}

// dropStaleIndex empties an index built under another tokenizer version: its tokens are not the
// ones the running code asks for, so it would miss messages. The backlog then indexes everything
// again, and the new version is recorded in the same transaction as the emptying, so a crash
// half-way leaves a store whose next open carries on with the backlog.
func (db *DB) dropStaleIndex(ctx context.Context) error {
	var version int
	if err := db.write.QueryRowContext(ctx, `SELECT search_tokenizer FROM store_encryption`).Scan(&version); err != nil {
		return fmt.Errorf("read search index version: %w", err)
	}
	if version == search.TokenizerVersion {
		return nil
	}
	return db.update(ctx, func(ctx context.Context, tx *wtx) error {
		for _, q := range []string{
			`INSERT INTO search_index (search_index) VALUES ('delete-all')`,
			`UPDATE messages SET doc = NULL WHERE doc IS NOT NULL`,
			`UPDATE store_encryption SET search_indexed = 0`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("drop search index of tokenizer %d: %w", version, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE store_encryption SET search_tokenizer = ?`, search.TokenizerVersion); err != nil {
			return fmt.Errorf("record search index version: %w", err)
		}
		return nil
	})
}

// indexBacklog indexes, once, the live text messages stored before the index existed (or by a
// bulk load that wrote rows directly, or under an older tokenizer), oldest first so document
// numbers follow sending order, one bounded transaction at a time.
func (db *DB) indexBacklog(ctx context.Context) error {
	if db.keys != nil {
		if err := db.dropPlainIndex(ctx); err != nil {
			return err
		}
	}
	if err := db.dropStaleIndex(ctx); err != nil {
		return err
	}
	var done int
	if err := db.write.QueryRowContext(ctx, `SELECT search_indexed FROM store_encryption`).Scan(&done); err != nil {
		return fmt.Errorf("read search index state: %w", err)
	}
	if done == 1 {
		return nil
	}
	type key struct {
		org, conv string
		seq       int64
	}
	var keys []key
	rows, err := db.write.QueryContext(ctx, `SELECT org_id, conversation_id, seq FROM messages
		WHERE doc IS NULL AND kind = 'text' AND state = 'live' AND expired_at IS NULL ORDER BY sent_at, org_id, conversation_id, seq`)
	if err != nil {
		return fmt.Errorf("find unindexed messages: %w", err)
	}
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.org, &k.conv, &k.seq); err != nil {
			rows.Close()
			return err
		}
		keys = append(keys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("find unindexed messages: %w", err)
	}
	// Prepared once: parsing the two statements anew for each message was most of the cost.
	sel, err := db.write.PrepareContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE org_id = ? AND conversation_id = ? AND seq = ?`)
	if err != nil {
		return fmt.Errorf("prepare index backlog: %w", err)
	}
	defer sel.Close()
	number, err := db.write.PrepareContext(ctx, `UPDATE messages SET doc = ? WHERE org_id = ? AND conversation_id = ? AND seq = ?`)
	if err != nil {
		return fmt.Errorf("prepare index backlog: %w", err)
	}
	defer number.Close()
	const chunk = 2000
	indexed := len(keys)
	for {
		batch := keys[:min(chunk, len(keys))]
		keys = keys[len(batch):]
		last := len(keys) == 0
		err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
			for _, k := range batch {
				m, err := scanMessage(tx.StmtContext(ctx, sel).QueryRowContext(ctx, k.org, k.conv, k.seq))
				if err != nil {
					return fmt.Errorf("read message to index: %w", err)
				}
				if err := db.openMessage(ctx, m); err != nil {
					return err
				}
				if !sqlstore.Indexable(m) {
					continue
				}
				doc, err := tx.nextEventID(ctx)
				if err != nil {
					return err
				}
				if _, err := tx.StmtContext(ctx, number).ExecContext(ctx, doc, m.OrgID, m.ConversationID, m.Seq); err != nil {
					return fmt.Errorf("number index entry: %w", err)
				}
				if err := db.indexMessage(ctx, tx, m, doc); err != nil {
					return err
				}
			}
			if !last {
				return nil
			}
			_, err := tx.ExecContext(ctx, `UPDATE store_encryption SET search_indexed = 1`)
			return err
		})
		if err != nil {
			return fmt.Errorf("index stored messages: %w", err)
		}
		if last {
			break
		}
	}
	if indexed == 0 {
		return nil
	}
	// Many batches made many segments: merge them into one before the store serves.
	return db.update(ctx, func(ctx context.Context, tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO search_index (search_index) VALUES ('optimize')`); err != nil {
			return fmt.Errorf("optimize search index: %w", err)
		}
		return nil
	})
}

// indexMergeEvery is how often the store merges the index's segments in the background.
const indexMergeEvery = 30 * time.Second

// mergeIndex merges the search index's segments, a bounded amount of work at a time, until Close.
// Every batch of messages adds a segment; FTS5's own automerge keeps their number bounded, but a
// query opens an iterator on every segment for every token, so fewer segments are much faster
// (measured at 1M messages: 4-7x on user-scoped candidate reads after a full merge). 256 pages
// (1 MiB) of merging holds the writer for a few milliseconds.
func (db *DB) mergeIndex(every time.Duration) {
	defer close(db.mergeDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-db.stopMerge:
			return
		case <-t.C:
			// A failed merge changes nothing and the next tick tries again: merging only makes
			// queries faster, so there is nothing to report.
			_ = db.update(context.Background(), func(ctx context.Context, tx *wtx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO search_index (search_index, rank) VALUES ('merge', 256)`)
				return err
			})
		}
	}
}

// IndexSize is what the search index takes on disk.
type IndexSize struct {
	FTS      int64 // the FTS5 tables (posting lists, their b-tree, bookkeeping)
	DocIndex int64 // messages_doc, which maps a document back to its message
	Messages int64 // indexed messages
}

// Total is FTS + DocIndex.
func (s IndexSize) Total() int64 { return s.FTS + s.DocIndex }

// SearchIndexSize measures the search index from SQLite's page statistics (dbstat).
func (db *DB) SearchIndexSize(ctx context.Context) (IndexSize, error) {
	var s IndexSize
	err := db.read.QueryRowContext(ctx, `SELECT
		(SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name LIKE 'search_index%'),
		(SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = 'messages_doc'),
		(SELECT count(*) FROM messages WHERE doc IS NOT NULL)`).Scan(&s.FTS, &s.DocIndex, &s.Messages)
	if err != nil {
		return s, fmt.Errorf("measure search index: %w", err)
	}
	return s, nil
}
