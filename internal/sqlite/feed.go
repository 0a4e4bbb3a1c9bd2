package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/chatvault/chatvault"
)

// orgScanLimit is where FindChanges stops reading the org's recently changed conversations and
// reads the user's memberships instead: below it, the cost follows what changed; above it (a user
// long offline in a busy org), the cost follows the user's memberships.
const orgScanLimit = 4096

// LastEventID returns the number of the last committed event.
func (db *DB) LastEventID(ctx context.Context) (int64, error) {
	var id int64
	if err := db.read.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'event'`).Scan(&id); err != nil {
		return 0, fmt.Errorf("read event counter: %w", err)
	}
	return id, nil
}

// FindChanges reads the user's changes after since from one read-only snapshot, so the cursor it
// returns covers exactly what it read.
func (db *DB) FindChanges(ctx context.Context, orgID, userID string, since int64, maxConversations int) (*chatvault.Changes, error) {
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback()
	out := &chatvault.Changes{}
	if err := tx.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'event'`).Scan(&out.Cursor); err != nil {
		return nil, fmt.Errorf("read event counter: %w", err)
	}
	if since > out.Cursor {
		return nil, chatvault.Errorf(chatvault.ERESYNC, "the cursor is ahead of this server: start over with an initial sync")
	}
	if since == out.Cursor {
		return out, nil
	}
	ids, err := changedConversations(ctx, tx, orgID, userID, since)
	if err != nil {
		return nil, err
	}
	if len(ids) > maxConversations {
		return nil, chatvault.Errorf(chatvault.ERESYNC, "more than %d conversations changed since the cursor: start over with an initial sync", maxConversations)
	}
	for _, convID := range ids {
		uc, err := findUserConversation(ctx, tx, orgID, convID, userID)
		if err != nil {
			return nil, err
		}
		out.Conversations = append(out.Conversations, uc)
		evs, err := findEvents(ctx, tx, orgID, convID, userID, since, out.Cursor)
		if err != nil {
			return nil, err
		}
		out.Events = append(out.Events, evs...)
	}
	return out, nil
}

// changedConversations lists the user's conversations that moved after since, or whose per-user
// state (read marker, cleared history, hides) did.
func changedConversations(ctx context.Context, tx *sql.Tx, orgID, userID string, since int64) ([]string, error) {
	var recent int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM conversations INDEXED BY conversations_changed
		WHERE org_id = ? AND last_event_id > ? LIMIT ?)`, orgID, since, orgScanLimit).Scan(&recent); err != nil {
		return nil, fmt.Errorf("count changed conversations: %w", err)
	}
	byActivity := `SELECT p.conversation_id FROM conversations c INDEXED BY conversations_changed
		JOIN participants p ON p.org_id = c.org_id AND p.conversation_id = c.id AND p.user_id = ?3
		WHERE c.org_id = ?1 AND c.last_event_id > ?2`
	if recent >= orgScanLimit {
		// CROSS JOIN makes SQLite drive from the user's memberships.
		byActivity = `SELECT p.conversation_id FROM participants p INDEXED BY participants_user
			CROSS JOIN conversations c ON c.org_id = p.org_id AND c.id = p.conversation_id
			WHERE p.org_id = ?1 AND p.user_id = ?3 AND c.last_event_id > ?2`
	}
	rows, err := tx.QueryContext(ctx, byActivity+` UNION SELECT conversation_id FROM participants INDEXED BY participants_changed
		WHERE org_id = ?1 AND user_id = ?3 AND changed_event_id > ?2`, orgID, since, userID)
	if err != nil {
		return nil, fmt.Errorf("query changed conversations: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("scan changed conversation: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

func findUserConversation(ctx context.Context, tx *sql.Tx, orgID, convID, userID string) (*chatvault.UserConversation, error) {
	c, err := findConversation(ctx, tx, orgID, convID)
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
	return &chatvault.UserConversation{Conversation: *c, Participant: *ps[0]}, nil
}

func findEvents(ctx context.Context, tx *sql.Tx, orgID, convID, userID string, after, upTo int64) ([]chatvault.Event, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, kind, for_user, subject, seq, message_id, created_at, from_seq FROM events
		WHERE org_id = ? AND conversation_id = ? AND id > ? AND id <= ? AND (for_user IS NULL OR for_user = ?) ORDER BY id`,
		orgID, convID, after, upTo, userID)
	if err != nil {
		return nil, fmt.Errorf("query events: %w", err)
	}
	defer rows.Close()
	var out []chatvault.Event
	for rows.Next() {
		ev := chatvault.Event{OrgID: orgID, ConversationID: convID}
		var forUser, subject, msgID sql.NullString
		var seq, fromSeq sql.NullInt64
		var at int64
		if err := rows.Scan(&ev.ID, &ev.Kind, &forUser, &subject, &seq, &msgID, &at, &fromSeq); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		ev.Subject, ev.Seq, ev.MessageID, ev.At, ev.FromSeq = subject.String, seq.Int64, msgID.String, fromMillis(at), fromSeq.Int64
		out = append(out, ev)
	}
	return out, rows.Err()
}
