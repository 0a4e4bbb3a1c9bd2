package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
)

const messageColumns = `org_id, conversation_id, seq, id, sender_id, client_msg_id, kind, body, reply_to, sent_at, edited_at, version, state, state_at, importance, expired_at`

// AppendMessage allocates the next seq and inserts m, or returns the earlier message with the same
// client_msg_id. It returns after the commit that holds m is on disk.
func (db *DB) AppendMessage(ctx context.Context, m *chatvault.Message) (bool, error) {
	var created bool
	err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
		created = false
		if m.ClientMsgID != "" {
			prior, err := scanMessage(tx.StmtContext(ctx, db.stmts.byClientID).QueryRowContext(ctx, m.OrgID, m.ConversationID, m.SenderID, m.ClientMsgID))
			if err == nil {
				if err := db.openMessage(ctx, prior); err != nil {
					return err
				}
				*m = *prior
				return nil
			} else if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		var active bool
		err := tx.StmtContext(ctx, db.stmts.activeMember).QueryRowContext(ctx, m.OrgID, m.ConversationID, m.SenderID).Scan(&active)
		if errors.Is(err, sql.ErrNoRows) {
			return chatvault.Errorf(chatvault.ENOTFOUND, "conversation %s not found", m.ConversationID)
		} else if err == nil && !active {
			return chatvault.Errorf(chatvault.EFORBIDDEN, "you are no longer a member of this conversation")
		} else if err != nil {
			return fmt.Errorf("query sender membership: %w", err)
		}
		if m.ReplyTo != "" {
			var one int
			err := tx.StmtContext(ctx, db.stmts.messageExists).QueryRowContext(ctx, m.OrgID, m.ConversationID, m.ReplyTo).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return chatvault.Invalidf("reply_to", "message %s is not in this conversation", m.ReplyTo)
			} else if err != nil {
				return fmt.Errorf("query reply_to: %w", err)
			}
		}
		ev, err := tx.nextEventID(ctx)
		if err != nil {
			return err
		}
		if err := tx.StmtContext(ctx, db.stmts.nextSeq).QueryRowContext(ctx, ev, m.OrgID, m.ConversationID).Scan(&m.Seq); err != nil {
			return fmt.Errorf("allocate seq: %w", err)
		}
		m.Version, m.State = 1, chatvault.StateLive
		body, err := db.sealBody(ctx, tx, m)
		if err != nil {
			return err
		}
		// The message's event number doubles as its index document number: unique, and in
		// commit order.
		var doc sql.NullInt64
		if indexable(m) && !db.noIndex {
			doc = sql.NullInt64{Int64: ev, Valid: true}
		}
		_, err = tx.StmtContext(ctx, db.stmts.insertMessage).ExecContext(ctx, m.OrgID, m.ConversationID, m.Seq, m.ID, m.SenderID,
			nullString(m.ClientMsgID), m.Kind, body, nullString(m.ReplyTo), millis(m.SentAt), m.Importance, doc)
		if err != nil {
			return fmt.Errorf("insert message: %w", err)
		}
		if doc.Valid {
			if err := db.indexMessage(ctx, tx, m, ev); err != nil {
				return err
			}
		}
		copied := *m
		tx.events = append(tx.events, chatvault.Event{ID: ev, OrgID: m.OrgID, Kind: chatvault.EventMessage, ConversationID: m.ConversationID,
			Seq: m.Seq, MessageID: m.ID, At: m.SentAt, Message: &copied})
		created = true
		return nil
	})
	return created, err
}

// FindMessages reads one seq range of a conversation.
func (db *DB) FindMessages(ctx context.Context, orgID, convID string, q chatvault.MessageQuery) ([]*chatvault.Message, error) {
	before := q.Before
	if before <= 0 {
		before = math.MaxInt64
	}
	stmt := db.stmts.pageAsc
	if q.Desc {
		stmt = db.stmts.pageDesc
	}
	rows, err := stmt.QueryContext(ctx, orgID, convID, q.After, before, q.HiddenFor, q.Limit, sentFrom(q.SentFrom))
	if err != nil {
		return nil, fmt.Errorf("query messages: %w", err)
	}
	defer rows.Close()
	out := make([]*chatvault.Message, 0, min(q.Limit, 256)) // the limit is the caller's; the allocation is ours
	// A page's messages almost always share one data key.
	var last *keyring.DataKey
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		if err := db.openMessageWith(ctx, m, &last); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// FindMessageByID finds one message of a conversation.
func (db *DB) FindMessageByID(ctx context.Context, orgID, convID, msgID string) (*chatvault.Message, error) {
	m, err := findMessage(ctx, db.cached, `id = ?`, orgID, convID, msgID)
	if err != nil {
		return nil, err
	}
	return m, db.openMessage(ctx, m)
}

func findMessage(ctx context.Context, q queryer, where string, orgID, convID string, key any) (*chatvault.Message, error) {
	m, err := scanMessage(q.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages
		WHERE org_id = ? AND conversation_id = ? AND `+where, orgID, convID, key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "message not found")
	} else if err != nil {
		return nil, err
	}
	// Inside a write the body is opened here; on the read pool the caller opens it (openMessage).
	if tx, ok := q.(*wtx); ok {
		return m, tx.db.openMessage(ctx, m)
	}
	return m, nil
}

// CountMessages counts live messages of a seq range, stopping at q.Limit.
func (db *DB) CountMessages(ctx context.Context, orgID, convID string, q chatvault.MessageCount) (int, error) {
	var n int
	err := db.stmts.count.QueryRowContext(ctx, orgID, convID, q.After, q.UpTo, q.ExcludeSender, q.HiddenFor, q.Limit, sentFrom(q.SentFrom)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count messages: %w", err)
	}
	return n, nil
}

// EditMessage keeps the current text as a version and replaces it.
func (db *DB) EditMessage(ctx context.Context, orgID, convID string, seq int64, expectVersion int, text string, at time.Time) (*chatvault.Message, error) {
	var out *chatvault.Message
	err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
		m, err := findMessage(ctx, tx, `seq = ?`, orgID, convID, seq)
		if err != nil {
			return err
		}
		if m.State != chatvault.StateLive || m.Version != expectVersion {
			return chatvault.Errorf(chatvault.ECONFLICT, "the message changed (it is %s, version %d); reload it and try again", m.State, m.Version)
		}
		written := m.SentAt
		if m.EditedAt != nil {
			written = *m.EditedAt
		}
		// The current body becomes the version as it is stored: sealed, it is already bound to
		// this message and version, so it moves without being opened.
		var prior []byte
		if err := tx.QueryRowContext(ctx, `INSERT INTO message_versions (org_id, conversation_id, seq, version, body, created_at)
			SELECT org_id, conversation_id, seq, version, body, ? FROM messages WHERE org_id = ? AND conversation_id = ? AND seq = ?
			RETURNING body`, millis(written), orgID, convID, seq).Scan(&prior); err != nil {
			return fmt.Errorf("insert message version: %w", err)
		}
		body, err := db.sealEdit(ctx, orgID, convID, m.ID, m.Version+1, prior, text)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE messages SET body = ?, version = version + 1, edited_at = ? WHERE org_id = ? AND conversation_id = ? AND seq = ?`,
			body, millis(at), orgID, convID, seq); err != nil {
			return fmt.Errorf("update message: %w", err)
		}
		m.Text, m.Version, m.EditedAt = text, m.Version+1, &at
		if err := db.reindex(ctx, tx, m); err != nil {
			return err
		}
		out = m
		_, err = tx.emit(ctx, chatvault.Event{OrgID: orgID, Kind: chatvault.EventEdited, ConversationID: convID, Subject: m.SenderID, Seq: seq, MessageID: m.ID, At: at})
		return err
	})
	return out, err
}

// RecallMessage marks a live message recalled. The body stays on the server until retention decides.
func (db *DB) RecallMessage(ctx context.Context, orgID, convID string, seq int64, at time.Time) (*chatvault.Message, error) {
	var out *chatvault.Message
	err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE messages SET state = ?, state_at = ? WHERE org_id = ? AND conversation_id = ? AND seq = ? AND state = ?`,
			chatvault.StateRecalled, millis(at), orgID, convID, seq, chatvault.StateLive)
		if err != nil {
			return fmt.Errorf("recall message: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return chatvault.Errorf(chatvault.ECONFLICT, "only a live message can be recalled")
		}
		if out, err = findMessage(ctx, tx, `seq = ?`, orgID, convID, seq); err != nil {
			return err
		}
		if err := unindexSeqs(ctx, tx, orgID, convID, fmt.Sprintf("[%d]", seq)); err != nil {
			return err
		}
		_, err = tx.emit(ctx, chatvault.Event{OrgID: orgID, Kind: chatvault.EventRecalled, ConversationID: convID, Subject: out.SenderID, Seq: seq, MessageID: out.ID, At: at})
		return err
	})
	return out, err
}

// FindMessageVersions lists a message's earlier texts, oldest first.
func (db *DB) FindMessageVersions(ctx context.Context, orgID, convID string, seq int64) ([]*chatvault.MessageVersion, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT v.version, v.body, v.created_at, (SELECT m.id FROM messages m
			WHERE m.org_id = v.org_id AND m.conversation_id = v.conversation_id AND m.seq = v.seq)
		FROM message_versions v WHERE v.org_id = ? AND v.conversation_id = ? AND v.seq = ? ORDER BY v.version`, orgID, convID, seq)
	if err != nil {
		return nil, fmt.Errorf("query message versions: %w", err)
	}
	defer rows.Close()
	var out []*chatvault.MessageVersion
	for rows.Next() {
		var v chatvault.MessageVersion
		var body []byte
		var created int64
		var msgID sql.NullString
		if err := rows.Scan(&v.Version, &body, &created, &msgID); err != nil {
			return nil, fmt.Errorf("scan message version: %w", err)
		}
		if v.Text, err = db.openBody(ctx, orgID, convID, msgID.String, v.Version, body); err != nil {
			return nil, err
		}
		v.CreatedAt = fromMillis(created)
		out = append(out, &v)
	}
	return out, rows.Err()
}

// HideMessage hides a message from one user.
func (db *DB) HideMessage(ctx context.Context, orgID, convID, userID string, seq int64, at time.Time) error {
	return db.update(ctx, func(ctx context.Context, tx *wtx) error {
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO hidden_messages (org_id, conversation_id, user_id, seq, hidden_at) VALUES (?, ?, ?, ?, ?)`,
			orgID, convID, userID, seq, millis(at))
		if err != nil {
			return fmt.Errorf("hide message: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // hidden already: nothing changes, nothing to tell
		}
		_, err = tx.emit(ctx, chatvault.Event{OrgID: orgID, Kind: chatvault.EventHidden, ConversationID: convID, Subject: userID, Seq: seq, At: at})
		return err
	})
}

// sentFrom turns an optional lower time bound into one that SQL can always apply.
func sentFrom(t time.Time) int64 {
	if t.IsZero() {
		return -1 << 62
	}
	return millis(t)
}

func scanMessage(s scanner) (*chatvault.Message, error) {
	var m chatvault.Message
	var client, replyTo sql.NullString
	var body []byte
	var sent int64
	var edited, stateAt, expired sql.NullInt64
	err := s.Scan(&m.OrgID, &m.ConversationID, &m.Seq, &m.ID, &m.SenderID, &client, &m.Kind, &body, &replyTo,
		&sent, &edited, &m.Version, &m.State, &stateAt, &m.Importance, &expired)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("scan message: %w", err)
	}
	m.ClientMsgID, m.ReplyTo, m.Text = client.String, replyTo.String, string(body)
	m.SentAt, m.EditedAt, m.StateAt = fromMillis(sent), fromNullMillis(edited), fromNullMillis(stateAt)
	m.ExpiredAt, m.Important = fromNullMillis(expired), m.Importance != 0
	return &m, nil
}

// openMessage replaces the stored body that scanMessage put in m.Text with its text.
func (db *DB) openMessage(ctx context.Context, m *chatvault.Message) error {
	return db.openMessageWith(ctx, m, nil)
}

// openMessageWith is openMessage remembering the last data key used in *last.
func (db *DB) openMessageWith(ctx context.Context, m *chatvault.Message, last **keyring.DataKey) error {
	if m.Text == "" || (db.enc == nil && m.Text[0] != 0xFF) {
		return nil
	}
	text, err := db.openBodyWith(ctx, last, m.OrgID, m.ConversationID, m.ID, m.Version, []byte(m.Text))
	if err != nil {
		return err
	}
	m.Text = text
	return nil
}
