// Package postgres is chatvault's scale-out store on PostgreSQL (pgx v5). It behaves exactly like
// internal/sqlite (same conformance suite, same schema names) and lets several `chatvault serve`
// processes share one database: writes are ordinary transactions, the change feed is numbered by
// a counter row locked until commit, and committed events reach every process through
// LISTEN/NOTIFY (events.go).
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/sqlstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

//go:embed keymigrations/*.sql
var keyMigrations embed.FS

// KeysSchema is the schema that holds wrapped data keys. Leave it out of data backups
// (pg_dump --exclude-schema=chatvault_keys) and back it up apart, with a short retention.
const KeysSchema = "chatvault_keys"

// Options are Open's settings.
type Options struct {
	// Keyring seals and opens bodies. Nil stores bodies in plain text: for tests. A store that
	// holds sealed bodies refuses to open without it.
	Keyring *keyring.Keyring
	// KeysURL is the database that holds the wrapped data keys (in its schema chatvault_keys);
	// empty: the data database's own schema chatvault_keys.
	KeysURL string
	// Now is the clock for key dates and outbox pruning; default time.Now.
	Now func() time.Time
	// Logger receives the live-delivery listener's reconnects; default slog.Default().
	Logger *slog.Logger
	// MaxConns bounds the data pool; 0: pgxpool's default.
	MaxConns int32
}

// DB is the PostgreSQL store. It implements chatvault.Store.
type DB struct {
	// Core holds the store logic PostgreSQL shares with SQLite.
	*sqlstore.Core

	pool *pgxpool.Pool
	url  string
	now  func() time.Time
	log  *slog.Logger
	keys *KeyStore // nil: bodies in plain text (keys.go)

	parts partitions

	// leader is the lock of the scheduled jobs (lock.go).
	leader *LeaderLock

	// Live delivery: one listener goroutine per DB once a sink is set.
	sinkMu sync.Mutex
	sink   chatvault.EventSink
	stop   context.CancelFunc // stops the background goroutines
	ctx    context.Context
	wg     sync.WaitGroup
}

var (
	_ chatvault.Store          = (*DB)(nil)
	_ chatvault.RetentionStore = (*DB)(nil)
)

// Open connects to the database at url (a postgres:// URL or key=value string), migrates it, and
// checks its keys.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	// A 201 means the message is on disk: commits wait for the WAL flush whatever the server's
	// default says.
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	db := &DB{pool: pool, url: url, now: opts.Now, log: opts.Logger, leader: NewLeaderLock(url, jobsLock)}
	db.Core = sqlstore.New(dialect, engine{db}, poolQ{pool}, poolQ{pool})
	if db.now == nil {
		db.now = time.Now
	}
	if db.log == nil {
		db.log = slog.Default()
	}
	db.ctx, db.stop = context.WithCancel(context.Background())
	if err := migrate(ctx, pool, migrations, "migrations", "schema_migrations", ""); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if err := db.openEncryption(ctx, opts); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.indexBacklog(ctx); err != nil {
		db.Close()
		return nil, err
	}
	db.wg.Add(1)
	go db.pruneOutbox()
	return db, nil
}

// Close stops the background goroutines and closes the pools. It frees the jobs' lock first, so
// that another process takes the jobs over at once.
func (db *DB) Close() error {
	lerr := db.leader.Close()
	db.stop()
	db.wg.Wait()
	if db.keys != nil {
		db.keys.Close()
	}
	db.pool.Close()
	return lerr
}

// Ping checks that the database answers and takes a write transaction.
func (db *DB) Ping(ctx context.Context) error {
	return db.update(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.Exec(ctx, "SELECT 1")
		return err
	})
}

// Pool returns the connection pool, for tools that copy or inspect tables (chatvault migrate).
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// migrationLock is the pg_advisory_xact_lock key under which migrations run, so processes that
// start together apply each migration once. ("chatvault" in ASCII, truncated to 8 bytes.)
const migrationLock = 0x6368617476617531

// migrate applies the embedded migrations in dir that the database lacks, each in its own
// transaction under the advisory lock, recording versions in table (created in schema when set).
func migrate(ctx context.Context, pool *pgxpool.Pool, fsys embed.FS, dir, table, schema string) error {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	for i, name := range names {
		if v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0]); err != nil || v != i+1 {
			return fmt.Errorf("migration %s: file names must be numbered 0001, 0002, ... without gaps", name)
		}
	}
	if schema != "" {
		table = schema + "." + table
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	// Held until commit: a second process waits here, then finds everything applied.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	if schema != "" {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+schema); err != nil {
			return fmt.Errorf("create schema %s: %w", schema, err)
		}
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+table+` (version INTEGER NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("create %s: %w", table, err)
	}
	var current int
	if err := tx.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM `+table).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(names) {
		return chatvault.Errorf(chatvault.EINVALID,
			"the database has schema version %d but this chatvault knows only up to %d: run a newer chatvault, or restore a backup made by this version", current, len(names))
	}
	for i := current; i < len(names); i++ {
		body, err := fsys.ReadFile(dir + "/" + names[i])
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, string(body)); err != nil {
			return fmt.Errorf("migration %s: %w", names[i], err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+table+` (version, applied_at) VALUES ($1, $2)`, i+1, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("migration %s: %w", names[i], err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit migrations: %w", err)
	}
	return nil
}

// SchemaVersion returns the schema version this binary migrates to.
func SchemaVersion() int {
	entries, _ := fs.ReadDir(migrations, "migrations")
	return len(entries)
}

// update runs fn in one transaction and returns once it is committed (synchronous_commit on: on
// disk), or fn failed and nothing it did is kept. Deadlocks and serialization failures, which
// PostgreSQL resolves by aborting one transaction, are retried a few times.
func (db *DB) update(ctx context.Context, fn func(ctx context.Context, tx *wtx) error) error {
	for attempt := 0; ; attempt++ {
		err := db.updateOnce(ctx, fn)
		if attempt < 5 && retryable(err) {
			continue
		}
		if errors.Is(err, sqlstore.ErrRetry) {
			return fmt.Errorf("transaction kept conflicting: %w", err)
		}
		return err
	}
}

func (db *DB) updateOnce(ctx context.Context, fn func(ctx context.Context, tx *wtx) error) error {
	ptx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer ptx.Rollback(context.WithoutCancel(ctx))
	tx := &wtx{Tx: ptx, db: db}
	if err := fn(ctx, tx); err != nil {
		return err
	}
	if err := tx.publish(ctx); err != nil {
		return err
	}
	if err := ptx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func retryable(err error) bool {
	if errors.Is(err, sqlstore.ErrRetry) {
		return true
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func isConstraint(err error, name string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == name
}

func collectStrings(rows pgx.Rows) ([]string, error) {
	return collect(rows, pgx.RowTo[string])
}

// collect reads every row with fn. Like the SQLite store it returns nil, not an empty slice, when
// there are no rows, so both stores' results encode alike.
func collect[T any](rows pgx.Rows, fn pgx.RowToFunc[T]) ([]T, error) {
	out, err := pgx.CollectRows(rows, fn)
	if len(out) == 0 {
		out = nil
	}
	return out, err
}
