package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/chatvault/chatvault/internal/sqlstore"
)

// This file reads a data directory's databases without changing them: for chatvault doctor, which
// runs beside a server, and for the integrity check serve makes before it opens the store.

// DamagedError is the refusal of a database file whose integrity check found problems.
type DamagedError struct {
	Path     string
	Problems []string // what quick_check reported, at most a few lines
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("%s is damaged (integrity check: %s)", e.Path, strings.Join(e.Problems, "; "))
}

// maxProblems bounds the lines of a quick_check report kept: a badly damaged file reports one per
// page, and the first few say enough.
const maxProblems = 5

// FileInfo is a database file and its write-ahead log.
type FileInfo struct {
	Path     string `json:"path"`
	Exists   bool   `json:"exists"`
	Bytes    int64  `json:"bytes"`     // the main file
	WALBytes int64  `json:"wal_bytes"` // its -wal file; 0 when there is none
	// Problems are what quick_check found; empty when the file is sound.
	Problems []string `json:"problems,omitempty"`
}

// Inspection is what Inspect read.
type Inspection struct {
	Data FileInfo `json:"data"`
	Keys FileInfo `json:"keys"`
	// SchemaVersion is the data file's schema; Want is what this binary migrates to.
	SchemaVersion int `json:"schema_version"`
	Want          int `json:"schema_want"`
	// Sealed: bodies are encrypted; LiveKeys: data keys in use by messages.
	Sealed   bool `json:"sealed"`
	LiveKeys int  `json:"live_keys"`
	// Samples is one wrapped key per KEK from the keys database, to check the keyring opens them.
	Samples []sqlstore.KeySample `json:"-"`
}

// Inspect reads the databases of data directory dir read-only: sizes, schema version, the
// encryption state and quick_check of each file. It creates nothing: a missing file is reported
// as such. SQLite's own locks make it safe beside a running server (a reader of a WAL database).
func Inspect(ctx context.Context, dir string) (*Inspection, error) {
	in := &Inspection{Want: SchemaVersion()}
	var err error
	if in.Data, err = fileInfo(filepath.Join(dir, FileName)); err != nil {
		return nil, err
	}
	if in.Keys, err = fileInfo(KeysPath(dir)); err != nil {
		return nil, err
	}
	if in.Data.Exists {
		err := withReadOnly(in.Data.Path, func(db *sql.DB) error {
			if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&in.SchemaVersion); err != nil {
				return fmt.Errorf("read schema version: %w", err)
			}
			if in.Data.Problems, err = quickCheck(ctx, db); err != nil || len(in.Data.Problems) > 0 {
				return err
			}
			if in.SchemaVersion >= 3 { // 0003_keys made the encryption state
				in.Sealed, in.LiveKeys, err = sqlstore.EncryptionState(ctx, pool{db})
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("inspect %s: %w", in.Data.Path, err)
		}
	}
	if in.Keys.Exists {
		err := withReadOnly(in.Keys.Path, func(db *sql.DB) error {
			var err error
			if in.Keys.Problems, err = quickCheck(ctx, db); err != nil || len(in.Keys.Problems) > 0 {
				return err
			}
			var v int
			if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil || v == 0 {
				return err // an empty keys database: no data keys yet
			}
			in.Samples, err = (&KeyStore{path: in.Keys.Path, db: db}).Samples(ctx)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("inspect %s: %w", in.Keys.Path, err)
		}
	}
	return in, nil
}

// CheckIntegrity checks the write-ahead log and runs quick_check on each of the data directory's
// databases that exist, and returns a *DamagedError for the first one that is damaged. The logs
// are read as files: call it with the data directory locked, no process writing.
func CheckIntegrity(ctx context.Context, dir string) error {
	for _, path := range []string{filepath.Join(dir, FileName), KeysPath(dir)} {
		fi, err := fileInfo(path)
		if err != nil || !fi.Exists {
			if err != nil {
				return err
			}
			continue
		}
		// The log first: opening the database recovers it, and stops quietly at a damaged frame.
		if problems, err := checkWAL(path); err != nil {
			return err
		} else if len(problems) > 0 {
			return &DamagedError{Path: path, Problems: problems}
		}
		err = withReadOnly(path, func(db *sql.DB) error {
			problems, err := quickCheck(ctx, db)
			if err == nil && len(problems) > 0 {
				err = &DamagedError{Path: path, Problems: problems}
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func fileInfo(path string) (FileInfo, error) {
	fi := FileInfo{Path: path}
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fi, nil
	}
	if err != nil {
		return fi, fmt.Errorf("stat %s: %w", path, err)
	}
	fi.Exists, fi.Bytes = true, st.Size()
	if st, err := os.Stat(path + "-wal"); err == nil {
		fi.WALBytes = st.Size()
	}
	return fi, nil
}

// withReadOnly opens path read-only (never creating it) for fn.
func withReadOnly(path string, fn func(*sql.DB) error) error {
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "query_only(1)")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	err = fn(db)
	return errors.Join(err, db.Close())
}

// quickCheck runs PRAGMA quick_check: every page and index entry is read and checked for
// structure (not that index contents match their tables, which integrity_check adds at several
// times the cost). A file damaged past reading reports as a problem, not as an error of the check.
func quickCheck(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		if corrupt(err) {
			return []string{err.Error()}, nil
		}
		return nil, fmt.Errorf("quick_check: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, err
		}
		if line != "ok" && len(problems) < maxProblems {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		if corrupt(err) {
			return append(problems, err.Error()), nil
		}
		return nil, fmt.Errorf("quick_check: %w", err)
	}
	return problems, nil
}

// corrupt reports whether err is SQLite's report of a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB).
func corrupt(err error) bool {
	s := err.Error()
	return strings.Contains(s, "malformed") || strings.Contains(s, "not a database") || strings.Contains(s, "SQLITE_CORRUPT") ||
		strings.Contains(s, "SQLITE_NOTADB")
}
