package postgres

import (
	"context"
	"fmt"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/sqlstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The adapters below let the shared store core (internal/sqlstore) run on pgx. pgx.Rows and
// pgx.Row already are sqlstore.Rows and sqlstore.Row; only Exec's result differs.

func execN(tag pgconn.CommandTag, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// poolQ runs one-off statements on the pool.
type poolQ struct{ *pgxpool.Pool }

func (p poolQ) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	return execN(p.Pool.Exec(ctx, query, args...))
}

func (p poolQ) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	return p.Pool.Query(ctx, query, args...)
}

func (p poolQ) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return p.Pool.QueryRow(ctx, query, args...)
}

// txQ is a pgx transaction as a sqlstore.Querier.
type txQ struct{ pgx.Tx }

func (t txQ) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	return execN(t.Tx.Exec(ctx, query, args...))
}

func (t txQ) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	return t.Tx.Query(ctx, query, args...)
}

func (t txQ) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return t.Tx.QueryRow(ctx, query, args...)
}

// coreTx is a write transaction as a sqlstore.Tx.
type coreTx struct{ *wtx }

func (t coreTx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	return execN(t.wtx.Exec(ctx, query, args...))
}

func (t coreTx) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	return t.wtx.Query(ctx, query, args...)
}

func (t coreTx) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return t.wtx.QueryRow(ctx, query, args...)
}

func (t coreTx) Emit(ctx context.Context, ev chatvault.Event) (int64, error) { return t.emit(ctx, ev) }

// engine is the DB as the core sees it.
type engine struct{ db *DB }

func (e engine) Update(ctx context.Context, fn func(ctx context.Context, tx sqlstore.Tx) error) error {
	return e.db.update(ctx, func(ctx context.Context, tx *wtx) error { return fn(ctx, coreTx{tx}) })
}

// View reads from one REPEATABLE READ snapshot: the event counter's value N in it means every
// change numbered up to N is in it, and none after (events.go).
func (e engine) View(ctx context.Context, fn func(ctx context.Context, q sqlstore.Querier) error) error {
	tx, err := e.db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	return fn(ctx, txQ{tx})
}

var dialect = sqlstore.Dialect{
	Postgres:        true,
	UniqueViolation: isUniqueViolation,
	Constraint:      isConstraint,
}

// The engine's parts of message handling (keys.go, search.go), for the core.

func (e engine) Reindex(ctx context.Context, tx sqlstore.Tx, m *chatvault.Message) error {
	return e.db.reindex(ctx, tx.(coreTx).wtx, m)
}

func (e engine) Unindex(ctx context.Context, tx sqlstore.Tx, orgID, convID string, seqs []int64) error {
	return unindexSeqs(ctx, tx.(coreTx).wtx, orgID, convID, seqs)
}
