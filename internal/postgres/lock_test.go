package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatvault/chatvault/internal/postgres"
	"github.com/chatvault/chatvault/internal/postgres/pgtest"
)

func TestLeaderLockOneLeaderAndTakeover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.Server(t).NewDatabase(t)
	a, b := postgres.NewLeaderLock(url, "retention"), postgres.NewLeaderLock(url, "retention")
	defer a.Close()
	defer b.Close()

	lead := func(l *postgres.LeaderLock, name string) bool {
		t.Helper()
		ok, err := l.Lead(ctx)
		if err != nil {
			t.Fatalf("%s.Lead() error = %v", name, err)
		}
		return ok
	}
	if !lead(a, "a") {
		t.Fatal("a.Lead() on a free lock = false; want true")
	}
	for i := range 3 {
		if lead(b, "b") {
			t.Fatalf("b.Lead() #%d while a leads = true; want false", i+1)
		}
		if !lead(a, "a") {
			t.Fatalf("a.Lead() #%d while it leads = false; want true", i+1)
		}
	}

	// Another job's lock is independent.
	other := postgres.NewLeaderLock(url, "backup")
	defer other.Close()
	if !lead(other, "other") {
		t.Fatal("Lead() of another job's lock = false; want true")
	}

	// The leader's session ends the way a killed process's does: the server ends it.
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	pid := a.BackendPID()
	var ended bool
	if err := admin.QueryRow(ctx, "SELECT pg_terminate_backend($1, 10000)", pid).Scan(&ended); err != nil || !ended {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v; want true", pid, ended, err)
	}
	if !lead(b, "b") {
		t.Fatal("b.Lead() after the leader's session ended = false; want true (the lock dies with the session)")
	}
	if lead(a, "a") {
		t.Fatal("a.Lead() after losing its session = true; want false (b leads now)")
	}

	// A graceful stop hands over at once.
	if err := b.Close(); err != nil {
		t.Fatalf("b.Close() = %v", err)
	}
	if !lead(a, "a") {
		t.Fatal("a.Lead() after the leader closed = false; want true")
	}
}

func TestLeaderLockUnreachable(t *testing.T) {
	t.Parallel()
	l := postgres.NewLeaderLock("postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", "retention")
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ok, err := l.Lead(ctx)
	if ok || err == nil {
		t.Fatalf("Lead() on an unreachable server = %v, %v; want false and an error", ok, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lead() on a refused connection waited for the deadline: %v", err)
	}
}
