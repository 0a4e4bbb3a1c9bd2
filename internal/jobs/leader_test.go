package jobs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatvault/chatvault/internal/clocktest"
	"github.com/chatvault/chatvault/internal/jobs"
	"github.com/chatvault/chatvault/internal/postgres"
	"github.com/chatvault/chatvault/internal/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Two stores on one PostgreSQL database stand for two serve processes, each with its runner on
// its own clock, electing through the store's lock (DB.Lead) on two real connections.
func TestLeaderLossAndGainOnPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.Server(t).NewDatabase(t)
	open := func() *postgres.DB {
		db, err := postgres.Open(ctx, url, postgres.Options{})
		if err != nil {
			t.Fatalf("Open() = %v", err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	dbA, dbB := open(), open()
	const check = 5 * time.Second
	job := func(c *counter) jobs.Job {
		return jobs.Job{Name: "retention", Schedule: jobs.Every(time.Hour).StartAfter(0), Run: c.run}
	}
	ca, cb := clocktest.New(start), clocktest.New(start)
	a, b := &counter{clock: ca, hold: make(chan error)}, &counter{clock: cb, hold: make(chan error)}
	ha := startRunner(t, ca, jobs.Config{Leader: dbA, LeaderCheck: check}, job(a))
	clocktest.Until(t, "A's first run", func() bool { return a.running.Load() == 1 })
	hb := startRunner(t, cb, jobs.Config{Leader: dbB, LeaderCheck: check}, job(b))
	hb.settle(1)
	for range 3 {
		hb.advance(check, 1)
	}
	if n := len(b.runs()); n != 0 || !strings.Contains(hb.logs.String(), "another instance runs them") {
		t.Fatalf("B ran %d times while A leads; want 0 and a standby line:\n%s", n, hb.logs)
	}

	// A's lock session ends the way a killed process's does; B takes over at its next check.
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(ctx) })
	var ended bool
	if err := admin.QueryRow(ctx, `SELECT pg_terminate_backend(pid, 10000) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&ended); err != nil || !ended {
		t.Fatalf("end the lock holder's session = %v, %v; want true", ended, err)
	}
	cb.Advance(check)
	clocktest.Until(t, "B's first run", func() bool { return b.running.Load() == 1 })

	// A learns at its next check that it no longer leads, and stops its run.
	ca.Advance(check)
	ha.settle(1)
	if n := a.running.Load(); n != 0 {
		t.Fatalf("A's runs in progress after losing the lead = %d; want 0", n)
	}
	if logs := ha.logs.String(); !strings.Contains(logs, "this instance lost the lead") || strings.Contains(logs, "level=ERROR") {
		t.Fatalf("A's log after losing the lead:\n%s", logs)
	}
	for range 3 {
		ha.advance(check, 1)
	}
	if n := len(a.runs()); n != 1 {
		t.Fatalf("A's runs while B leads = %d; want still 1", n)
	}

	// B stops and closes its store: A takes the lead back at its next check.
	hb.stop()
	if err := dbB.Close(); err != nil {
		t.Fatalf("Close(B) = %v", err)
	}
	ca.Advance(check)
	clocktest.Until(t, "A's run after B stopped", func() bool { return a.running.Load() == 1 })
	if n := len(a.runs()); n != 2 {
		t.Fatalf("A's runs = %d; want 2", n)
	}
	if n := strings.Count(ha.logs.String(), "this instance runs them"); n != 2 {
		t.Fatalf("A logged taking the lead %d times; want 2:\n%s", n, ha.logs)
	}
}
