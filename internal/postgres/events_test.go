package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/clocktest"
	"github.com/chatvault/chatvault/internal/postgres"
	"github.com/jackc/pgx/v5"
)

// sink collects delivered events.
type sink struct {
	mu     sync.Mutex
	events []chatvault.Event
}

func (s *sink) publish(evs []chatvault.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, evs...)
}

func (s *sink) snapshot() []chatvault.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]chatvault.Event(nil), s.events...)
}

func (s *sink) messages() int {
	n := 0
	for _, ev := range s.snapshot() {
		if ev.Kind == chatvault.EventMessage {
			n++
		}
	}
	return n
}

// checkOrder fails unless numbered events arrive in increasing order, each once.
func checkOrder(t *testing.T, name string, evs []chatvault.Event) {
	t.Helper()
	var last int64
	for _, ev := range evs {
		if ev.ID == 0 {
			continue // revocations carry no number, as in SQLite
		}
		if ev.ID <= last {
			t.Fatalf("%s: event %d (%s) after event %d", name, ev.ID, ev.Kind, last)
		}
		last = ev.ID
	}
}

// Two stores on one database stand for two `chatvault serve` processes: a message sent through
// one reaches the sink of both, whole (decrypted), and every event arrives in number order.
//
// A listener reads a new message's content when it delivers the event (the outbox holds no
// content), so the message it delivers is the message as it is then: an edit committed before
// the listener got to the message event would already be in it. The edit is therefore made only
// once both processes have delivered the messages; otherwise what the first message event
// carries depends on how fast the listeners run (it did under load).
func TestEventsReachEveryProcess(t *testing.T) {
	t.Parallel()
	kr := fileKeyring(t)
	a, url := open(t, postgres.Options{Keyring: kr})
	b, err := postgres.Open(context.Background(), url, postgres.Options{Keyring: kr})
	if err != nil {
		t.Fatalf("Open(second process) = %v", err)
	}
	t.Cleanup(func() { b.Close() })
	var sa, sb sink
	a.SetEventSink(sa.publish)
	b.SetEventSink(sb.publish)
	sinks := map[string]*sink{"A": &sa, "B": &sb}

	w := newWorld(t, a)
	c := w.conv(t)
	m := w.send(t, a, c, "你好 from A", jan)
	w.send(t, b, c, "hello from B", jan)
	for name, s := range sinks {
		clocktest.Until(t, "both messages on "+name, func() bool { return s.messages() == 2 })
		var texts []string
		for _, ev := range s.snapshot() {
			if ev.Kind != chatvault.EventMessage {
				continue
			}
			if ev.Message == nil {
				t.Fatalf("%s: message event %d carries no message", name, ev.ID)
			}
			texts = append(texts, fmt.Sprintf("%d:%s", ev.Message.Seq, ev.Message.Text))
		}
		if want := []string{"1:你好 from A", "2:hello from B"}; fmt.Sprint(texts) != fmt.Sprint(want) {
			t.Fatalf("%s: message events carry %q, want %q", name, texts, want)
		}
	}

	if _, err := a.EditMessage(context.Background(), w.org.ID, c.ID, m.Seq, 1, "edited", jan); err != nil {
		t.Fatalf("EditMessage() = %v", err)
	}
	if _, err := b.SetReadSeq(context.Background(), w.org.ID, c.ID, w.users[1].ID, 2, jan); err != nil {
		t.Fatalf("SetReadSeq() = %v", err)
	}
	last, err := a.LastEventID(context.Background())
	if err != nil {
		t.Fatalf("LastEventID() = %v", err)
	}
	for name, s := range sinks {
		clocktest.Until(t, "events on "+name, func() bool {
			evs := s.snapshot()
			return len(evs) > 0 && evs[len(evs)-1].ID == last
		})
		evs := s.snapshot()
		checkOrder(t, name, evs)
		var kinds []chatvault.EventKind
		for _, ev := range evs {
			kinds = append(kinds, ev.Kind)
		}
		want := []chatvault.EventKind{chatvault.EventCreated, chatvault.EventMessage, chatvault.EventMessage, chatvault.EventEdited, chatvault.EventRead}
		if fmt.Sprint(kinds) != fmt.Sprint(want) {
			t.Fatalf("%s: kinds = %v, want %v", name, kinds, want)
		}
	}
}

// A listener that loses its connection resumes from the last event it delivered: every message
// committed meanwhile is delivered once, in order.
func TestListenerResumesAfterReconnect(t *testing.T) {
	t.Parallel()
	db, url := open(t, postgres.Options{})
	var s sink
	db.SetEventSink(s.publish)
	w := newWorld(t, db)
	c := w.conv(t)
	admin := raw(t, url)
	const rounds, perRound = 5, 10
	killed := map[int32]bool{}
	for r := range rounds {
		// Wait for the listener's new session (not one ended before, which may linger in
		// pg_stat_activity while it exits), end it, then write at once.
		var pid int32
		clocktest.Until(t, "the listener's session", func() bool {
			rows, err := admin.Query(context.Background(), `SELECT pid FROM pg_stat_activity
				WHERE datname = current_database() AND application_name = $1`, postgres.ListenerName)
			if err != nil {
				return false
			}
			pids, _ := pgx.CollectRows(rows, pgx.RowTo[int32])
			for _, p := range pids {
				if !killed[p] {
					pid = p
					return true
				}
			}
			return false
		})
		killed[pid] = true
		if _, err := admin.Exec(context.Background(), `SELECT pg_terminate_backend($1)`, pid); err != nil {
			t.Fatalf("terminate listener: %v", err)
		}
		for i := range perRound {
			w.send(t, db, c, fmt.Sprintf("round %d message %d", r, i), jan)
		}
	}
	clocktest.Until(t, "every message", func() bool { return s.messages() >= rounds*perRound })
	evs := s.snapshot()
	checkOrder(t, "listener", evs)
	seqs := map[int64]bool{}
	for _, ev := range evs {
		if ev.Kind == chatvault.EventMessage {
			if seqs[ev.Seq] {
				t.Fatalf("message seq %d delivered twice", ev.Seq)
			}
			seqs[ev.Seq] = true
		}
	}
	if len(seqs) != rounds*perRound {
		t.Fatalf("delivered %d messages, want %d", len(seqs), rounds*perRound)
	}
}

// Revocations reach live connections in other processes too.
func TestRevocationIsPublished(t *testing.T) {
	t.Parallel()
	db, _ := open(t, postgres.Options{})
	var s sink
	db.SetEventSink(s.publish)
	w := newWorld(t, db)
	d := &chatvault.Device{OrgID: w.org.ID, ID: newID(), UserID: w.users[1].ID, Name: "phone", TokenHash: []byte(newID()), CreatedAt: jan}
	if err := db.CreateDevice(context.Background(), d); err != nil {
		t.Fatalf("CreateDevice() = %v", err)
	}
	if err := db.RevokeDevice(context.Background(), w.org.ID, w.users[1].ID, d.ID, jan); err != nil {
		t.Fatalf("RevokeDevice() = %v", err)
	}
	clocktest.Until(t, "the revocation", func() bool { return len(s.snapshot()) > 0 })
	ev := s.snapshot()[0]
	if ev.Kind != chatvault.EventDeviceRevoked || ev.DeviceID != d.ID || ev.Subject != w.users[1].ID {
		t.Fatalf("event = %+v, want device_revoked for %s", ev, d.ID)
	}
}
