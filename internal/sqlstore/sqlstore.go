// Package sqlstore is the store logic chatvault's two SQL engines share: orgs, users, devices,
// conversations, messages, the change feed, retention and purge, written once. The engines
// (internal/sqlite, internal/postgres) embed a Core and keep only what truly differs: how a write
// transaction runs (SQLite's group-commit writer, PostgreSQL's transactions with event numbering
// and NOTIFY), search indexes, encryption, backups, partitions and migrations.
//
// Every statement uses numbered placeholders ($1, $2, ...), which both engines accept: pgx
// natively, SQLite as named parameters that the driver binds by number. Where the SQL itself
// differs (GREATEST against MAX, row locks), the Dialect picks the engine's form.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"time"

	"github.com/chatvault/chatvault"
)

// Querier runs statements: a connection pool, a read snapshot or a write transaction, adapted
// thinly from database/sql or pgx.
type Querier interface {
	// Exec runs a statement and returns the number of rows it changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Rows is a result set (pgx.Rows satisfies it as is; *sql.Rows through a one-field adapter).
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Row is one row of a result; Scan returns an error matching sql.ErrNoRows when there is none
// (pgx.ErrNoRows matches it too).
type Row interface {
	Scan(dest ...any) error
}

// Tx is a write transaction of either engine.
type Tx interface {
	Querier
	// Emit numbers an event, records it where sync looks for it, and publishes it at commit.
	Emit(ctx context.Context, ev chatvault.Event) (int64, error)
}

// Engine is what the core needs from an engine.
type Engine interface {
	// Update runs fn in one write transaction and returns once it is durably committed, or fn
	// failed and nothing it did is kept. fn may run more than once (PostgreSQL retries
	// serialization failures), so it must not keep state across runs.
	Update(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
	// View runs fn in one read-only snapshot.
	View(ctx context.Context, fn func(ctx context.Context, q Querier) error) error

	// The search index stays with each engine.

	// Reindex replaces an edited message's index entry.
	Reindex(ctx context.Context, tx Tx, m *chatvault.Message) error
	// Unindex deletes the index entries of the listed messages.
	Unindex(ctx context.Context, tx Tx, orgID, convID string, seqs []int64) error
}

// Dialect is what differs in the SQL and the errors of an engine.
type Dialect struct {
	// Postgres selects PostgreSQL's form of the statements that differ.
	Postgres bool
	// UniqueViolation reports whether err is a unique constraint's violation.
	UniqueViolation func(err error) bool
	// Constraint reports whether err is the violation of the named unique constraint.
	Constraint func(err error, name string) bool
}

// pick returns the statement for the engine: where SQLite and PostgreSQL spell something
// differently, both forms are written out side by side.
func (d *Dialect) pick(sqlite, postgres string) string {
	if d.Postgres {
		return postgres
	}
	return sqlite
}

// ErrRetry asks the engine to run the transaction again: another transaction got there first in a
// way that the next attempt sees (a direct conversation created concurrently).
var ErrRetry = errors.New("retry transaction")

// Core implements the shared part of chatvault.Store over an Engine.
type Core struct {
	d   Dialect
	eng Engine
	// read runs one-off reads; cached runs reads of fixed query text, which SQLite prepares once.
	read, cached Querier
	enc          *Encryption // nil: bodies in plain text (keys.go)
	ikeys        indexKeys
}

// New returns the core of a store. read runs reads whose text varies; cached runs the others.
func New(d Dialect, eng Engine, read, cached Querier) *Core {
	return &Core{d: d, eng: eng, read: read, cached: cached}
}

// Encryption returns the store's sealing state; nil when it stores bodies in plain text.
func (c *Core) Encryption() *Encryption { return c.enc }

// Dialect returns the core's dialect.
func (c *Core) Dialect() *Dialect { return &c.d }

func (c *Core) update(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error {
	return c.eng.Update(ctx, fn)
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// Millis is how both engines store times: Unix milliseconds.
func Millis(t time.Time) int64 { return t.UnixMilli() }

// FromMillis reads a stored time.
func FromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// nullMillis stores an optional time.
func nullMillis(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// fromNullMillis reads an optional time.
func fromNullMillis(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := FromMillis(n.Int64)
	return &t
}

// NullString stores "" as NULL.
func NullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// nullPositive stores 0 (and less) as NULL.
func nullPositive(n int64) sql.NullInt64 { return sql.NullInt64{Int64: n, Valid: n > 0} }

// b2i stores a boolean as 0 or 1: both engines keep booleans in integer columns.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// nullInt stores an optional int.
func nullInt(v *int) sql.NullInt64 {
	if v == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: int64(*v), Valid: true}
}

// fromNullInt reads an optional int.
func fromNullInt(n sql.NullInt64) *int {
	if !n.Valid {
		return nil
	}
	v := int(n.Int64)
	return &v
}

// Args collects positional parameters for SQL built piece by piece.
type Args []any

// Add appends v and returns its placeholder.
func (a *Args) Add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// queryStrings runs a query of one text column.
func queryStrings(ctx context.Context, q Querier, query string, args ...any) ([]string, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// collect reads every row with fn and closes rows. It returns nil, not an empty slice, when there
// are no rows.
func collect[T any](rows Rows, fn func(Row) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := fn(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// seqsIn is the condition "seq is one of seqs" on parameter $3, and that parameter's value.
func (d *Dialect) seqsIn(seqs []int64) (string, any) {
	if d.Postgres {
		return `seq = ANY($3)`, seqs
	}
	return `seq IN (SELECT value FROM json_each($3))`, SeqList(seqs)
}
