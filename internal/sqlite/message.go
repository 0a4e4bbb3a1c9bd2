package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/sqlstore"
)

const messageColumns = sqlstore.MessageColumns

// AppendMessage allocates the next seq and inserts m, or returns the earlier message with the same
// client_msg_id. It returns after the commit that holds m is on disk.
//
// The single writer serialises appends, so the seq comes from one UPDATE ... RETURNING and the
// event number before it; PostgreSQL locks the conversation row instead.
func (db *DB) AppendMessage(ctx context.Context, m *chatvault.Message) (bool, error) {
	var created bool
	err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
		created = false
		if dup, err := db.CheckAppend(ctx, tx, m); err != nil || dup {
			return err
		}
		ev, err := tx.nextEventID(ctx)
		if err != nil {
			return err
		}
		if err := tx.StmtContext(ctx, db.stmts.nextSeq).QueryRowContext(ctx, ev, m.OrgID, m.ConversationID).Scan(&m.Seq); err != nil {
			return fmt.Errorf("allocate seq: %w", err)
		}
		m.Version, m.State = 1, chatvault.StateLive
		body, err := db.SealBody(ctx, tx, m)
		if err != nil {
			return err
		}
		// The message's event number doubles as its index document number: unique, and in
		// commit order.
		var doc sql.NullInt64
		if sqlstore.Indexable(m) && !db.noIndex {
			doc = sql.NullInt64{Int64: ev, Valid: true}
		}
		_, err = tx.StmtContext(ctx, db.stmts.insertMessage).ExecContext(ctx, m.OrgID, m.ConversationID, m.Seq, m.ID, m.SenderID,
			sqlstore.NullString(m.ClientMsgID), string(m.Kind), body, sqlstore.NullString(m.ReplyTo), sqlstore.Millis(m.SentAt), m.Importance, doc, sqlstore.IDDerived(m))
		if err != nil {
			return fmt.Errorf("insert message: %w", err)
		}
		if doc.Valid {
			if err := db.indexMessage(ctx, tx, m, ev); err != nil {
				return err
			}
		}
		tx.events = append(tx.events, sqlstore.MessageEvent(m, ev))
		created = true
		return nil
	})
	return created, err
}

// openMessage replaces the stored body that scanMessage put in m.Text with its text.
func (db *DB) openMessage(ctx context.Context, m *chatvault.Message) error {
	return db.OpenMessage(ctx, m, nil)
}

func scanMessage(s sqlstore.Row) (*chatvault.Message, error) { return sqlstore.ScanMessage(s) }
