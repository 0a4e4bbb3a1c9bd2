package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/sqlstore"
)

// This file holds what `chatvault bench` needs from the engine and the product must not use: the
// raw reference paths (the engine's own ceiling, with chatvault's logic taken out) and a bulk
// loader for generated data sets. Both write through the single writer, so the store's one-writer
// rule holds, and both run with the store's own connection settings (WAL, synchronous=FULL).

// Durability reads back the journal mode and synchronous setting of the write connection, so a
// benchmark can state what every acknowledged write was subject to.
func (db *DB) Durability(ctx context.Context) (journalMode, synchronous string, err error) {
	err = db.update(ctx, func(ctx context.Context, tx *wtx) error {
		if err := tx.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&journalMode); err != nil {
			return fmt.Errorf("read journal_mode: %w", err)
		}
		var level int
		if err := tx.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&level); err != nil {
			return fmt.Errorf("read synchronous: %w", err)
		}
		names := map[int]string{0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
		synchronous = names[level]
		if synchronous == "" {
			synchronous = fmt.Sprint(level)
		}
		return nil
	})
	return journalMode, synchronous, err
}

// Raw is the reference a benchmark compares the store with: the same engine, schema, rows and
// durability settings, without chatvault's logic (no membership check, no seq allocation, no
// client_msg_id lookup, no savepoints, no hidden-message filter, no domain types).
type Raw struct {
	db     *DB
	insert *sql.Stmt // on the write connection
	page   *sql.Stmt // on the read pool
}

// rawInsert inserts the same columns AppendMessage does.
const rawInsert = `INSERT INTO messages (org_id, conversation_id, seq, id, sender_id, client_msg_id, kind, body, reply_to, sent_at, id_derived)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// rawPage is the indexed range query under FindMessages (primary key org_id, conversation_id, seq).
const rawPage = `SELECT ` + messageColumns + ` FROM messages
	WHERE org_id = ? AND conversation_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?`

// Raw prepares the reference paths. Close it before closing db.
func (db *DB) Raw() (*Raw, error) {
	insert, err := db.write.Prepare(rawInsert)
	if err != nil {
		return nil, fmt.Errorf("prepare raw insert: %w", err)
	}
	page, err := db.read.Prepare(rawPage)
	if err != nil {
		insert.Close()
		return nil, fmt.Errorf("prepare raw page: %w", err)
	}
	return &Raw{db: db, insert: insert, page: page}, nil
}

// Close releases the prepared statements.
func (r *Raw) Close() error { return errors.Join(r.insert.Close(), r.page.Close()) }

// InsertMessages inserts ms, whose Seq the caller has set, with plain INSERTs in one transaction,
// and returns once that transaction is durably committed. It does not move conversations.last_seq:
// the rows are a reference load, not product data.
func (r *Raw) InsertMessages(ctx context.Context, ms []*chatvault.Message) error {
	return r.db.update(ctx, func(ctx context.Context, tx *wtx) error {
		st := tx.StmtContext(ctx, r.insert)
		for _, m := range ms {
			if _, err := st.ExecContext(ctx, m.OrgID, m.ConversationID, m.Seq, m.ID, m.SenderID,
				sqlstore.NullString(m.ClientMsgID), m.Kind, []byte(m.Text), sqlstore.NullString(m.ReplyTo), sqlstore.Millis(m.SentAt), sqlstore.IDDerived(m)); err != nil {
				return fmt.Errorf("raw insert message: %w", err)
			}
		}
		return nil
	})
}

// Page reads the (at most) limit messages just below seq before, newest first, touching every
// column, and returns how many it read.
func (r *Raw) Page(ctx context.Context, orgID, convID string, before int64, limit int) (int, error) {
	rows, err := r.page.QueryContext(ctx, orgID, convID, before, limit)
	if err != nil {
		return 0, fmt.Errorf("raw page: %w", err)
	}
	defer rows.Close()
	return countRaw(rows)
}

// countRaw reads every row as raw bytes (no conversion: the engine's floor) and counts them.
func countRaw(rows *sql.Rows) (int, error) {
	names, err := rows.Columns()
	if err != nil {
		return 0, fmt.Errorf("raw columns: %w", err)
	}
	cols := make([]sql.RawBytes, len(names))
	dest := make([]any, len(cols))
	for i := range cols {
		dest[i] = &cols[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return n, fmt.Errorf("raw scan: %w", err)
		}
		n++
	}
	return n, rows.Err()
}

// BulkConversation is a conversation to load with its members. Members excludes the creator, who
// is loaded as owner; everyone is a member from seq 0.
type BulkConversation struct {
	Conversation *chatvault.Conversation
	Members      []string
}

// BulkData is a generated data set for BulkLoad.
type BulkData struct {
	Orgs          []*chatvault.Org
	Users         []*chatvault.User // every org's users, admins included
	Conversations []BulkConversation
	// Messages yields every message with OrgID, ConversationID, Seq (1, 2, ... per conversation,
	// gap-free), ID, SenderID (a member), Kind and SentAt set. BulkLoad keeps each message until its
	// batch is written, so yield a fresh *Message each time.
	Messages iter.Seq[*chatvault.Message]
}

// bulkChunk is how many rows one loader transaction holds.
const bulkChunk = 20000

// BulkLoad writes a generated data set straight into the tables: the same rows that CreateOrg,
// CreateUser, CreateConversation and AppendMessage would write, but in large transactions and
// without the per-row checks. It is the loader behind `chatvault bench gen`, not a product path:
// it trusts its input (members exist, senders are members, seqs are gap-free). It ends by setting
// conversations.last_seq to each conversation's highest seq, as AppendMessage would have left it
// (and, where the schema has a change feed, the feed's counter and each conversation's last event).
func (db *DB) BulkLoad(ctx context.Context, data BulkData) error {
	// Rows loaded here bypass the index: the next open indexes them (indexBacklog).
	if _, err := db.write.ExecContext(ctx, `UPDATE store_encryption SET search_indexed = 0`); err != nil {
		return fmt.Errorf("mark search index stale: %w", err)
	}
	var pending []func(ctx context.Context, tx *wtx) error
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		batch := pending
		pending = nil
		return db.update(ctx, func(ctx context.Context, tx *wtx) error {
			for _, fn := range batch {
				if err := fn(ctx, tx); err != nil {
					return err
				}
			}
			return nil
		})
	}
	add := func(fn func(ctx context.Context, tx *wtx) error) error {
		pending = append(pending, fn)
		if len(pending) >= bulkChunk {
			return flush()
		}
		return nil
	}
	for _, o := range data.Orgs {
		err := add(func(ctx context.Context, tx *wtx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO orgs (id, slug, name, created_at) VALUES (?, ?, ?, ?)`,
				o.ID, o.Slug, o.Name, sqlstore.Millis(o.CreatedAt))
			if err != nil {
				return fmt.Errorf("load org %s: %w", o.Slug, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, u := range data.Users {
		err := add(func(ctx context.Context, tx *wtx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO users (org_id, id, username, display_name, roles, disabled, password_hash, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, u.OrgID, u.ID, u.Username, u.DisplayName, sqlstore.JoinRoles(u.Roles), u.Disabled, u.PasswordHash, sqlstore.Millis(u.CreatedAt))
			if err != nil {
				return fmt.Errorf("load user %s: %w", u.Username, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, bc := range data.Conversations {
		c := bc.Conversation
		err := add(func(ctx context.Context, tx *wtx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO conversations (org_id, id, kind, title, created_by, created_at, history_visible, direct_key)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				c.OrgID, c.ID, c.Kind, c.Title, c.CreatedBy, sqlstore.Millis(c.CreatedAt), c.HistoryVisibleToNewMembers, sqlstore.NullString(c.DirectKey))
			if err != nil {
				return fmt.Errorf("load conversation: %w", err)
			}
			for i, id := range append([]string{c.CreatedBy}, bc.Members...) {
				role := chatvault.MemberMember
				if i == 0 {
					role = chatvault.MemberOwner
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO participants (org_id, conversation_id, user_id, role, active) VALUES (?, ?, ?, ?, 1)`,
					c.OrgID, c.ID, id, role); err != nil {
					return fmt.Errorf("load participant: %w", err)
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO member_spans (org_id, conversation_id, user_id, from_seq, joined_at) VALUES (?, ?, ?, 0, ?)`,
					c.OrgID, c.ID, id, sqlstore.Millis(c.CreatedAt)); err != nil {
					return fmt.Errorf("load member span: %w", err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := flush(); err != nil {
		return err
	}
	// Messages go in batches through one prepared statement. Each is numbered as the change feed
	// would have numbered it (1, 2, ... in the order given), for stores that keep one.
	type convKey struct{ org, id string }
	type last struct{ seq, event int64 }
	lasts := map[convKey]*last{}
	var events int64
	var batch []*chatvault.Message
	writeMessages := func() error {
		if len(batch) == 0 {
			return nil
		}
		ms := batch
		batch = nil
		return db.update(ctx, func(ctx context.Context, tx *wtx) error {
			st, err := tx.PrepareContext(ctx, rawInsert)
			if err != nil {
				return fmt.Errorf("prepare load message: %w", err)
			}
			defer st.Close()
			for _, m := range ms {
				if _, err := st.ExecContext(ctx, m.OrgID, m.ConversationID, m.Seq, m.ID, m.SenderID,
					sqlstore.NullString(m.ClientMsgID), m.Kind, []byte(m.Text), sqlstore.NullString(m.ReplyTo), sqlstore.Millis(m.SentAt), sqlstore.IDDerived(m)); err != nil {
					return fmt.Errorf("load message: %w", err)
				}
			}
			return nil
		})
	}
	for m := range data.Messages {
		events++
		k := convKey{m.OrgID, m.ConversationID}
		l := lasts[k]
		if l == nil {
			l = &last{}
			lasts[k] = l
		}
		l.seq, l.event = max(l.seq, m.Seq), events
		batch = append(batch, m)
		if len(batch) >= bulkChunk {
			if err := writeMessages(); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if err := writeMessages(); err != nil {
		return err
	}
	return db.update(ctx, func(ctx context.Context, tx *wtx) error {
		var feed int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('conversations') WHERE name = 'last_event_id'`).Scan(&feed); err != nil {
			return fmt.Errorf("inspect schema: %w", err)
		}
		q := `UPDATE conversations SET last_seq = ?1 WHERE org_id = ?3 AND id = ?4`
		if feed > 0 {
			q = `UPDATE conversations SET last_seq = ?1, last_event_id = ?2 WHERE org_id = ?3 AND id = ?4`
			if _, err := tx.ExecContext(ctx, `UPDATE counters SET value = ? WHERE name = 'event'`, events); err != nil {
				return fmt.Errorf("set event counter: %w", err)
			}
		}
		st, err := tx.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare set last_seq: %w", err)
		}
		defer st.Close()
		for k, l := range lasts {
			if _, err := st.ExecContext(ctx, l.seq, l.event, k.org, k.id); err != nil {
				return fmt.Errorf("set last_seq: %w", err)
			}
		}
		return nil
	})
}
