package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
)

// Tables is an operator's access to a sealing store's tables, below its interface: what someone
// holding a copy of the data sees, and what restoring an old data backup does.
type Tables interface {
	// Row returns what the tables hold of one message.
	Row(t *testing.T, orgID, convID string, seq int64) Row
	// PutBack writes body into the message and makes it live again, as a data backup taken
	// before the message was destroyed would when restored.
	PutBack(t *testing.T, orgID, convID string, seq int64, body []byte)
}

// Row is what the tables hold of one message.
type Row struct {
	Body     []byte // as stored: sealed
	Versions int    // stored earlier texts
	Indexed  bool   // the message has search index entries
}

// SealedOpener returns a fresh, empty store that seals bodies (encryption at rest), and access
// to its tables; both are closed when the test ends.
type SealedOpener func(t *testing.T) (chatvault.Store, Tables)

// shredder is the crypto-shredding every sealing store provides.
type shredder interface {
	DestroyEmptyDataKeys(ctx context.Context, orgID, convID string) (int, error)
}

// RunSealed runs the whole suite on a store that seals bodies, and the sealing contract besides:
// bodies are sealed in the tables, and once nothing under a data key is left the key is destroyed
// and what it sealed can never be opened again.
func RunSealed(t *testing.T, open SealedOpener) {
	Run(t, func(t *testing.T) chatvault.Store {
		s, _ := open(t)
		return s
	})
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s chatvault.Store, b Tables)
	}{
		{"BodiesAreSealed", testBodiesSealed},
		{"DestroyedRowsHoldNothing", testDestroyedRows},
		{"CryptoShredding", testCryptoShredding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, b := open(t)
			tc.fn(t, s, b)
		})
	}
}

func testBodiesSealed(t *testing.T, s chatvault.Store, b Tables) {
	f := newFixture(t, s, 1)
	c := f.group(t, 0, false)
	for _, text := range []string{"the launch code is 0000", "发射密码是 0000"} {
		m := f.send(t, c, 0, text)
		raw := b.Row(t, f.org.ID, c.ID, m.Seq).Body
		if !keyring.IsSealed(raw) || bytes.Contains(raw, []byte("0000")) {
			t.Fatalf("stored body of %q = %q; want a sealed envelope", text, raw)
		}
		if got, err := s.FindMessageByID(context.Background(), f.org.ID, c.ID, m.ID); err != nil || got.Text != text {
			t.Fatalf("FindMessageByID() = %v, %v; want %q", got, err, text)
		}
	}
}

// What retention destroys leaves nothing in the tables but the tombstone: no body, no earlier
// text, no index entry. Until then (live, or expired within the grace window) all of it stays, so
// a restore gives the message back whole.
func testDestroyedRows(t *testing.T, s chatvault.Store, b Tables) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	f.hourly(t, c, 3)
	for _, seq := range []int64{1, 2} {
		if _, err := s.EditMessage(ctx, f.org.ID, c.ID, seq, 1, "edited apricot", hour(5)); err != nil {
			t.Fatalf("EditMessage(%d) = %v", seq, err)
		}
	}
	check := func(when string, seq int64, body bool, versions int, indexed bool) {
		t.Helper()
		r := b.Row(t, f.org.ID, c.ID, seq)
		if (r.Body != nil) != body || r.Versions != versions || r.Indexed != indexed {
			t.Fatalf("%s, seq %d holds body %v, %d versions, indexed %v; want body %v, %d versions, indexed %v",
				when, seq, r.Body != nil, r.Versions, r.Indexed, body, versions, indexed)
		}
	}
	check("live", 1, true, 1, true)
	if res, err := s.ExpireMessages(ctx, chatvault.ExpireStep{Selection: f.sel(c, 100), SentBefore: hour(2)}); err != nil || res.Count != 2 {
		t.Fatalf("ExpireMessages() = %+v, %v; want 2", res, err)
	}
	check("expired, in the grace window", 1, true, 1, true)
	if res, err := s.DestroyMessages(ctx, chatvault.DestroyStep{Selection: f.sel(c, 1), ExpiredBefore: ptr(hour(200))}); err != nil || res.Count != 1 {
		t.Fatalf("DestroyMessages() = %+v, %v; want 1", res, err)
	}
	check("destroyed", 1, false, 0, false)
	check("expired, not yet destroyed", 2, true, 1, true)
	check("live", 3, true, 0, true)
	if m, err := s.FindMessageByID(ctx, f.org.ID, c.ID, f.messages(t, c)[1].ID); err != nil || m.State != chatvault.StatePurged {
		t.Fatalf("FindMessageByID(destroyed) = %+v, %v; want its tombstone", m, err)
	}
}

// A data key (per conversation and month) is destroyed once no message under it has content
// left, and not before: an expired message in its grace window still needs it. Afterwards a
// copy of an old body cannot be opened, while the next month's key still works.
func testCryptoShredding(t *testing.T, s chatvault.Store, b Tables) {
	ctx := context.Background()
	sh, ok := s.(shredder)
	if !ok {
		t.Fatalf("%T seals bodies but has no DestroyEmptyDataKeys", s)
	}
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	jan := time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)
	feb := jan.AddDate(0, 1, 0)
	var janMsgs []*chatvault.Message
	for i := range 3 {
		janMsgs = append(janMsgs, f.sendAt(t, c, i%2, "january", jan.Add(time.Duration(i)*time.Hour)))
	}
	febMsg := f.sendAt(t, c, 0, "february", feb)
	janBody := b.Row(t, f.org.ID, c.ID, janMsgs[0].Seq).Body
	shred := func(want int) {
		t.Helper()
		if n, err := sh.DestroyEmptyDataKeys(ctx, f.org.ID, c.ID); err != nil || n != want {
			t.Fatalf("DestroyEmptyDataKeys() = %d, %v; want %d", n, err, want)
		}
	}
	shred(0)
	sel := f.sel(c, 100)
	sel.At = feb
	destroy := func(b chatvault.BatchFilter) {
		t.Helper()
		if _, err := s.DestroyMessages(ctx, chatvault.DestroyStep{Selection: sel, Batch: &b}); err != nil {
			t.Fatalf("DestroyMessages() = %v", err)
		}
	}
	destroy(chatvault.BatchFilter{SentBefore: jan.Add(2 * time.Hour)}) // two of three
	shred(0)
	if _, err := s.ExpireMessages(ctx, chatvault.ExpireStep{Selection: sel, SentBefore: feb}); err != nil {
		t.Fatal(err)
	}
	shred(0) // the third is expired, in its grace window: still readable by a restore
	destroy(chatvault.BatchFilter{SentBefore: feb})
	shred(1)
	shred(0)

	if got, err := s.FindMessageByID(ctx, f.org.ID, c.ID, febMsg.ID); err != nil || got.Text != "february" {
		t.Fatalf("FindMessageByID(February) after shredding = %v, %v; want it readable", got, err)
	}
	if got := f.find(t, "february", chatvault.SearchQuery{}); !equal(got, []string{"february"}) {
		t.Fatalf("SearchMessages(february) after shredding = %q; want the February message (the index key is no data key)", got)
	}
	later := f.sendAt(t, c, 1, "february, later", feb.Add(time.Hour))
	if got, err := s.FindMessageByID(ctx, f.org.ID, c.ID, later.ID); err != nil || got.Text != later.Text {
		t.Fatalf("FindMessageByID(sent after shredding) = %v, %v; want it readable", got, err)
	}
	// January's old ciphertext, put back as a restored data backup would, opens no more.
	b.PutBack(t, f.org.ID, c.ID, janMsgs[0].Seq, janBody)
	_, err := s.FindMessageByID(ctx, f.org.ID, c.ID, janMsgs[0].ID)
	if !errors.Is(err, keyring.ErrDataKeyDestroyed) {
		t.Fatalf("FindMessageByID(shredded body put back) = %v; want ErrDataKeyDestroyed", err)
	}
	_, err = s.FindMessages(ctx, f.org.ID, c.ID, chatvault.MessageQuery{Limit: 10})
	if !errors.Is(err, keyring.ErrDataKeyDestroyed) {
		t.Fatalf("FindMessages(over a shredded body) = %v; want ErrDataKeyDestroyed", err)
	}
}
