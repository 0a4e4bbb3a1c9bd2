package bench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/search"
	"github.com/chatvault/chatvault/internal/sqlite"
	"github.com/google/uuid"
)

// searchQuery is one search the scenario runs: a member (or, for org scope, a compliance officer)
// and a query drawn from text they can see.
type searchQuery struct {
	actor chatvault.Actor
	query string
	scope string
	// convs is the member's conversations, for the brute-force reference.
	convs []string
}

// Query shapes, as shares: what people type into a chat search box.
var queryShapes = []struct {
	kind  int // 1-4: that many CJK characters; 0: a word; -1: two terms
	share int
}{{1, 15}, {2, 30}, {3, 15}, {4, 10}, {0, 20}, {-1, 10}}

// drawTerm picks a term of the given kind from a text, as typed.
func drawTerm(r *rand.Rand, text string, kind int) (string, bool) {
	us := search.Units(text)
	if len(us) == 0 {
		return "", false
	}
	i := r.IntN(len(us))
	if kind == 0 {
		if us[i].CJK {
			return "", false
		}
		return text[us[i].Start:us[i].End], true
	}
	if i+kind > len(us) {
		return "", false
	}
	var b strings.Builder
	for j, u := range us[i : i+kind] {
		// Characters that touch in the text, as a person copies a word: a run across punctuation
		// finds nothing under the search's rules and would make the query mix cheaper.
		if !u.CJK || j > 0 && !u.Joined {
			return "", false
		}
		b.WriteString(u.Text)
	}
	return b.String(), true
}

// searchQueries draws n queries: a member of a conversation (weighted by its size) searching for a
// term from one of its messages; org-wide ones by a compliance officer.
func searchQueries(ctx context.Context, ds *dataset, db *sqlite.DB, seed uint64, n int, scope string) ([]searchQuery, error) {
	r := rand.New(rand.NewPCG(seed, 0x73656172))
	cum, convs, sum, err := weightedConvs(ds)
	if err != nil {
		return nil, err
	}
	shareSum := 0
	for _, s := range queryShapes {
		shareSum += s.share
	}
	var out []searchQuery
	for tries := 0; len(out) < n && tries < 100*n; tries++ {
		j, _ := slices.BinarySearch(cum, r.IntN(sum)+1)
		c := convs[j]
		ms, err := db.FindMessages(ctx, c.OrgID, c.ID, chatvault.MessageQuery{Before: 1 + r.Int64N(int64(c.Messages)) + 1, Desc: true, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(ms) == 0 || ms[0].State != chatvault.StateLive {
			continue
		}
		x, kind := r.IntN(shareSum), 0
		for _, s := range queryShapes {
			if x < s.share {
				kind = s.kind
				break
			}
			x -= s.share
		}
		var q string
		ok := false
		if kind == -1 {
			a, okA := drawTerm(r, ms[0].Text, 2)
			b, okB := drawTerm(r, ms[0].Text, 0)
			q, ok = a+" "+b, okA && okB
		} else {
			q, ok = drawTerm(r, ms[0].Text, kind)
		}
		if !ok {
			continue
		}
		sq := searchQuery{query: q, scope: scope}
		if scope == chat.ScopeOrg {
			sq.actor = chatvault.Actor{OrgID: c.OrgID, UserID: c.Members[0], Roles: []chatvault.Role{chatvault.RoleComplianceOfficer}}
		} else {
			u := ds.users[c.Members[r.IntN(len(c.Members))]]
			sq.actor = chatvault.Actor{OrgID: u.OrgID, UserID: u.ID, Roles: u.Roles}
			for _, ci := range ds.d.UserConvs[u.ID] {
				sq.convs = append(sq.convs, ds.d.Convs[ci].ID)
			}
		}
		out = append(out, sq)
	}
	if len(out) < n {
		return nil, fmt.Errorf("drew only %d of %d search queries", len(out), n)
	}
	return out, nil
}

// Search measures full-text search: user-scoped and org-wide queries (first page of 20, newest
// first, one searcher at a time, as a person searches), against the reference a server without an
// index has: a member's brute-force scan of their own history (read, decrypt, match). It also
// measures ingest with the index on and off, and what the index costs on disk.
func Search(ctx context.Context, cfg Config) (*Report, error) {
	ds, rep, err := cfg.start("search")
	if err != nil {
		return nil, err
	}
	l, dir, err := cfg.workStore(ctx, ds, "search", rep)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	defer l.close()
	n := 300
	if cfg.Count > 0 {
		n = cfg.Count
	}
	rep.Settings["searchers"] = 1
	rep.Settings["page_size"] = chat.DefaultSearchLimit

	size, err := l.db.SearchIndexSize(ctx)
	if err != nil {
		return nil, err
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("index: %d bytes for %d indexed messages, %.1f bytes per message (FTS5 %d + doc index %d)",
		size.Total(), size.Messages, float64(size.Total())/float64(max(size.Messages, 1)), size.FTS, size.DocIndex))

	mine, err := searchQueries(ctx, ds, l.db, cfg.Seed, n, chat.ScopeMine)
	if err != nil {
		return nil, err
	}
	org, err := searchQueries(ctx, ds, l.db, cfg.Seed+1, n, chat.ScopeOrg)
	if err != nil {
		return nil, err
	}
	one := cfg
	one.Count = n
	hits := 0
	run := func(qs []searchQuery) func(ctx context.Context, g int, r *rand.Rand) error {
		i := 0
		return func(ctx context.Context, g int, r *rand.Rand) error {
			q := qs[i%len(qs)]
			i++
			page, err := l.chat.Search(ctx, q.actor, chat.SearchRequest{Query: q.query, Scope: q.scope})
			if err == nil {
				hits += len(page.Hits)
			}
			return err
		}
	}
	warm := cfg
	warm.Count = min(n, 100)
	warm.run(ctx, 1, run(mine))
	cfg.Logf("search: reference (brute-force scan of the member's own history), %d queries", min(n, 100))
	ref := cfg
	ref.Count = min(n, 100) // a scan is slow; fewer of them say enough
	i := 0
	rep.Reference = ref.inProcess(ctx, "brute force: FindMessages over every conversation of the member, decrypt, exact match (what a server without an index does)",
		"queries", "one query", 1, func(ctx context.Context, g int, r *rand.Rand) error {
			q := mine[i%len(mine)]
			i++
			pq, err := search.Parse(q.query)
			if err != nil {
				return err
			}
			for _, c := range q.convs {
				ms, err := l.db.FindMessages(ctx, q.actor.OrgID, c, chatvault.MessageQuery{Limit: 1 << 30, HiddenFor: q.actor.UserID})
				if err != nil {
					return err
				}
				for _, m := range ms {
					pq.Match(m.Text)
				}
			}
			return nil
		})
	hits = 0
	cfg.Logf("search: user-scoped queries, %d", n)
	rep.add("user", one.inProcess(ctx, "chat.Service.Search, scope mine: index candidates, decrypt, exact check, visibility (first page of 20)",
		"queries", "one query", 1, run(mine)))
	rep.Notes = append(rep.Notes, fmt.Sprintf("user-scoped: %.1f hits per query", float64(hits)/float64(n)))
	hits = 0
	warm.run(ctx, 1, run(org))
	hits = 0
	cfg.Logf("search: org-wide queries, %d", n)
	rep.add("org", one.inProcess(ctx, "chat.Service.Search, scope org (compliance officer; each search audited)",
		"queries", "one query", 1, run(org)))
	rep.Notes = append(rep.Notes, fmt.Sprintf("org-wide: %.1f hits per query", float64(hits)/float64(n)))
	if err := l.close(); err != nil {
		return nil, err
	}

	// Ingest with the index off, then on, on the same working copy.
	senders, err := newSenders(ds, cfg.Senders, cfg.Seed)
	if err != nil {
		return nil, err
	}
	for _, off := range []bool{true, false} {
		p, err := keyring.OpenFile(filepath.Join(dir, sqlite.KeysDir, "kek.json"))
		if err != nil {
			return nil, err
		}
		db, err := sqlite.OpenWith(dir, sqlite.Options{Keyring: keyring.New(p, 0), NoSearchIndex: off})
		if err != nil {
			return nil, err
		}
		key, name := "ingest_indexed", "chatvault.Store.AppendMessage with the search index"
		if off {
			key, name = "ingest_unindexed", "chatvault.Store.AppendMessage without the search index"
		}
		op := func(ctx context.Context, g int, r *rand.Rand) error {
			s := senders[g]
			c := s.pick(r)
			m := &chatvault.Message{OrgID: c.OrgID, ID: uuid.Must(uuid.NewV7()).String(), ConversationID: c.ID,
				SenderID: s.user.ID, ClientMsgID: key + token(r, 20), Kind: chatvault.KindText, Text: Body(r),
				SentAt: chatvault.SystemClock{}.Now()}
			_, err := db.AppendMessage(ctx, m)
			return err
		}
		warmIngest := cfg
		warmIngest.Count = 4 * cfg.Senders
		warmIngest.run(ctx, cfg.Senders, op)
		cfg.Logf("search: %s, %d senders", key, cfg.Senders)
		ingest := cfg
		ingest.Count = 0
		rep.add(key, ingest.inProcess(ctx, name, "messages", "one acknowledged message", cfg.Senders, op))
		if err := db.Close(); err != nil {
			return nil, err
		}
	}
	rep.finish()
	// Ingest is compared with itself, not with the search reference.
	delete(rep.Ratio, "ingest_indexed_vs_raw")
	delete(rep.Ratio, "ingest_unindexed_vs_raw")
	if off := rep.Results["ingest_unindexed"]; off != nil && off.Rate > 0 {
		rep.Ratio["ingest_indexed_vs_unindexed"] = math.Round(rep.Results["ingest_indexed"].Rate/off.Rate*1000) / 1000
	}
	return rep, nil
}
