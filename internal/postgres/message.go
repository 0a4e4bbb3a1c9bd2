package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/sqlstore"
	"github.com/jackc/pgx/v5"
)

const messageColumns = sqlstore.MessageColumns

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
		if dup, err := db.CheckAppend(ctx, coreTx{tx}, m); err != nil || dup {
			return err
		}
		m.Seq = lastSeq + 1
		m.Version, m.State = 1, chatvault.StateLive
		body, err := db.SealBody(ctx, coreTx{tx}, m)
		if err != nil {
			return err
		}
		if sqlstore.Indexable(m) {
			// Before the counter's lock: a first message may make the org's index key.
			if _, err := db.IndexKey(ctx, coreTx{tx}, m.OrgID, true); err != nil {
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
		if sqlstore.Indexable(m) {
			doc = ev
		}
		_, err = tx.Exec(ctx, sqlstore.InsertMessageQuery, m.OrgID, m.ConversationID, m.Seq, m.ID, m.SenderID,
			sqlstore.NullString(m.ClientMsgID), string(m.Kind), body, sqlstore.NullString(m.ReplyTo), sqlstore.Millis(m.SentAt), m.Importance, doc, sqlstore.IDDerived(m))
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
		tx.events = append(tx.events, sqlstore.MessageEvent(m, ev))
		created = true
		return nil
	})
	return created, err
}

func scanMessage(s pgx.Row) (*chatvault.Message, error) { return sqlstore.ScanMessage(s) }
