// Package sqlite is chatvault's embedded store: one SQLite database in WAL mode, written by a single
// writer goroutine that commits concurrent writes together (group commit) and read through a pool of
// read-only connections.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/sqlstore"
	_ "modernc.org/sqlite" // registers the "sqlite" driver; bundles SQLite with FTS5
)

//go:embed migrations/*.sql
var migrations embed.FS

// FileName is the database file inside the data directory.
const FileName = "chatvault.db"

// maxBatch bounds how many writes share one transaction, so one commit's latency stays bounded.
const maxBatch = 512

// DB is the SQLite store. It implements chatvault.Store.
type DB struct {
	// Core holds the store logic SQLite shares with PostgreSQL.
	*sqlstore.Core

	path  string
	write *sql.DB // exactly one connection, owned by the writer goroutine
	read  *sql.DB // read-only pool
	// cached reads through the read pool with each query prepared once (preparing was a fifth of
	// the CPU of a request).
	cached *stmtCache

	reqs    chan *writeReq
	wg      sync.WaitGroup
	closeMu sync.RWMutex
	closed  bool

	stmts     statements
	sink      chatvault.EventSink
	observe   atomic.Pointer[CommitObserver] // see SetCommitObserver
	keys      *KeyStore                      // nil: bodies in plain text (see keys.go)
	noIndex   bool                           // see Options.NoSearchIndex
	stopMerge chan struct{}
	mergeDone chan struct{}
}

var (
	_ chatvault.Store          = (*DB)(nil)
	_ chatvault.RetentionStore = (*DB)(nil)
)

// Open opens (creating if needed) the database in dir, migrates it, and starts the writer. Bodies
// are stored in plain text; use OpenWith and a keyring to encrypt them.
func Open(dir string) (*DB, error) { return OpenWith(dir, Options{}) }

// OpenWith is Open with options: with opts.Keyring every body is sealed (see keys.go).
func OpenWith(dir string, opts Options) (*DB, error) {
	path := filepath.Join(dir, FileName)
	if err := privateDatabase(path); err != nil {
		return nil, err
	}
	write, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	if err := migrate(write); err != nil {
		write.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	read, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	n := max(4, 2*runtime.NumCPU())
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	read.SetConnMaxLifetime(0)

	db := &DB{path: path, write: write, read: read, reqs: make(chan *writeReq, 4*maxBatch)}
	db.cached = &stmtCache{db: read, m: map[string]*sql.Stmt{}}
	db.Core = sqlstore.New(dialect, engine{db}, pool{read}, db.cached)
	if err := db.stmts.prepare(write); err != nil {
		db.write.Close()
		db.read.Close()
		return nil, err
	}
	db.wg.Add(1)
	go db.writer()
	if err := db.openEncryption(context.Background(), dir, opts); err != nil {
		db.Close()
		return nil, err
	}
	db.noIndex = opts.NoSearchIndex
	if db.noIndex {
		if _, err := db.write.Exec(`UPDATE store_encryption SET search_indexed = 0`); err != nil {
			db.Close()
			return nil, fmt.Errorf("mark search index stale: %w", err)
		}
	} else if err := db.indexBacklog(context.Background()); err != nil {
		db.Close()
		return nil, err
	}
	db.stopMerge, db.mergeDone = make(chan struct{}), make(chan struct{})
	go db.mergeIndex(indexMergeEvery)
	return db, nil
}

// dsn builds the connection string. synchronous=FULL makes every commit fsync the WAL before it
// returns, which is what lets a 201 mean "on disk"; group commit keeps that affordable.
//
// SQLite's default page cache is 2 MiB per connection: against a database of hundreds of MiB
// every insert into the random-keyed indexes then reads pages back through system calls (the
// largest single cost in a profile of API ingest). The writer gets 128 MiB; readers 16 MiB each
// and a shared memory map of the file, so they read the OS page cache without a copy.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)", "mmap_size(1073741824)"} {
		q.Add("_pragma", p)
	}
	if readOnly {
		q.Add("_pragma", "query_only(1)")
		q.Add("_pragma", "cache_size(-16384)")
	} else {
		q.Set("_txlock", "immediate")
		q.Add("_pragma", "cache_size(-131072)")
	}
	return "file:" + path + "?" + q.Encode()
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Close stops taking writes, finishes the queued ones, and closes the database.
func (db *DB) Close() error {
	db.closeMu.Lock()
	if db.closed {
		db.closeMu.Unlock()
		return nil
	}
	db.closed = true
	db.closeMu.Unlock()
	if db.stopMerge != nil {
		close(db.stopMerge)
		<-db.mergeDone // it writes through the writer: stop it first
	}
	db.closeMu.Lock()
	close(db.reqs)
	db.closeMu.Unlock()
	db.wg.Wait()
	db.stmts.close()
	db.cached.close()
	var keys error
	if db.keys != nil {
		keys = db.keys.Close()
	}
	return errors.Join(keys, db.read.Close(), db.write.Close())
}

// Ping checks that the database takes a write (one page, committed and synced like any other)
// and that its file system has room for more: a disk that is full, read-only or failing makes
// the server unready before clients find out by losing sends.
func (db *DB) Ping(ctx context.Context) error {
	err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, "UPDATE store_encryption SET sealed = sealed")
		return err
	})
	if err != nil {
		return err
	}
	if free := freeBytes(filepath.Dir(db.path)); free >= 0 && free < minFree {
		return fmt.Errorf("%w: %d bytes free on the data directory's file system", errStorageFull, free)
	}
	return nil
}

func migrate(db *sql.DB) error {
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	var current int
	if err := db.QueryRow("PRAGMA user_version").Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(names) {
		return chatvault.Errorf(chatvault.EINVALID,
			"the database has schema version %d but this chatvault knows only up to %d: run a newer chatvault, or restore a backup made by this version", current, len(names))
	}
	for i := current; i < len(names); i++ {
		version, err := strconv.Atoi(strings.SplitN(names[i], "_", 2)[0])
		if err != nil || version != i+1 {
			return fmt.Errorf("migration %s: file names must be numbered 0001, 0002, ... without gaps", names[i])
		}
		body, err := migrations.ReadFile("migrations/" + names[i])
		if err != nil {
			return err
		}
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", names[i], err)
		}
		if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", version)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", names[i], err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %s: %w", names[i], err)
		}
	}
	return nil
}

// SchemaVersion returns the schema version this binary migrates to.
func SchemaVersion() int {
	entries, _ := fs.ReadDir(migrations, "migrations")
	return len(entries)
}

func isUniqueViolation(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}
