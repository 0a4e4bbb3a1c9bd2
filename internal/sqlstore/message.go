package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
)

// MessageColumns are the messages columns ScanMessage reads, in its order.
const MessageColumns = `org_id, conversation_id, seq, id, sender_id, client_msg_id, kind, body, reply_to, sent_at, edited_at, version, state, state_at, importance, expired_at`

// The statements of the send path. SQLite prepares them once on its write connection and finds
// them by their text (so they are constants here); PostgreSQL runs them as they are.
const (
	// ByIDQuery finds a retried send: a message sent with a client_msg_id has the id
	// chatvault.ClientMessageID gives it (id_derived = 1).
	ByIDQuery = `SELECT ` + MessageColumns + ` FROM messages WHERE org_id = $1 AND conversation_id = $2 AND id = $3`
	// ByLegacyClientIDQuery finds a retry of a send stored before ids were derived from client
	// ids; only those rows are in the partial index messages_client_legacy.
	ByLegacyClientIDQuery = `SELECT ` + MessageColumns + ` FROM messages
		WHERE org_id = $1 AND conversation_id = $2 AND sender_id = $3 AND client_msg_id = $4 AND client_msg_id IS NOT NULL AND id_derived = 0`
	ActiveMemberQuery  = `SELECT active <> 0 FROM participants WHERE org_id = $1 AND conversation_id = $2 AND user_id = $3`
	MessageExistsQuery = `SELECT 1 FROM messages WHERE org_id = $1 AND conversation_id = $2 AND id = $3 LIMIT 1`
	InsertMessageQuery = `INSERT INTO messages (org_id, conversation_id, seq, id, sender_id, client_msg_id, kind, body, reply_to, sent_at, importance, doc, id_derived)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`
)

const pageQuery = `SELECT ` + MessageColumns + ` FROM messages m
	WHERE org_id = $1 AND conversation_id = $2 AND seq > $3 AND seq < $4 AND sent_at >= $7
	AND NOT EXISTS (SELECT 1 FROM hidden_messages h
		WHERE h.org_id = $1 AND h.conversation_id = $2 AND h.user_id = $5 AND h.seq = m.seq)
	ORDER BY seq `

// The history page and unread count, run on every history request (SQLite prepares them once).
const (
	PageAscQuery  = pageQuery + `ASC LIMIT $6`
	PageDescQuery = pageQuery + `DESC LIMIT $6`
	CountQuery    = `SELECT count(*) FROM (SELECT 1 FROM messages m
		WHERE org_id = $1 AND conversation_id = $2 AND seq > $3 AND seq <= $4 AND sender_id <> $5 AND state = 'live'
		AND expired_at IS NULL AND sent_at >= $8 AND NOT EXISTS (SELECT 1 FROM hidden_messages h
			WHERE h.org_id = $1 AND h.conversation_id = $2 AND h.user_id = $6 AND h.seq = m.seq)
		LIMIT $7) AS c`
)

// CheckAppend is the part of AppendMessage both engines share, run inside its transaction before
// the seq is allocated: it finds an earlier message with m's client_msg_id (then *m becomes that
// message, opened, and dup is true), and checks the sender's membership and the reply target.
// A message with a client_msg_id takes the id chatvault.ClientMessageID derives from it, whatever
// id the caller chose, so that the message-id index also finds retries.
func (c *Core) CheckAppend(ctx context.Context, tx Tx, m *chatvault.Message) (dup bool, err error) {
	if m.ClientMsgID != "" {
		m.ID = chatvault.ClientMessageID(m.OrgID, m.ConversationID, m.SenderID, m.ClientMsgID)
		prior, err := ScanMessage(tx.QueryRow(ctx, ByIDQuery, m.OrgID, m.ConversationID, m.ID))
		if isNoRows(err) {
			prior, err = ScanMessage(tx.QueryRow(ctx, ByLegacyClientIDQuery, m.OrgID, m.ConversationID, m.SenderID, m.ClientMsgID))
		}
		if err == nil {
			if err := c.OpenMessage(ctx, prior, nil); err != nil {
				return false, err
			}
			*m = *prior
			return true, nil
		} else if !isNoRows(err) {
			return false, err
		}
	}
	var active bool
	err = tx.QueryRow(ctx, ActiveMemberQuery, m.OrgID, m.ConversationID, m.SenderID).Scan(&active)
	if isNoRows(err) {
		return false, chatvault.Errorf(chatvault.ENOTFOUND, "conversation %s not found", m.ConversationID)
	} else if err == nil && !active {
		return false, chatvault.Errorf(chatvault.EFORBIDDEN, "you are no longer a member of this conversation")
	} else if err != nil {
		return false, fmt.Errorf("query sender membership: %w", err)
	}
	if m.ReplyTo != "" {
		var one int
		err := tx.QueryRow(ctx, MessageExistsQuery, m.OrgID, m.ConversationID, m.ReplyTo).Scan(&one)
		if isNoRows(err) {
			return false, chatvault.Invalidf("reply_to", "message %s is not in this conversation", m.ReplyTo)
		} else if err != nil {
			return false, fmt.Errorf("query reply_to: %w", err)
		}
	}
	return false, nil
}

// IDDerived is the id_derived column of a new message: 1 when its id is the one
// chatvault.ClientMessageID derives from its client_msg_id (always, for AppendMessage; loads of
// generated or copied rows may carry other ids).
func IDDerived(m *chatvault.Message) int {
	if m.ClientMsgID != "" && m.ID == chatvault.ClientMessageID(m.OrgID, m.ConversationID, m.SenderID, m.ClientMsgID) {
		return 1
	}
	return 0
}

// MessageEvent is the event of a new message, carrying a copy of it for live delivery.
func MessageEvent(m *chatvault.Message, ev int64) chatvault.Event {
	copied := *m
	return chatvault.Event{ID: ev, OrgID: m.OrgID, Kind: chatvault.EventMessage, ConversationID: m.ConversationID,
		Seq: m.Seq, MessageID: m.ID, At: m.SentAt, Message: &copied}
}

// FindMessages reads one seq range of a conversation.
func (c *Core) FindMessages(ctx context.Context, orgID, convID string, q chatvault.MessageQuery) ([]*chatvault.Message, error) {
	before := q.Before
	if before <= 0 {
		before = math.MaxInt64
	}
	query := PageAscQuery
	if q.Desc {
		query = PageDescQuery
	}
	rows, err := c.cached.Query(ctx, query, orgID, convID, q.After, before, q.HiddenFor, q.Limit, sentFrom(q.SentFrom))
	if err != nil {
		return nil, fmt.Errorf("query messages: %w", err)
	}
	defer rows.Close()
	out := make([]*chatvault.Message, 0, min(q.Limit, 256)) // the limit is the caller's; the allocation is ours
	for rows.Next() {
		m, err := ScanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query messages: %w", err)
	}
	rows.Close() // opening may read data keys: give the connection back first
	if err := c.prefetchKeys(ctx, orgID, convID, out); err != nil {
		return nil, err
	}
	// A page's messages almost always share one data key.
	var last *keyring.DataKey
	for _, m := range out {
		if err := c.OpenMessage(ctx, m, &last); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// FindMessageByID finds one message of a conversation.
func (c *Core) FindMessageByID(ctx context.Context, orgID, convID, msgID string) (*chatvault.Message, error) {
	m, err := findMessage(ctx, c.cached, ByIDQuery, orgID, convID, msgID)
	if err != nil {
		return nil, err
	}
	return m, c.OpenMessage(ctx, m, nil)
}

// findMessage reads one message with its body still sealed; the caller opens it.
func findMessage(ctx context.Context, q Querier, query string, args ...any) (*chatvault.Message, error) {
	m, err := ScanMessage(q.QueryRow(ctx, query, args...))
	if isNoRows(err) {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "message not found")
	}
	return m, err
}

// findMessageBySeq reads and opens one message inside a write, locking its row on PostgreSQL.
func (c *Core) findMessageBySeq(ctx context.Context, tx Tx, orgID, convID string, seq int64, lock bool) (*chatvault.Message, error) {
	const q = `SELECT ` + MessageColumns + ` FROM messages WHERE org_id = $1 AND conversation_id = $2 AND seq = $3`
	query := q
	if lock {
		query = c.d.pick(q, q+` FOR UPDATE`)
	}
	m, err := findMessage(ctx, tx, query, orgID, convID, seq)
	if err != nil {
		return nil, err
	}
	return m, c.OpenMessage(ctx, m, nil)
}

// CountMessages counts live messages of a seq range, stopping at q.Limit.
func (c *Core) CountMessages(ctx context.Context, orgID, convID string, q chatvault.MessageCount) (int, error) {
	var n int
	err := c.cached.QueryRow(ctx, CountQuery, orgID, convID, q.After, q.UpTo, q.ExcludeSender, q.HiddenFor, q.Limit, sentFrom(q.SentFrom)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count messages: %w", err)
	}
	return n, nil
}

// EditMessage keeps the current text as a version and replaces it.
func (c *Core) EditMessage(ctx context.Context, orgID, convID string, seq int64, expectVersion int, text string, at time.Time) (*chatvault.Message, error) {
	var out *chatvault.Message
	err := c.update(ctx, func(ctx context.Context, tx Tx) error {
		m, err := c.findMessageBySeq(ctx, tx, orgID, convID, seq, true)
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
		if err := tx.QueryRow(ctx, `INSERT INTO message_versions (org_id, conversation_id, seq, version, body, created_at)
			SELECT org_id, conversation_id, seq, version, body, $1 FROM messages WHERE org_id = $2 AND conversation_id = $3 AND seq = $4
			RETURNING body`, Millis(written), orgID, convID, seq).Scan(&prior); err != nil {
			return fmt.Errorf("insert message version: %w", err)
		}
		body, err := c.sealEdit(ctx, orgID, convID, m.ID, m.Version+1, prior, text)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE messages SET body = $1, version = version + 1, edited_at = $2 WHERE org_id = $3 AND conversation_id = $4 AND seq = $5`,
			body, Millis(at), orgID, convID, seq); err != nil {
			return fmt.Errorf("update message: %w", err)
		}
		m.Text, m.Version, m.EditedAt = text, m.Version+1, &at
		if err := c.eng.Reindex(ctx, tx, m); err != nil {
			return err
		}
		out = m
		_, err = tx.Emit(ctx, chatvault.Event{OrgID: orgID, Kind: chatvault.EventEdited, ConversationID: convID, Subject: m.SenderID, Seq: seq, MessageID: m.ID, At: at})
		return err
	})
	return out, err
}

// RecallMessage marks a live message recalled. The body stays on the server until retention decides.
func (c *Core) RecallMessage(ctx context.Context, orgID, convID string, seq int64, at time.Time) (*chatvault.Message, error) {
	var out *chatvault.Message
	err := c.update(ctx, func(ctx context.Context, tx Tx) error {
		n, err := tx.Exec(ctx, `UPDATE messages SET state = $1, state_at = $2 WHERE org_id = $3 AND conversation_id = $4 AND seq = $5 AND state = $6`,
			string(chatvault.StateRecalled), Millis(at), orgID, convID, seq, string(chatvault.StateLive))
		if err != nil {
			return fmt.Errorf("recall message: %w", err)
		}
		if n == 0 {
			return chatvault.Errorf(chatvault.ECONFLICT, "only a live message can be recalled")
		}
		if out, err = c.findMessageBySeq(ctx, tx, orgID, convID, seq, false); err != nil {
			return err
		}
		if err := c.eng.Unindex(ctx, tx, orgID, convID, []int64{seq}); err != nil {
			return err
		}
		_, err = tx.Emit(ctx, chatvault.Event{OrgID: orgID, Kind: chatvault.EventRecalled, ConversationID: convID, Subject: out.SenderID, Seq: seq, MessageID: out.ID, At: at})
		return err
	})
	return out, err
}

// FindMessageVersions lists a message's earlier texts, oldest first.
func (c *Core) FindMessageVersions(ctx context.Context, orgID, convID string, seq int64) ([]*chatvault.MessageVersion, error) {
	rows, err := c.read.Query(ctx, `SELECT v.version, v.body, v.created_at, (SELECT m.id FROM messages m
			WHERE m.org_id = v.org_id AND m.conversation_id = v.conversation_id AND m.seq = v.seq LIMIT 1)
		FROM message_versions v WHERE v.org_id = $1 AND v.conversation_id = $2 AND v.seq = $3 ORDER BY v.version`, orgID, convID, seq)
	if err != nil {
		return nil, fmt.Errorf("query message versions: %w", err)
	}
	defer rows.Close()
	var out []*chatvault.MessageVersion
	var bodies [][]byte
	var ids []string
	for rows.Next() {
		var v chatvault.MessageVersion
		var body []byte
		var created int64
		var msgID sql.NullString
		if err := rows.Scan(&v.Version, &body, &created, &msgID); err != nil {
			return nil, fmt.Errorf("scan message version: %w", err)
		}
		v.CreatedAt = FromMillis(created)
		out, bodies, ids = append(out, &v), append(bodies, body), append(ids, msgID.String)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	for i, v := range out {
		if v.Text, err = c.OpenBody(ctx, nil, orgID, convID, ids[i], v.Version, bodies[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// HideMessage hides a message from one user.
func (c *Core) HideMessage(ctx context.Context, orgID, convID, userID string, seq int64, at time.Time) error {
	return c.update(ctx, func(ctx context.Context, tx Tx) error {
		n, err := tx.Exec(ctx, `INSERT INTO hidden_messages (org_id, conversation_id, user_id, seq, hidden_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT DO NOTHING`, orgID, convID, userID, seq, Millis(at))
		if err != nil {
			return fmt.Errorf("hide message: %w", err)
		}
		if n == 0 {
			return nil // hidden already: nothing changes, nothing to tell
		}
		_, err = tx.Emit(ctx, chatvault.Event{OrgID: orgID, Kind: chatvault.EventHidden, ConversationID: convID, Subject: userID, Seq: seq, At: at})
		return err
	})
}

// sentFrom turns an optional lower time bound into one that SQL can always apply.
func sentFrom(t time.Time) int64 {
	if t.IsZero() {
		return -1 << 62
	}
	return Millis(t)
}

// ScanMessage reads the MessageColumns; m.Text holds the stored (maybe sealed) body until the
// engine opens it. A missing row's error is returned as is.
func ScanMessage(s Row) (*chatvault.Message, error) {
	var m chatvault.Message
	var client, replyTo sql.NullString
	var body []byte
	var sent int64
	var edited, stateAt, expired sql.NullInt64
	err := s.Scan(&m.OrgID, &m.ConversationID, &m.Seq, &m.ID, &m.SenderID, &client, &m.Kind, &body, &replyTo,
		&sent, &edited, &m.Version, &m.State, &stateAt, &m.Importance, &expired)
	if isNoRows(err) {
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("scan message: %w", err)
	}
	m.ClientMsgID, m.ReplyTo, m.Text = client.String, replyTo.String, string(body)
	m.SentAt, m.EditedAt, m.StateAt = FromMillis(sent), fromNullMillis(edited), fromNullMillis(stateAt)
	m.ExpiredAt, m.Important = fromNullMillis(expired), m.Importance != 0
	return &m, nil
}

// SeqList writes seqs as a JSON array, for SQLite's json_each.
func SeqList(seqs []int64) string {
	b := make([]byte, 0, 2+8*len(seqs))
	b = append(b, '[')
	for i, s := range seqs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, s, 10)
	}
	return string(append(b, ']'))
}
