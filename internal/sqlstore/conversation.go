package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/chatvault/chatvault"
)

const conversationColumns = `org_id, id, kind, title, created_by, created_at, history_visible, direct_key, last_seq`

// conversationSelect reads conversationColumns with history_visible as a boolean.
const conversationSelect = `org_id, id, kind, title, created_by, created_at, history_visible <> 0, direct_key, last_seq`

const findConversationQuery = `SELECT ` + conversationSelect + ` FROM conversations WHERE org_id = $1 AND id = $2`

// CreateConversation stores a conversation with its members, or finds the existing direct one.
func (c *Core) CreateConversation(ctx context.Context, conv *chatvault.Conversation, memberIDs []string) (bool, error) {
	var created bool
	err := c.update(ctx, func(ctx context.Context, tx Tx) error {
		created = false
		if conv.DirectKey != "" {
			existing, err := scanConversation(tx.QueryRow(ctx,
				`SELECT `+conversationSelect+` FROM conversations WHERE org_id = $1 AND direct_key = $2`, conv.OrgID, conv.DirectKey))
			if err == nil {
				*conv = *existing
				return nil
			} else if !isNoRows(err) {
				return err
			}
		}
		for _, id := range memberIDs {
			if err := requireEnabledUser(ctx, tx, conv.OrgID, id); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO conversations (`+conversationColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0)`,
			conv.OrgID, conv.ID, string(conv.Kind), conv.Title, conv.CreatedBy, Millis(conv.CreatedAt), b2i(conv.HistoryVisibleToNewMembers), NullString(conv.DirectKey))
		if c.d.Constraint(err, "conversations_direct") {
			return ErrRetry // created meanwhile by another transaction: the next attempt finds it
		} else if err != nil {
			return fmt.Errorf("insert conversation: %w", err)
		}
		ev, err := tx.Emit(ctx, chatvault.Event{OrgID: conv.OrgID, Kind: chatvault.EventCreated, ConversationID: conv.ID, Subject: conv.CreatedBy, At: conv.CreatedAt})
		if err != nil {
			return err
		}
		if err := insertParticipant(ctx, tx, conv.OrgID, conv.ID, conv.CreatedBy, chatvault.MemberOwner, 0, ev-1, conv.CreatedAt); err != nil {
			return err
		}
		for _, id := range memberIDs {
			if err := insertParticipant(ctx, tx, conv.OrgID, conv.ID, id, chatvault.MemberMember, 0, ev-1, conv.CreatedAt); err != nil {
				return err
			}
		}
		created = true
		return nil
	})
	return created, err
}

func requireEnabledUser(ctx context.Context, tx Tx, orgID, userID string) error {
	var disabled bool
	err := tx.QueryRow(ctx, `SELECT disabled <> 0 FROM users WHERE org_id = $1 AND id = $2`, orgID, userID).Scan(&disabled)
	if isNoRows(err) || disabled {
		return chatvault.Invalidf("members", "user %s is not an enabled user of this org", userID)
	} else if err != nil {
		return fmt.Errorf("query member: %w", err)
	}
	return nil
}

// insertParticipant makes a user a member from fromSeq (messages) and fromEvent (events) on.
func insertParticipant(ctx context.Context, tx Tx, orgID, convID, userID string, role chatvault.MemberRole, fromSeq, fromEvent int64, at time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO participants (org_id, conversation_id, user_id, role, active) VALUES ($1, $2, $3, $4, 1)`,
		orgID, convID, userID, string(role))
	if err != nil {
		return fmt.Errorf("insert participant: %w", err)
	}
	return insertSpan(ctx, tx, orgID, convID, userID, fromSeq, fromEvent, at)
}

func insertSpan(ctx context.Context, tx Tx, orgID, convID, userID string, fromSeq, fromEvent int64, at time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO member_spans (org_id, conversation_id, user_id, from_seq, from_event, joined_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		orgID, convID, userID, fromSeq, fromEvent, Millis(at))
	if err != nil {
		return fmt.Errorf("insert member span: %w", err)
	}
	return nil
}

// FindConversation finds one conversation of the org.
func (c *Core) FindConversation(ctx context.Context, orgID, convID string) (*chatvault.Conversation, error) {
	return c.findConversationIn(ctx, c.cached, orgID, convID, false)
}

// findConversationIn reads one conversation through q; lock also locks its row until commit
// (PostgreSQL), which serialises everything that allocates its seqs or changes its membership.
// SQLite's single writer serialises them already.
func (c *Core) findConversationIn(ctx context.Context, q Querier, orgID, convID string, lock bool) (*chatvault.Conversation, error) {
	query := findConversationQuery
	if lock {
		query = c.d.pick(findConversationQuery, findConversationQuery+` FOR UPDATE`)
	}
	conv, err := scanConversation(q.QueryRow(ctx, query, orgID, convID))
	if isNoRows(err) {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "conversation %s not found", convID)
	}
	return conv, err
}

func scanConversation(s Row) (*chatvault.Conversation, error) {
	var c chatvault.Conversation
	var created int64
	var direct sql.NullString
	err := s.Scan(&c.OrgID, &c.ID, &c.Kind, &c.Title, &c.CreatedBy, &created, &c.HistoryVisibleToNewMembers, &direct, &c.LastSeq)
	if isNoRows(err) {
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("scan conversation: %w", err)
	}
	c.CreatedAt = FromMillis(created)
	c.DirectKey = direct.String
	return &c, nil
}

// FindParticipant returns one user's standing in a conversation.
func (c *Core) FindParticipant(ctx context.Context, orgID, convID, userID string) (*chatvault.Participant, error) {
	ps, err := findParticipants(ctx, c.cached, orgID, convID, userID)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "not a participant")
	}
	return ps[0], nil
}

// FindParticipants returns everyone who is or was in the conversation.
func (c *Core) FindParticipants(ctx context.Context, orgID, convID string) ([]*chatvault.Participant, error) {
	return findParticipants(ctx, c.cached, orgID, convID, "")
}

// findParticipants loads participants (one user's when userID is set) with their spans.
func findParticipants(ctx context.Context, q Querier, orgID, convID, userID string) ([]*chatvault.Participant, error) {
	filter, args := ``, []any{orgID, convID}
	if userID != "" {
		filter, args = ` AND user_id = $3`, append(args, userID)
	}
	rows, err := q.Query(ctx, `SELECT user_id, role, active <> 0, read_seq, cleared_seq FROM participants
		WHERE org_id = $1 AND conversation_id = $2`+filter+` ORDER BY user_id`, args...)
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
	rows, err = q.Query(ctx, `SELECT user_id, `+spanColumns+` FROM member_spans
		WHERE org_id = $1 AND conversation_id = $2`+filter+` ORDER BY user_id, from_seq`, args...)
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

func scanSpan(s Row, key *string) (chatvault.MemberSpan, error) {
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
	span.JoinedAt = FromMillis(joined)
	span.LeftAt = fromNullMillis(left)
	return span, nil
}

// FindUserConversations lists every conversation the user is or was in.
func (c *Core) FindUserConversations(ctx context.Context, orgID, userID string) ([]*chatvault.UserConversation, error) {
	rows, err := c.cached.Query(ctx, `SELECT c.org_id, c.id, c.kind, c.title, c.created_by, c.created_at,
			c.history_visible <> 0, c.direct_key, c.last_seq, p.role, p.active <> 0, p.read_seq, p.cleared_seq
		FROM participants p JOIN conversations c ON c.org_id = p.org_id AND c.id = p.conversation_id
		WHERE p.org_id = $1 AND p.user_id = $2`, orgID, userID)
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
		c.CreatedAt, c.DirectKey = FromMillis(created), direct.String
		p.ConversationID, p.UserID = c.ID, userID
		out = append(out, uc)
		byConv[c.ID] = uc
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = c.cached.Query(ctx, `SELECT conversation_id, `+spanColumns+` FROM member_spans
		WHERE org_id = $1 AND user_id = $2 ORDER BY conversation_id, from_seq`, orgID, userID)
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
func (c *Core) AddMembers(ctx context.Context, orgID, convID string, userIDs []string, at time.Time) ([]string, error) {
	var added []string
	err := c.update(ctx, func(ctx context.Context, tx Tx) error {
		added = nil
		conv, err := c.findGroup(ctx, tx, orgID, convID)
		if err != nil {
			return err
		}
		for _, id := range userIDs {
			if err := requireEnabledUser(ctx, tx, orgID, id); err != nil {
				return err
			}
			ok, err := c.addMember(ctx, tx, conv, id, at)
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

// findGroup reads and locks a group: its last seq must not move while membership changes.
func (c *Core) findGroup(ctx context.Context, tx Tx, orgID, convID string) (*chatvault.Conversation, error) {
	conv, err := c.findConversationIn(ctx, tx, orgID, convID, true)
	if err != nil {
		return nil, err
	}
	if conv.Kind != chatvault.Group {
		return nil, chatvault.Errorf(chatvault.ECONFLICT, "the members of a direct conversation cannot change")
	}
	return conv, nil
}

// addMember opens a span for the user and announces the join. A member who left and comes back
// before anything was sent gets their old span reopened, so spans never overlap or duplicate.
func (c *Core) addMember(ctx context.Context, tx Tx, conv *chatvault.Conversation, userID string, at time.Time) (bool, error) {
	var active bool
	err := tx.QueryRow(ctx, c.d.pick(
		`SELECT active <> 0 FROM participants WHERE org_id = $1 AND conversation_id = $2 AND user_id = $3`,
		`SELECT active <> 0 FROM participants WHERE org_id = $1 AND conversation_id = $2 AND user_id = $3 FOR UPDATE`),
		conv.OrgID, conv.ID, userID).Scan(&active)
	known := err == nil
	if err != nil && !isNoRows(err) {
		return false, fmt.Errorf("query participant: %w", err)
	}
	if active {
		return false, nil
	}
	ev, err := tx.Emit(ctx, chatvault.Event{OrgID: conv.OrgID, Kind: chatvault.EventMemberJoined, ConversationID: conv.ID, Subject: userID, Seq: conv.LastSeq, At: at})
	if err != nil {
		return false, err
	}
	from := conv.LastSeq
	if conv.HistoryVisibleToNewMembers {
		from = 0
	}
	if !known {
		return true, insertParticipant(ctx, tx, conv.OrgID, conv.ID, userID, chatvault.MemberMember, from, ev-1, at)
	}
	if _, err := tx.Exec(ctx, `UPDATE participants SET active = 1 WHERE org_id = $1 AND conversation_id = $2 AND user_id = $3`,
		conv.OrgID, conv.ID, userID); err != nil {
		return false, fmt.Errorf("reactivate participant: %w", err)
	}
	if conv.HistoryVisibleToNewMembers {
		// Every message is visible again: one open span from the start replaces the old ones.
		if _, err := tx.Exec(ctx, `DELETE FROM member_spans WHERE org_id = $1 AND conversation_id = $2 AND user_id = $3`,
			conv.OrgID, conv.ID, userID); err != nil {
			return false, fmt.Errorf("delete member spans: %w", err)
		}
		return true, insertSpan(ctx, tx, conv.OrgID, conv.ID, userID, 0, ev-1, at)
	}
	n, err := tx.Exec(ctx, `UPDATE member_spans SET to_seq = NULL, to_event = NULL, left_at = NULL
		WHERE org_id = $1 AND conversation_id = $2 AND user_id = $3 AND to_seq = $4`, conv.OrgID, conv.ID, userID, conv.LastSeq)
	if err != nil {
		return false, fmt.Errorf("reopen member span: %w", err)
	}
	if n > 0 {
		return true, nil
	}
	return true, insertSpan(ctx, tx, conv.OrgID, conv.ID, userID, from, ev-1, at)
}

// RemoveMember closes the user's open span at the conversation's last seq.
func (c *Core) RemoveMember(ctx context.Context, orgID, convID, userID string, at time.Time) error {
	return c.update(ctx, func(ctx context.Context, tx Tx) error {
		conv, err := c.findGroup(ctx, tx, orgID, convID)
		if err != nil {
			return err
		}
		n, err := tx.Exec(ctx, `UPDATE participants SET active = 0 WHERE org_id = $1 AND conversation_id = $2 AND user_id = $3 AND active = 1`,
			orgID, convID, userID)
		if err != nil {
			return fmt.Errorf("deactivate participant: %w", err)
		}
		if n == 0 {
			return chatvault.Errorf(chatvault.ENOTFOUND, "user %s is not a member of this conversation", userID)
		}
		ev, err := tx.Emit(ctx, chatvault.Event{OrgID: orgID, Kind: chatvault.EventMemberLeft, ConversationID: convID, Subject: userID, Seq: conv.LastSeq, At: at})
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE member_spans SET to_seq = $1, to_event = $2, left_at = $3
			WHERE org_id = $4 AND conversation_id = $5 AND user_id = $6 AND to_seq IS NULL`, conv.LastSeq, ev, Millis(at), orgID, convID, userID)
		if err != nil {
			return fmt.Errorf("close member span: %w", err)
		}
		return nil
	})
}

// SetReadSeq raises the read marker, never past the last seq, and tells the user's other devices.
func (c *Core) SetReadSeq(ctx context.Context, orgID, convID, userID string, seq int64, at time.Time) (int64, error) {
	var out int64
	err := c.update(ctx, func(ctx context.Context, tx Tx) error {
		var before int64
		err := tx.QueryRow(ctx, c.d.pick(
			`SELECT read_seq FROM participants WHERE org_id = $1 AND conversation_id = $2 AND user_id = $3`,
			`SELECT read_seq FROM participants WHERE org_id = $1 AND conversation_id = $2 AND user_id = $3 FOR UPDATE`),
			orgID, convID, userID).Scan(&before)
		if isNoRows(err) {
			return chatvault.Errorf(chatvault.ENOTFOUND, "conversation %s not found", convID)
		} else if err != nil {
			return fmt.Errorf("query read marker: %w", err)
		}
		err = tx.QueryRow(ctx, c.d.pick(
			`UPDATE participants SET read_seq = MAX(read_seq, MIN($1, (SELECT last_seq FROM conversations WHERE org_id = $2 AND id = $3)))
			WHERE org_id = $2 AND conversation_id = $3 AND user_id = $4 RETURNING read_seq`,
			`UPDATE participants SET read_seq = GREATEST(read_seq, LEAST($1, (SELECT last_seq FROM conversations WHERE org_id = $2 AND id = $3)))
			WHERE org_id = $2 AND conversation_id = $3 AND user_id = $4 RETURNING read_seq`),
			seq, orgID, convID, userID).Scan(&out)
		if err != nil {
			return fmt.Errorf("set read marker: %w", err)
		}
		if out == before {
			return nil
		}
		_, err = tx.Emit(ctx, chatvault.Event{OrgID: orgID, Kind: chatvault.EventRead, ConversationID: convID, Subject: userID, Seq: out, At: at})
		return err
	})
	return out, err
}

// ClearHistory raises the cleared marker (and the read marker) to the last seq.
func (c *Core) ClearHistory(ctx context.Context, orgID, convID, userID string, at time.Time) (int64, error) {
	var out int64
	err := c.update(ctx, func(ctx context.Context, tx Tx) error {
		err := tx.QueryRow(ctx, c.d.pick(
			`UPDATE participants
			SET cleared_seq = MAX(cleared_seq, (SELECT last_seq FROM conversations WHERE org_id = $1 AND id = $2)),
			    read_seq = MAX(read_seq, (SELECT last_seq FROM conversations WHERE org_id = $1 AND id = $2))
			WHERE org_id = $1 AND conversation_id = $2 AND user_id = $3 RETURNING cleared_seq`,
			`UPDATE participants
			SET cleared_seq = GREATEST(cleared_seq, (SELECT last_seq FROM conversations WHERE org_id = $1 AND id = $2)),
			    read_seq = GREATEST(read_seq, (SELECT last_seq FROM conversations WHERE org_id = $1 AND id = $2))
			WHERE org_id = $1 AND conversation_id = $2 AND user_id = $3 RETURNING cleared_seq`),
			orgID, convID, userID).Scan(&out)
		if isNoRows(err) {
			return chatvault.Errorf(chatvault.ENOTFOUND, "conversation %s not found", convID)
		} else if err != nil {
			return fmt.Errorf("clear history: %w", err)
		}
		_, err = tx.Emit(ctx, chatvault.Event{OrgID: orgID, Kind: chatvault.EventCleared, ConversationID: convID, Subject: userID, Seq: out, At: at})
		return err
	})
	return out, err
}
