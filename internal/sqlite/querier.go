package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/sqlstore"
)

// The adapters below let the shared store core (internal/sqlstore) run on database/sql. Each is
// one pointer wide, so passing one as a sqlstore.Querier does not allocate.

// rows adapts *sql.Rows, whose Close returns an error nobody needs after Err.
type rows struct{ *sql.Rows }

func (r rows) Close() { r.Rows.Close() }

func queryRows(r *sql.Rows, err error) (sqlstore.Rows, error) {
	if err != nil {
		return nil, err
	}
	return rows{r}, nil
}

func execN(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// pool runs one-off statements on a pool.
type pool struct{ *sql.DB }

func (p pool) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	return execN(p.DB.ExecContext(ctx, query, args...))
}

func (p pool) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	return queryRows(p.DB.QueryContext(ctx, query, args...))
}

func (p pool) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return p.DB.QueryRowContext(ctx, query, args...)
}

// snapshot is a read-only transaction.
type snapshot struct{ *sql.Tx }

func (s snapshot) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	return execN(s.Tx.ExecContext(ctx, query, args...))
}

func (s snapshot) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	return queryRows(s.Tx.QueryContext(ctx, query, args...))
}

func (s snapshot) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return s.Tx.QueryRowContext(ctx, query, args...)
}

// Exec, Query and QueryRow make the writer's transaction a sqlstore.Tx. Statements on the hot
// path were prepared once on the write connection (statements.go) and are found by their text.
func (tx *wtx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	if st := tx.db.stmts.byText[query]; st != nil {
		return execN(tx.StmtContext(ctx, st).ExecContext(ctx, args...))
	}
	return execN(tx.ExecContext(ctx, query, args...))
}

func (tx *wtx) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	if st := tx.db.stmts.byText[query]; st != nil {
		return queryRows(tx.StmtContext(ctx, st).QueryContext(ctx, args...))
	}
	return queryRows(tx.QueryContext(ctx, query, args...))
}

func (tx *wtx) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	if st := tx.db.stmts.byText[query]; st != nil {
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, query, args...)
}

// Emit is emit, for the core.
func (tx *wtx) Emit(ctx context.Context, ev chatvault.Event) (int64, error) { return tx.emit(ctx, ev) }

// Exec, Query and QueryRow run reads through their prepared statements.
func (c *stmtCache) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return 0, err
	}
	return execN(st.ExecContext(ctx, args...))
}

func (c *stmtCache) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	return queryRows(c.QueryContext(ctx, query, args...))
}

func (c *stmtCache) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return c.QueryRowContext(ctx, query, args...)
}

// engine is the DB as the core sees it.
type engine struct{ db *DB }

func (e engine) Update(ctx context.Context, fn func(ctx context.Context, tx sqlstore.Tx) error) error {
	return e.db.enqueue(ctx, &writeReq{ctx: ctx, core: fn, done: make(chan error, 1)})
}

func (e engine) View(ctx context.Context, fn func(ctx context.Context, q sqlstore.Querier) error) error {
	tx, err := e.db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback()
	return fn(ctx, snapshot{tx})
}

// dialect is SQLite's: one writer means no lock clauses, and constraint names are not reported.
var dialect = sqlstore.Dialect{
	UniqueViolation: isUniqueViolation,
	Constraint:      func(error, string) bool { return false },
}

// The engine's parts of message handling (keys.go, search.go), for the core.

func (e engine) Reindex(ctx context.Context, tx sqlstore.Tx, m *chatvault.Message) error {
	return e.db.reindex(ctx, tx.(*wtx), m)
}

func (e engine) Unindex(ctx context.Context, tx sqlstore.Tx, orgID, convID string, seqs []int64) error {
	return unindexSeqs(ctx, tx.(*wtx), orgID, convID, sqlstore.SeqList(seqs))
}
