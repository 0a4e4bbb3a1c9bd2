package http_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
)

func TestSendIsIdempotent(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.newUser("alice")
	c := ts.group(alice, "g", false)
	body := map[string]string{"client_msg_id": "phone-42", "text": "只发一次 once"}
	var first, retry chatvault.Message
	ts.must(http.StatusCreated, "POST", "/api/v1/conversations/"+c.ID+"/messages", alice.Token, body).decode(t, &first)
	ts.must(http.StatusOK, "POST", "/api/v1/conversations/"+c.ID+"/messages", alice.Token, body).decode(t, &retry)
	if retry.ID != first.ID || retry.Seq != first.Seq || !retry.SentAt.Equal(first.SentAt) {
		t.Fatalf("retry = %+v; want the first message %+v", retry, first)
	}
	r := ts.do("POST", "/api/v1/conversations/"+c.ID+"/messages", alice.Token, map[string]string{"client_msg_id": "phone-42", "text": "something else"})
	if code, field := r.errorCode(t); r.Status != http.StatusConflict || field != "client_msg_id" {
		t.Fatalf("reused client_msg_id with other text: %d %s %s; want 409 naming client_msg_id", r.Status, code, field)
	}
	if p := ts.history(alice, c.ID, ""); len(p.Messages) != 1 {
		t.Fatalf("stored %d messages; want 1", len(p.Messages))
	}
	for _, bad := range []map[string]string{
		{"text": "no client id"},
		{"client_msg_id": "x1", "text": "   "},
		{"client_msg_id": "x2", "text": "bad reply", "reply_to": "0190a5e4-0000-7000-8000-000000000000"},
	} {
		if r := ts.do("POST", "/api/v1/conversations/"+c.ID+"/messages", alice.Token, bad); r.Status != http.StatusBadRequest {
			t.Errorf("send %v: %d; want 400", bad, r.Status)
		}
	}
}

func TestHistoryPaging(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.newUser("alice")
	c := ts.group(alice, "paging", false)
	for i := 1; i <= 12; i++ {
		ts.send(alice, c.ID, fmt.Sprint(i))
	}
	seqs := func(p page) []int64 {
		out := []int64{}
		for _, m := range p.Messages {
			out = append(out, m.Seq)
		}
		return out
	}
	for _, tc := range []struct {
		query                 string
		want                  []int64
		more, before, afterMr bool
	}{
		{"?limit=5", []int64{8, 9, 10, 11, 12}, true, true, false},
		{"?before_seq=8&limit=5", []int64{3, 4, 5, 6, 7}, true, true, false},
		{"?before_seq=3&limit=5", []int64{1, 2}, false, false, false},
		{"?before_seq=0", []int64{}, false, false, false},
		{"?after_seq=0&limit=5", []int64{1, 2, 3, 4, 5}, true, false, true},
		{"?after_seq=10&limit=5", []int64{11, 12}, false, false, false},
		{"?around_seq=6&limit=4", []int64{4, 5, 6, 7}, true, true, true},
		{"?around_seq=1&limit=4", []int64{1, 2, 3, 4}, true, false, true},
		{"?around_seq=0&limit=4", []int64{1, 2, 3, 4}, true, false, true},
		{"", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, false, false, false},
	} {
		p := ts.history(alice, c.ID, tc.query)
		if got := seqs(p); !slices.Equal(got, tc.want) || p.HasMore != tc.more || p.HasMoreBefore != tc.before || p.HasMoreAfter != tc.afterMr {
			t.Errorf("%q = %v more=%v before=%v after=%v; want %v %v %v %v", tc.query, got, p.HasMore, p.HasMoreBefore, p.HasMoreAfter,
				tc.want, tc.more, tc.before, tc.afterMr)
		}
	}
	for _, q := range []string{"?limit=0", "?limit=201", "?limit=x", "?before_seq=-1", "?before_seq=3&after_seq=1", "?around_seq=1e3"} {
		r := ts.do("GET", "/api/v1/conversations/"+c.ID+"/messages"+q, alice.Token, nil)
		if code, field := r.errorCode(t); r.Status != http.StatusBadRequest || field == "" {
			t.Errorf("%q: %d %s field %q; want 400 naming the parameter", q, r.Status, code, field)
		}
	}
}

func TestEditKeepsHistory(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice, bob := ts.newUser("alice"), ts.newUser("bob")
	c := ts.group(alice, "edits", false, bob)
	m := ts.send(alice, c.ID, "草稿 draft")
	path := "/api/v1/conversations/" + c.ID + "/messages/" + m.ID
	ts.clock.Advance(time.Minute)
	var edited chatvault.Message
	ts.must(http.StatusOK, "PATCH", path, alice.Token, map[string]any{"text": "定稿 final", "version": 1}).decode(t, &edited)
	if edited.Text != "定稿 final" || edited.Version != 2 || edited.EditedAt == nil {
		t.Fatalf("edited = %+v", edited)
	}
	if r := ts.do("PATCH", path, alice.Token, map[string]any{"text": "from a stale device", "version": 1}); r.Status != http.StatusConflict {
		t.Fatalf("edit at stale version: %d; want 409", r.Status)
	}
	if r := ts.do("PATCH", path, bob.Token, map[string]any{"text": "bob's edit"}); r.Status != http.StatusForbidden {
		t.Fatalf("edit by non-sender: %d; want 403", r.Status)
	}
	var vs struct{ Versions []chatvault.MessageVersion }
	ts.must(http.StatusOK, "GET", path+"/versions", bob.Token, nil).decode(t, &vs)
	if len(vs.Versions) != 2 || vs.Versions[0].Text != "草稿 draft" || vs.Versions[1].Text != "定稿 final" {
		t.Fatalf("versions = %+v; want draft then final", vs.Versions)
	}
	var got chatvault.Message
	ts.must(http.StatusOK, "GET", path, bob.Token, nil).decode(t, &got)
	if got.Text != "定稿 final" {
		t.Fatalf("bob reads %q; want the edited text", got.Text)
	}
}

func TestRecallHidesContentFromEveryone(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice, bob := ts.newUser("alice"), ts.newUser("bob")
	c := ts.group(alice, "recall", false, bob)
	m := ts.send(alice, c.ID, "发错了 wrong chat")
	late := ts.send(alice, c.ID, "too late to recall")
	reply := map[string]string{"client_msg_id": "r1", "text": "replying", "reply_to": m.ID}
	ts.must(http.StatusCreated, "POST", "/api/v1/conversations/"+c.ID+"/messages", bob.Token, reply)

	if r := ts.do("POST", "/api/v1/conversations/"+c.ID+"/messages/"+m.ID+"/recall", bob.Token, nil); r.Status != http.StatusForbidden {
		t.Fatalf("recall by non-sender: %d; want 403", r.Status)
	}
	var recalled chatvault.Message
	ts.must(http.StatusOK, "POST", "/api/v1/conversations/"+c.ID+"/messages/"+m.ID+"/recall", alice.Token, nil).decode(t, &recalled)
	if recalled.State != chatvault.StateRecalled || recalled.Text != "" {
		t.Fatalf("recall answer = %+v; want state recalled and no text", recalled)
	}
	for _, u := range []user{alice, bob} {
		p := ts.history(u, c.ID, "")
		if len(p.Messages) != 3 || p.Messages[0].State != chatvault.StateRecalled || p.Messages[0].Text != "" {
			t.Fatalf("%s sees %+v; want the recalled message as a placeholder without text", u.Name, p.Messages)
		}
		var vs struct{ Versions []chatvault.MessageVersion }
		ts.must(http.StatusOK, "GET", "/api/v1/conversations/"+c.ID+"/messages/"+m.ID+"/versions", u.Token, nil).decode(t, &vs)
		if len(vs.Versions) != 0 {
			t.Fatalf("versions of a recalled message = %+v; want none", vs.Versions)
		}
	}
	if r := ts.do("PATCH", "/api/v1/conversations/"+c.ID+"/messages/"+m.ID, alice.Token, map[string]string{"text": "revive"}); r.Status != http.StatusConflict {
		t.Fatalf("edit after recall: %d; want 409", r.Status)
	}
	ts.clock.Advance(2*time.Minute + time.Millisecond)
	r := ts.do("POST", "/api/v1/conversations/"+c.ID+"/messages/"+late.ID+"/recall", alice.Token, nil)
	if code, _ := r.errorCode(t); r.Status != http.StatusConflict {
		t.Fatalf("recall after the window: %d %s; want 409", r.Status, code)
	}
}

func TestHideAndClearAreForMeOnly(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice, bob := ts.newUser("alice"), ts.newUser("bob")
	c := ts.group(alice, "hide", false, bob)
	first := ts.send(alice, c.ID, "one")
	ts.send(alice, c.ID, "two")
	hide := "/api/v1/conversations/" + c.ID + "/messages/" + first.ID + "/hide"
	ts.must(http.StatusNoContent, "POST", hide, bob.Token, nil)
	ts.must(http.StatusNoContent, "POST", hide, bob.Token, nil) // twice is fine
	if got := texts(ts.history(bob, c.ID, "").Messages); !slices.Equal(got, []string{"two"}) {
		t.Fatalf("bob after hiding sees %q", got)
	}
	// Another device of bob's sees the same.
	other := ts.login("bob", "password-bob", "")
	if got := texts(ts.history(user{Token: other.Token}, c.ID, "").Messages); !slices.Equal(got, []string{"two"}) {
		t.Fatalf("bob's other device sees %q", got)
	}
	ts.must(http.StatusNotFound, "GET", "/api/v1/conversations/"+c.ID+"/messages/"+first.ID, bob.Token, nil)
	if got := texts(ts.history(alice, c.ID, "").Messages); !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("alice sees %q; hiding is only for bob", got)
	}
	ts.must(http.StatusNotFound, "POST", "/api/v1/conversations/"+c.ID+"/messages/0190a5e4-0000-7000-8000-000000000000/hide", bob.Token, nil)

	var cleared struct {
		ClearedSeq int64 `json:"cleared_seq"`
	}
	ts.must(http.StatusOK, "POST", "/api/v1/conversations/"+c.ID+"/clear", bob.Token, nil).decode(t, &cleared)
	if cleared.ClearedSeq != 2 {
		t.Fatalf("cleared_seq = %d; want 2", cleared.ClearedSeq)
	}
	ts.send(alice, c.ID, "three")
	if got := texts(ts.history(bob, c.ID, "").Messages); !slices.Equal(got, []string{"three"}) {
		t.Fatalf("bob after clearing sees %q; want only what came after", got)
	}
	if got := texts(ts.history(alice, c.ID, "").Messages); len(got) != 3 {
		t.Fatalf("alice sees %q; clearing is only for bob", got)
	}
}
