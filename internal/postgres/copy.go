package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// This file is the writing side of `chatvault migrate` (internal/migrate): it describes the
// target's tables, copies batches of rows with COPY, and records after each batch, in the same
// transaction, how far the copy of that table got, so an interrupted copy resumes exactly where it
// stopped. It knows nothing of the source: rows arrive as Go values already shaped for the
// target's column types (int64, string, []byte, nil).

// progressTable records a copy in progress or done, in the target database.
const progressTable = "chatvault_migration"

// notCopied are the target's own tables: its schema versions, its live-delivery outbox, and the
// copy's progress.
var notCopied = []string{"schema_migrations", "event_outbox", progressTable}

// CopyTarget is a database being filled by chatvault migrate.
type CopyTarget struct {
	db *DB // only its pool and partitions: no keys, no listener, no background work
}

// completeMark is the progress row that says a copy finished and was verified.
const completeMark = "(complete)"

// OpenCopyTarget connects to the database at url and makes (or checks) the store's schema and its
// keys schema, exactly as Open does, and nothing else: Open's other work (sealing plain bodies,
// indexing messages that have no search document, which takes event numbers) would change rows
// of a half-made copy under the copy's feet, and then its final comparison. The wrapped data keys
// are copied into the schema chatvault_keys of this database (Options.KeysURL is not supported).
// Open the store with Open once the copy is done.
func OpenCopyTarget(ctx context.Context, url string) (*CopyTarget, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := migrate(ctx, pool, migrations, "migrations", "schema_migrations", ""); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	ks, err := OpenKeyStore(ctx, url)
	if err != nil {
		pool.Close()
		return nil, err
	}
	ks.Close()
	return &CopyTarget{db: &DB{pool: pool, url: url}}, nil
}

// Close closes the connections.
func (c *CopyTarget) Close() { c.db.pool.Close() }

// TargetTable is one table of the target: its columns in order, with their PostgreSQL types
// (information_schema data_type: bigint, integer, text, bytea, ...), and its primary key.
type TargetTable struct {
	Name    string // schema-qualified when not in the default schema: chatvault_keys.data_keys
	Columns []TargetColumn
	Key     []string
}

// TargetColumn is one column of a TargetTable.
type TargetColumn struct {
	Name string
	Type string
}

// Column returns the column named name, and whether there is one.
func (t *TargetTable) Column(name string) (TargetColumn, bool) {
	for _, c := range t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return TargetColumn{}, false
}

// Tables describes the tables a copy fills: every table of the store's schema (partitions
// appear as their parent) and the wrapped data keys' table.
func (c *CopyTarget) Tables(ctx context.Context) (map[string]*TargetTable, error) {
	rows, err := c.db.pool.Query(ctx, `
		SELECT CASE WHEN col.table_schema = current_schema() THEN col.table_name ELSE col.table_schema || '.' || col.table_name END,
			col.column_name, col.data_type
		FROM information_schema.columns col
		JOIN pg_class cls ON cls.relname = col.table_name
		JOIN pg_namespace ns ON ns.oid = cls.relnamespace AND ns.nspname = col.table_schema
		WHERE (col.table_schema = current_schema() OR (col.table_schema = $1 AND col.table_name = 'data_keys'))
			AND cls.relkind IN ('r', 'p') AND NOT cls.relispartition
		ORDER BY 1, col.ordinal_position`, KeysSchema)
	if err != nil {
		return nil, fmt.Errorf("read target columns: %w", err)
	}
	tables := map[string]*TargetTable{}
	for rows.Next() {
		var table string
		var col TargetColumn
		if err := rows.Scan(&table, &col.Name, &col.Type); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read target columns: %w", err)
		}
		if slices.Contains(notCopied, table) {
			continue
		}
		t := tables[table]
		if t == nil {
			t = &TargetTable{Name: table}
			tables[table] = t
		}
		t.Columns = append(t.Columns, col)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read target columns: %w", err)
	}
	for _, t := range tables {
		rows, err := c.db.pool.Query(ctx, `SELECT a.attname FROM pg_index i
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
			WHERE i.indrelid = $1::regclass AND i.indisprimary
			ORDER BY array_position(i.indkey, a.attnum)`, t.Name)
		if err != nil {
			return nil, fmt.Errorf("read primary key of %s: %w", t.Name, err)
		}
		if t.Key, err = collectStrings(rows); err != nil {
			return nil, fmt.Errorf("read primary key of %s: %w", t.Name, err)
		}
	}
	return tables, nil
}

// CopyProgress is how far the copy of one table got.
type CopyProgress struct {
	Table string
	// LastKey is the source's primary key of the last row copied, as JSON (nil: none yet).
	LastKey json.RawMessage
	Rows    int64
	Done    bool
}

// StartCopy prepares the target for a copy from source (a fingerprint of the source's identity)
// and returns the progress of an earlier, interrupted copy from the same source. It refuses a
// target that holds a copy from another source, or, when no copy was started, any data of its
// own in a table other than those listed in seeded (rows the schema itself inserts).
func (c *CopyTarget) StartCopy(ctx context.Context, source string, seeded []string) (map[string]CopyProgress, error) {
	if _, err := c.db.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+progressTable+` (
		table_name TEXT NOT NULL PRIMARY KEY,
		source     TEXT NOT NULL,
		last_key   TEXT,
		rows       BIGINT NOT NULL,
		done       BOOLEAN NOT NULL,
		updated_at BIGINT NOT NULL
	)`); err != nil {
		return nil, fmt.Errorf("create %s: %w", progressTable, err)
	}
	rows, err := c.db.pool.Query(ctx, `SELECT table_name, source, last_key, rows, done FROM `+progressTable)
	if err != nil {
		return nil, fmt.Errorf("read copy progress: %w", err)
	}
	progress := map[string]CopyProgress{}
	for rows.Next() {
		var p CopyProgress
		var src string
		var key *string
		if err := rows.Scan(&p.Table, &src, &key, &p.Rows, &p.Done); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read copy progress: %w", err)
		}
		if src != source {
			rows.Close()
			return nil, fmt.Errorf("the target holds a copy of another store (source %s, this one is %s): migrate into an empty database, "+
				"or drop this one and create it again", src, source)
		}
		if key != nil {
			p.LastKey = json.RawMessage(*key)
		}
		progress[p.Table] = p
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read copy progress: %w", err)
	}
	if len(progress) > 0 {
		return progress, nil
	}
	tables, err := c.Tables(ctx)
	if err != nil {
		return nil, err
	}
	var busy []string
	for name := range tables {
		if slices.Contains(seeded, name) {
			continue
		}
		var held bool
		if err := c.db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+identifier(name).Sanitize()+`)`).Scan(&held); err != nil {
			return nil, fmt.Errorf("check %s is empty: %w", name, err)
		}
		if held {
			busy = append(busy, name)
		}
	}
	if len(busy) > 0 {
		slices.Sort(busy)
		return nil, fmt.Errorf("the target database already holds data (in %s) that no copy put there: migrate into an empty database",
			strings.Join(busy, ", "))
	}
	return progress, nil
}

// CopyBatch appends rows (the values of cols, in order) to table with COPY and records, in the same
// transaction, that the table's copy now ends at lastKey with total rows. Messages get the monthly
// partitions their sent_at needs first.
func (c *CopyTarget) CopyBatch(ctx context.Context, source, table string, cols []string, rows [][]any, lastKey json.RawMessage, total int64) error {
	if table == "messages" {
		if err := c.ensureMonths(ctx, cols, rows); err != nil {
			return err
		}
	}
	return c.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.CopyFrom(ctx, identifier(table), cols, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("copy into %s: %w", table, err)
		}
		return c.record(ctx, tx, source, table, lastKey, total, false)
	})
}

// UpsertRows writes rows into a table the target's schema seeds (its counter, its encryption
// state): each row replaces the one with its primary key. It records the table as done.
func (c *CopyTarget) UpsertRows(ctx context.Context, source string, t *TargetTable, cols []string, rows [][]any) error {
	if len(t.Key) == 0 {
		return fmt.Errorf("upsert into %s: it has no primary key", t.Name)
	}
	var set []string
	for _, col := range cols {
		if !slices.Contains(t.Key, col) {
			set = append(set, fmt.Sprintf("%s = excluded.%s", pgx.Identifier{col}.Sanitize(), pgx.Identifier{col}.Sanitize()))
		}
	}
	ph := make([]string, len(cols))
	for i := range cols {
		ph[i] = fmt.Sprintf("$%d", i+1)
	}
	conflict := "DO NOTHING"
	if len(set) > 0 {
		conflict = "DO UPDATE SET " + strings.Join(set, ", ")
	}
	q := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (%s) %s", identifier(t.Name).Sanitize(), joinIdents(cols),
		strings.Join(ph, ", "), joinIdents(t.Key), conflict)
	return c.inTx(ctx, func(tx pgx.Tx) error {
		for _, r := range rows {
			if _, err := tx.Exec(ctx, q, r...); err != nil {
				return fmt.Errorf("upsert into %s: %w", t.Name, err)
			}
		}
		return c.record(ctx, tx, source, t.Name, nil, int64(len(rows)), true)
	})
}

// Complete reports whether progress holds a finished, verified copy.
func Complete(progress map[string]CopyProgress) bool { return progress[completeMark].Done }

// MarkComplete records that the copy finished and both sides matched.
func (c *CopyTarget) MarkComplete(ctx context.Context, source string) error {
	return c.inTx(ctx, func(tx pgx.Tx) error { return c.record(ctx, tx, source, completeMark, nil, 0, true) })
}

// FinishTable records that the copy of table is complete.
func (c *CopyTarget) FinishTable(ctx context.Context, source, table string, lastKey json.RawMessage, total int64) error {
	return c.inTx(ctx, func(tx pgx.Tx) error { return c.record(ctx, tx, source, table, lastKey, total, true) })
}

// FinishSequences moves every identity sequence past the largest id copied, so the next id the
// store makes does not collide with a copied one.
func (c *CopyTarget) FinishSequences(ctx context.Context, tables map[string]*TargetTable) error {
	for _, t := range tables {
		for _, col := range t.Columns {
			var seq *string
			if err := c.db.pool.QueryRow(ctx, `SELECT pg_get_serial_sequence($1, $2)`, t.Name, col.Name).Scan(&seq); err != nil {
				return fmt.Errorf("find sequence of %s.%s: %w", t.Name, col.Name, err)
			}
			if seq == nil {
				continue
			}
			col := pgx.Identifier{col.Name}.Sanitize()
			if _, err := c.db.pool.Exec(ctx, fmt.Sprintf(`SELECT setval($1, COALESCE(max(%s), 1), max(%s) IS NOT NULL) FROM %s`,
				col, col, identifier(t.Name).Sanitize()), *seq); err != nil {
				return fmt.Errorf("move sequence %s: %w", *seq, err)
			}
		}
	}
	return nil
}

// Count returns how many rows table holds.
func (c *CopyTarget) Count(ctx context.Context, table string) (int64, error) {
	var n int64
	if err := c.db.pool.QueryRow(ctx, `SELECT count(*) FROM `+identifier(table).Sanitize()).Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s: %w", table, err)
	}
	return n, nil
}

// Scan calls fn with the values of cols of every row of table, in no particular order. The values
// are int64 for every integer type, string for text, []byte for bytea, nil for NULL; fn must not
// keep the slice.
func (c *CopyTarget) Scan(ctx context.Context, table string, cols []string, fn func([]any) error) error {
	sel := make([]string, len(cols))
	for i, col := range cols {
		sel[i] = pgx.Identifier{col}.Sanitize()
	}
	rows, err := c.db.pool.Query(ctx, fmt.Sprintf("SELECT %s FROM %s", strings.Join(sel, ", "), identifier(table).Sanitize()))
	if err != nil {
		return fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	vals := make([]any, len(cols))
	for rows.Next() {
		raw, err := rows.Values()
		if err != nil {
			return fmt.Errorf("read %s: %w", table, err)
		}
		for i, v := range raw {
			switch x := v.(type) {
			case int16:
				vals[i] = int64(x)
			case int32:
				vals[i] = int64(x)
			default:
				vals[i] = v
			}
		}
		if err := fn(vals); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", table, err)
	}
	return nil
}

func (c *CopyTarget) record(ctx context.Context, tx pgx.Tx, source, table string, lastKey json.RawMessage, total int64, done bool) error {
	var key any
	if lastKey != nil {
		key = string(lastKey)
	}
	_, err := tx.Exec(ctx, `INSERT INTO `+progressTable+` (table_name, source, last_key, rows, done, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (table_name) DO UPDATE SET last_key = COALESCE(excluded.last_key, `+progressTable+`.last_key),
			rows = excluded.rows, done = excluded.done, updated_at = excluded.updated_at`,
		table, source, key, total, done, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("record copy progress of %s: %w", table, err)
	}
	return nil
}

func (c *CopyTarget) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := c.db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// ensureMonths makes the monthly partitions the batch's sent_at values need.
func (c *CopyTarget) ensureMonths(ctx context.Context, cols []string, rows [][]any) error {
	i := slices.Index(cols, "sent_at")
	if i < 0 {
		return errors.New("copy into messages: no sent_at column")
	}
	seen := map[string]bool{}
	for _, r := range rows {
		ms, ok := r[i].(int64)
		if !ok {
			return fmt.Errorf("copy into messages: sent_at %v is not a whole number of milliseconds", r[i])
		}
		t := time.UnixMilli(ms).UTC()
		name, _, _ := monthOf(t)
		if seen[name] {
			continue
		}
		seen[name] = true
		if err := c.db.ensurePartition(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// identifier quotes a table name that may be schema-qualified.
func identifier(table string) pgx.Identifier {
	return pgx.Identifier(strings.Split(table, "."))
}

func joinIdents(cols []string) string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(out, ", ")
}
