package migrate

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/chatvault/chatvault/internal/sqlite"
)

// The source side: an SQLite data directory, read through database/sql with the driver that
// internal/sqlite registers (this package imports no driver of its own), read-only.

// source is an SQLite data directory opened for reading.
type source struct {
	data, keys *sql.DB
	keysPath   string
}

// sourceTable is one table of the source and where it goes.
type sourceTable struct {
	db     *sql.DB
	name   string // in the source database
	target string // in the target: the same name, or schema-qualified for the keys database
	cols   []sourceColumn
	key    []string // primary key columns, in key order; "rowid" for a table without one
}

type sourceColumn struct {
	name, typ string
}

// openSource opens dir's database and keys database read-only, after checking that no other
// process has them open.
func openSource(ctx context.Context, dir, keysPath string) (*source, error) {
	dataPath := dir + "/" + sqlite.FileName
	if _, err := os.Stat(dataPath); err != nil {
		return nil, fmt.Errorf("no chatvault database in %s: %w", dir, err)
	}
	for _, p := range []string{dataPath, keysPath} {
		busy, err := inUse(p)
		if err != nil {
			return nil, fmt.Errorf("check whether %s is in use: %w", p, err)
		}
		if busy {
			return nil, fmt.Errorf("%s is open in another process (a running chatvault serve?): stop it first, so the copy is "+
				"of one moment and nothing written after it is lost", p)
		}
	}
	s := &source{keysPath: keysPath}
	var err error
	if s.data, err = openReadOnly(dataPath); err != nil {
		return nil, err
	}
	var version int
	if err := s.data.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		s.close()
		return nil, fmt.Errorf("read schema version of %s: %w", dataPath, err)
	}
	if want := sqlite.SchemaVersion(); version != want {
		s.close()
		return nil, fmt.Errorf("%s has schema version %d and this chatvault copies version %d: start and stop this chatvault's "+
			"serve on it once (it upgrades the schema), then migrate", dataPath, version, want)
	}
	if _, err := os.Stat(keysPath); err == nil {
		if s.keys, err = openReadOnly(keysPath); err != nil {
			s.close()
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		s.close()
		return nil, fmt.Errorf("stat keys database: %w", err)
	}
	return s, nil
}

func openReadOnly(path string) (*sql.DB, error) {
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(10000)")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

func (s *source) close() error {
	var errs []error
	for _, db := range []*sql.DB{s.data, s.keys} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	return errors.Join(errs...)
}

// tables lists the source's tables, leaving out SQLite's own and virtual tables (the search
// index, which the target store rebuilds) with their shadow tables.
func (s *source) tables(ctx context.Context, keysSchema string) ([]*sourceTable, error) {
	out, err := listTables(ctx, s.data, "")
	if err != nil {
		return nil, err
	}
	if s.keys != nil {
		kt, err := listTables(ctx, s.keys, keysSchema+".")
		if err != nil {
			return nil, err
		}
		out = append(out, kt...)
	}
	return out, nil
}

func listTables(ctx context.Context, db *sql.DB, prefix string) ([]*sourceTable, error) {
	rows, err := db.QueryContext(ctx, `SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var names []string
	var virtual []string
	for rows.Next() {
		var name string
		var ddl sql.NullString
		if err := rows.Scan(&name, &ddl); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list tables: %w", err)
		}
		if strings.HasPrefix(strings.ToUpper(ddl.String), "CREATE VIRTUAL TABLE") {
			virtual = append(virtual, name)
			continue
		}
		names = append(names, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var out []*sourceTable
	for _, name := range names {
		if slices.ContainsFunc(virtual, func(v string) bool { return strings.HasPrefix(name, v+"_") }) {
			continue // a virtual table's shadow table
		}
		t := &sourceTable{db: db, name: name, target: prefix + name}
		cols, err := db.QueryContext(ctx, `SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid`, name)
		if err != nil {
			return nil, fmt.Errorf("read columns of %s: %w", name, err)
		}
		type pkCol struct {
			name string
			n    int
		}
		var pks []pkCol
		for cols.Next() {
			var c sourceColumn
			var pk int
			if err := cols.Scan(&c.name, &c.typ, &pk); err != nil {
				cols.Close()
				return nil, fmt.Errorf("read columns of %s: %w", name, err)
			}
			t.cols = append(t.cols, c)
			if pk > 0 {
				pks = append(pks, pkCol{c.name, pk})
			}
		}
		cols.Close()
		if err := cols.Err(); err != nil {
			return nil, fmt.Errorf("read columns of %s: %w", name, err)
		}
		slices.SortFunc(pks, func(a, b pkCol) int { return a.n - b.n })
		for _, p := range pks {
			t.key = append(t.key, p.name)
		}
		if len(t.key) == 0 {
			t.key = []string{"rowid"}
		}
		out = append(out, t)
	}
	return out, nil
}

// page reads up to limit rows of cols after the key after (nil: from the start), in primary-key
// order, and returns them with the key of the last one.
func (t *sourceTable) page(ctx context.Context, cols []string, after []any, limit int) ([][]any, []any, error) {
	sel := append(quoteAll(cols), quoteAll(t.key)...)
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + quote(t.name)
	if after != nil {
		ph := strings.TrimSuffix(strings.Repeat("?, ", len(t.key)), ", ")
		q += " WHERE (" + strings.Join(quoteAll(t.key), ", ") + ") > (" + ph + ")"
	}
	q += " ORDER BY " + strings.Join(quoteAll(t.key), ", ") + " LIMIT " + strconv.Itoa(limit)
	rows, err := t.db.QueryContext(ctx, q, after...)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", t.name, err)
	}
	defer rows.Close()
	var out [][]any
	var last []any
	for rows.Next() {
		vals := make([]any, len(sel))
		ptrs := make([]any, len(sel))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", t.name, err)
		}
		out = append(out, vals[:len(cols)])
		last = vals[len(cols):]
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", t.name, err)
	}
	return out, last, nil
}

// countNotNull counts the rows where col holds a value.
func (t *sourceTable) countNotNull(ctx context.Context, col string) (int64, error) {
	var n int64
	err := t.db.QueryRowContext(ctx, "SELECT count(*) FROM "+quote(t.name)+" WHERE "+quote(col)+" IS NOT NULL").Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count %s.%s: %w", t.name, col, err)
	}
	return n, nil
}

func (t *sourceTable) count(ctx context.Context) (int64, error) {
	var n int64
	if err := t.db.QueryRowContext(ctx, "SELECT count(*) FROM "+quote(t.name)).Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s: %w", t.name, err)
	}
	return n, nil
}

// keyJSON encodes a primary key for the progress record, keeping each value's type.
func keyJSON(key []any) (json.RawMessage, error) {
	parts := make([][2]string, len(key))
	for i, v := range key {
		switch x := v.(type) {
		case int64:
			parts[i] = [2]string{"i", strconv.FormatInt(x, 10)}
		case string:
			parts[i] = [2]string{"s", x}
		case []byte:
			parts[i] = [2]string{"b", hex.EncodeToString(x)}
		default:
			return nil, fmt.Errorf("primary key value %v (%T) cannot be recorded", v, v)
		}
	}
	return json.Marshal(parts)
}

func keyFromJSON(raw json.RawMessage) ([]any, error) {
	if raw == nil {
		return nil, nil
	}
	var parts [][2]string
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, fmt.Errorf("read recorded key %s: %w", raw, err)
	}
	out := make([]any, len(parts))
	for i, p := range parts {
		switch p[0] {
		case "i":
			n, err := strconv.ParseInt(p[1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("read recorded key %s: %w", raw, err)
			}
			out[i] = n
		case "s":
			out[i] = p[1]
		case "b":
			b, err := hex.DecodeString(p[1])
			if err != nil {
				return nil, fmt.Errorf("read recorded key %s: %w", raw, err)
			}
			out[i] = b
		default:
			return nil, fmt.Errorf("read recorded key %s: unknown type %q", raw, p[0])
		}
	}
	return out, nil
}

func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = quote(n)
	}
	return out
}
