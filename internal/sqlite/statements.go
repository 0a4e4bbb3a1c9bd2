package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/chatvault/chatvault/internal/sqlstore"
)

// statements are the hot-path writes, prepared once on the single write connection and bound to
// each batch's transaction. Reads are prepared on first use (stmtCache).
type statements struct {
	nextSeq       *sql.Stmt
	insertMessage *sql.Stmt
	insertIndex   *sql.Stmt
	deleteIndex   *sql.Stmt
	nextEvent     *sql.Stmt
	// Every write of a batch runs in its own savepoint: prepared, since a batch runs them hundreds
	// of times.
	savepoint, rollbackTo, release *sql.Stmt

	all []*sql.Stmt
	// byText finds the write statements by their SQL, for the shared core's statements that run
	// through the writer's transaction (querier.go).
	byText map[string]*sql.Stmt
}

func (s *statements) prepare(write *sql.DB) error {
	var errs []error
	s.byText = map[string]*sql.Stmt{}
	prep := func(db *sql.DB, query string) *sql.Stmt {
		st, err := db.Prepare(query)
		if err != nil {
			errs = append(errs, fmt.Errorf("prepare %q: %w", query, err))
			return nil
		}
		s.all = append(s.all, st)
		return st
	}
	// The shared core's send-path statements, found by their text (querier.go).
	for _, q := range []string{sqlstore.ByIDQuery, sqlstore.ByLegacyClientIDQuery, sqlstore.ActiveMemberQuery, sqlstore.MessageExistsQuery, sqlstore.LatestKeyQuery} {
		s.byText[q] = prep(write, q)
	}
	s.nextSeq = prep(write, `UPDATE conversations SET last_seq = last_seq + 1, last_event_id = ? WHERE org_id = ? AND id = ? RETURNING last_seq`)
	s.nextEvent = prep(write, `UPDATE counters SET value = value + 1 WHERE name = 'event' RETURNING value`)
	s.savepoint = prep(write, `SAVEPOINT w`)
	s.rollbackTo = prep(write, `ROLLBACK TO w`)
	s.release = prep(write, `RELEASE w`)
	s.insertMessage = prep(write, sqlstore.InsertMessageQuery)
	s.insertIndex = prep(write, `INSERT INTO search_index (rowid, tokens) VALUES (?, ?)`)
	s.deleteIndex = prep(write, `DELETE FROM search_index WHERE rowid = ?`)
	if len(errs) > 0 {
		s.close()
		return errors.Join(errs...)
	}
	return nil
}

func (s *statements) close() {
	for _, st := range s.all {
		st.Close()
	}
	s.all = nil
}

// stmtCache prepares each read query the first time it runs and reuses it after. The queries are
// fixed strings (plus a few variants), so the cache stays small.
type stmtCache struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func (c *stmtCache) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.m[query] = st
	return st, nil
}

// QueryContext runs a read query through its prepared statement.
func (c *stmtCache) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// QueryRowContext runs a one-row read query through its prepared statement.
func (c *stmtCache) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return c.db.QueryRowContext(ctx, query, args...) // carries the same error to Scan
	}
	return st.QueryRowContext(ctx, args...)
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = nil
}
