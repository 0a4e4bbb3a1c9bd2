package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/chatvault/chatvault"
)

const conversationColumns = `org_id, id, kind, title, created_by, created_at, history_visible, direct_key, last_seq`

// CreateConversation stores a conversation with its members, or finds the existing direct one.
func (db *DB) CreateConversation(ctx context.Context, c *chatvault.Conversation, memberIDs []string) (bool, error) {
	var created bool
	err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
		created = false
		if c.DirectKey != "" {
			existing, err := scanConversation(tx.QueryRowContext(ctx,
				`SELECT `+conversationColumns+` FROM conversations WHERE org_id = ? AND direct_key = ?`, c.OrgID, c.DirectKey))
			if err == nil {
				*c = *existing
				return nil
			} else if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		for _, id := range memberIDs {
			if err := requireEnabledUser(ctx, tx, c.OrgID, id); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO conversations (`+conversationColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)`,
			c.OrgID, c.ID, c.Kind, c.Title, c.CreatedBy, millis(c.CreatedAt), c.HistoryVisibleToNewMembers, nullString(c.DirectKey))
		if err != nil {
			return fmt.Errorf("insert conversation: %w", err)
		}
		ev, err := tx.emit(ctx, chatvault.Event{OrgID: c.OrgID, Kind: chatvault.EventCreated, ConversationID: c.ID, Subject: c.CreatedBy, At: c.CreatedAt})
		if err != nil {
			return err
		}
		if err := insertParticipant(ctx, tx, c.OrgID, c.ID, c.CreatedBy, chatvault.MemberOwner, 0, ev-1, c.CreatedAt); err != nil {
			return err
		}
		for _, id := range memberIDs {
			if err := insertParticipant(ctx, tx, c.OrgID, c.ID, id, chatvault.MemberMember, 0, ev-1, c.CreatedAt); err != nil {
				return err
			}
		}
		created = true
		return nil
	})
	return created, err
}

func requireEnabledUser(ctx context.Context, tx *wtx, orgID, userID string) error {
	var disabled bool
	err := tx.QueryRowContext(ctx, `SELECT disabled FROM users WHERE org_id = ? AND id = ?`, orgID, userID).Scan(&disabled)
	if errors.Is(err, sql.ErrNoRows) || disabled {
		return chatvault.Invalidf("members", "user %s is not an enabled user of this org", userID)
	} else if err != nil {
		return fmt.Errorf("query member: %w", err)
	}
	return nil
}

// insertParticipant makes a user a member from fromSeq (messages) and fromEvent (events) on.
func insertParticipant(ctx context.Context, tx *wtx, orgID, convID, userID string, role chatvault.MemberRole, fromSeq, fromEvent int64, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO participants (org_id, conversation_id, user_id, role, active) VALUES (?, ?, ?, ?, 1)`,
		orgID, convID, userID, role)
	if err != nil {
		return fmt.Errorf("insert participant: %w", err)
	}
	return insertSpan(ctx, tx, orgID, convID, userID, fromSeq, fromEvent, at)
}

func insertSpan(ctx context.Context, tx *wtx, orgID, convID, userID string, fromSeq, fromEvent int64, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO member_spans (org_id, conversation_id, user_id, from_seq, from_event, joined_at) VALUES (?, ?, ?, ?, ?, ?)`,
		orgID, convID, userID, fromSeq, fromEvent, millis(at))
	if err != nil {
		return fmt.Errorf("insert member span: %w", err)
	}
	return nil
}

// FindConversation finds one conversation of the org.
func (db *DB) FindConversation(ctx context.Context, orgID, convID string) (*chatvault.Conversation, error) {
	return findConversation(ctx, db.cached, orgID, convID)
}

func findConversation(ctx context.Context, q queryer, orgID, convID string) (*chatvault.Conversation, error) {
	c, err := scanConversation(q.QueryRowContext(ctx, `SELECT `+conversationColumns+` FROM conversations WHERE org_id = ? AND id = ?`, orgID, convID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "conversation %s not found", convID)
	}
	return c, err
}

func scanConversation(s scanner) (*chatvault.Conversation, error) {
	var c chatvault.Conversation
	var created int64
	var direct sql.NullString
	err := s.Scan(&c.OrgID, &c.ID, &c.Kind, &c.Title, &c.CreatedBy, &created, &c.HistoryVisibleToNewMembers, &direct, &c.LastSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("scan conversation: %w", err)
	}
	c.CreatedAt = fromMillis(created)
	c.DirectKey = direct.String
	return &c, nil
}

// FindParticipant returns one user's standing in a conversation.
func (db *DB) FindParticipant(ctx context.Context, orgID, convID, userID string) (*chatvault.Participant, error) {
	ps, err := findParticipants(ctx, db.cached, orgID, convID, userID)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "not a participant")
	}
	return ps[0], nil
}

// FindParticipants returns everyone who is or was in the conversation.
func (db *DB) FindParticipants(ctx context.Context, orgID, convID string) ([]*chatvault.Participant, error) {
	return findParticipants(ctx, db.cached, orgID, convID, "")
}

type rowsQueryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// findParticipants loads participants (one user's when userID is set) with their spans.
func findParticipants(ctx context.Context, q rowsQueryer, orgID, convID, userID string) ([]*chatvault.Participant, error) {
	filter, args := ``, []any{orgID, convID}
	if userID != "" {
		filter, args = ` AND user_id = ?`, append(args, userID)
	}
	rows, err := q.QueryContext(ctx, `SELECT user_id, role, active, read_seq, cleared_seq FROM participants
		WHERE org_id = ? AND conversation_id = ?`+filter+` ORDER BY user_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("query participants: %w", err)
	}
	var out []*chatvault.Participant
	byUser := map[string]*chatvault.Participant{}
	for rows.Next() {
		p := &chatvault.Participant{ConversationID: convID}
		if err := rows.Scan(&p.UserID, &p.Role, &p.Active, &p.ReadSeq, &p.ClearedSeq); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan participant: %w", err)
		}
		out = append(out, p)
		byUser[p.UserID] = p
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = q.QueryContext(ctx, `SELECT user_id, `+spanColumns+` FROM member_spans
		WHERE org_id = ? AND conversation_id = ?`+filter+` ORDER BY user_id, from_seq`, args...)
	if err != nil {
		return nil, fmt.Errorf("query member spans: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var user string
		span, err := scanSpan(rows, &user)
		if err != nil {
			return nil, err
		}
		if p := byUser[user]; p != nil {
			p.Spans = append(p.Spans, span)
		}
	}
	return out, rows.Err()
}

const spanColumns = `from_seq, to_seq, from_event, to_event, joined_at, left_at`

func scanSpan(s scanner, key *string) (chatvault.MemberSpan, error) {
	var span chatvault.MemberSpan
	var to, toEvent, left sql.NullInt64
	var joined int64
	if err := s.Scan(key, &span.FromSeq, &to, &span.FromEvent, &toEvent, &joined, &left); err != nil {
		return span, fmt.Errorf("scan member span: %w", err)
	}
	if to.Valid {
		span.ToSeq = &to.Int64
	}
	if toEvent.Valid {
		span.ToEvent = &toEvent.Int64
	}
	span.JoinedAt = fromMillis(joined)
	span.LeftAt = fromNullMillis(left)
	return span, nil
}

// FindUserConversations lists every conversation the user is or was in, most recently active first.
func (db *DB) FindUserConversations(ctx context.Context, orgID, userID string) ([]*chatvault.UserConversation, error) {
	rows, err := db.cached.QueryContext(ctx, `SELECT c.org_id, c.id, c.kind, c.title, c.created_by, c.created_at,
			c.history_visible, c.direct_key, c.last_seq, p.role, p.active, p.read_seq, p.cleared_seq
		FROM participants p JOIN conversations c ON c.org_id = p.org_id AND c.id = p.conversation_id
		WHERE p.org_id = ? AND p.user_id = ?`, orgID, userID)
	if err != nil {
		return nil, fmt.Errorf("query user conversations: %w", err)
	}
	var out []*chatvault.UserConversation
	byConv := map[string]*chatvault.UserConversation{}
	for rows.Next() {
		uc := &chatvault.UserConversation{}
		c, p := &uc.Conversation, &uc.Participant
		var created int64
		var direct sql.NullString
		if err := rows.Scan(&c.OrgID, &c.ID, &c.Kind, &c.Title, &c.CreatedBy, &created, &c.HistoryVisibleToNewMembers,
			&direct, &c.LastSeq, &p.Role, &p.Active, &p.ReadSeq, &p.ClearedSeq); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan user conversation: %w", err)
		}
		c.CreatedAt, c.DirectKey = fromMillis(created), direct.String
		p.ConversationID, p.UserID = c.ID, userID
		out = append(out, uc)
		byConv[c.ID] = uc
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = db.cached.QueryContext(ctx, `SELECT conversation_id, `+spanColumns+` FROM member_spans
		WHERE org_id = ? AND user_id = ? ORDER BY conversation_id, from_seq`, orgID, userID)
	if err != nil {
		return nil, fmt.Errorf("query member spans: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var conv string
		span, err := scanSpan(rows, &conv)
		if err != nil {
			return nil, err
		}
		if uc := byConv[conv]; uc != nil {
			uc.Participant.Spans = append(uc.Participant.Spans, span)
		}
	}
	return out, rows.Err()
}

// AddMembers starts membership spans for users who are not active members.
func (db *DB) AddMembers(ctx context.Context, orgID, convID string, userIDs []string, at time.Time) ([]string, error) {
	var added []string
	err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
		added = nil
		c, err := findGroup(ctx, tx, orgID, convID)
		if err != nil {
			return err
		}
		for _, id := range userIDs {
			if err := requireEnabledUser(ctx, tx, orgID, id); err != nil {
				return err
			}
			ok, err := addMember(ctx, tx, c, id, at)
			if err != nil {
				return err
			}
			if ok {
				added = append(added, id)
			}
		}
		return nil
	})
	return added, err
}

func findGroup(ctx context.Context, tx *wtx, orgID, convID string) (*chatvault.Conversation, error) {
	c, err := findConversation(ctx, tx, orgID, convID)
	if err != nil {
		return nil, err
	}
	if c.Kind != chatvault.Group {
		return nil, chatvault.Errorf(chatvault.ECONFLICT, "the members of a direct conversation cannot change")
	}
	return c, nil
}

// addMember opens a span for the user and announces the join. A member who left and comes back
// before anything was sent gets their old span reopened, so spans never overlap or duplicate.
func addMember(ctx context.Context, tx *wtx, c *chatvault.Conversation, userID string, at time.Time) (bool, error) {
	var active bool
	err := tx.QueryRowContext(ctx, `SELECT active FROM participants WHERE org_id = ? AND conversation_id = ? AND user_id = ?`,
		c.OrgID, c.ID, userID).Scan(&active)
	known := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("query participant: %w", err)
	}
	if active {
		return false, nil
	}
	ev, err := tx.emit(ctx, chatvault.Event{OrgID: c.OrgID, Kind: chatvault.EventMemberJoined, ConversationID: c.ID, Subject: userID, Seq: c.LastSeq, At: at})
	if err != nil {
		return false, err
	}
	from := c.LastSeq
	if c.HistoryVisibleToNewMembers {
		from = 0
	}
	if !known {
		return true, insertParticipant(ctx, tx, c.OrgID, c.ID, userID, chatvault.MemberMember, from, ev-1, at)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE participants SET active = 1 WHERE org_id = ? AND conversation_id = ? AND user_id = ?`,
		c.OrgID, c.ID, userID); err != nil {
		return false, fmt.Errorf("reactivate participant: %w", err)
	}
	if c.HistoryVisibleToNewMembers {
		// Every message is visible again: one open span from the start replaces the old ones.
		if _, err := tx.ExecContext(ctx, `DELETE FROM member_spans WHERE org_id = ? AND conversation_id = ? AND user_id = ?`,
			c.OrgID, c.ID, userID); err != nil {
			return false, fmt.Errorf("delete member spans: %w", err)
		}
		return true, insertSpan(ctx, tx, c.OrgID, c.ID, userID, 0, ev-1, at)
	}
	res, err := tx.ExecContext(ctx, `UPDATE member_spans SET to_seq = NULL, to_event = NULL, left_at = NULL
		WHERE org_id = ? AND conversation_id = ? AND user_id = ? AND to_seq = ?`, c.OrgID, c.ID, userID, c.LastSeq)
	if err != nil {
		return false, fmt.Errorf("reopen member span: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return true, nil
	}
	return true, insertSpan(ctx, tx, c.OrgID, c.ID, userID, from, ev-1, at)
}

// RemoveMember closes the user's open span at the conversation's last seq.
func (db *DB) RemoveMember(ctx context.Context, orgID, convID, userID string, at time.Time) error {
	return db.update(ctx, func(ctx context.Context, tx *wtx) error {
		c, err := findGroup(ctx, tx, orgID, convID)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE participants SET active = 0 WHERE org_id = ? AND conversation_id = ? AND user_id = ? AND active = 1`,
			orgID, convID, userID)
		if err != nil {
			return fmt.Errorf("deactivate participant: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return chatvault.Errorf(chatvault.ENOTFOUND, "user %s is not a member of this conversation", userID)
		}
		ev, err := tx.emit(ctx, chatvault.Event{OrgID: orgID, Kind: chatvault.EventMemberLeft, ConversationID: convID, Subject: userID, Seq: c.LastSeq, At: at})
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE member_spans SET to_seq = ?, to_event = ?, left_at = ?
			WHERE org_id = ? AND conversation_id = ? AND user_id = ? AND to_seq IS NULL`, c.LastSeq, ev, millis(at), orgID, convID, userID)
		if err != nil {
			return fmt.Errorf("close member span: %w", err)
		}
		return nil
	})
}

// SetReadSeq raises the read marker, never past the last seq, and tells the user's other devices.
func (db *DB) SetReadSeq(ctx context.Context, orgID, convID, userID string, seq int64, at time.Time) (int64, error) {
	var out int64
	err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
		var before int64
		err := tx.QueryRowContext(ctx, `SELECT read_seq FROM participants WHERE org_id = ? AND conversation_id = ? AND user_id = ?`,
			orgID, convID, userID).Scan(&before)
		if errors.Is(err, sql.ErrNoRows) {
			return chatvault.Errorf(chatvault.ENOTFOUND, "conversation %s not found", convID)
		} else if err != nil {
			return fmt.Errorf("query read marker: %w", err)
		}
		err = tx.QueryRowContext(ctx, `UPDATE participants SET read_seq = MAX(read_seq,
				MIN(?, (SELECT last_seq FROM conversations WHERE org_id = ? AND id = ?)))
			WHERE org_id = ? AND conversation_id = ? AND user_id = ? RETURNING read_seq`,
			seq, orgID, convID, orgID, convID, userID).Scan(&out)
		if err != nil {
			return fmt.Errorf("set read marker: %w", err)
		}
		if out == before {
			return nil
		}
		_, err = tx.emit(ctx, chatvault.Event{OrgID: orgID, Kind: chatvault.EventRead, ConversationID: convID, Subject: userID, Seq: out, At: at})
		return err
	})
	return out, err
}

// ClearHistory raises the cleared marker (and the read marker) to the last seq.
func (db *DB) ClearHistory(ctx context.Context, orgID, convID, userID string, at time.Time) (int64, error) {
	var out int64
	err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
		err := tx.QueryRowContext(ctx, `UPDATE participants
			SET cleared_seq = MAX(cleared_seq, (SELECT last_seq FROM conversations WHERE org_id = ? AND id = ?)),
			    read_seq = MAX(read_seq, (SELECT last_seq FROM conversations WHERE org_id = ? AND id = ?))
			WHERE org_id = ? AND conversation_id = ? AND user_id = ? RETURNING cleared_seq`,
			orgID, convID, orgID, convID, orgID, convID, userID).Scan(&out)
		if errors.Is(err, sql.ErrNoRows) {
			return chatvault.Errorf(chatvault.ENOTFOUND, "conversation %s not found", convID)
		} else if err != nil {
			return fmt.Errorf("clear history: %w", err)
		}
		_, err = tx.emit(ctx, chatvault.Event{OrgID: orgID, Kind: chatvault.EventCleared, ConversationID: convID, Subject: userID, Seq: out, At: at})
		return err
	})
	return out, err
}
