package http_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	cvhttp "github.com/chatvault/chatvault/internal/http"
)

func TestDirectConversationIsIdempotent(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice, bob := ts.newUser("alice"), ts.newUser("bob")
	var first, again, reverse conversation
	ts.must(http.StatusCreated, "POST", "/api/v1/conversations", alice.Token, map[string]any{"type": "direct", "members": []string{bob.ID}}).decode(t, &first)
	ts.must(http.StatusOK, "POST", "/api/v1/conversations", alice.Token, map[string]any{"type": "direct", "members": []string{bob.ID}}).decode(t, &again)
	ts.must(http.StatusOK, "POST", "/api/v1/conversations", bob.Token, map[string]any{"type": "direct", "members": []string{alice.ID}}).decode(t, &reverse)
	if again.ID != first.ID || reverse.ID != first.ID || first.Type != "direct" {
		t.Fatalf("direct ids %s, %s, %s; want one conversation", first.ID, again.ID, reverse.ID)
	}
	for _, bad := range []map[string]any{
		{"type": "direct", "members": []string{}},
		{"type": "direct", "members": []string{alice.ID}},
		{"type": "direct", "members": []string{bob.ID, ts.newUser("carol").ID}},
		{"type": "direct", "members": []string{"not-a-uuid"}},
		{"type": "channel", "members": []string{bob.ID}},
	} {
		if r := ts.do("POST", "/api/v1/conversations", alice.Token, bad); r.Status != http.StatusBadRequest {
			t.Errorf("create %v: status %d; want 400", bad, r.Status)
		}
	}
	if r := ts.do("POST", "/api/v1/conversations/"+first.ID+"/members", alice.Token, map[string]any{"members": []string{ts.newUser("dave").ID}}); r.Status != http.StatusConflict {
		t.Fatalf("adding a member to a direct conversation: %d; want 409", r.Status)
	}
}

// TestNonMembersLearnNothing: a conversation you are not in answers exactly as one that does not exist.
func TestNonMembersLearnNothing(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice, bob, eve := ts.newUser("alice"), ts.newUser("bob"), ts.newUser("eve")
	c := ts.group(alice, "team", false, bob)
	m := ts.send(alice, c.ID, "hello")
	missing := "0190a5e4-0000-7000-8000-000000000000"
	for _, tc := range []struct {
		method, suffix string
		body           any
	}{
		{"GET", "", nil},
		{"GET", "/messages", nil},
		{"GET", "/messages/" + m.ID, nil},
		{"GET", "/messages/" + m.ID + "/versions", nil},
		{"POST", "/messages", map[string]string{"client_msg_id": "x", "text": "let me in"}},
		{"PATCH", "/messages/" + m.ID, map[string]string{"text": "edited"}},
		{"POST", "/messages/" + m.ID + "/recall", nil},
		{"POST", "/messages/" + m.ID + "/hide", nil},
		{"POST", "/members", map[string]any{"members": []string{eve.ID}}},
		{"POST", "/leave", nil},
		{"POST", "/read", map[string]int{"seq": 1}},
		{"POST", "/clear", nil},
		{"DELETE", "/members/" + bob.ID, nil},
	} {
		real := ts.do(tc.method, "/api/v1/conversations/"+c.ID+tc.suffix, eve.Token, tc.body)
		fake := ts.do(tc.method, "/api/v1/conversations/"+missing+tc.suffix, eve.Token, tc.body)
		realCode, _ := real.errorCode(t)
		fakeCode, _ := fake.errorCode(t)
		if real.Status != http.StatusNotFound || fake.Status != http.StatusNotFound || realCode != fakeCode {
			t.Errorf("%s %s: non-member got %d %s, missing conversation %d %s; want both 404 alike",
				tc.method, tc.suffix, real.Status, realCode, fake.Status, fakeCode)
		}
	}
	if p := ts.history(alice, c.ID, ""); len(p.Messages) != 1 {
		t.Fatalf("after eve's attempts, alice sees %d messages; want 1", len(p.Messages))
	}
}

// TestMembershipWindows: a member sees only what was sent while a member, unless the group shares history.
func TestMembershipWindows(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice, bob, carol := ts.newUser("alice"), ts.newUser("bob"), ts.newUser("carol")
	c := ts.group(alice, "窗口 window", false)
	ts.send(alice, c.ID, "before bob")
	ts.must(http.StatusOK, "POST", "/api/v1/conversations/"+c.ID+"/members", alice.Token, map[string]any{"members": []string{bob.ID}})
	ts.send(alice, c.ID, "while bob")
	ts.must(http.StatusNoContent, "POST", "/api/v1/conversations/"+c.ID+"/leave", bob.Token, nil)
	ts.send(alice, c.ID, "after bob left")

	if got := texts(ts.history(bob, c.ID, "").Messages); !slices.Equal(got, []string{"while bob"}) {
		t.Fatalf("bob sees %q; want only what was sent while he was a member", got)
	}
	if r := ts.do("POST", "/api/v1/conversations/"+c.ID+"/messages", bob.Token, map[string]string{"client_msg_id": "x", "text": "still here?"}); r.Status != http.StatusForbidden {
		t.Fatalf("former member sends: %d; want 403", r.Status)
	}
	// Back again: he sees his old window and the new one, not the gap.
	ts.must(http.StatusOK, "POST", "/api/v1/conversations/"+c.ID+"/members", alice.Token, map[string]any{"members": []string{bob.ID}})
	ts.send(alice, c.ID, "bob is back")
	if got := texts(ts.history(bob, c.ID, "").Messages); !slices.Equal(got, []string{"while bob", "bob is back"}) {
		t.Fatalf("bob after rejoining sees %q", got)
	}
	// Only the owner removes others.
	ts.must(http.StatusOK, "POST", "/api/v1/conversations/"+c.ID+"/members", bob.Token, map[string]any{"members": []string{carol.ID}})
	if r := ts.do("DELETE", "/api/v1/conversations/"+c.ID+"/members/"+carol.ID, bob.Token, nil); r.Status != http.StatusForbidden {
		t.Fatalf("member removes member: %d; want 403", r.Status)
	}
	ts.must(http.StatusNoContent, "DELETE", "/api/v1/conversations/"+c.ID+"/members/"+carol.ID, alice.Token, nil)
	if got := texts(ts.history(carol, c.ID, "").Messages); len(got) != 0 {
		t.Fatalf("carol, added and removed with nothing sent, sees %q", got)
	}

	shared := ts.group(alice, "shared history", true)
	ts.send(alice, shared.ID, "old news")
	ts.must(http.StatusOK, "POST", "/api/v1/conversations/"+shared.ID+"/members", alice.Token, map[string]any{"members": []string{carol.ID}})
	if got := texts(ts.history(carol, shared.ID, "").Messages); !slices.Equal(got, []string{"old news"}) {
		t.Fatalf("history_visible_to_new_members: carol sees %q; want the old message", got)
	}
	var d struct {
		Members []struct {
			UserID string `json:"user_id"`
			Role   string `json:"role"`
			Active bool   `json:"active"`
		} `json:"members"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/conversations/"+shared.ID, carol.Token, nil).decode(t, &d)
	if len(d.Members) != 2 {
		t.Fatalf("members = %+v; want alice (owner) and carol", d.Members)
	}
}

func TestConversationListShowsLastVisibleAndUnread(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice, bob := ts.newUser("alice"), ts.newUser("bob")
	quiet := ts.group(alice, "quiet", false, bob)
	busy := ts.group(alice, "busy", false, bob)
	ts.clock.Advance(time.Second)
	for i := range 3 {
		ts.send(alice, busy.ID, "消息 "+string(rune('A'+i)))
	}
	last := ts.send(bob, busy.ID, "bob's own")
	type summary struct {
		ID          string             `json:"id"`
		UnreadCount int                `json:"unread_count"`
		ReadSeq     int64              `json:"read_seq"`
		LastMessage *chatvault.Message `json:"last_message"`
	}
	var list struct{ Conversations []summary }
	ts.must(http.StatusOK, "GET", "/api/v1/conversations", bob.Token, nil).decode(t, &list)
	if len(list.Conversations) != 2 || list.Conversations[0].ID != busy.ID || list.Conversations[1].ID != quiet.ID {
		t.Fatalf("list = %+v; want busy first, then quiet", list.Conversations)
	}
	b := list.Conversations[0]
	if b.UnreadCount != 3 || b.LastMessage == nil || b.LastMessage.ID != last.ID {
		t.Fatalf("busy summary = unread %d, last %+v; want 3 unread (own messages excluded) and bob's message last", b.UnreadCount, b.LastMessage)
	}
	var read struct {
		ReadSeq int64 `json:"read_seq"`
	}
	ts.must(http.StatusOK, "POST", "/api/v1/conversations/"+busy.ID+"/read", bob.Token, map[string]int{"seq": 2}).decode(t, &read)
	if read.ReadSeq != 2 {
		t.Fatalf("read_seq = %d; want 2", read.ReadSeq)
	}
	ts.must(http.StatusOK, "GET", "/api/v1/conversations", bob.Token, nil).decode(t, &list)
	if list.Conversations[0].UnreadCount != 1 {
		t.Fatalf("after reading to 2, unread = %d; want 1", list.Conversations[0].UnreadCount)
	}
	if r := ts.do("POST", "/api/v1/conversations/"+busy.ID+"/read", bob.Token, map[string]int{"seq": -1}); r.Status != http.StatusBadRequest {
		t.Fatalf("read seq -1: %d; want 400", r.Status)
	}
}

func TestOversizedBodyIsRefused(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.newUser("alice")
	c := ts.group(alice, "big", false)
	big := make([]byte, 70<<10)
	for i := range big {
		big[i] = 'x'
	}
	r := ts.do("POST", "/api/v1/conversations/"+c.ID+"/messages", alice.Token, map[string]string{"client_msg_id": "big", "text": string(big)})
	if code, _ := r.errorCode(t); r.Status != http.StatusRequestEntityTooLarge || code != "too_large" {
		t.Fatalf("70 KiB body: %d %s; want 413 too_large", r.Status, code)
	}
	if p := ts.history(alice, c.ID, ""); len(p.Messages) != 0 {
		t.Fatalf("the refused message was stored")
	}
	req, _ := http.NewRequest("POST", ts.URL+"/api/v1/conversations/"+c.ID+"/messages", nil)
	req.Header.Set("Authorization", "Bearer "+alice.Token)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain body: %d; want 415", resp.StatusCode)
	}
}

func TestUnknownRoutesAnswerInJSON(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	r := ts.do("GET", "/api/v1/nothing-here", "", nil)
	if code, _ := r.errorCode(t); r.Status != http.StatusNotFound || code != "not_found" {
		t.Fatalf("unknown path: %d %s", r.Status, code)
	}
	r = ts.do("PUT", "/api/v1/conversations", ts.adminToken, nil)
	if code, _ := r.errorCode(t); r.Status != http.StatusMethodNotAllowed || code != "method_not_allowed" || r.Header.Get("Allow") == "" {
		t.Fatalf("wrong method: %d %s Allow=%q", r.Status, code, r.Header.Get("Allow"))
	}
	var body cvhttp.ErrorBody
	r.decode(t, &body)
	if body.Error.RequestID == "" || body.Error.RequestID != r.Header.Get("X-Request-Id") {
		t.Fatalf("request id %q in body, %q in header; want equal and set", body.Error.RequestID, r.Header.Get("X-Request-Id"))
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.must(http.StatusOK, "GET", "/healthz", "", nil)
	ts.must(http.StatusOK, "GET", "/readyz", "", nil)
	ts.db.Close()
	if r := ts.do("GET", "/readyz", "", nil); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the store closed: %d; want 503", r.Status)
	}
	ts.must(http.StatusOK, "GET", "/healthz", "", nil)
}
