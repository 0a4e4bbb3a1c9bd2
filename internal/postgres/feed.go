package postgres

import (
	"context"
	"fmt"

	"github.com/chatvault/chatvault"
	"github.com/jackc/pgx/v5"
)

// LastEventID returns the number of the last committed event.
func (db *DB) LastEventID(ctx context.Context) (int64, error) {
	var id int64
	if err := db.pool.QueryRow(ctx, `SELECT value FROM counters WHERE name = 'event'`).Scan(&id); err != nil {
		return 0, fmt.Errorf("read event counter: %w", err)
	}
	return id, nil
}

// FindChanges reads the user's changes after since from one snapshot (REPEATABLE READ), so the
// cursor it returns covers exactly what it read: the counter's value N in the snapshot means
// every change numbered up to N is in it, and none after (events.go).
func (db *DB) FindChanges(ctx context.Context, orgID, userID string, since int64, maxConversations int) (*chatvault.Changes, error) {
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	out := &chatvault.Changes{}
	if err := tx.QueryRow(ctx, `SELECT value FROM counters WHERE name = 'event'`).Scan(&out.Cursor); err != nil {
		return nil, fmt.Errorf("read event counter: %w", err)
	}
	if since > out.Cursor {
		return nil, chatvault.Errorf(chatvault.ERESYNC, "the cursor is ahead of this server: start over with an initial sync")
	}
	if since == out.Cursor {
		return out, nil
	}
	rows, err := tx.Query(ctx, `SELECT p.conversation_id FROM conversations c
			JOIN participants p ON p.org_id = c.org_id AND p.conversation_id = c.id AND p.user_id = $3
			WHERE c.org_id = $1 AND c.last_event_id > $2
		UNION SELECT conversation_id FROM participants WHERE org_id = $1 AND user_id = $3 AND changed_event_id > $2
		ORDER BY 1`, orgID, since, userID)
	if err != nil {
		return nil, fmt.Errorf("query changed conversations: %w", err)
	}
	ids, err := collectStrings(rows)
	if err != nil {
		return nil, fmt.Errorf("query changed conversations: %w", err)
	}
	if len(ids) > maxConversations {
		return nil, chatvault.Errorf(chatvault.ERESYNC, "more than %d conversations changed since the cursor: start over with an initial sync", maxConversations)
	}
	for _, convID := range ids {
		c, err := findConversation(ctx, tx, orgID, convID, false)
		if err != nil {
			return nil, err
		}
		ps, err := findParticipants(ctx, tx, orgID, convID, userID)
		if err != nil {
			return nil, err
		}
		if len(ps) != 1 {
			return nil, fmt.Errorf("participant %s of conversation %s vanished inside a read snapshot", userID, convID)
		}
		out.Conversations = append(out.Conversations, &chatvault.UserConversation{Conversation: *c, Participant: *ps[0]})
		evs, err := findEvents(ctx, tx, orgID, convID, userID, since, out.Cursor)
		if err != nil {
			return nil, err
		}
		out.Events = append(out.Events, evs...)
	}
	return out, nil
}

func findEvents(ctx context.Context, q querier, orgID, convID, userID string, after, upTo int64) ([]chatvault.Event, error) {
	rows, err := q.Query(ctx, `SELECT id, kind, subject, seq, message_id, created_at, from_seq FROM events
		WHERE org_id = $1 AND conversation_id = $2 AND id > $3 AND id <= $4 AND (for_user IS NULL OR for_user = $5) ORDER BY id`,
		orgID, convID, after, upTo, userID)
	if err != nil {
		return nil, fmt.Errorf("query events: %w", err)
	}
	return collect(rows, func(r pgx.CollectableRow) (chatvault.Event, error) {
		ev := chatvault.Event{OrgID: orgID, ConversationID: convID}
		var subject, msgID *string
		var seq, fromSeq *int64
		var at int64
		if err := r.Scan(&ev.ID, &ev.Kind, &subject, &seq, &msgID, &at, &fromSeq); err != nil {
			return ev, fmt.Errorf("scan event: %w", err)
		}
		ev.Subject, ev.MessageID, ev.At = str(subject), str(msgID), fromMillis(at)
		if seq != nil {
			ev.Seq = *seq
		}
		if fromSeq != nil {
			ev.FromSeq = *fromSeq
		}
		return ev, nil
	})
}
