package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
)

// The change feed: what a device that has seen everything up to a cursor learns next.

func (f *fixture) changes(t *testing.T, user int, since int64) *chatvault.Changes {
	t.Helper()
	ch, err := f.s.FindChanges(context.Background(), f.org.ID, f.users[user].ID, since, 100)
	if err != nil {
		t.Fatalf("FindChanges(user %d, since %d) = %v", user, since, err)
	}
	return ch
}

// kinds lists the kinds of the events of conversation c, checking that they lie in (since,
// cursor] and come in number order.
func kinds(t *testing.T, ch *chatvault.Changes, c *chatvault.Conversation, since int64) []chatvault.EventKind {
	t.Helper()
	out := []chatvault.EventKind{}
	last := since
	for _, ev := range ch.Events {
		if ev.ConversationID != c.ID {
			continue
		}
		if ev.ID <= last || ev.ID > ch.Cursor {
			t.Fatalf("event %d (%s) after %d, cursor %d: want events in number order within (since, cursor]", ev.ID, ev.Kind, last, ch.Cursor)
		}
		last = ev.ID
		out = append(out, ev.Kind)
	}
	return out
}

func hasConversation(ch *chatvault.Changes, c *chatvault.Conversation) bool {
	return slices.ContainsFunc(ch.Conversations, func(uc *chatvault.UserConversation) bool { return uc.Conversation.ID == c.ID })
}

func testFeed(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 3)
	c := f.group(t, 0, false, 1)
	quiet := f.group(t, 0, false, 1)
	since, err := s.LastEventID(ctx)
	if err != nil {
		t.Fatalf("LastEventID() = %v", err)
	}
	m := f.send(t, c, 0, "one")
	f.send(t, c, 0, "two")
	if err := s.HideMessage(ctx, f.org.ID, c.ID, f.users[1].ID, 1, t0); err != nil {
		t.Fatal(err)
	}
	s.SetReadSeq(ctx, f.org.ID, c.ID, f.users[0].ID, 2, t0)
	s.EditMessage(ctx, f.org.ID, c.ID, m.Seq, 1, "one, edited", t0)
	s.RecallMessage(ctx, f.org.ID, c.ID, 2, t0)
	last, err := s.LastEventID(ctx)
	if err != nil || last <= since {
		t.Fatalf("LastEventID() = %d, %v; want past %d after six changes", last, err, since)
	}

	ch := f.changes(t, 1, since)
	if ch.Cursor != last || !hasConversation(ch, c) || hasConversation(ch, quiet) {
		t.Fatalf("FindChanges(user 1) = cursor %d, %d conversations; want cursor %d and the changed conversation only", ch.Cursor, len(ch.Conversations), last)
	}
	uc := ch.Conversations[slices.IndexFunc(ch.Conversations, func(uc *chatvault.UserConversation) bool { return uc.Conversation.ID == c.ID })]
	if uc.Conversation.LastSeq != 2 || uc.Participant.UserID != f.users[1].ID {
		t.Fatalf("FindChanges() conversation = last seq %d, participant %s; want 2 and user 1's own", uc.Conversation.LastSeq, uc.Participant.UserID)
	}
	want := []chatvault.EventKind{chatvault.EventHidden, chatvault.EventEdited, chatvault.EventRecalled}
	if got := kinds(t, ch, c, since); !equal(got, want) {
		t.Fatalf("FindChanges(user 1) events = %v; want %v (user 0's read marker is not user 1's)", got, want)
	}
	for _, ev := range ch.Events {
		if ev.Kind == chatvault.EventEdited && (ev.Seq != 1 || ev.MessageID != m.ID) {
			t.Fatalf("edit event = %+v; want seq 1, message %s", ev, m.ID)
		}
		if ev.Kind == chatvault.EventHidden && (ev.Seq != 1 || ev.Subject != f.users[1].ID) {
			t.Fatalf("hide event = %+v; want seq 1 for user 1", ev)
		}
	}
	want = []chatvault.EventKind{chatvault.EventRead, chatvault.EventEdited, chatvault.EventRecalled}
	if got := kinds(t, f.changes(t, 0, since), c, since); !equal(got, want) {
		t.Fatalf("FindChanges(user 0) events = %v; want %v (user 1's hide is not user 0's)", got, want)
	}
	if ch := f.changes(t, 2, since); len(ch.Conversations) != 0 || len(ch.Events) != 0 {
		t.Fatalf("FindChanges(not a member) = %d conversations, %d events; want none", len(ch.Conversations), len(ch.Events))
	}
	// Resuming in the middle returns only what came after.
	mid := ch.Events[0].ID
	if got := kinds(t, f.changes(t, 1, mid), c, mid); !equal(got, []chatvault.EventKind{chatvault.EventEdited, chatvault.EventRecalled}) {
		t.Fatalf("FindChanges(since %d) events = %v; want the edit and the recall", mid, got)
	}
	if ch := f.changes(t, 1, last); ch.Cursor != last || len(ch.Conversations) != 0 || len(ch.Events) != 0 {
		t.Fatalf("FindChanges(at the cursor) = %+v; want nothing new, same cursor", ch)
	}
	_, err = s.FindChanges(ctx, f.org.ID, f.users[1].ID, last+1000, 100)
	wantCode(t, "FindChanges(cursor ahead)", err, chatvault.ERESYNC)
	f.send(t, quiet, 0, "now this one too")
	_, err = s.FindChanges(ctx, f.org.ID, f.users[1].ID, since, 1)
	wantCode(t, "FindChanges(more conversations than allowed)", err, chatvault.ERESYNC)
	// Membership changes reach the user they are about.
	before, _ := s.LastEventID(ctx)
	s.AddMembers(ctx, f.org.ID, c.ID, []string{f.users[2].ID}, t0.Add(time.Minute))
	if ch := f.changes(t, 2, before); !hasConversation(ch, c) || !slices.Contains(kinds(t, ch, c, before), chatvault.EventMemberJoined) {
		t.Fatalf("FindChanges(new member) = %+v; want the conversation and member_joined", ch)
	}
}

// Expiry, destruction and restores travel as range events; what a destroyed message leaves is a
// tombstone every reader can page over.
func testFeedTombstones(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	ms := f.hourly(t, c, 5)
	since, _ := s.LastEventID(ctx)
	if _, err := s.ExpireMessages(ctx, chatvault.ExpireStep{Selection: f.sel(c, 100), SentBefore: hour(3)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RestoreExpired(ctx, f.org.ID, c.ID, 3, 3, hour(101)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DestroyMessages(ctx, chatvault.DestroyStep{Selection: f.sel(c, 100), ExpiredBefore: ptr(hour(200))}); err != nil {
		t.Fatal(err)
	}
	ch := f.changes(t, 1, since)
	var got [][3]int64 // kind (1 purged, 2 restored), from, to
	for _, ev := range ch.Events {
		if ev.ConversationID != c.ID {
			continue
		}
		k := map[chatvault.EventKind]int64{chatvault.EventPurged: 1, chatvault.EventRestored: 2}[ev.Kind]
		got = append(got, [3]int64{k, ev.FromSeq, ev.Seq})
	}
	want := [][3]int64{{1, 1, 3}, {2, 3, 3}, {1, 1, 2}}
	if !equal(got, want) {
		t.Fatalf("FindChanges() range events = %v; want %v ([kind, from, to]: expired 1..3, restored 3, destroyed 1..2)", got, want)
	}
	page, err := s.FindMessages(ctx, f.org.ID, c.ID, chatvault.MessageQuery{Limit: 10})
	if err != nil || len(page) != 5 {
		t.Fatalf("FindMessages() = %d, %v; want 5 (tombstones included)", len(page), err)
	}
	for i, m := range page {
		if m.ID != ms[i].ID || m.Seq != int64(i+1) {
			t.Fatalf("FindMessages()[%d] = id %s seq %d; want id %s seq %d", i, m.ID, m.Seq, ms[i].ID, i+1)
		}
		if purged := m.State == chatvault.StatePurged; purged != (i < 2) || purged && m.Text != "" {
			t.Fatalf("seq %d = %s %q; want tombstones at 1 and 2 only", m.Seq, m.State, m.Text)
		}
	}
}
