package http_test

// The contract scenario for search: what a member and a compliance officer find, how every kind of
// deletion takes a hit away at once, and how bad requests are answered.

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/retention"
)

// searchIDs runs a search (following every cursor) and returns the ids of the hits in order.
func (ts *testServer) searchIDs(token string, params url.Values) []string {
	ts.t.Helper()
	var ids []string
	for pages := 0; ; pages++ {
		if pages > 100 {
			ts.t.Fatalf("search %v: more than 100 pages", params)
		}
		var p chat.SearchPage
		ts.must(http.StatusOK, "GET", "/api/v1/search?"+params.Encode(), token, nil).decode(ts.t, &p)
		for _, h := range p.Hits {
			ids = append(ids, h.Message.ID)
		}
		if p.NextCursor == "" {
			return ids
		}
		params.Set("cursor", p.NextCursor)
	}
}

func q(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func contractSearch(t *testing.T, c *contract) {
	ts, k := c.serve(t)
	admin := ts.adminToken
	alice, bob, carol := ts.newUser("alice"), ts.newUser("bob"), ts.newUser("carol")
	ts.must(http.StatusCreated, "POST", "/api/v1/admin/users", admin, map[string]any{
		"username": "officer", "password": "password-officer", "roles": []string{"compliance_officer"}})
	officer := ts.login("officer", "password-officer", "").Token
	g := ts.group(alice, "搜索", false, bob)

	home := ts.send(alice, g.ID, "我家在上海东边")
	contract := ts.send(bob, g.ID, "上海的合同v2 请看")
	meeting := ts.send(bob, g.ID, "明天北京meeting改到3点")
	secret := ts.send(alice, g.ID, "hidden 上海 note")
	var reply chatvault.Message
	ts.must(http.StatusCreated, "POST", "/api/v1/conversations/"+g.ID+"/messages", alice.Token, map[string]any{
		"client_msg_id": nextClientID(), "text": "收到 Meeting", "reply_to": meeting.ID}).decode(t, &reply)

	want := func(who string, got []string, want ...chatvault.Message) {
		t.Helper()
		ids := make([]string, len(want))
		for i, m := range want {
			ids[i] = m.ID
		}
		if !slices.Equal(got, ids) {
			t.Errorf("%s: hits %v, want %v", who, got, ids)
		}
	}

	// A member finds CJK words inside runs of text, newest first, with the match marked.
	var p chat.SearchPage
	ts.must(http.StatusOK, "GET", "/api/v1/search?q="+url.QueryEscape("上海"), alice.Token, nil).decode(t, &p)
	if len(p.Hits) != 3 || p.Hits[0].Message.ID != secret.ID || p.Hits[0].Conversation.ID != g.ID || p.Hits[0].Conversation.Title != "搜索" {
		t.Fatalf("alice 上海 = %+v; want 3 hits, newest first, with their conversation", p.Hits)
	}
	var marked []string
	for _, part := range p.Hits[2].Snippet {
		if part.Match {
			marked = append(marked, part.Text)
		}
	}
	if !slices.Equal(marked, []string{"上海"}) {
		t.Errorf("snippet %+v: want 上海 marked", p.Hits[2].Snippet)
	}
	want("alice meeting (case-folded, inside CJK)", ts.searchIDs(alice.Token, q("q", "MEETING")), reply, meeting)
	want("alice 合同V2 full-width", ts.searchIDs(alice.Token, q("q", "合同Ｖ２")), contract)
	want("alice phrase", ts.searchIDs(alice.Token, q("q", `"上海 东边"`)), home)
	want("alice exclusion", ts.searchIDs(alice.Token, q("q", "上海 -合同")), secret, home)
	want("alice OR", ts.searchIDs(alice.Token, q("q", "东边 OR 合同")), contract, home)
	want("alice by sender", ts.searchIDs(alice.Token, q("q", "上海", "sender_id", bob.ID)), contract)
	want("alice replies only", ts.searchIDs(alice.Token, q("q", "meeting", "has_reply", "true")), reply)
	want("alice in the conversation, relevance", ts.searchIDs(alice.Token, q("q", "上海", "conversation_id", g.ID, "sort", "relevance", "limit", "1")), secret, home, contract)
	want("alice paged by one", ts.searchIDs(alice.Token, q("q", "上海", "limit", "1")), secret, contract, home)
	want("alice prefix", ts.searchIDs(alice.Token, q("q", "meet*")), reply, meeting)
	want("alice as she types", ts.searchIDs(alice.Token, q("q", "北京 mee", "prefix", "true")), meeting)
	want("alice typed a space", ts.searchIDs(alice.Token, q("q", "北京 mee ", "prefix", "true")))
	want("alice traditional", ts.searchIDs(alice.Token, q("q", "東邊")), home)
	want("alice a digit part", ts.searchIDs(alice.Token, q("q", "2")), contract)

	// English words find their forms unless the org turns stemming off; quotes stay exact.
	want("alice meetings (stemmed)", ts.searchIDs(alice.Token, q("q", "meetings")), reply, meeting)
	want(`alice "meetings" (exact)`, ts.searchIDs(alice.Token, q("q", `"meetings"`)))
	var org chatvault.Org
	ts.must(http.StatusOK, "PATCH", "/api/v1/admin/org", admin, map[string]any{"search_stemming": false}).decode(t, &org)
	if org.SearchStemming {
		t.Errorf("PATCH search_stemming false answered %+v", org)
	}
	want("alice meetings (stemming off)", ts.searchIDs(alice.Token, q("q", "meetings")))
	ts.must(http.StatusOK, "PATCH", "/api/v1/admin/org", admin, map[string]any{"search_stemming": true})
	want("alice meetings (stemming on again)", ts.searchIDs(alice.Token, q("q", "meetings")), reply, meeting)

	// Never a hit for a non-member, and their conversation filter reads as not found.
	want("carol", ts.searchIDs(carol.Token, q("q", "上海")))
	wantError(t, ts.must(http.StatusNotFound, "GET", "/api/v1/search?q=x&conversation_id="+g.ID, carol.Token, nil), chatvault.ENOTFOUND, "")

	// Org-wide search is the compliance officer's, and is audited.
	want("officer org-wide", ts.searchIDs(officer, q("q", "上海", "scope", "org")), secret, contract, home)
	wantError(t, ts.must(http.StatusForbidden, "GET", "/api/v1/search?q=x&scope=org", alice.Token, nil), chatvault.EFORBIDDEN, "")
	var audit struct {
		Entries []chatvault.AuditEntry `json:"entries"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/audit", officer, nil).decode(t, &audit)
	if !slices.ContainsFunc(audit.Entries, func(e chatvault.AuditEntry) bool {
		return e.Action == "search_org" && e.Details["query"] == "上海"
	}) {
		t.Errorf("audit log %+v: want the org-wide search of 上海", audit.Entries)
	}

	// Every deletion takes the hit away at once.
	msgURL := "/api/v1/conversations/" + g.ID + "/messages/"
	ts.must(http.StatusNoContent, "POST", msgURL+secret.ID+"/hide", alice.Token, nil)
	want("alice after hiding", ts.searchIDs(alice.Token, q("q", "上海")), contract, home)
	want("bob after alice hid", ts.searchIDs(bob.Token, q("q", "上海")), secret, contract, home)
	ts.must(http.StatusOK, "POST", msgURL+contract.ID+"/recall", bob.Token, nil)
	want("bob after recall", ts.searchIDs(bob.Token, q("q", "上海")), secret, home)
	want("officer after recall", ts.searchIDs(officer, q("q", "合同", "scope", "org")))
	ts.must(http.StatusOK, "PATCH", msgURL+home.ID, alice.Token, map[string]any{"text": "我家在北京"})
	want("bob after edit, old text", ts.searchIDs(bob.Token, q("q", "上海")), secret)
	want("bob after edit, new text", ts.searchIDs(bob.Token, q("q", "北京", "edited", "true")), home)
	ts.must(http.StatusOK, "POST", "/api/v1/conversations/"+g.ID+"/clear", bob.Token, nil)
	want("bob after clearing", ts.searchIDs(bob.Token, q("q", "北京")))
	want("alice after bob cleared", ts.searchIDs(alice.Token, q("q", "北京")), meeting, home)
	ts.clock.Advance(30 * 24 * time.Hour) // batch deletes refuse messages younger than the policy's min_days
	var dp retention.DeletionPreview
	ts.must(http.StatusOK, "POST", "/api/v1/admin/deletions/preview", admin, map[string]any{"user_id": bob.ID, "reason": "erasure"}).decode(t, &dp)
	if dp.Totals["delete"] != 2 {
		t.Fatalf("erasure preview of bob = %+v; want his 2 remaining messages", dp)
	}
	ts.must(http.StatusOK, "POST", "/api/v1/admin/deletions/"+dp.Token+"/confirm", admin, nil)
	want("officer after erasure of bob", ts.searchIDs(officer, q("q", "北京", "scope", "org")), home)

	// Bad requests are named.
	for _, tc := range []struct {
		query, field string
		spec         bool // the spec itself rejects the request
	}{
		{"", "q", true},
		{"q=-上海", "q", false},
		{"q=" + url.QueryEscape(strings.Repeat("长", 300)), "q", false},
		{"q=x&colour=red", "colour", false},
		{"q=x&limit=0", "limit", true},
		{"q=x&limit=101", "limit", true},
		{"q=x&sort=newest", "sort", true},
		{"q=x&scope=everyone", "scope", true},
		{"q=x&cursor=bm90IGEgY3Vyc29y", "cursor", false},
		{"q=x&from=yesterday", "from", false},
		{"q=x&from=2026-03-01&to=2026-02-01", "to", false},
		{"q=x&has_reply=maybe", "has_reply", true},
		{"q=x&prefix=maybe", "prefix", true},
		{"q=m*", "q", false},
		{"q=x&q=y", "q", false},
	} {
		call := func() {
			wantError(t, ts.must(http.StatusBadRequest, "GET", "/api/v1/search?"+tc.query, alice.Token, nil), chatvault.EINVALID, tc.field)
		}
		if tc.spec {
			k.breaking(call)
		} else {
			call()
		}
	}
	k.breaking(func() { ts.must(http.StatusUnauthorized, "GET", "/api/v1/search?q=x", "", nil) })
}
