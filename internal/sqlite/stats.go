package sqlite

import (
	"context"
	"os"
	"path/filepath"

	"github.com/chatvault/chatvault/internal/sqlstore"
)

// Stats are the store's file sizes and counts that /metrics reports.
type Stats struct {
	DatabaseBytes int64 // chatvault.db
	WALBytes      int64 // its -wal
	KeysBytes     int64 // keys/keys.db and its -wal
	sqlstore.Counts
}

// Stats reads the store's sizes and counts.
func (db *DB) Stats(ctx context.Context) (*Stats, error) {
	counts, err := db.Counts(ctx)
	if err != nil {
		return nil, err
	}
	s := &Stats{Counts: *counts}
	s.DatabaseBytes, s.WALBytes = fileSize(db.path), fileSize(db.path+"-wal")
	keys := KeysPath(filepath.Dir(db.path))
	s.KeysBytes = fileSize(keys) + fileSize(keys+"-wal")
	return s, nil
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}
