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

// Bodies is an operator's access to a sealing store's tables, below its interface: what someone
// holding a copy of the data has, and what restoring an old data backup does.
type Bodies interface {
	// Body returns a message's body as the table holds it.
	Body(t *testing.T, orgID, convID string, seq int64) []byte
	// PutBack writes body into the message and makes it live again, as a data backup taken
	// before the message was destroyed would when restored.
	PutBack(t *testing.T, orgID, convID string, seq int64, body []byte)
}

// SealedOpener returns a fresh, empty store that seals bodies (encryption at rest), and access
// to its tables; both are closed when the test ends.
type SealedOpener func(t *testing.T) (chatvault.Store, Bodies)

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
		fn   func(t *testing.T, s chatvault.Store, b Bodies)
	}{
		{"BodiesAreSealed", testBodiesSealed},
		{"CryptoShredding", testCryptoShredding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, b := open(t)
			tc.fn(t, s, b)
		})
	}
}

func testBodiesSealed(t *testing.T, s chatvault.Store, b Bodies) {
	f := newFixture(t, s, 1)
	c := f.group(t, 0, false)
	for _, text := range []string{"the launch code is 0000", "发射密码是 0000"} {
		m := f.send(t, c, 0, text)
		raw := b.Body(t, f.org.ID, c.ID, m.Seq)
		if !keyring.IsSealed(raw) || bytes.Contains(raw, []byte("0000")) {
			t.Fatalf("stored body of %q = %q; want a sealed envelope", text, raw)
		}
		if got, err := s.FindMessageByID(context.Background(), f.org.ID, c.ID, m.ID); err != nil || got.Text != text {
			t.Fatalf("FindMessageByID() = %v, %v; want %q", got, err, text)
		}
	}
}

// A data key (per conversation and month) is destroyed once no message under it has content
// left, and not before: an expired message in its grace window still needs it. Afterwards a
// copy of an old body cannot be opened, while the next month's key still works.
func testCryptoShredding(t *testing.T, s chatvault.Store, b Bodies) {
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
	janBody := b.Body(t, f.org.ID, c.ID, janMsgs[0].Seq)
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
