package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/chatvault/chatvault"
)

// orgScanLimit is where SQLite's FindChanges stops reading the org's recently changed
// conversations and reads the user's memberships instead: below it, the cost follows what
// changed; above it (a user long offline in a busy org), the cost follows the user's memberships.
// PostgreSQL's planner makes that choice itself.
const orgScanLimit = 4096

const eventCounterQuery = `SELECT value FROM counters WHERE name = 'event'`

// LastEventID returns the number of the last committed event.
func (c *Core) LastEventID(ctx context.Context) (int64, error) {
	var id int64
	if err := c.read.QueryRow(ctx, eventCounterQuery).Scan(&id); err != nil {
		return 0, fmt.Errorf("read event counter: %w", err)
	}
	return id, nil
}

// FindChanges reads the user's changes after since from one read-only snapshot, so the cursor it
// returns covers exactly what it read: a counter value N in the snapshot means every change
// numbered up to N is in it, and none after.
func (c *Core) FindChanges(ctx context.Context, orgID, userID string, since int64, maxConversations int) (*chatvault.Changes, error) {
	var out *chatvault.Changes
	err := c.eng.View(ctx, func(ctx context.Context, q Querier) error {
		out = &chatvault.Changes{}
		if err := q.QueryRow(ctx, eventCounterQuery).Scan(&out.Cursor); err != nil {
			return fmt.Errorf("read event counter: %w", err)
		}
		if since > out.Cursor {
			return chatvault.Errorf(chatvault.ERESYNC, "the cursor is ahead of this server: start over with an initial sync")
		}
		if since == out.Cursor {
			return nil
		}
		ids, err := c.changedConversations(ctx, q, orgID, userID, since)
		if err != nil {
			return err
		}
		if len(ids) > maxConversations {
			return chatvault.Errorf(chatvault.ERESYNC, "more than %d conversations changed since the cursor: start over with an initial sync", maxConversations)
		}
		for _, convID := range ids {
			conv, err := c.findConversationIn(ctx, q, orgID, convID, false)
			if err != nil {
				return err
			}
			ps, err := findParticipants(ctx, q, orgID, convID, userID)
			if err != nil {
				return err
			}
			if len(ps) != 1 {
				return fmt.Errorf("participant %s of conversation %s vanished inside a read snapshot", userID, convID)
			}
			out.Conversations = append(out.Conversations, &chatvault.UserConversation{Conversation: *conv, Participant: *ps[0]})
			evs, err := findEvents(ctx, q, orgID, convID, userID, since, out.Cursor)
			if err != nil {
				return err
			}
			out.Events = append(out.Events, evs...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// changedConversations lists the user's conversations that moved after since, or whose per-user
// state (read marker, cleared history, hides) did.
func (c *Core) changedConversations(ctx context.Context, q Querier, orgID, userID string, since int64) ([]string, error) {
	query := `SELECT p.conversation_id FROM conversations c
			JOIN participants p ON p.org_id = c.org_id AND p.conversation_id = c.id AND p.user_id = $3
			WHERE c.org_id = $1 AND c.last_event_id > $2
		UNION SELECT conversation_id FROM participants WHERE org_id = $1 AND user_id = $3 AND changed_event_id > $2
		ORDER BY 1`
	if !c.d.Postgres {
		var recent int
		if err := q.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM conversations INDEXED BY conversations_changed
			WHERE org_id = $1 AND last_event_id > $2 LIMIT $3)`, orgID, since, orgScanLimit).Scan(&recent); err != nil {
			return nil, fmt.Errorf("count changed conversations: %w", err)
		}
		byActivity := `SELECT p.conversation_id FROM conversations c INDEXED BY conversations_changed
			JOIN participants p ON p.org_id = c.org_id AND p.conversation_id = c.id AND p.user_id = $3
			WHERE c.org_id = $1 AND c.last_event_id > $2`
		if recent >= orgScanLimit {
			// CROSS JOIN makes SQLite drive from the user's memberships.
			byActivity = `SELECT p.conversation_id FROM participants p INDEXED BY participants_user
				CROSS JOIN conversations c ON c.org_id = p.org_id AND c.id = p.conversation_id
				WHERE p.org_id = $1 AND p.user_id = $3 AND c.last_event_id > $2`
		}
		query = byActivity + ` UNION SELECT conversation_id FROM participants INDEXED BY participants_changed
			WHERE org_id = $1 AND user_id = $3 AND changed_event_id > $2`
	}
	ids, err := queryStrings(ctx, q, query, orgID, since, userID)
	if err != nil {
		return nil, fmt.Errorf("query changed conversations: %w", err)
	}
	return ids, nil
}

func findEvents(ctx context.Context, q Querier, orgID, convID, userID string, after, upTo int64) ([]chatvault.Event, error) {
	rows, err := q.Query(ctx, `SELECT id, kind, subject, seq, message_id, created_at, from_seq FROM events
		WHERE org_id = $1 AND conversation_id = $2 AND id > $3 AND id <= $4 AND (for_user IS NULL OR for_user = $5) ORDER BY id`,
		orgID, convID, after, upTo, userID)
	if err != nil {
		return nil, fmt.Errorf("query events: %w", err)
	}
	defer rows.Close()
	var out []chatvault.Event
	for rows.Next() {
		ev := chatvault.Event{OrgID: orgID, ConversationID: convID}
		var subject, msgID sql.NullString
		var seq, fromSeq sql.NullInt64
		var at int64
		if err := rows.Scan(&ev.ID, &ev.Kind, &subject, &seq, &msgID, &at, &fromSeq); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		ev.Subject, ev.Seq, ev.MessageID, ev.At, ev.FromSeq = subject.String, seq.Int64, msgID.String, FromMillis(at), fromSeq.Int64
		out = append(out, ev)
	}
	return out, rows.Err()
}

// RecordEvent records a numbered event where sync looks for it: the row it moves (the
// conversation, or the participant for a per-user event) and the events table. The engine numbers
// the event (SQLite's writer; PostgreSQL's counter row, locked until commit).
func RecordEvent(ctx context.Context, tx Querier, ev chatvault.Event) error {
	var forUser sql.NullString
	var err error
	if ev.PerUser() {
		forUser = NullString(ev.Subject)
		_, err = tx.Exec(ctx, `UPDATE participants SET changed_event_id = $1 WHERE org_id = $2 AND conversation_id = $3 AND user_id = $4`,
			ev.ID, ev.OrgID, ev.ConversationID, ev.Subject)
	} else {
		_, err = tx.Exec(ctx, `UPDATE conversations SET last_event_id = $1 WHERE org_id = $2 AND id = $3`, ev.ID, ev.OrgID, ev.ConversationID)
	}
	if err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO events (org_id, conversation_id, id, kind, for_user, subject, seq, message_id, created_at, from_seq)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, ev.OrgID, ev.ConversationID, ev.ID, string(ev.Kind), forUser, NullString(ev.Subject),
		nullPositive(ev.Seq), NullString(ev.MessageID), Millis(ev.At), nullPositive(ev.FromSeq))
	if err != nil {
		return fmt.Errorf("insert event: %w", err)
	}
	return nil
}
