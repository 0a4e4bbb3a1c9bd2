package http_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
)

type syncSummary struct {
	ID         string `json:"id"`
	LastSeq    int64  `json:"last_seq"`
	ReadSeq    int64  `json:"read_seq"`
	ClearedSeq int64  `json:"cleared_seq"`
	Active     bool   `json:"active"`
}

type syncResult struct {
	Cursor        string            `json:"cursor"`
	Initial       bool              `json:"initial"`
	Conversations []syncSummary     `json:"conversations"`
	Events        []chatvault.Event `json:"events"`
}

// msgView is what a device shows of one message.
type msgView struct {
	Text    string
	State   chatvault.MessageState
	Version int
}

// convView is what a device (or the server, for one user) shows of one conversation.
type convView struct {
	Messages map[int64]msgView
	ReadSeq  int64
}

// device is a client that follows the documented sync algorithm: keep a cursor; for every changed
// conversation fetch the seqs after the highest one fetched, up to last_seq; apply events.
type device struct {
	ts      *testServer
	name    string
	token   string
	cursor  string
	convs   map[string]*convView
	fetched map[string]int64 // highest seq fetched (or cleared) per conversation
}

func newDevice(ts *testServer, name, token string) *device {
	return &device{ts: ts, name: name, token: token, convs: map[string]*convView{}, fetched: map[string]int64{}}
}

func (d *device) syncOnce(t *testing.T) (changed bool) {
	t.Helper()
	path := "/api/v1/sync"
	if d.cursor != "" {
		path += "?since=" + url.QueryEscape(d.cursor)
	}
	var res syncResult
	d.ts.must(http.StatusOK, "GET", path, d.token, nil).decode(t, &res)
	if res.Initial {
		d.convs, d.fetched = map[string]*convView{}, map[string]int64{}
	}
	for _, c := range res.Conversations {
		v := d.convs[c.ID]
		if v == nil {
			v = &convView{Messages: map[int64]msgView{}}
			d.convs[c.ID] = v
		}
		v.ReadSeq = c.ReadSeq
		d.dropUpTo(c.ID, c.ClearedSeq)
		d.fetch(t, c.ID, c.LastSeq)
	}
	for _, ev := range res.Events {
		v := d.convs[ev.ConversationID]
		if v == nil {
			t.Fatalf("%s: event %+v for a conversation the sync did not list", d.name, ev)
		}
		switch ev.Kind {
		case chatvault.EventEdited, chatvault.EventRecalled:
			r := d.ts.do("GET", "/api/v1/conversations/"+ev.ConversationID+"/messages/"+ev.MessageID, d.token, nil)
			switch r.Status {
			case http.StatusOK:
				var m chatvault.Message
				r.decode(t, &m)
				if _, have := v.Messages[m.Seq]; have || m.Seq <= d.fetched[ev.ConversationID] {
					v.Messages[m.Seq] = msgView{m.Text, m.State, m.Version}
				}
			case http.StatusNotFound:
				delete(v.Messages, ev.Seq)
			default:
				t.Fatalf("%s: refetch after %s: %d %s", d.name, ev.Kind, r.Status, r.Body)
			}
		case chatvault.EventHidden:
			delete(v.Messages, ev.Seq)
		case chatvault.EventCleared:
			d.dropUpTo(ev.ConversationID, ev.Seq)
		case chatvault.EventRead:
			v.ReadSeq = max(v.ReadSeq, ev.Seq)
		}
	}
	d.cursor = res.Cursor
	return len(res.Conversations) > 0 || len(res.Events) > 0
}

func (d *device) dropUpTo(convID string, seq int64) {
	for s := range d.convs[convID].Messages {
		if s <= seq {
			delete(d.convs[convID].Messages, s)
		}
	}
	d.fetched[convID] = max(d.fetched[convID], seq)
}

func (d *device) fetch(t *testing.T, convID string, upTo int64) {
	for d.fetched[convID] < upTo {
		p := d.ts.history(user{Token: d.token}, convID, fmt.Sprintf("?after_seq=%d&limit=200", d.fetched[convID]))
		for _, m := range p.Messages {
			d.convs[convID].Messages[m.Seq] = msgView{m.Text, m.State, m.Version}
		}
		if !p.HasMore {
			d.fetched[convID] = upTo
			return
		}
		d.fetched[convID] = p.Messages[len(p.Messages)-1].Seq
	}
}

// serverView is what the server shows the user, read afresh through the history API.
func serverView(t *testing.T, ts *testServer, u user) map[string]*convView {
	var list struct{ Conversations []syncSummary }
	ts.must(http.StatusOK, "GET", "/api/v1/conversations", u.Token, nil).decode(t, &list)
	out := map[string]*convView{}
	for _, c := range list.Conversations {
		v := &convView{Messages: map[int64]msgView{}, ReadSeq: c.ReadSeq}
		after := int64(0)
		for {
			p := ts.history(u, c.ID, fmt.Sprintf("?after_seq=%d&limit=200", after))
			for _, m := range p.Messages {
				v.Messages[m.Seq] = msgView{m.Text, m.State, m.Version}
				after = m.Seq
			}
			if !p.HasMore {
				break
			}
		}
		out[c.ID] = v
	}
	return out
}

func equalViews(a, b map[string]*convView) string {
	for _, id := range slices.Sorted(maps.Keys(b)) {
		if a[id] == nil {
			if len(b[id].Messages) > 0 {
				return fmt.Sprintf("conversation %s: device lacks it, server shows %d messages", id, len(b[id].Messages))
			}
			continue
		}
		if a[id].ReadSeq != b[id].ReadSeq {
			return fmt.Sprintf("conversation %s: device read_seq %d, server %d", id, a[id].ReadSeq, b[id].ReadSeq)
		}
		if !maps.Equal(a[id].Messages, b[id].Messages) {
			return fmt.Sprintf("conversation %s:\n device %v\n server %v", id, a[id].Messages, b[id].Messages)
		}
	}
	for id, v := range a {
		if b[id] == nil && len(v.Messages) > 0 {
			return fmt.Sprintf("conversation %s: device shows %d messages the server does not list", id, len(v.Messages))
		}
	}
	return ""
}

// TestSyncProperty: several users with several devices each; random sends, edits, recalls, hides,
// clears, reads, joins and leaves; devices going offline and resuming from old cursors. At
// quiescence every device's view equals the server's view for its user.
func TestSyncProperty(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if testing.Short() {
		seed = 1
	}
	t.Logf("seed %d (rerun with this seed by editing the test to fix it)", seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	ts := newTestServer(t)

	names := []string{"amy", "bo", "chen", "dana"}
	users := make([]user, len(names))
	var devices []*device
	owner := map[*device]user{}
	for i, n := range names {
		users[i] = ts.newUser(n)
		for k := range 2 {
			d := newDevice(ts, fmt.Sprintf("%s/%d", n, k), ts.login(n, "password-"+n, "").Token)
			devices = append(devices, d)
			owner[d] = users[i]
		}
	}
	type group struct {
		id      string
		members map[int]bool
	}
	var groups []*group
	newGroup := func(creator int, history bool) {
		g := &group{members: map[int]bool{creator: true}}
		var others []user
		for i := range users {
			if i != creator && rng.IntN(2) == 0 {
				others = append(others, users[i])
				g.members[i] = true
			}
		}
		g.id = ts.group(users[creator], "群"+fmt.Sprint(len(groups)), history, others...).ID
		groups = append(groups, g)
	}
	newGroup(0, false)
	newGroup(1, true)
	var direct conversation
	ts.must(http.StatusCreated, "POST", "/api/v1/conversations", users[2].Token, map[string]any{"type": "direct", "members": []string{users[3].ID}}).decode(t, &direct)
	groups = append(groups, &group{id: direct.ID, members: map[int]bool{2: true, 3: true}})
	isDirect := func(g *group) bool { return g.id == direct.ID }

	type sent struct {
		conv string
		from int
		id   string
	}
	var messages []sent
	offline := map[*device]bool{}
	savedCursor := map[*device]string{}
	words := []string{"你好", "合同", "meeting", "上海", "v2", "🚀", "ok", "明天"}

	for step := range 400 {
		g := groups[rng.IntN(len(groups))]
		var members []int
		for i := range users {
			if g.members[i] {
				members = append(members, i)
			}
		}
		switch op := rng.IntN(100); {
		case op < 35 && len(members) > 0: // send
			from := members[rng.IntN(len(members))]
			text := fmt.Sprintf("%s %s #%d", words[rng.IntN(len(words))], words[rng.IntN(len(words))], step)
			m := ts.send(users[from], g.id, text)
			messages = append(messages, sent{g.id, from, m.ID})
		case op < 42 && len(messages) > 0: // edit own message
			m := messages[rng.IntN(len(messages))]
			ts.do("PATCH", "/api/v1/conversations/"+m.conv+"/messages/"+m.id, users[m.from].Token, map[string]string{"text": fmt.Sprintf("改 edited %d", step)})
		case op < 47 && len(messages) > 0: // recall own message
			m := messages[rng.IntN(len(messages))]
			ts.do("POST", "/api/v1/conversations/"+m.conv+"/messages/"+m.id+"/recall", users[m.from].Token, nil)
		case op < 55 && len(messages) > 0: // someone hides a message
			m := messages[rng.IntN(len(messages))]
			ts.do("POST", "/api/v1/conversations/"+m.conv+"/messages/"+m.id+"/hide", users[rng.IntN(len(users))].Token, nil)
		case op < 59: // clear history
			ts.do("POST", "/api/v1/conversations/"+g.id+"/clear", users[rng.IntN(len(users))].Token, nil)
		case op < 67: // mark read
			ts.do("POST", "/api/v1/conversations/"+g.id+"/read", users[rng.IntN(len(users))].Token, map[string]int{"seq": rng.IntN(60)})
		case op < 73 && !isDirect(g) && len(members) > 0: // a member adds someone
			who := rng.IntN(len(users))
			if !g.members[who] {
				ts.must(http.StatusOK, "POST", "/api/v1/conversations/"+g.id+"/members", users[members[rng.IntN(len(members))]].Token,
					map[string]any{"members": []string{users[who].ID}})
				g.members[who] = true
			}
		case op < 78 && !isDirect(g) && len(members) > 1: // someone leaves
			who := members[rng.IntN(len(members))]
			ts.must(http.StatusNoContent, "POST", "/api/v1/conversations/"+g.id+"/leave", users[who].Token, nil)
			delete(g.members, who)
		case op < 80:
			newGroup(rng.IntN(len(users)), rng.IntN(2) == 0)
		case op < 88: // a device goes offline or comes back
			d := devices[rng.IntN(len(devices))]
			offline[d] = !offline[d]
		case op < 92: // a device saves its cursor, or resumes from an old one
			d := devices[rng.IntN(len(devices))]
			if c, ok := savedCursor[d]; ok && rng.IntN(2) == 0 {
				d.cursor = c
			} else {
				savedCursor[d] = d.cursor
			}
		default: // online devices sync
			for _, d := range devices {
				if !offline[d] {
					d.syncOnce(t)
				}
			}
		}
	}
	for _, d := range devices {
		for range 10 {
			if !d.syncOnce(t) {
				break
			}
		}
		if diff := equalViews(d.convs, serverView(t, ts, owner[d])); diff != "" {
			t.Fatalf("seed %d: device %s differs from the server's view: %s", seed, d.name, diff)
		}
	}
}

func TestSyncBasics(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice, bob := ts.newUser("alice"), ts.newUser("bob")
	c := ts.group(alice, "sync", false, bob)
	var initial syncResult
	ts.must(http.StatusOK, "GET", "/api/v1/sync", bob.Token, nil).decode(t, &initial)
	if !initial.Initial || len(initial.Conversations) != 1 || initial.Cursor == "" {
		t.Fatalf("initial sync = %+v", initial)
	}
	var empty syncResult
	ts.must(http.StatusOK, "GET", "/api/v1/sync?since="+initial.Cursor, bob.Token, nil).decode(t, &empty)
	if len(empty.Conversations) != 0 || len(empty.Events) != 0 || empty.Cursor != initial.Cursor {
		t.Fatalf("sync with nothing new = %+v", empty)
	}
	ts.send(alice, c.ID, "一")
	ts.send(alice, c.ID, "二")
	var next syncResult
	ts.must(http.StatusOK, "GET", "/api/v1/sync?since="+initial.Cursor, bob.Token, nil).decode(t, &next)
	if len(next.Conversations) != 1 || next.Conversations[0].LastSeq != 2 || next.Cursor == initial.Cursor {
		t.Fatalf("sync after two sends = %+v; want the conversation at last_seq 2", next)
	}
	// A hide goes to the hider's devices only.
	m := ts.send(alice, c.ID, "三")
	ts.must(http.StatusNoContent, "POST", "/api/v1/conversations/"+c.ID+"/messages/"+m.ID+"/hide", bob.Token, nil)
	var bobs, alices syncResult
	ts.must(http.StatusOK, "GET", "/api/v1/sync?since="+next.Cursor, bob.Token, nil).decode(t, &bobs)
	ts.must(http.StatusOK, "GET", "/api/v1/sync?since="+next.Cursor, alice.Token, nil).decode(t, &alices)
	if !hasEvent(bobs.Events, chatvault.EventHidden) || hasEvent(alices.Events, chatvault.EventHidden) {
		t.Fatalf("hide events: bob %+v, alice %+v; want bob only", bobs.Events, alices.Events)
	}
	// After leaving, nothing more reaches the former member.
	ts.must(http.StatusNoContent, "POST", "/api/v1/conversations/"+c.ID+"/leave", bob.Token, nil)
	var left syncResult
	ts.must(http.StatusOK, "GET", "/api/v1/sync?since="+bobs.Cursor, bob.Token, nil).decode(t, &left)
	after := ts.send(alice, c.ID, "after bob left")
	ts.must(http.StatusOK, "PATCH", "/api/v1/conversations/"+c.ID+"/messages/"+after.ID, alice.Token, map[string]string{"text": "edited after"})
	ts.must(http.StatusOK, "POST", "/api/v1/conversations/"+c.ID+"/members", alice.Token, map[string]any{"members": []string{ts.newUser("carol").ID}})
	var leaked syncResult
	ts.must(http.StatusOK, "GET", "/api/v1/sync?since="+left.Cursor, bob.Token, nil).decode(t, &leaked)
	if len(leaked.Conversations) != 0 || len(leaked.Events) != 0 {
		t.Fatalf("former member's sync after leaving = %+v; want nothing", leaked)
	}

	for _, tc := range []struct {
		since string
		want  int
	}{
		{"garbage", http.StatusBadRequest},
		{"c1.-5", http.StatusBadRequest},
		{chat.EncodeCursor(1 << 40), http.StatusGone},
	} {
		r := ts.do("GET", "/api/v1/sync?since="+url.QueryEscape(tc.since), bob.Token, nil)
		if code, _ := r.errorCode(t); r.Status != tc.want || !strings.Contains(string(r.Body), "initial sync") {
			t.Errorf("since=%q: %d %s %s; want %d telling the client to do an initial sync", tc.since, r.Status, code, r.Body, tc.want)
		}
	}
	if r := ts.do("GET", "/api/v1/sync?since="+left.Cursor+"&timeout=61", bob.Token, nil); r.Status != http.StatusBadRequest {
		t.Fatalf("timeout=61: %d; want 400", r.Status)
	}
}

func hasEvent(evs []chatvault.Event, kind chatvault.EventKind) bool {
	for _, e := range evs {
		if e.Kind == kind {
			return true
		}
	}
	return false
}

// TestLongPollWakesOnChange: a waiting sync returns as soon as something visible changes.
func TestLongPollWakesOnChange(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice, bob := ts.newUser("alice"), ts.newUser("bob")
	c := ts.group(alice, "poll", false, bob)
	var initial syncResult
	ts.must(http.StatusOK, "GET", "/api/v1/sync", bob.Token, nil).decode(t, &initial)
	done := make(chan syncResult, 1)
	go func() {
		var res syncResult
		ts.must(http.StatusOK, "GET", "/api/v1/sync?timeout=30&since="+initial.Cursor, bob.Token, nil).decode(t, &res)
		done <- res
	}()
	// Changes bob may not see do not end his wait.
	other := ts.group(alice, "bob is not here", false)
	ts.send(alice, other.ID, "private")
	ts.send(alice, c.ID, "wake up")
	res := <-done
	if len(res.Conversations) != 1 || res.Conversations[0].ID != c.ID || res.Conversations[0].LastSeq != 1 {
		t.Fatalf("long-poll returned %+v; want bob's conversation with the new message (a 30 s timeout would return nothing)", res)
	}
}
