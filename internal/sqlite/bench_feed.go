package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// RawMemberships is the engine-level reference of `chatvault bench sync`: one prepared, indexed
// query that lists a user's memberships (participants_user) with the change number of each
// conversation (last_event_id), rows scanned as raw bytes. It is the floor of any sync that reads
// every membership of the user, which is what an incremental sync must avoid and what an initial
// sync must at least do. Not a product path.
type RawMemberships struct {
	stmt *sql.Stmt // on the read pool
}

const rawMemberships = `SELECT p.conversation_id, p.role, p.active, p.read_seq, p.cleared_seq, c.kind, c.last_seq, c.last_event_id
	FROM participants p INDEXED BY participants_user
	CROSS JOIN conversations c ON c.org_id = p.org_id AND c.id = p.conversation_id
	WHERE p.org_id = ? AND p.user_id = ?`

// RawMemberships prepares the reference query. Close it before closing db.
func (db *DB) RawMemberships() (*RawMemberships, error) {
	st, err := db.read.Prepare(rawMemberships)
	if err != nil {
		return nil, fmt.Errorf("prepare raw memberships: %w", err)
	}
	return &RawMemberships{stmt: st}, nil
}

// Close releases the prepared statement.
func (r *RawMemberships) Close() error { return r.stmt.Close() }

// List reads every membership of the user and returns how many it read.
func (r *RawMemberships) List(ctx context.Context, orgID, userID string) (int, error) {
	rows, err := r.stmt.QueryContext(ctx, orgID, userID)
	if err != nil {
		return 0, fmt.Errorf("raw memberships: %w", err)
	}
	defer rows.Close()
	return countRaw(rows)
}
