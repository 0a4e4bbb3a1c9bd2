package pgtest_test

import (
	"context"
	"testing"

	"github.com/chatvault/chatvault/internal/postgres/pgtest"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestNewDatabaseIsFreshAndSeparate(t *testing.T) {
	t.Parallel()
	c := pgtest.Server(t)
	ctx := context.Background()
	a, b := c.NewDatabase(t), c.NewDatabase(t)
	if a == b {
		t.Fatalf("NewDatabase() returned %s twice", a)
	}
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatalf("Connect(%s) = %v", a, err)
	}
	defer ca.Close(ctx)
	if _, err := ca.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
		t.Fatalf("CREATE TABLE = %v", err)
	}
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatalf("Connect(%s) = %v", b, err)
	}
	defer cb.Close(ctx)
	var n int
	if err := cb.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 't'").Scan(&n); err != nil {
		t.Fatalf("count tables = %v", err)
	}
	if n != 0 {
		t.Fatalf("second database has %d tables named t, want 0", n)
	}
	var enc, collate string
	if err := cb.QueryRow(ctx, "SELECT pg_encoding_to_char(encoding), datcollate FROM pg_database WHERE datname = current_database()").Scan(&enc, &collate); err != nil {
		t.Fatalf("read encoding = %v", err)
	}
	if enc != "UTF8" {
		t.Fatalf("encoding = %s, want UTF8", enc)
	}
}
