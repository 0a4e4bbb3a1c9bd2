package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/search"
)

// Search candidates: the index is written with the message and loses its entries in the same
// change as the message's content. The exact check and the reader's visibility are the caller's.

// find returns the texts of the candidates for query, newest first.
func (f *fixture) find(t *testing.T, query string, q chatvault.SearchQuery) []string {
	t.Helper()
	cs := f.candidates(t, query, q)
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Message.Text
	}
	return out
}

func (f *fixture) candidates(t *testing.T, query string, q chatvault.SearchQuery) []chatvault.SearchCandidate {
	t.Helper()
	pq, err := search.Parse(query)
	if err != nil {
		t.Fatalf("search.Parse(%q) = %v", query, err)
	}
	q.OrgID, q.Tokens = f.org.ID, pq.Tokens()
	if q.Limit == 0 {
		q.Limit = 100
	}
	cs, err := f.s.SearchMessages(context.Background(), q)
	if err != nil {
		t.Fatalf("SearchMessages(%q) = %v", query, err)
	}
	return cs
}

func testSearch(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 3)
	a := f.group(t, 0, false, 1, 2)
	b := f.group(t, 0, false, 1)
	f.sendAt(t, a, 0, "我家在上海东边", hour(0))
	f.sendAt(t, a, 1, "Contract draft for Shanghai", hour(1))
	f.sendAt(t, b, 1, "上海 contract signed", hour(2))
	f.sendAt(t, b, 0, "nothing to see", hour(3))
	other := newFixture(t, s, 1)
	other.sendAt(t, other.group(t, 0, false), 0, "上海 contract elsewhere", hour(4))

	for _, tc := range []struct {
		query string
		q     chatvault.SearchQuery
		want  []string
	}{
		{"上海", chatvault.SearchQuery{}, []string{"上海 contract signed", "我家在上海东边"}},
		{"海", chatvault.SearchQuery{}, []string{"上海 contract signed", "我家在上海东边"}},
		{"CONTRACT", chatvault.SearchQuery{}, []string{"上海 contract signed", "Contract draft for Shanghai"}},
		{"上海 contract", chatvault.SearchQuery{}, []string{"上海 contract signed"}},
		{"东边 OR draft", chatvault.SearchQuery{}, []string{"Contract draft for Shanghai", "我家在上海东边"}},
		{"contract", chatvault.SearchQuery{ConversationIDs: []string{a.ID}}, []string{"Contract draft for Shanghai"}},
		{"contract", chatvault.SearchQuery{SenderID: f.users[1].ID, ConversationIDs: []string{a.ID, b.ID}}, []string{"上海 contract signed", "Contract draft for Shanghai"}},
		{"contract", chatvault.SearchQuery{From: hour(2)}, []string{"上海 contract signed"}},
		{"contract", chatvault.SearchQuery{To: hour(2)}, []string{"Contract draft for Shanghai"}},
		{"contract", chatvault.SearchQuery{SeqAfter: map[string]int64{a.ID: 1, b.ID: 1}}, []string{"Contract draft for Shanghai"}},
		{"北京", chatvault.SearchQuery{}, []string{}},
	} {
		if got := f.find(t, tc.query, tc.q); !equal(got, tc.want) {
			t.Errorf("SearchMessages(%q, %+v) = %q; want %q", tc.query, tc.q, got, tc.want)
		}
	}
	// Hides apply to the user who hid.
	s.HideMessage(ctx, f.org.ID, a.ID, f.users[2].ID, 1, t0)
	if got := f.find(t, "上海", chatvault.SearchQuery{HiddenFor: f.users[2].ID}); !equal(got, []string{"上海 contract signed"}) {
		t.Errorf("SearchMessages(hidden for user 2) = %q; want the hidden one left out", got)
	}
	if got := f.find(t, "上海", chatvault.SearchQuery{HiddenFor: f.users[1].ID}); len(got) != 2 {
		t.Errorf("SearchMessages(hidden for user 1) = %q; want both (user 2's hide is theirs)", got)
	}
}

func testSearchDeletions(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	for i, text := range []string{"apricot one", "apricot two", "apricot three", "apricot four", "apricot five"} {
		f.sendAt(t, c, 0, text, hour(i))
	}
	if _, err := s.EditMessage(ctx, f.org.ID, c.ID, 1, 1, "kiwi one", hour(10)); err != nil {
		t.Fatal(err)
	}
	s.RecallMessage(ctx, f.org.ID, c.ID, 2, hour(10))
	s.ExpireMessages(ctx, chatvault.ExpireStep{Selection: f.sel(c, 100), SentBefore: hour(4)}) // 1, 3, 4 (2 is recalled: it expires too)
	s.RestoreExpired(ctx, f.org.ID, c.ID, 4, 4, hour(101))
	if got := f.find(t, "apricot", chatvault.SearchQuery{}); !equal(got, []string{"apricot five", "apricot four"}) {
		t.Fatalf("SearchMessages(apricot) = %q; want five and four (one was edited, two recalled, three expired, four restored)", got)
	}
	if got := f.find(t, "kiwi", chatvault.SearchQuery{}); len(got) != 0 {
		t.Fatalf("SearchMessages(kiwi) = %q; want none: the edited message is expired", got)
	}
	s.RestoreExpired(ctx, f.org.ID, c.ID, 1, 1, hour(101))
	if got := f.find(t, "kiwi", chatvault.SearchQuery{}); !equal(got, []string{"kiwi one"}) {
		t.Fatalf("SearchMessages(kiwi) after restore = %q; want the edited text", got)
	}
	// Destruction removes the entries for good: a restore cannot bring a tombstone back.
	res, err := s.DestroyMessages(ctx, chatvault.DestroyStep{Selection: f.sel(c, 100), Batch: &chatvault.BatchFilter{SentBefore: hour(4)}})
	if err != nil || res.Count != 4 {
		t.Fatalf("DestroyMessages() = %+v, %v; want 4", res, err)
	}
	s.RestoreExpired(ctx, f.org.ID, c.ID, 1, 5, hour(102))
	if got := f.find(t, "apricot", chatvault.SearchQuery{}); !equal(got, []string{"apricot five"}) {
		t.Fatalf("SearchMessages(apricot) after destruction = %q; want five only", got)
	}
	if got := f.find(t, "kiwi", chatvault.SearchQuery{}); len(got) != 0 {
		t.Fatalf("SearchMessages(kiwi) after destruction = %q; want none", got)
	}
}

func testSearchPaging(t *testing.T, s chatvault.Store) {
	f := newFixture(t, s, 1)
	c := f.group(t, 0, false)
	for i := range 7 {
		f.sendAt(t, c, 0, "合同 page", t0.Add(time.Duration(i)*time.Second))
	}
	var seqs []int64
	q := chatvault.SearchQuery{Limit: 3}
	for range 10 {
		page := f.candidates(t, "合同", q)
		if len(page) == 0 {
			break
		}
		for _, cand := range page {
			if q.Before != 0 && cand.Doc >= q.Before {
				t.Fatalf("SearchMessages(before %d) returned doc %d", q.Before, cand.Doc)
			}
			q.Before = cand.Doc
			seqs = append(seqs, cand.Message.Seq)
		}
	}
	if !equal(seqs, []int64{7, 6, 5, 4, 3, 2, 1}) {
		t.Fatalf("paged SearchMessages() seqs = %v; want 7..1, each once, newest first", seqs)
	}
}
