package sqlite_test

import (
	"testing"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/sqlite"
	"github.com/chatvault/chatvault/internal/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) chatvault.Store {
		db, err := sqlite.Open(t.TempDir())
		if err != nil {
			t.Fatalf("Open() = %v", err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}
