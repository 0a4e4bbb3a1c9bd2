package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/jackc/pgx/v5"
)

const conversationColumns = `org_id, id, kind, title, created_by, created_at, history_visible, direct_key, last_seq`

// conversationSelect reads conversationColumns with history_visible as a boolean.
const conversationSelect = `org_id, id, kind, title, created_by, created_at, history_visible <> 0, direct_key, last_seq`

// CreateConversation stores a conversation with its members, or finds the existing direct one.
func (db *DB) CreateConversation(ctx context.Context, c *chatvault.Conversation, memberIDs []string) (bool, error) {
	var created bool
	err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
		created = false
		if c.DirectKey != "" {
			existing, err := scanConversation(tx.QueryRow(ctx,
				`SELECT `+conversationSelect+` FROM conversations WHERE org_id = $1 AND direct_key = $2`, c.OrgID, c.DirectKey))
			if err == nil {
				*c = *existing
				return nil
			} else if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		for _, id := range memberIDs {
			if err := requireEnabledUser(ctx, tx, c.OrgID, id); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO conversations (`+conversationColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0)`,
			c.OrgID, c.ID, string(c.Kind), c.Title, c.CreatedBy, millis(c.CreatedAt), b2i(c.HistoryVisibleToNewMembers), nullString(c.DirectKey))
		if isConstraint(err, "conversations_direct") {
			return errRetry // created meanwhile by another transaction: the next attempt finds it
		} else if err != nil {
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
	var disabled int
	err := tx.QueryRow(ctx, `SELECT disabled FROM users WHERE org_id = $1 AND id = $2`, orgID, userID).Scan(&disabled)
	if errors.Is(err, pgx.ErrNoRows) || disabled != 0 {
		return chatvault.Invalidf("members", "user %s is not an enabled user of this org", userID)
	} else if err != nil {
		return fmt.Errorf("query member: %w", err)
	}
	return nil
}

// insertParticipant makes a user a member from fromSeq (messages) and fromEvent (events) on.
func insertParticipant(ctx context.Context, tx *wtx, orgID, convID, userID string, role chatvault.MemberRole, fromSeq, fromEvent int64, at time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO participants (org_id, conversation_id, user_id, role, active) VALUES ($1, $2, $3, $4, 1)`,
		orgID, convID, userID, string(role))
	if err != nil {
		return fmt.Errorf("insert participant: %w", err)
	}
	return insertSpan(ctx, tx, orgID, convID, userID, fromSeq, fromEvent, at)
}

func insertSpan(ctx context.Context, tx *wtx, orgID, convID, userID string, fromSeq, fromEvent int64, at time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO member_spans (org_id, conversation_id, user_id, from_seq, from_event, joined_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		orgID, convID, userID, fromSeq, fromEvent, millis(at))
	if err != nil {
		return fmt.Errorf("insert member span: %w", err)
	}
	return nil
}

// FindConversation finds one conversation of the org.
func (db *DB) FindConversation(ctx context.Context, orgID, convID string) (*chatvault.Conversation, error) {
	return findConversation(ctx, db.pool, orgID, convID, false)
}

// findConversation reads one conversation; forUpdate also locks its row until commit, which
// serialises everything that allocates its seqs or changes its membership.
func findConversation(ctx context.Context, q querier, orgID, convID string, forUpdate bool) (*chatvault.Conversation, error) {
	lock := ""
	if forUpdate {
		lock = " FOR UPDATE"
	}
	c, err := scanConversation(q.QueryRow(ctx, `SELECT `+conversationSelect+` FROM conversations WHERE org_id = $1 AND id = $2`+lock, orgID, convID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "conversation %s not found", convID)
	}
	return c, err
}

func scanConversation(s pgx.Row) (*chatvault.Conversation, error) {
	var c chatvault.Conversation
	var created int64
	var direct *string
	err := s.Scan(&c.OrgID, &c.ID, &c.Kind, &c.Title, &c.CreatedBy, &created, &c.HistoryVisibleToNewMembers, &direct, &c.LastSeq)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("scan conversation: %w", err)
	}
	c.CreatedAt = fromMillis(created)
	c.DirectKey = str(direct)
	return &c, nil
}

// FindParticipant returns one user's standing in a conversation.
func (db *DB) FindParticipant(ctx context.Context, orgID, convID, userID string) (*chatvault.Participant, error) {
	ps, err := findParticipants(ctx, db.pool, orgID, convID, userID)
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
	return findParticipants(ctx, db.pool, orgID, convID, "")
}

// findParticipants loads participants (one user's when userID is set) with their spans.
func findParticipants(ctx context.Context, q querier, orgID, convID, userID string) ([]*chatvault.Participant, error) {
	filter, args := ``, []any{orgID, convID}
	if userID != "" {
		filter, args = ` AND user_id = $3`, append(args, userID)
	}
	rows, err := q.Query(ctx, `SELECT user_id, role, active <> 0, read_seq, cleared_seq FROM participants
		WHERE org_id = $1 AND conversation_id = $2`+filter+` ORDER BY user_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("query participants: %w", err)
	}
	out, err := collect(rows, func(r pgx.CollectableRow) (*chatvault.Participant, error) {
		p := &chatvault.Participant{ConversationID: convID}
		if err := r.Scan(&p.UserID, &p.Role, &p.Active, &p.ReadSeq, &p.ClearedSeq); err != nil {
			return nil, fmt.Errorf("scan participant: %w", err)
		}
		return p, nil
	})
	if err != nil {
		return nil, err
	}
	byUser := map[string]*chatvault.Participant{}
	for _, p := range out {
		byUser[p.UserID] = p
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

func scanSpan(s pgx.Row, key *string) (chatvault.MemberSpan, error) {
	var span chatvault.MemberSpan
	var to, toEvent, left *int64
	var joined int64
	if err := s.Scan(key, &span.FromSeq, &to, &span.FromEvent, &toEvent, &joined, &left); err != nil {
		return span, fmt.Errorf("scan member span: %w", err)
	}
	span.ToSeq, span.ToEvent = to, toEvent
	span.JoinedAt = fromMillis(joined)
	span.LeftAt = fromNullMillis(left)
	return span, nil
}

// FindUserConversations lists every conversation the user is or was in.
func (db *DB) FindUserConversations(ctx context.Context, orgID, userID string) ([]*chatvault.UserConversation, error) {
	rows, err := db.pool.Query(ctx, `SELECT c.org_id, c.id, c.kind, c.title, c.created_by, c.created_at,
			c.history_visible <> 0, c.direct_key, c.last_seq, p.role, p.active <> 0, p.read_seq, p.cleared_seq
		FROM participants p JOIN conversations c ON c.org_id = p.org_id AND c.id = p.conversation_id
		WHERE p.org_id = $1 AND p.user_id = $2`, orgID, userID)
	if err != nil {
		return nil, fmt.Errorf("query user conversations: %w", err)
	}
	out, err := collect(rows, func(r pgx.CollectableRow) (*chatvault.UserConversation, error) {
		uc := &chatvault.UserConversation{}
		c, p := &uc.Conversation, &uc.Participant
		var created int64
		var direct *string
		if err := r.Scan(&c.OrgID, &c.ID, &c.Kind, &c.Title, &c.CreatedBy, &created, &c.HistoryVisibleToNewMembers,
			&direct, &c.LastSeq, &p.Role, &p.Active, &p.ReadSeq, &p.ClearedSeq); err != nil {
			return nil, fmt.Errorf("scan user conversation: %w", err)
		}
		c.CreatedAt, c.DirectKey = fromMillis(created), str(direct)
		p.ConversationID, p.UserID = c.ID, userID
		return uc, nil
	})
	if err != nil {
		return nil, err
	}
	byConv := map[string]*chatvault.UserConversation{}
	for _, uc := range out {
		byConv[uc.Conversation.ID] = uc
	}
	rows, err = db.pool.Query(ctx, `SELECT conversation_id, `+spanColumns+` FROM member_spans
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

// findGroup reads and locks a group: its last seq must not move while membership changes.
func findGroup(ctx context.Context, tx *wtx, orgID, convID string) (*chatvault.Conversation, error) {
	c, err := findConversation(ctx, tx, orgID, convID, true)
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
	var active int
	err := tx.QueryRow(ctx, `SELECT active FROM participants WHERE org_id = $1 AND conversation_id = $2 AND user_id = $3 FOR UPDATE`,
		c.OrgID, c.ID, userID).Scan(&active)
	known := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("query participant: %w", err)
	}
	if active != 0 {
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
	if _, err := tx.Exec(ctx, `UPDATE participants SET active = 1 WHERE org_id = $1 AND conversation_id = $2 AND user_id = $3`,
		c.OrgID, c.ID, userID); err != nil {
		return false, fmt.Errorf("reactivate participant: %w", err)
	}
	if c.HistoryVisibleToNewMembers {
		// Every message is visible again: one open span from the start replaces the old ones.
		if _, err := tx.Exec(ctx, `DELETE FROM member_spans WHERE org_id = $1 AND conversation_id = $2 AND user_id = $3`,
			c.OrgID, c.ID, userID); err != nil {
			return false, fmt.Errorf("delete member spans: %w", err)
		}
		return true, insertSpan(ctx, tx, c.OrgID, c.ID, userID, 0, ev-1, at)
	}
	tag, err := tx.Exec(ctx, `UPDATE member_spans SET to_seq = NULL, to_event = NULL, left_at = NULL
		WHERE org_id = $1 AND conversation_id = $2 AND user_id = $3 AND to_seq = $4`, c.OrgID, c.ID, userID, c.LastSeq)
	if err != nil {
		return false, fmt.Errorf("reopen member span: %w", err)
	}
	if tag.RowsAffected() > 0 {
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
		tag, err := tx.Exec(ctx, `UPDATE participants SET active = 0 WHERE org_id = $1 AND conversation_id = $2 AND user_id = $3 AND active = 1`,
			orgID, convID, userID)
		if err != nil {
			return fmt.Errorf("deactivate participant: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return chatvault.Errorf(chatvault.ENOTFOUND, "user %s is not a member of this conversation", userID)
		}
		ev, err := tx.emit(ctx, chatvault.Event{OrgID: orgID, Kind: chatvault.EventMemberLeft, ConversationID: convID, Subject: userID, Seq: c.LastSeq, At: at})
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE member_spans SET to_seq = $1, to_event = $2, left_at = $3
			WHERE org_id = $4 AND conversation_id = $5 AND user_id = $6 AND to_seq IS NULL`, c.LastSeq, ev, millis(at), orgID, convID, userID)
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
		err := tx.QueryRow(ctx, `SELECT read_seq FROM participants WHERE org_id = $1 AND conversation_id = $2 AND user_id = $3 FOR UPDATE`,
			orgID, convID, userID).Scan(&before)
		if errors.Is(err, pgx.ErrNoRows) {
			return chatvault.Errorf(chatvault.ENOTFOUND, "conversation %s not found", convID)
		} else if err != nil {
			return fmt.Errorf("query read marker: %w", err)
		}
		err = tx.QueryRow(ctx, `UPDATE participants SET read_seq = GREATEST(read_seq,
				LEAST($1, (SELECT last_seq FROM conversations WHERE org_id = $2 AND id = $3)))
			WHERE org_id = $2 AND conversation_id = $3 AND user_id = $4 RETURNING read_seq`,
			seq, orgID, convID, userID).Scan(&out)
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
		err := tx.QueryRow(ctx, `UPDATE participants
			SET cleared_seq = GREATEST(cleared_seq, (SELECT last_seq FROM conversations WHERE org_id = $1 AND id = $2)),
			    read_seq = GREATEST(read_seq, (SELECT last_seq FROM conversations WHERE org_id = $1 AND id = $2))
			WHERE org_id = $1 AND conversation_id = $2 AND user_id = $3 RETURNING cleared_seq`,
			orgID, convID, userID).Scan(&out)
		if errors.Is(err, pgx.ErrNoRows) {
			return chatvault.Errorf(chatvault.ENOTFOUND, "conversation %s not found", convID)
		} else if err != nil {
			return fmt.Errorf("clear history: %w", err)
		}
		_, err = tx.emit(ctx, chatvault.Event{OrgID: orgID, Kind: chatvault.EventCleared, ConversationID: convID, Subject: userID, Seq: out, At: at})
		return err
	})
	return out, err
}
