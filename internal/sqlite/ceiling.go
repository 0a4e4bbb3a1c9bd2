package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
)

// Ceiling is the second reference of an ingest benchmark: the engine alone, on the smallest table
// a message store could have (an integer key and a blob), with the store's durability settings.
// Where the raw reference shows how far chatvault's logic is from its own schema, this shows how
// far the schema is from the engine.
type Ceiling struct {
	db     *sql.DB
	insert *sql.Stmt
	next   int64
}

// CeilingFile is the database file OpenCeiling makes in its directory.
const CeilingFile = "ceiling.db"

// OpenCeiling makes a fresh database in dir with the one table.
func OpenCeiling(dir string) (*Ceiling, error) {
	path := filepath.Join(dir, CeilingFile)
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE minimal (id INTEGER PRIMARY KEY, body BLOB NOT NULL)`); err != nil {
		db.Close()
		return nil, fmt.Errorf("create the minimal table: %w", err)
	}
	insert, err := db.Prepare(`INSERT INTO minimal (id, body) VALUES (?, ?)`)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("prepare the minimal insert: %w", err)
	}
	return &Ceiling{db: db, insert: insert}, nil
}

// Insert writes bodies under the next keys in one transaction and returns once it is durable.
func (c *Ceiling) Insert(ctx context.Context, bodies [][]byte) error {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	st := tx.StmtContext(ctx, c.insert)
	for _, b := range bodies {
		c.next++
		if _, err := st.ExecContext(ctx, c.next, b); err != nil {
			tx.Rollback()
			return fmt.Errorf("insert into the minimal table: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Close closes the database.
func (c *Ceiling) Close() error {
	c.insert.Close()
	return c.db.Close()
}
