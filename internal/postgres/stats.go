package postgres

import (
	"context"
	"fmt"

	"github.com/chatvault/chatvault/internal/sqlstore"
)

// Stats are the store's sizes and counts that /metrics reports.
type Stats struct {
	// DatabaseBytes is the whole database's size on the server (pg_database_size); KeysBytes is
	// the data keys' table with its indexes, wherever the keys are kept.
	DatabaseBytes, KeysBytes int64
	sqlstore.Counts
}

// Stats reads the store's sizes and counts.
func (db *DB) Stats(ctx context.Context) (*Stats, error) {
	counts, err := db.Counts(ctx)
	if err != nil {
		return nil, err
	}
	s := &Stats{Counts: *counts}
	if err := db.pool.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&s.DatabaseBytes); err != nil {
		return nil, fmt.Errorf("database size: %w", err)
	}
	if db.keys != nil {
		if err := db.keys.pool.QueryRow(ctx, `SELECT pg_total_relation_size('`+KeysSchema+`.data_keys')`).Scan(&s.KeysBytes); err != nil {
			return nil, fmt.Errorf("keys size: %w", err)
		}
	}
	return s, nil
}
