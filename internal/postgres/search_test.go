package postgres_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/postgres"
	"github.com/chatvault/chatvault/internal/search"
)

// find runs a query through the store and returns the candidates' texts, newest first.
func find(t *testing.T, db *postgres.DB, org, query, hiddenFor string) []string {
	t.Helper()
	q, err := search.Parse(query)
	if err != nil {
		t.Fatalf("Parse(%q) = %v", query, err)
	}
	cs, err := db.SearchMessages(context.Background(), chatvault.SearchQuery{OrgID: org, Tokens: q.Tokens(), HiddenFor: hiddenFor, Limit: 100})
	if err != nil {
		t.Fatalf("SearchMessages(%q) = %v", query, err)
	}
	var out []string
	for i, c := range cs {
		if i > 0 && c.Doc >= cs[i-1].Doc {
			t.Errorf("SearchMessages(%q): doc %d after %d, want newest first", query, c.Doc, cs[i-1].Doc)
		}
		out = append(out, c.Message.Text)
	}
	return out
}

func TestSearchFollowsDeletions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, url := open(t, postgres.Options{Keyring: fileKeyring(t)})
	w := newWorld(t, db)
	c := w.conv(t)
	texts := []string{"合同审批 contract alpha", "合同 recall me", "合同 edit before", "合同 hide this", "合同 destroy me"}
	var ms []*chatvault.Message
	for i, s := range texts {
		ms = append(ms, w.send(t, db, c, s, jan.AddDate(0, 0, i)))
	}
	if got := find(t, db, w.org.ID, "合同", ""); len(got) != 5 || got[0] != texts[4] {
		t.Fatalf("search 合同 = %q, want all five, newest first", got)
	}

	if _, err := db.RecallMessage(ctx, w.org.ID, c.ID, ms[1].Seq, jan.AddDate(0, 1, 0)); err != nil {
		t.Fatal(err)
	}
	if got := find(t, db, w.org.ID, "recall", ""); len(got) != 0 {
		t.Errorf("search recall after recall = %q, want nothing", got)
	}
	if _, err := db.EditMessage(ctx, w.org.ID, c.ID, ms[2].Seq, 1, "合同 edit after", jan.AddDate(0, 1, 0)); err != nil {
		t.Fatal(err)
	}
	if got := find(t, db, w.org.ID, "before", ""); len(got) != 0 {
		t.Errorf("search of the edited-away word = %q, want nothing", got)
	}
	if got := find(t, db, w.org.ID, "after", ""); !slices.Equal(got, []string{"合同 edit after"}) {
		t.Errorf("search of the new word = %q, want the edited message", got)
	}
	if err := db.HideMessage(ctx, w.org.ID, c.ID, w.users[1].ID, ms[3].Seq, jan.AddDate(0, 1, 0)); err != nil {
		t.Fatal(err)
	}
	if got := find(t, db, w.org.ID, "hide", w.users[1].ID); len(got) != 0 {
		t.Errorf("search hide for the user who hid it = %q, want nothing", got)
	}
	if got := find(t, db, w.org.ID, "hide", w.users[0].ID); len(got) != 1 {
		t.Errorf("search hide for another user = %q, want the message", got)
	}
	res, err := db.DestroyMessages(ctx, chatvault.DestroyStep{
		Selection: chatvault.Selection{OrgID: w.org.ID, ConversationID: c.ID, Limit: 100, At: jan.AddDate(0, 2, 0)},
		Batch:     &chatvault.BatchFilter{SentBefore: jan.AddDate(0, 0, 5), From: &ms[4].SentAt},
	})
	if err != nil || res.Count != 1 {
		t.Fatalf("DestroyMessages() = %+v, %v; want 1 destroyed", res, err)
	}
	if got := find(t, db, w.org.ID, "合同", ""); len(got) != 3 {
		t.Errorf("search 合同 at the end = %q, want the three live ones", got)
	}

	// The raw tables: one entry per live indexed message, none for the recalled or destroyed,
	// every document number matching its message, and nothing readable.
	conn := raw(t, url)
	var entries, orphans, unindexed int
	if err := conn.QueryRow(ctx, `SELECT count(*),
			count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.org_id = d.org_id AND m.doc = d.doc AND m.seq = d.seq))
		FROM search_docs d`).Scan(&entries, &orphans); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM messages WHERE doc IS NOT NULL AND state <> 'live'`).Scan(&unindexed); err != nil {
		t.Fatal(err)
	}
	if entries != 3 || orphans != 0 || unindexed != 0 {
		t.Errorf("search_docs has %d entries, %d without their message, %d numbers on dead messages; want 3, 0, 0", entries, orphans, unindexed)
	}
	var dump string
	if err := conn.QueryRow(ctx, `SELECT coalesce(string_agg(d::text, ' '), '') || (SELECT count(*) FROM search_keys)::text FROM search_docs d`).Scan(&dump); err != nil {
		t.Fatal(err)
	}
	for _, s := range texts {
		for _, f := range append(strings.Fields(s), "合同", "审批") {
			if len(f) > 2 && strings.Contains(dump, f) {
				t.Errorf("search_docs holds %q in plain text", f)
			}
		}
	}
	if !strings.HasSuffix(dump, "0") {
		t.Errorf("an encrypted store keeps a plain index key in search_keys")
	}
	var keys int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM chatvault_keys.data_keys WHERE conversation_id = $1`, keyring.IndexKeyConversation).Scan(&keys); err != nil || keys != 1 {
		t.Errorf("wrapped index keys = %d (%v), want 1", keys, err)
	}
}

// Two processes index an org's first messages at once: they must agree on one index key.
func TestIndexKeyIsCreatedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kr := fileKeyring(t)
	a, url := open(t, postgres.Options{Keyring: kr})
	b, err := postgres.Open(ctx, url, postgres.Options{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	w := newWorld(t, a)
	convs := []*chatvault.Conversation{w.conv(t), w.conv(t)}
	var wg sync.WaitGroup
	for i, db := range []*postgres.DB{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := &chatvault.Message{OrgID: w.org.ID, ID: newID(), ConversationID: convs[i%2].ID, SenderID: w.users[0].ID,
				Kind: chatvault.KindText, Text: "同时 first words", SentAt: jan}
			if _, err := db.AppendMessage(ctx, m); err != nil {
				t.Errorf("AppendMessage() = %v", err)
			}
		}()
	}
	wg.Wait()
	for _, db := range []*postgres.DB{a, b} {
		if got := find(t, db, w.org.ID, "同时", ""); len(got) != 4 {
			t.Errorf("search from each process = %d hits, want 4", len(got))
		}
	}
	var keys int
	if err := raw(t, url).QueryRow(ctx, `SELECT count(*) FROM chatvault_keys.data_keys WHERE conversation_id = $1`, keyring.IndexKeyConversation).Scan(&keys); err != nil || keys != 1 {
		t.Errorf("wrapped index keys = %d (%v), want 1", keys, err)
	}
}

// What a plain store indexed is indexed again under a wrapped key when the store gets a keyring;
// document numbers without index entries (a copy from SQLite) are indexed afresh at open.
func TestBacklogRebuildsTheIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	plain, url := open(t, postgres.Options{})
	w := newWorld(t, plain)
	c := w.conv(t)
	for i, s := range []string{"早上好 morning", "晚上好 evening", "早上 again"} {
		w.send(t, plain, c, s, jan.AddDate(0, 0, i))
	}
	if got := find(t, plain, w.org.ID, "早上", ""); len(got) != 2 {
		t.Fatalf("plain store: search 早上 = %q, want 2", got)
	}
	plain.Close()
	kr := fileKeyring(t)
	db, err := postgres.Open(ctx, url, postgres.Options{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	conn := raw(t, url)
	var plainKeys int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM search_keys`).Scan(&plainKeys); err != nil || plainKeys != 0 {
		t.Errorf("search_keys after opening with a keyring = %d (%v), want 0", plainKeys, err)
	}
	if got := find(t, db, w.org.ID, "早上", ""); !slices.Equal(got, []string{"早上 again", "早上好 morning"}) {
		t.Errorf("rebuilt index: search 早上 = %q, want both, newest first", got)
	}
	db.Close()

	// As chatvault migrate leaves it: numbers copied, no entries.
	if _, err := conn.Exec(ctx, `DELETE FROM search_docs`); err != nil {
		t.Fatal(err)
	}
	db, err = postgres.Open(ctx, url, postgres.Options{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := find(t, db, w.org.ID, "好", ""); len(got) != 2 {
		t.Errorf("after a copy: search 好 = %q, want 2", got)
	}
}

// An index built under an older tokenizer is dropped and built again the first time a newer one
// opens the database (see the SQLite store's test of the same name for how the old index is stood
// for).
func TestIndexOfAnOlderTokenizerIsRebuiltAtOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kr := fileKeyring(t)
	db, url := open(t, postgres.Options{Keyring: kr})
	w := newWorld(t, db)
	c := w.conv(t)
	w.send(t, db, c, "iPhone15价格多少", jan)
	w.send(t, db, c, "HT2024合同已签", jan.Add(time.Minute))
	w.send(t, db, c, "会议改到三楼", jan.Add(2*time.Minute))
	db.Close()
	conn := raw(t, url)
	if _, err := conn.Exec(ctx, `DELETE FROM search_docs`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE search_state SET tokenizer = 1`); err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(ctx, url, postgres.Options{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for term, want := range map[string][]string{"iphone15": {"iPhone15价格多少"}, "ht2024": {"HT2024合同已签"}, "价格": {"iPhone15价格多少"}, "改到三樓": {"会议改到三楼"}} {
		if got := find(t, db, w.org.ID, term, ""); !slices.Equal(got, want) {
			t.Errorf("after the upgrade: %s finds %q, want %q", term, got, want)
		}
	}
	var version int
	if err := conn.QueryRow(ctx, `SELECT tokenizer FROM search_state`).Scan(&version); err != nil || version != search.TokenizerVersion {
		t.Errorf("recorded tokenizer version = %d (%v), want %d", version, err, search.TokenizerVersion)
	}
}
