package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Monthly partitions of messages (by sent_at, UTC). A partition is made the first time a message
// of its month is written, by its own statement outside the writing transaction: CREATE TABLE ...
// PARTITION OF locks the parent table, and holding that lock until a write commits would stall
// every reader. Several processes may race to make the same month; IF NOT EXISTS and the
// duplicate errors a race can still raise make it idempotent. Made months are remembered in
// memory, so the hot path costs one map lookup.
type partitions struct {
	mu   sync.Mutex
	made map[string]bool
}

// monthOf returns the partition name and bounds (Unix ms, [from, to)) of the month of t.
func monthOf(t time.Time) (name string, from, to int64) {
	t = t.UTC()
	start := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(0, 1, 0)
	return fmt.Sprintf("messages_%04d_%02d", start.Year(), int(start.Month())), start.UnixMilli(), end.UnixMilli()
}

// ensurePartition makes sure the month of sentAt has its partition.
func (db *DB) ensurePartition(ctx context.Context, sentAt time.Time) error {
	name, from, to := monthOf(sentAt)
	db.parts.mu.Lock()
	made := db.parts.made[name]
	db.parts.mu.Unlock()
	if made {
		return nil
	}
	if sentAt.UTC().Year() < 1 || sentAt.UTC().Year() > 9999 {
		return fmt.Errorf("sent_at %v is out of range", sentAt)
	}
	_, err := db.pool.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF messages FOR VALUES FROM (%d) TO (%d)`, name, from, to))
	var pe *pgconn.PgError
	if err != nil && !(errors.As(err, &pe) && (pe.Code == "42P07" || pe.Code == "23505")) {
		return fmt.Errorf("create partition %s: %w", name, err)
	}
	db.parts.mu.Lock()
	if db.parts.made == nil {
		db.parts.made = map[string]bool{}
	}
	db.parts.made[name] = true
	db.parts.mu.Unlock()
	return nil
}

// Partitions lists the monthly partitions of messages, oldest first.
func (db *DB) Partitions(ctx context.Context) ([]string, error) {
	rows, err := db.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'messages'::regclass ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	return collectStrings(rows)
}
