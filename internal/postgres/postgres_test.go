package postgres_test

import (
	"context"
	"testing"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/postgres"
	"github.com/chatvault/chatvault/internal/postgres/pgtest"
	"github.com/chatvault/chatvault/internal/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// open opens a store on a fresh database, closed when t ends.
func open(t testing.TB, opts postgres.Options) (*postgres.DB, string) {
	t.Helper()
	url := pgtest.Server(t).NewDatabase(t)
	db, err := postgres.Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, url
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) chatvault.Store {
		db, _ := open(t, postgres.Options{})
		return db
	})
}
