package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/chatvault/chatvault/internal/sqlstore"
)

// Stats are the store's sizes and counts that /metrics reports. Every query is served by a small
// index or a small table, so a scrape costs milliseconds even on a large store.
type Stats struct {
	DatabaseBytes int64 // chatvault.db
	WALBytes      int64 // its -wal
	KeysBytes     int64 // keys/keys.db and its -wal
	// Data keys: in use, and destroyed (crypto-shredded: their rows keep the range they covered).
	LiveDataKeys, DestroyedDataKeys int64
	// OldestExpired is when the longest-waiting expired message was expired (hidden, in the grace
	// window before destruction); zero when none waits.
	OldestExpired time.Time
	// ExportJobs counts export jobs by state.
	ExportJobs map[string]int64
}

// Stats reads the store's sizes and counts.
func (db *DB) Stats(ctx context.Context) (*Stats, error) {
	s := &Stats{ExportJobs: map[string]int64{}}
	s.DatabaseBytes, s.WALBytes = fileSize(db.path), fileSize(db.path+"-wal")
	keys := KeysPath(filepath.Dir(db.path))
	s.KeysBytes = fileSize(keys) + fileSize(keys+"-wal")
	if err := db.read.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE destroyed_at IS NULL), count(*) FILTER (WHERE destroyed_at IS NOT NULL) FROM data_keys`).
		Scan(&s.LiveDataKeys, &s.DestroyedDataKeys); err != nil {
		return nil, fmt.Errorf("count data keys: %w", err)
	}
	// The predicate is that of the messages_expiring partial index, which holds only the
	// messages waiting for destruction.
	var oldest sql.NullInt64
	if err := db.read.QueryRowContext(ctx, `SELECT min(expired_at) FROM messages INDEXED BY messages_expiring WHERE expired_at IS NOT NULL AND state != 'purged'`).
		Scan(&oldest); err != nil {
		return nil, fmt.Errorf("oldest expired message: %w", err)
	}
	if oldest.Valid {
		s.OldestExpired = sqlstore.FromMillis(oldest.Int64)
	}
	rows, err := db.read.QueryContext(ctx, `SELECT state, count(*) FROM export_jobs GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("count export jobs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return nil, err
		}
		s.ExportJobs[state] = n
	}
	return s, rows.Err()
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}
