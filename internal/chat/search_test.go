package chat_test

// The search exactness test: over a generated corpus of mixed Chinese and English messages,
// encrypted at rest, with hides, recalls, cleared history, members who left and retention purges
// applied, every search returns exactly what a brute-force scan of the plain text the searcher may
// see returns: no misses, no extras. The scan reads history through the ordinary read path and
// matches with its own code, not internal/search's.

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/audit"
	"github.com/chatvault/chatvault/internal/bench"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/clocktest"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/migrate"
	"github.com/chatvault/chatvault/internal/postgres"
	"github.com/chatvault/chatvault/internal/postgres/pgtest"
	"github.com/chatvault/chatvault/internal/retention"
	"github.com/chatvault/chatvault/internal/sqlite"
)

// corpusSize is the generated corpus; the issue asks for at least 100,000 messages. -short runs a
// smaller one.
func corpusSize() int {
	if testing.Short() {
		return 20_000
	}
	return 100_000
}

type searcher struct {
	name  string
	actor chatvault.Actor
	scope string
	texts map[string]string // ref(message) -> canonical text, of what the searcher may see
	refs  []string          // the keys of texts, sorted, so every store draws the same queries
}

// ref names a message the same way on every store: a message sent during the test gets a new id
// on each, but the same conversation and seq.
func ref(m *chatvault.Message) string { return fmt.Sprintf("%s/%d", m.ConversationID, m.Seq) }

func TestMain(m *testing.M) { pgtest.Main(m) }

// exactStore is a store holding the generated corpus, sealed and indexed.
type exactStore struct {
	chatvault.Store
	shredder retention.Shredder
	// noPlaintext checks the store's raw files for plain text of what was indexed; nil where the
	// engine's own tests check that instead.
	noPlaintext func(t *testing.T)
}

// exactEngine opens the corpus d in a store, from dir (which it may use).
type exactEngine struct {
	name string
	size int
	open func(t *testing.T, dir string, d *bench.Dataset) exactStore
}

// openSQLite loads d into a SQLite store in dir and opens it with a keyring, which seals every body
// and indexes the loaded messages under a wrapped key.
func openSQLite(t *testing.T, dir string, d *bench.Dataset) exactStore {
	db, _ := loadSQLite(t, dir, d)
	t.Cleanup(func() { db.Close() })
	return exactStore{Store: db, shredder: db, noPlaintext: func(t *testing.T) { checkNoPlaintext(t, dir, d) }}
}

// openPostgres loads d as openSQLite does and copies it into PostgreSQL with chatvault migrate,
// which leaves the index to the PostgreSQL store to rebuild when it opens.
func openPostgres(t *testing.T, dir string, d *bench.Dataset) exactStore {
	ctx := context.Background()
	db, p := loadSQLite(t, dir, d)
	if err := db.Close(); err != nil { // chatvault migrate reads a stopped store
		t.Fatal(err)
	}
	url := pgtest.Server(t).NewDatabase(t)
	target, err := postgres.OpenCopyTarget(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Run(ctx, migrate.Options{From: dir, Target: target}); err != nil {
		t.Fatalf("migrate.Run() = %v", err)
	}
	target.Close()
	pdb, err := postgres.Open(ctx, url, postgres.Options{Keyring: keyring.New(p, 0)}) // indexes the copy
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pdb.Close() })
	return exactStore{Store: pdb, shredder: pdb}
}

func loadSQLite(t *testing.T, dir string, d *bench.Dataset) (*sqlite.DB, keyring.Provider) {
	t.Helper()
	ctx := context.Background()
	load, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := sqlite.BulkData{Users: d.Users}
	for _, o := range d.Orgs {
		data.Orgs = append(data.Orgs, o.Org)
	}
	for _, c := range d.Convs {
		data.Conversations = append(data.Conversations, sqlite.BulkConversation{Conversation: c.Conversation, Members: c.Members[1:]})
	}
	data.Messages = d.Messages()
	if err := load.BulkLoad(ctx, data); err != nil {
		t.Fatal(err)
	}
	if err := load.Close(); err != nil {
		t.Fatal(err)
	}
	p, err := keyring.OpenFile(filepath.Join(dir, sqlite.KeysDir, "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.OpenWith(dir, sqlite.Options{Keyring: keyring.New(p, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return db, p
}

// TestSearchIsExact runs the same scenario on each store. PostgreSQL always uses the short
// corpus (the copy and its index rebuild double the cost), so SQLite runs that corpus too, and
// PostgreSQL must give the same answers as SQLite, in the same order, besides matching the oracle.
func TestSearchIsExact(t *testing.T) {
	if testing.Short() {
		t.Log("short mode: a smaller corpus")
	}
	const pgSize = 20_000
	engines := []exactEngine{{"sqlite", corpusSize(), openSQLite}}
	if corpusSize() != pgSize {
		engines = append(engines, exactEngine{"sqlite-short", pgSize, openSQLite})
	}
	engines = append(engines, exactEngine{"postgres", pgSize, openPostgres})
	answers := map[int]map[string][]string{} // by corpus size: the first engine's answers, by searcher and query
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			got := testSearchIsExact(t, e.size, e.open, answers[e.size])
			if answers[e.size] == nil {
				answers[e.size] = got
			}
		})
	}
}

// testSearchIsExact runs the scenario and returns its answers. With reference set it also checks
// that every answer is the reference's, in the same order.
func testSearchIsExact(t *testing.T, size int, open func(*testing.T, string, *bench.Dataset) exactStore, reference map[string][]string) map[string][]string {
	ctx := context.Background()
	dir := t.TempDir()
	started := time.Now()
	d := bench.NewDataset(bench.Params{Seed: 7, Messages: size, PasswordHash: "unused"})
	db := open(t, dir, d)
	t.Logf("loaded, sealed and indexed %d messages in %v", size, time.Since(started).Round(time.Millisecond))

	clock := clocktest.New(bench.End.Add(time.Hour))
	var kr *keyring.Keyring
	if k, ok := db.Store.(interface{ Keyring() *keyring.Keyring }); ok {
		kr = k.Keyring()
	}
	aud := audit.New(db, kr, clock)
	ret := retention.New(db, aud, clock, nil, db.shredder)
	svc := chat.NewService(db, clock, chat.Config{Classifier: ret, Audit: aud})
	org := d.Orgs[0]
	r := rand.New(rand.NewPCG(7, 11))

	// Pick searchers: the members in the most conversations.
	users := slices.Clone(org.Users[1:])
	slices.SortFunc(users, func(a, b *chatvault.User) int { return len(d.UserConvs[b.ID]) - len(d.UserConvs[a.ID]) })
	members := users[:6]
	actor := func(u *chatvault.User) chatvault.Actor {
		return chatvault.Actor{OrgID: u.OrgID, UserID: u.ID, Roles: u.Roles}
	}

	// Live traffic through the service (indexed as it is sent), then every kind of deletion.
	var recent []*chatvault.Message
	for i := range 300 {
		u := members[i%len(members)]
		convs := d.UserConvs[u.ID]
		c := d.Convs[convs[r.IntN(len(convs))]]
		text := bench.Body(r)
		if i%2 == 1 { // half of it written in traditional characters
			text = traditional(t, text)
		}
		m, _, err := svc.Send(ctx, actor(u), c.ID, chat.SendRequest{ClientMsgID: fmt.Sprint("live-", i), Text: text})
		if err != nil {
			t.Fatal(err)
		}
		recent = append(recent, m)
	}
	for i, m := range recent {
		a := chatvault.Actor{OrgID: org.Org.ID, UserID: m.SenderID}
		switch i % 10 {
		case 0:
			if _, err := svc.Recall(ctx, a, m.ConversationID, m.ID); err != nil {
				t.Fatal(err)
			}
		case 1:
			if _, err := svc.Edit(ctx, a, m.ConversationID, m.ID, bench.Body(r)+" 编辑后", 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, u := range members {
		convs := d.UserConvs[u.ID]
		for j := range 40 { // hides, spread over the member's conversations
			c := d.Convs[convs[j%len(convs)]]
			page, err := svc.Messages(ctx, actor(u), c.ID, chat.Page{Limit: 20})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Messages) > 0 {
				m := page.Messages[r.IntN(len(page.Messages))]
				if err := svc.Hide(ctx, actor(u), c.ID, m.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := svc.ClearHistory(ctx, actor(u), d.Convs[convs[len(convs)-1]].ID); err != nil {
			t.Fatal(err)
		}
	}
	for _, ci := range d.UserConvs[members[1].ID] { // a member leaves a group: what came after is not theirs
		if c := d.Convs[ci]; c.Kind == chatvault.Group {
			if err := svc.RemoveMember(ctx, actor(members[1]), c.ID, members[1].ID); err != nil {
				t.Fatal(err)
			}
			for _, id := range c.Members {
				if id != members[1].ID {
					a := chatvault.Actor{OrgID: org.Org.ID, UserID: id}
					if _, _, err := svc.Send(ctx, a, c.ID, chat.SendRequest{ClientMsgID: "after-leaving", Text: "离开之后 after leaving"}); err != nil {
						t.Fatal(err)
					}
					break
				}
			}
			break
		}
	}
	// Retention destroys the oldest tenth or so (no grace window: destroyed at once).
	policy := chatvault.DefaultPolicy()
	policy.DefaultDays, policy.GraceDays = 1000, 0
	if err := db.SavePolicy(ctx, org.Org.ID, &policy); err != nil {
		t.Fatal(err)
	}
	run, err := ret.Run(ctx, org.Org.ID, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if run.Totals["destroyed"] == 0 {
		t.Fatalf("retention run destroyed nothing: %+v", run.Totals)
	}
	t.Logf("retention destroyed %d messages", run.Totals["destroyed"])

	// The raw files hold no plain text of what was indexed.
	if db.noPlaintext != nil {
		db.noPlaintext(t)
	}
	t.Logf("traffic, deletions and retention done at %v", time.Since(started).Round(time.Millisecond))

	// What each searcher may see, read through the ordinary read path.
	var searchers []*searcher
	for i, u := range members {
		s := &searcher{name: fmt.Sprintf("member %d", i), actor: actor(u), scope: chat.ScopeMine, texts: map[string]string{}}
		ucs, err := db.FindUserConversations(ctx, u.OrgID, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, uc := range ucs {
			for _, m := range readAll(t, svc, s.actor, uc.Conversation.ID) {
				s.texts[ref(m)] = canon(m.Text)
			}
		}
		searchers = append(searchers, s)
	}
	officer := &searcher{name: "compliance officer", scope: chat.ScopeOrg, texts: map[string]string{},
		actor: chatvault.Actor{OrgID: org.Org.ID, UserID: org.Users[0].ID, Roles: []chatvault.Role{chatvault.RoleComplianceOfficer}}}
	for _, c := range d.Convs {
		if c.OrgID != org.Org.ID {
			continue
		}
		ms, err := db.FindMessages(ctx, c.OrgID, c.ID, chatvault.MessageQuery{Limit: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.State == chatvault.StateLive && m.ExpiredAt == nil && m.Kind == chatvault.KindText {
				officer.texts[ref(m)] = canon(m.Text)
			}
		}
	}
	searchers = append(searchers, officer)
	for _, s := range searchers {
		s.refs = slices.Sorted(maps.Keys(s.texts))
		t.Logf("%s sees %d messages", s.name, len(s.texts))
	}

	// Several hundred queries drawn from what each searcher sees, plus some that match nothing.
	// A few queries with thousands of hits prove paging over long result sets; more of them would
	// only repeat that at the cost of minutes, so beyond those a query with more than 2,000 hits
	// is drawn again.
	const bigResult, bigQueries = 2000, 4
	queries, hits, big := 0, 0, 0
	answers := map[string][]string{}
	for i := 0; queries < 360; i++ {
		s := searchers[i%len(searchers)]
		q, ok := makeQuery(t, r, s)
		if !ok {
			continue
		}
		var want []string
		for id, c := range s.texts {
			if q.matches(c) {
				want = append(want, id)
			}
		}
		if len(want) > bigResult {
			if big == bigQueries {
				continue
			}
			big++
		}
		queries++
		got := searchAll(t, svc, s, q.text)
		hits += len(got)
		slices.Sort(want)
		sorted := slices.Sorted(slices.Values(got))
		if !slices.Equal(sorted, want) {
			missing, extra := diff(want, sorted)
			t.Errorf("%s, query %q: %d hits, want %d; missing %v; extra %v", s.name, q.text, len(got), len(want), first(missing), first(extra))
		}
		if len(slices.Compact(sorted)) != len(got) {
			t.Errorf("%s, query %q: a message came back twice", s.name, q.text)
		}
		key := s.name + ": " + q.text
		answers[key] = got
		if reference != nil {
			want, ok := reference[key]
			switch {
			case !ok:
				t.Errorf("%s, query %q: not asked on the reference store; the scenario is not the same", s.name, q.text)
			case !slices.Equal(got, want):
				missing, extra := diff(slices.Sorted(slices.Values(want)), sorted)
				t.Errorf("%s, query %q: %d hits, the reference store %d (same set in another order: %v); missing %v; extra %v",
					s.name, q.text, len(got), len(want), len(missing)+len(extra) == 0, first(missing), first(extra))
			}
		}
	}
	t.Logf("%d queries (%d with more than %d hits), %d hits in all", queries, big, bigResult, hits)
	return answers
}

func searchAll(t *testing.T, svc *chat.Service, s *searcher, query string) []string {
	t.Helper()
	var ids []string
	req := chat.SearchRequest{Query: query, Scope: s.scope, Limit: chat.MaxSearchLimit}
	var last time.Time
	for pages := 0; ; pages++ {
		if pages > 2000 {
			t.Fatalf("%s, query %q: no end to the pages", s.name, query)
		}
		page, err := svc.Search(context.Background(), s.actor, req)
		if err != nil {
			t.Fatalf("%s, query %q: %v", s.name, query, err)
		}
		for _, h := range page.Hits {
			ids = append(ids, ref(h.Message))
			if !last.IsZero() && h.Message.SentAt.After(last.Add(time.Minute)) {
				t.Errorf("%s, query %q: hits not newest first (%v after %v)", s.name, query, h.Message.SentAt, last)
			}
			last = h.Message.SentAt
		}
		if page.NextCursor == "" {
			return ids
		}
		req.Cursor = page.NextCursor
	}
}

func readAll(t *testing.T, svc *chat.Service, a chatvault.Actor, convID string) []*chatvault.Message {
	t.Helper()
	var out []*chatvault.Message
	zero := int64(0)
	p := chat.Page{After: &zero, Limit: chat.MaxPageLimit}
	for {
		page, err := svc.Messages(context.Background(), a, convID, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Messages {
			if m.State == chatvault.StateLive && m.Kind == chatvault.KindText {
				out = append(out, m)
			}
		}
		if !page.HasMore || len(page.Messages) == 0 {
			return out
		}
		after := page.Messages[len(page.Messages)-1].Seq
		p.After = &after
	}
}

// checkNoPlaintext reads the raw database files and looks for words and CJK pairs of indexed
// messages that appear nowhere else in plain text (names and titles are stored in the clear).
func checkNoPlaintext(t *testing.T, dir string, d *bench.Dataset) {
	t.Helper()
	var clear strings.Builder
	for _, u := range d.Users {
		clear.WriteString(u.Username + " " + u.DisplayName + " ")
	}
	for _, c := range d.Convs {
		clear.WriteString(c.Title + " ")
	}
	// The schema and the policy's JSON are in the file too: an empty store's bytes are not message text.
	empty := t.TempDir()
	edb, err := sqlite.Open(empty)
	if err != nil {
		t.Fatal(err)
	}
	policy := chatvault.DefaultPolicy()
	if err := edb.SavePolicy(context.Background(), d.Orgs[0].Org.ID, &policy); err != nil {
		t.Fatal(err)
	}
	edb.Close()
	for _, name := range []string{sqlite.FileName, sqlite.FileName + "-wal"} {
		b, _ := os.ReadFile(filepath.Join(empty, name))
		clear.Write(b)
	}
	r := rand.New(rand.NewPCG(1, 2))
	var probes []string
	for m := range d.Messages() {
		if r.IntN(50) != 0 {
			continue
		}
		for _, f := range strings.FieldsFunc(m.Text, func(r rune) bool { return !unicode.IsLetter(r) }) {
			rs := []rune(f)
			if len(rs) >= 2 && unicode.Is(unicode.Han, rs[0]) {
				f = string(rs[:2])
			} else if len(f) < 6 {
				continue
			}
			if !strings.Contains(clear.String(), f) {
				probes = append(probes, f)
			}
		}
		if len(probes) > 2000 {
			break
		}
	}
	var raw []byte
	for _, name := range []string{sqlite.FileName, sqlite.FileName + "-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		raw = append(raw, b...)
	}
	found := 0
	for _, p := range probes {
		if bytes.Contains(raw, []byte(p)) {
			found++
			if found <= 5 {
				t.Errorf("the raw database holds %q in plain text", p)
			}
		}
	}
	if len(probes) < 500 {
		t.Fatalf("only %d probes: the check would prove little", len(probes))
	}
	t.Logf("%d plain-text probes, none in %d bytes of database files", len(probes), len(raw))
}

func diff(want, got []string) (missing, extra []string) {
	for _, w := range want {
		if _, ok := slices.BinarySearch(got, w); !ok {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if _, ok := slices.BinarySearch(want, g); !ok {
			extra = append(extra, g)
		}
	}
	return missing, extra
}

func first(ids []string) []string { return ids[:min(len(ids), 3)] }
