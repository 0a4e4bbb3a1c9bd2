package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/postgres"
	"github.com/chatvault/chatvault/internal/postgres/pgtest"
	"github.com/chatvault/chatvault/internal/storetest"
	"github.com/jackc/pgx/v5"
)

func TestConformanceEncrypted(t *testing.T) {
	storetest.RunSealed(t, func(t *testing.T) (chatvault.Store, storetest.Tables) {
		db, url := open(t, postgres.Options{Keyring: fileKeyring(t)})
		return db, tables{raw(t, url)}
	})
}

// Conformance with the keys in another database (Options.KeysURL).
func TestConformanceKeysElsewhere(t *testing.T) {
	storetest.RunSealed(t, func(t *testing.T) (chatvault.Store, storetest.Tables) {
		db, url := open(t, postgres.Options{Keyring: fileKeyring(t), KeysURL: pgtest.Server(t).NewDatabase(t)})
		return db, tables{raw(t, url)}
	})
}

// tables reads and writes the tables directly.
type tables struct{ conn *pgx.Conn }

func (b tables) Row(t *testing.T, orgID, convID string, seq int64) storetest.Row {
	t.Helper()
	var r storetest.Row
	err := b.conn.QueryRow(context.Background(), `SELECT m.body,
			m.doc IS NOT NULL OR EXISTS (SELECT 1 FROM search_docs d WHERE d.org_id = m.org_id AND d.conversation_id = m.conversation_id AND d.seq = m.seq),
			(SELECT count(*) FROM message_versions v WHERE v.org_id = m.org_id AND v.conversation_id = m.conversation_id AND v.seq = m.seq)
		FROM messages m WHERE m.org_id = $1 AND m.conversation_id = $2 AND m.seq = $3`, orgID, convID, seq).Scan(&r.Body, &r.Indexed, &r.Versions)
	if err != nil {
		t.Fatalf("read message row: %v", err)
	}
	return r
}

func (b tables) PutBack(t *testing.T, orgID, convID string, seq int64, body []byte) {
	t.Helper()
	if _, err := b.conn.Exec(context.Background(), `UPDATE messages SET body = $1, state = 'live' WHERE org_id = $2 AND conversation_id = $3 AND seq = $4`,
		body, orgID, convID, seq); err != nil {
		t.Fatalf("put body back: %v", err)
	}
}

// Bodies and versions are sealed in the tables; key material is only in chatvault_keys.
func TestBodiesAreSealed(t *testing.T) {
	t.Parallel()
	db, url := open(t, postgres.Options{Keyring: fileKeyring(t)})
	w := newWorld(t, db)
	c := w.conv(t)
	m := w.send(t, db, c, "the launch code is 0000", jan)
	if _, err := db.EditMessage(context.Background(), w.org.ID, c.ID, m.Seq, 1, "the launch code is 1111", jan); err != nil {
		t.Fatalf("EditMessage() = %v", err)
	}
	conn := raw(t, url)
	for _, q := range []string{`SELECT body FROM messages`, `SELECT body FROM message_versions`} {
		var body []byte
		if err := conn.QueryRow(context.Background(), q).Scan(&body); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if !keyring.IsSealed(body) || bytes.Contains(body, []byte("launch code")) {
			t.Fatalf("%s = %q, want a sealed envelope", q, body)
		}
	}
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM chatvault_keys.data_keys WHERE conversation_id <> '~search-index'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("chatvault_keys.data_keys has %d rows (%v), want 1", n, err)
	}
	// Nothing outside chatvault_keys holds a column that could carry key material.
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM information_schema.columns
		WHERE column_name = 'wrapped' AND table_schema <> 'chatvault_keys'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d columns named wrapped outside chatvault_keys (%v), want 0", n, err)
	}
	versions, err := db.FindMessageVersions(context.Background(), w.org.ID, c.ID, m.Seq)
	if err != nil || len(versions) != 1 || versions[0].Text != "the launch code is 0000" {
		t.Fatalf("FindMessageVersions() = %v, %v; want the first text", versions, err)
	}
	// Opening without the keys is refused.
	if _, err := postgres.Open(context.Background(), url, postgres.Options{}); err == nil {
		t.Fatal("Open(no keyring) on an encrypted store succeeded")
	}
}

// Once every message under a data key is destroyed, the key material is deleted: a copy of the
// old body cannot be opened any more, while the next month's key still works.
func TestCryptoShredding(t *testing.T) {
	t.Parallel()
	db, url := open(t, postgres.Options{Keyring: fileKeyring(t)})
	w := newWorld(t, db)
	c := w.conv(t)
	w.send(t, db, c, "january", jan)
	w.send(t, db, c, "february", jan.AddDate(0, 1, 0))
	conn := raw(t, url)
	var janBody []byte
	if err := conn.QueryRow(context.Background(), `SELECT body FROM messages WHERE seq = 1`).Scan(&janBody); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if n, err := db.DestroyEmptyDataKeys(ctx, w.org.ID, c.ID); err != nil || n != 0 {
		t.Fatalf("DestroyEmptyDataKeys(nothing purged) = %d, %v; want 0", n, err)
	}
	feb := jan.AddDate(0, 0, 20)
	res, err := db.DestroyMessages(ctx, chatvault.DestroyStep{
		Selection: chatvault.Selection{OrgID: w.org.ID, ConversationID: c.ID, Limit: 100, At: feb},
		Batch:     &chatvault.BatchFilter{SentBefore: feb},
	})
	if err != nil || res.Count != 1 {
		t.Fatalf("DestroyMessages() = %+v, %v; want 1 destroyed", res, err)
	}
	if n, err := db.DestroyEmptyDataKeys(ctx, w.org.ID, c.ID); err != nil || n != 1 {
		t.Fatalf("DestroyEmptyDataKeys() = %d, %v; want 1", n, err)
	}
	var keys int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM chatvault_keys.data_keys WHERE conversation_id = $1 AND id = 1`, c.ID).Scan(&keys); err != nil || keys != 0 {
		t.Fatalf("key 1 material rows = %d (%v), want 0", keys, err)
	}
	// The data database remembers that key 1 is gone (so no message is ever sealed under it
	// again); the search index key is not a data key and stays.
	var destroyedAt *int64
	if err := conn.QueryRow(ctx, `SELECT destroyed_at FROM data_keys WHERE conversation_id = $1 AND id = 1`, c.ID).Scan(&destroyedAt); err != nil || destroyedAt == nil {
		t.Fatalf("data_keys row of key 1: destroyed_at %v (%v); want set", destroyedAt, err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM chatvault_keys.data_keys WHERE conversation_id = $1`, keyring.IndexKeyConversation).Scan(&keys); err != nil || keys != 1 {
		t.Fatalf("search index key rows after shredding = %d (%v), want 1", keys, err)
	}
	// Put the old ciphertext back, as a restored data backup would: it no longer opens.
	if _, err := conn.Exec(ctx, `UPDATE messages SET body = $1, state = 'live' WHERE seq = 1`, janBody); err != nil {
		t.Fatal(err)
	}
	_, err = db.FindMessages(ctx, w.org.ID, c.ID, chatvault.MessageQuery{Before: 2, Limit: 10})
	if !errors.Is(err, keyring.ErrDataKeyDestroyed) {
		t.Fatalf("FindMessages(shredded) = %v, want ErrDataKeyDestroyed", err)
	}
	got, err := db.FindMessages(ctx, w.org.ID, c.ID, chatvault.MessageQuery{After: 1, Limit: 10})
	if err != nil || len(got) != 1 || got[0].Text != "february" {
		t.Fatalf("FindMessages(february) = %v, %v", got, err)
	}
}
