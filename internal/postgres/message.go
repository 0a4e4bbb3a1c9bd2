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
)

const messageColumns = `org_id, conversation_id, seq, id, sender_id, client_msg_id, kind, body, reply_to, sent_at, edited_at, version, state, state_at, importance, expired_at`

// AppendMessage allocates the next seq and inserts m, or returns the earlier message with the same
// client_msg_id. It returns after the commit that holds m is on disk.
//
// messages is partitioned by sent_at, so PostgreSQL cannot enforce unique (org, conversation,
// seq) or (org, conversation, sender, client_msg_id) by itself. Both hold because everything here
// runs under the conversation row's lock, taken first: the client_msg_id check sees every message
// committed by the previous holder (READ COMMITTED: each statement reads the latest commits), and
// last_seq + 1 is allocated by the one transaction that holds the lock.
func (db *DB) AppendMessage(ctx context.Context, m *chatvault.Message) (bool, error) {
	if err := db.ensurePartition(ctx, m.SentAt); err != nil {
		return false, err
	}
	var created bool
	err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
		created = false
		var lastSeq int64
		err := tx.QueryRow(ctx, `SELECT last_seq FROM conversations WHERE org_id = $1 AND id = $2 FOR UPDATE`, m.OrgID, m.ConversationID).Scan(&lastSeq)
		if errors.Is(err, pgx.ErrNoRows) {
			return chatvault.Errorf(chatvault.ENOTFOUND, "conversation %s not found", m.ConversationID)
		} else if err != nil {
			return fmt.Errorf("lock conversation: %w", err)
		}
		if m.ClientMsgID != "" {
			prior, err := scanMessage(tx.QueryRow(ctx, `SELECT `+messageColumns+` FROM messages
				WHERE org_id = $1 AND conversation_id = $2 AND sender_id = $3 AND client_msg_id = $4`, m.OrgID, m.ConversationID, m.SenderID, m.ClientMsgID))
			if err == nil {
				if err := db.openMessage(ctx, prior); err != nil {
					return err
				}
				*m = *prior
				return nil
			} else if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		var active int
		err = tx.QueryRow(ctx, `SELECT active FROM participants WHERE org_id = $1 AND conversation_id = $2 AND user_id = $3`,
			m.OrgID, m.ConversationID, m.SenderID).Scan(&active)
		if errors.Is(err, pgx.ErrNoRows) {
			return chatvault.Errorf(chatvault.ENOTFOUND, "conversation %s not found", m.ConversationID)
		} else if err == nil && active == 0 {
			return chatvault.Errorf(chatvault.EFORBIDDEN, "you are no longer a member of this conversation")
		} else if err != nil {
			return fmt.Errorf("query sender membership: %w", err)
		}
		if m.ReplyTo != "" {
			var one int
			err := tx.QueryRow(ctx, `SELECT 1 FROM messages WHERE org_id = $1 AND conversation_id = $2 AND id = $3 LIMIT 1`,
				m.OrgID, m.ConversationID, m.ReplyTo).Scan(&one)
			if errors.Is(err, pgx.ErrNoRows) {
				return chatvault.Invalidf("reply_to", "message %s is not in this conversation", m.ReplyTo)
			} else if err != nil {
				return fmt.Errorf("query reply_to: %w", err)
			}
		}
		m.Seq = lastSeq + 1
		m.Version, m.State = 1, chatvault.StateLive
		body, err := db.sealBody(ctx, tx, m)
		if err != nil {
			return err
		}
		if indexable(m) {
			// Before the counter's lock: a first message may make the org's index key.
			if _, err := db.indexKey(ctx, tx, m.OrgID, true); err != nil {
				return err
			}
		}
		// The event number as late as possible: the counter's lock is held from here to the
		// commit. It is also the message's index document number, so it comes before the insert.
		ev, err := tx.nextEventID(ctx)
		if err != nil {
			return err
		}
		var doc any
		if indexable(m) {
			doc = ev
		}
		_, err = tx.Exec(ctx, `INSERT INTO messages (org_id, conversation_id, seq, id, sender_id, client_msg_id, kind, body, reply_to, sent_at, importance, doc)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`, m.OrgID, m.ConversationID, m.Seq, m.ID, m.SenderID,
			nullString(m.ClientMsgID), string(m.Kind), body, nullString(m.ReplyTo), millis(m.SentAt), m.Importance, doc)
		if err != nil {
			return fmt.Errorf("insert message: %w", err)
		}
		if doc != nil {
			if err := db.indexMessage(ctx, tx, m, ev); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE conversations SET last_seq = $1, last_event_id = $2 WHERE org_id = $3 AND id = $4`,
			m.Seq, ev, m.OrgID, m.ConversationID); err != nil {
			return fmt.Errorf("allocate seq: %w", err)
		}
		copied := *m
		tx.events = append(tx.events, chatvault.Event{ID: ev, OrgID: m.OrgID, Kind: chatvault.EventMessage, ConversationID: m.ConversationID,
			Seq: m.Seq, MessageID: m.ID, At: m.SentAt, Message: &copied})
		created = true
		return nil
	})
	return created, err
}

const pageQuery = `SELECT ` + messageColumns + ` FROM messages m
	WHERE org_id = $1 AND conversation_id = $2 AND seq > $3 AND seq < $4 AND sent_at >= $7
	AND NOT EXISTS (SELECT 1 FROM hidden_messages h
		WHERE h.org_id = $1 AND h.conversation_id = $2 AND h.user_id = $5 AND h.seq = m.seq)
	ORDER BY seq `

// FindMessages reads one seq range of a conversation.
func (db *DB) FindMessages(ctx context.Context, orgID, convID string, q chatvault.MessageQuery) ([]*chatvault.Message, error) {
	before := q.Before
	if before <= 0 {
		before = math.MaxInt64
	}
	query := pageQuery + `ASC LIMIT $6`
	if q.Desc {
		query = pageQuery + `DESC LIMIT $6`
	}
	rows, err := db.pool.Query(ctx, query, orgID, convID, q.After, before, q.HiddenFor, q.Limit, sentFrom(q.SentFrom))
	if err != nil {
		return nil, fmt.Errorf("query messages: %w", err)
	}
	defer rows.Close()
	out := make([]*chatvault.Message, 0, min(q.Limit, 256))
	var ms []*chatvault.Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query messages: %w", err)
	}
	// A page's messages almost always share one data key.
	var last *keyring.DataKey
	for _, m := range ms {
		if err := db.openMessageWith(ctx, m, &last); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// FindMessageByID finds one message of a conversation.
func (db *DB) FindMessageByID(ctx context.Context, orgID, convID, msgID string) (*chatvault.Message, error) {
	m, err := findMessage(ctx, db.pool, `id = $3`, orgID, convID, msgID)
	if err != nil {
		return nil, err
	}
	return m, db.openMessage(ctx, m)
}

// findMessage reads one message with its body still sealed; the caller opens it.
func findMessage(ctx context.Context, q querier, where string, orgID, convID string, key any) (*chatvault.Message, error) {
	m, err := scanMessage(q.QueryRow(ctx, `SELECT `+messageColumns+` FROM messages
		WHERE org_id = $1 AND conversation_id = $2 AND `+where, orgID, convID, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "message not found")
	}
	return m, err
}

// CountMessages counts live messages of a seq range, stopping at q.Limit.
func (db *DB) CountMessages(ctx context.Context, orgID, convID string, q chatvault.MessageCount) (int, error) {
	var n int
	err := db.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM messages m
		WHERE org_id = $1 AND conversation_id = $2 AND seq > $3 AND seq <= $4 AND sender_id <> $5 AND state = 'live'
		AND expired_at IS NULL AND sent_at >= $8 AND NOT EXISTS (SELECT 1 FROM hidden_messages h
			WHERE h.org_id = $1 AND h.conversation_id = $2 AND h.user_id = $6 AND h.seq = m.seq)
		LIMIT $7) AS c`, orgID, convID, q.After, q.UpTo, q.ExcludeSender, q.HiddenFor, q.Limit, sentFrom(q.SentFrom)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count messages: %w", err)
	}
	return n, nil
}

// EditMessage keeps the current text as a version and replaces it.
func (db *DB) EditMessage(ctx context.Context, orgID, convID string, seq int64, expectVersion int, text string, at time.Time) (*chatvault.Message, error) {
	var out *chatvault.Message
	err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
		m, err := findMessage(ctx, tx, `seq = $3 FOR UPDATE`, orgID, convID, seq)
		if err != nil {
			return err
		}
		if err := db.openMessage(ctx, m); err != nil {
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
		if err := tx.QueryRow(ctx, `INSERT INTO message_versions (org_id, conversation_id, seq, version, body, created_at)
			SELECT org_id, conversation_id, seq, version, body, $1 FROM messages WHERE org_id = $2 AND conversation_id = $3 AND seq = $4
			RETURNING body`, millis(written), orgID, convID, seq).Scan(&prior); err != nil {
			return fmt.Errorf("insert message version: %w", err)
		}
		body, err := db.sealEdit(ctx, orgID, convID, m.ID, m.Version+1, prior, text)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE messages SET body = $1, version = version + 1, edited_at = $2 WHERE org_id = $3 AND conversation_id = $4 AND seq = $5`,
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
		tag, err := tx.Exec(ctx, `UPDATE messages SET state = $1, state_at = $2 WHERE org_id = $3 AND conversation_id = $4 AND seq = $5 AND state = $6`,
			string(chatvault.StateRecalled), millis(at), orgID, convID, seq, string(chatvault.StateLive))
		if err != nil {
			return fmt.Errorf("recall message: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return chatvault.Errorf(chatvault.ECONFLICT, "only a live message can be recalled")
		}
		if out, err = findMessage(ctx, tx, `seq = $3`, orgID, convID, seq); err != nil {
			return err
		}
		if err := db.openMessage(ctx, out); err != nil {
			return err
		}
		if err := unindexSeqs(ctx, tx, orgID, convID, []int64{seq}); err != nil {
			return err
		}
		_, err = tx.emit(ctx, chatvault.Event{OrgID: orgID, Kind: chatvault.EventRecalled, ConversationID: convID, Subject: out.SenderID, Seq: seq, MessageID: out.ID, At: at})
		return err
	})
	return out, err
}

// FindMessageVersions lists a message's earlier texts, oldest first.
func (db *DB) FindMessageVersions(ctx context.Context, orgID, convID string, seq int64) ([]*chatvault.MessageVersion, error) {
	rows, err := db.pool.Query(ctx, `SELECT v.version, v.body, v.created_at, (SELECT m.id FROM messages m
			WHERE m.org_id = v.org_id AND m.conversation_id = v.conversation_id AND m.seq = v.seq LIMIT 1)
		FROM message_versions v WHERE v.org_id = $1 AND v.conversation_id = $2 AND v.seq = $3 ORDER BY v.version`, orgID, convID, seq)
	if err != nil {
		return nil, fmt.Errorf("query message versions: %w", err)
	}
	type row struct {
		v     chatvault.MessageVersion
		body  []byte
		msgID *string
	}
	rs, err := collect(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		var created int64
		if err := r.Scan(&x.v.Version, &x.body, &created, &x.msgID); err != nil {
			return x, fmt.Errorf("scan message version: %w", err)
		}
		x.v.CreatedAt = fromMillis(created)
		return x, nil
	})
	if err != nil {
		return nil, err
	}
	var out []*chatvault.MessageVersion
	for _, x := range rs {
		if x.v.Text, err = db.openBody(ctx, orgID, convID, str(x.msgID), x.v.Version, x.body); err != nil {
			return nil, err
		}
		v := x.v
		out = append(out, &v)
	}
	return out, nil
}

// HideMessage hides a message from one user.
func (db *DB) HideMessage(ctx context.Context, orgID, convID, userID string, seq int64, at time.Time) error {
	return db.update(ctx, func(ctx context.Context, tx *wtx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO hidden_messages (org_id, conversation_id, user_id, seq, hidden_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT DO NOTHING`, orgID, convID, userID, seq, millis(at))
		if err != nil {
			return fmt.Errorf("hide message: %w", err)
		}
		if tag.RowsAffected() == 0 {
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

func scanMessage(s pgx.Row) (*chatvault.Message, error) {
	var m chatvault.Message
	var client, replyTo *string
	var body []byte
	var sent int64
	var edited, stateAt, expired *int64
	err := s.Scan(&m.OrgID, &m.ConversationID, &m.Seq, &m.ID, &m.SenderID, &client, &m.Kind, &body, &replyTo,
		&sent, &edited, &m.Version, &m.State, &stateAt, &m.Importance, &expired)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("scan message: %w", err)
	}
	m.ClientMsgID, m.ReplyTo, m.Text = str(client), str(replyTo), string(body)
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
