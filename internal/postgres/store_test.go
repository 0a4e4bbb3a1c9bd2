package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/postgres"
	"github.com/chatvault/chatvault/internal/postgres/pgtest"
)

// Processes that start together on an empty database migrate it once; a binary that finds a newer
// schema than it knows refuses, naming the versions.
func TestMigrations(t *testing.T) {
	t.Parallel()
	url := pgtest.Server(t).NewDatabase(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			db, err := postgres.Open(context.Background(), url, postgres.Options{})
			if err == nil {
				db.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open() #%d = %v", i, err)
		}
	}
	conn := raw(t, url)
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != postgres.SchemaVersion() {
		t.Fatalf("schema_migrations has %d rows, want %d", n, postgres.SchemaVersion())
	}
	if _, err := conn.Exec(context.Background(), `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 0)`, postgres.SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	_, err := postgres.Open(context.Background(), url, postgres.Options{})
	if chatvault.ErrorCode(err) != chatvault.EINVALID {
		t.Fatalf("Open(newer schema) = %v, want EINVALID", err)
	}
}

// Concurrent appends to one conversation from two processes get gap-free, unique seqs, and a
// client_msg_id retried through both processes at once is stored once.
func TestConcurrentAppendsAcrossProcesses(t *testing.T) {
	t.Parallel()
	a, url := open(t, postgres.Options{})
	b, err := postgres.Open(context.Background(), url, postgres.Options{})
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	t.Cleanup(func() { b.Close() })
	w := newWorld(t, a)
	c := w.conv(t)
	const senders, each = 8, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	var seqs []int64
	created := 0
	for i := range senders {
		db := a
		if i%2 == 1 {
			db = b
		}
		wg.Go(func() {
			for j := range each {
				// Pairs of senders share client ids: (i/2, j) is sent twice, once per process.
				m := &chatvault.Message{OrgID: w.org.ID, ID: newID(), ConversationID: c.ID, SenderID: w.users[0].ID,
					ClientMsgID: fmt.Sprintf("c-%d-%d", i/2, j), Kind: chatvault.KindText, Text: "x", SentAt: jan}
				ok, err := db.AppendMessage(context.Background(), m)
				if err != nil {
					t.Errorf("AppendMessage() = %v", err)
					return
				}
				mu.Lock()
				if ok {
					created++
					seqs = append(seqs, m.Seq)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if created != senders/2*each {
		t.Fatalf("created %d messages, want %d (one per client_msg_id)", created, senders/2*each)
	}
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("seqs = %v, want 1..%d without gaps", seqs, created)
		}
	}
	got, err := a.FindMessages(context.Background(), w.org.ID, c.ID, chatvault.MessageQuery{Limit: 1000})
	if err != nil || len(got) != created {
		t.Fatalf("FindMessages() = %d messages, %v; want %d", len(got), err, created)
	}
}

// Messages land in the partition of their month, made on demand.
func TestMonthlyPartitions(t *testing.T) {
	t.Parallel()
	db, _ := open(t, postgres.Options{})
	w := newWorld(t, db)
	c := w.conv(t)
	for _, at := range []time.Time{jan, jan.AddDate(0, 1, 0), jan.AddDate(0, 1, 3), jan.AddDate(1, 0, 0)} {
		w.send(t, db, c, "m", at)
	}
	parts, err := db.Partitions(context.Background())
	if err != nil {
		t.Fatalf("Partitions() = %v", err)
	}
	want := []string{"messages_2026_01", "messages_2026_02", "messages_2027_01"}
	if fmt.Sprint(parts) != fmt.Sprint(want) {
		t.Fatalf("Partitions() = %v, want %v", parts, want)
	}
	got, err := db.FindMessages(context.Background(), w.org.ID, c.ID, chatvault.MessageQuery{Limit: 10})
	if err != nil || len(got) != 4 || got[3].Seq != 4 {
		t.Fatalf("FindMessages() = %d messages, %v; want 4 in seq order", len(got), err)
	}
}
