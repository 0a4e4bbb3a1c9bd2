package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Counts are the store's counts that /metrics reports. Every query is served by a small index or
// a small table, so a scrape costs milliseconds even on a large store.
type Counts struct {
	// Data keys: in use, and destroyed (crypto-shredded: their rows keep the range they covered).
	LiveDataKeys, DestroyedDataKeys int64
	// OldestExpired is when the longest-waiting expired message was expired (hidden, in the grace
	// window before destruction); zero when none waits.
	OldestExpired time.Time
	// ExportJobs counts export jobs by state.
	ExportJobs map[string]int64
}

// Counts reads the store's counts.
func (c *Core) Counts(ctx context.Context) (*Counts, error) {
	s := &Counts{ExportJobs: map[string]int64{}}
	if err := c.read.QueryRow(ctx, `SELECT count(*) FILTER (WHERE destroyed_at IS NULL), count(*) FILTER (WHERE destroyed_at IS NOT NULL) FROM data_keys`).
		Scan(&s.LiveDataKeys, &s.DestroyedDataKeys); err != nil {
		return nil, fmt.Errorf("count data keys: %w", err)
	}
	// The predicate is that of the messages_expiring partial index, which holds only the messages
	// waiting for destruction; SQLite is told to use it, PostgreSQL's planner matches it.
	var oldest sql.NullInt64
	if err := c.read.QueryRow(ctx, `SELECT min(expired_at) FROM messages `+c.d.pick("INDEXED BY messages_expiring ", "")+
		`WHERE expired_at IS NOT NULL AND state <> 'purged'`).Scan(&oldest); err != nil {
		return nil, fmt.Errorf("oldest expired message: %w", err)
	}
	if oldest.Valid {
		s.OldestExpired = FromMillis(oldest.Int64)
	}
	rows, err := c.read.Query(ctx, `SELECT state, count(*) FROM export_jobs GROUP BY state`)
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
