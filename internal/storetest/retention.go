package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
)

// The retention steps: what one bounded step changes, what the counts promise, and how a run
// resumes. The service (internal/retention) decides the cutoffs; these tests give them directly.

// hourly sends n messages from user 0, one an hour from t0: seq i+1 is sent at t0 + i hours.
func (f *fixture) hourly(t *testing.T, c *chatvault.Conversation, n int) []*chatvault.Message {
	t.Helper()
	out := make([]*chatvault.Message, n)
	for i := range n {
		out[i] = f.sendAt(t, c, 0, "hour "+string(rune('a'+i%26)), hour(i))
	}
	return out
}

func hour(i int) time.Time { return t0.Add(time.Duration(i) * time.Hour) }

// messages reads the whole conversation as the store holds it, by seq.
func (f *fixture) messages(t *testing.T, c *chatvault.Conversation) map[int64]*chatvault.Message {
	t.Helper()
	ms, err := f.s.FindMessages(context.Background(), f.org.ID, c.ID, chatvault.MessageQuery{Limit: 1 << 20})
	if err != nil {
		t.Fatalf("FindMessages() = %v", err)
	}
	out := make(map[int64]*chatvault.Message, len(ms))
	for _, m := range ms {
		out[m.Seq] = m
	}
	return out
}

// states lists the seqs of c that are expired (not destroyed) and destroyed.
func (f *fixture) states(t *testing.T, c *chatvault.Conversation) (expired, destroyed []int64) {
	t.Helper()
	ms, err := f.s.FindMessages(context.Background(), f.org.ID, c.ID, chatvault.MessageQuery{Limit: 1 << 20})
	if err != nil {
		t.Fatalf("FindMessages() = %v", err)
	}
	expired, destroyed = []int64{}, []int64{}
	for _, m := range ms {
		switch {
		case m.State == chatvault.StatePurged:
			destroyed = append(destroyed, m.Seq)
		case m.ExpiredAt != nil:
			expired = append(expired, m.Seq)
		}
	}
	return expired, destroyed
}

func (f *fixture) sel(c *chatvault.Conversation, limit int) chatvault.Selection {
	return chatvault.Selection{OrgID: f.org.ID, ConversationID: c.ID, Limit: limit, At: hour(100)}
}

func checkStep(t *testing.T, op string, res *chatvault.StepResult, err error, count int, first, last int64) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s = %v", op, err)
	}
	if res.Count != count || res.FirstSeq != first || res.LastSeq != last {
		t.Fatalf("%s = %d in [%d, %d]; want %d in [%d, %d]", op, res.Count, res.FirstSeq, res.LastSeq, count, first, last)
	}
}

func checkSeqs(t *testing.T, what string, got, want []int64) {
	t.Helper()
	if !equal(got, want) {
		t.Fatalf("%s = %v; want %v", what, got, want)
	}
}

func ptr[T any](v T) *T { return &v }

func testRetentionSettings(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 3)
	p, err := s.FindPolicy(ctx, f.org.ID)
	if err != nil || *p != chatvault.DefaultPolicy() {
		t.Fatalf("FindPolicy(never set) = %+v, %v; want the default policy", p, err)
	}
	want := chatvault.Policy{DefaultDays: 30, MinDays: 7, MaxDays: 400, ImportantDays: 90, Mode: chatvault.ModeUserChoice,
		PreserveRecall: true, RecallWindowSeconds: 300, GraceDays: 3, Locked: true, LockedAt: ptr(t0), UpdatedAt: t0, UpdatedBy: f.users[0].ID}
	if err := s.SavePolicy(ctx, f.org.ID, &want); err != nil {
		t.Fatalf("SavePolicy() = %v", err)
	}
	if p, err = s.FindPolicy(ctx, f.org.ID); err != nil || p.DefaultDays != 30 || p.MinDays != 7 || p.MaxDays != 400 || p.ImportantDays != 90 ||
		p.Mode != chatvault.ModeUserChoice || !p.PreserveRecall || p.RecallWindowSeconds != 300 || p.GraceDays != 3 || !p.Locked ||
		p.LockedAt == nil || !p.LockedAt.Equal(t0) || !p.UpdatedAt.Equal(t0) || p.UpdatedBy != want.UpdatedBy {
		t.Fatalf("FindPolicy() = %+v, %v; want %+v", p, err, want)
	}
	if other := newFixture(t, s, 1); true {
		if p, _ := s.FindPolicy(ctx, other.org.ID); *p != chatvault.DefaultPolicy() {
			t.Fatalf("FindPolicy(another org) = %+v; want the default", p)
		}
	}

	c := f.group(t, 0, false, 1, 2)
	if d, err := s.FindConversationRetention(ctx, f.org.ID, c.ID); err != nil || d != nil {
		t.Fatalf("FindConversationRetention(unset) = %v, %v; want nil", d, err)
	}
	for _, days := range []*int{ptr(15), ptr(0), nil} {
		if err := s.SetConversationRetention(ctx, f.org.ID, c.ID, days); err != nil {
			t.Fatalf("SetConversationRetention(%v) = %v", days, err)
		}
		if d, err := s.FindConversationRetention(ctx, f.org.ID, c.ID); err != nil || (d == nil) != (days == nil) || d != nil && *d != *days {
			t.Fatalf("FindConversationRetention() = %v, %v; want %v", d, err, days)
		}
	}
	wantCode(t, "SetConversationRetention(unknown)", s.SetConversationRetention(ctx, f.org.ID, id(), ptr(1)), chatvault.ENOTFOUND)
	_, err = s.FindConversationRetention(ctx, f.org.ID, id())
	wantCode(t, "FindConversationRetention(unknown)", err, chatvault.ENOTFOUND)

	// Member preferences: current members only; a member who left takes theirs along.
	if err := s.SetUserRetention(ctx, f.org.ID, f.users[1].ID, ptr(365)); err != nil {
		t.Fatalf("SetUserRetention() = %v", err)
	}
	if err := s.SetUserRetention(ctx, f.org.ID, f.users[2].ID, ptr(90)); err != nil {
		t.Fatalf("SetUserRetention() = %v", err)
	}
	wantCode(t, "SetUserRetention(unknown)", s.SetUserRetention(ctx, f.org.ID, id(), ptr(1)), chatvault.ENOTFOUND)
	prefs := func() (set []int, unset int) {
		t.Helper()
		ps, err := s.FindMemberRetention(ctx, f.org.ID, c.ID)
		if err != nil {
			t.Fatalf("FindMemberRetention() = %v", err)
		}
		for _, p := range ps {
			if p == nil {
				unset++
			} else {
				set = append(set, *p)
			}
		}
		return set, unset
	}
	if set, unset := prefs(); len(set) != 2 || set[0]+set[1] != 455 || unset != 1 {
		t.Fatalf("FindMemberRetention() = %v and %d unset; want 365 and 90, and the owner's unset", set, unset)
	}
	s.RemoveMember(ctx, f.org.ID, c.ID, f.users[1].ID, t0)
	s.SetUserRetention(ctx, f.org.ID, f.users[2].ID, nil)
	if set, unset := prefs(); len(set) != 0 || unset != 2 {
		t.Fatalf("after a leave and a cleared preference, FindMemberRetention() = %v and %d unset; want none set, 2 unset", set, unset)
	}
	ids, err := s.FindParticipantIDs(ctx, f.org.ID, c.ID)
	if err != nil || len(ids) != 3 {
		t.Fatalf("FindParticipantIDs() = %v, %v; want all three who are or were members", ids, err)
	}

	// FindConversationIDs pages by id through the org's conversations, and only this org's.
	newFixture(t, s, 1).group(t, 0, false)
	all := []string{c.ID, f.group(t, 0, false).ID, f.group(t, 0, false).ID}
	var got []string
	for after := ""; ; {
		page, err := s.FindConversationIDs(ctx, f.org.ID, after, 2)
		if err != nil {
			t.Fatalf("FindConversationIDs(after %q) = %v", after, err)
		}
		if len(page) == 0 {
			break
		}
		for _, id := range page {
			if id <= after {
				t.Fatalf("FindConversationIDs(after %q) returned %q: not in id order", after, id)
			}
			after = id
		}
		got = append(got, page...)
	}
	if len(got) != len(all) {
		t.Fatalf("FindConversationIDs() paged through %d conversations; want %d", len(got), len(all))
	}
}

func testExpireStep(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	f.hourly(t, c, 10)
	if _, err := s.SetImportance(ctx, f.org.ID, c.ID, 2, f.users[0].ID, chatvault.ImportantByAdmin, true, t0); err != nil {
		t.Fatalf("SetImportance() = %v", err)
	}
	if _, err := s.RecallMessage(ctx, f.org.ID, c.ID, 3, t0); err != nil {
		t.Fatalf("RecallMessage() = %v", err)
	}
	// Seq 1..6 are older than the cutoff; 2 is important and 3 recalled (left to the destroy step).
	step := chatvault.ExpireStep{Selection: f.sel(c, 100), SentBefore: hour(6)}
	step.ExcludeRecalled = true
	res, err := s.ExpireMessages(ctx, step)
	checkStep(t, "ExpireMessages()", res, err, 4, 1, 6)
	if !res.Done {
		t.Fatalf("ExpireMessages() Done = false; want true (nothing older than the cutoff is left)")
	}
	expired, _ := f.states(t, c)
	checkSeqs(t, "expired seqs", expired, []int64{1, 4, 5, 6})
	m := f.messages(t, c)[1]
	if m.State != chatvault.StateLive || m.ExpiredAt == nil || !m.ExpiredAt.Equal(step.At) || m.Text == "" {
		t.Fatalf("expired seq 1 = state %s, expired_at %v, text %q; want live, expired at %v, body kept for the grace window", m.State, m.ExpiredAt, m.Text, step.At)
	}
	res, err = s.ExpireMessages(ctx, step)
	checkStep(t, "ExpireMessages(again)", res, err, 0, 0, 0)

	// A bounded step changes at most Limit rows, and says where to resume.
	step = chatvault.ExpireStep{Selection: f.sel(c, 2), SentBefore: hour(10)}
	step.AfterSeq = 6
	res, err = s.ExpireMessages(ctx, step)
	checkStep(t, "ExpireMessages(limit 2)", res, err, 2, 7, 8)
	if res.Done || res.Scanned != 8 {
		t.Fatalf("ExpireMessages(limit 2) Done %v, Scanned %d; want false, 8", res.Done, res.Scanned)
	}
	step.AfterSeq = res.Scanned
	res, err = s.ExpireMessages(ctx, step)
	checkStep(t, "ExpireMessages(resumed)", res, err, 2, 9, 10)
	expired, _ = f.states(t, c)
	checkSeqs(t, "expired seqs", expired, []int64{1, 4, 5, 6, 7, 8, 9, 10})

	// Without ExcludeRecalled, recalled messages expire with the rest.
	c2 := f.group(t, 0, false, 1)
	f.hourly(t, c2, 3)
	s.RecallMessage(ctx, f.org.ID, c2.ID, 2, t0)
	res, err = s.ExpireMessages(ctx, chatvault.ExpireStep{Selection: f.sel(c2, 100), SentBefore: hour(10)})
	checkStep(t, "ExpireMessages(recalled included)", res, err, 3, 1, 3)

	_, err = s.ExpireMessages(ctx, chatvault.ExpireStep{Selection: chatvault.Selection{OrgID: f.org.ID, ConversationID: id(), Limit: 10, At: t0}, SentBefore: t0})
	wantCode(t, "ExpireMessages(unknown conversation)", err, chatvault.ENOTFOUND)
}

// A step with AfterSeq 0 resumes after the conversation's watermark; whatever could make an
// examined message go after all (a flag cleared, a hold released, a restore, a new policy) makes
// the next step look again.
func testExpireWatermark(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	f.hourly(t, c, 5)
	step := chatvault.ExpireStep{Selection: f.sel(c, 2), SentBefore: hour(10)}
	for _, want := range [][2]int64{{1, 2}, {3, 4}, {5, 5}} {
		res, err := s.ExpireMessages(ctx, step)
		checkStep(t, "ExpireMessages(after the watermark)", res, err, int(want[1]-want[0]+1), want[0], want[1])
	}
	if res, err := s.ExpireMessages(ctx, step); err != nil || res.Count != 0 || !res.Done {
		t.Fatalf("ExpireMessages(past the end) = %+v, %v; want nothing, done", res, err)
	}

	c2 := f.group(t, 0, false, 1)
	f.hourly(t, c2, 4)
	s.SetImportance(ctx, f.org.ID, c2.ID, 2, f.users[0].ID, chatvault.ImportantByAdmin, true, t0)
	step = chatvault.ExpireStep{Selection: f.sel(c2, 100), SentBefore: hour(10)}
	step.Held = []chatvault.TimeRange{{From: ptr(hour(2)), To: ptr(hour(3))}} // seq 3
	res, err := s.ExpireMessages(ctx, step)
	checkStep(t, "ExpireMessages(one important, one held)", res, err, 2, 1, 4)
	// The flag is cleared: seq 2 is examined again.
	if _, err := s.SetImportance(ctx, f.org.ID, c2.ID, 2, f.users[0].ID, chatvault.ImportantByAdmin, false, t0); err != nil {
		t.Fatalf("SetImportance(off) = %v", err)
	}
	res, err = s.ExpireMessages(ctx, step)
	checkStep(t, "ExpireMessages(after the flag is cleared)", res, err, 1, 2, 2)
	step.Held = nil
	if res, err := s.ExpireMessages(ctx, step); err != nil || res.Count != 0 {
		t.Fatalf("ExpireMessages(past the watermark) = %+v, %v; want nothing until something changes", res, err)
	}
	// A hold is released: seq 3 is examined again.
	h := &chatvault.Hold{OrgID: f.org.ID, ID: id(), Name: "h", From: ptr(hour(2)), To: ptr(hour(3)), CreatedBy: f.users[0].ID, CreatedAt: t0}
	if err := s.CreateHold(ctx, h); err != nil {
		t.Fatalf("CreateHold() = %v", err)
	}
	if _, err := s.ReleaseHold(ctx, f.org.ID, h.ID, f.users[0].ID, t0); err != nil {
		t.Fatalf("ReleaseHold() = %v", err)
	}
	res, err = s.ExpireMessages(ctx, step)
	checkStep(t, "ExpireMessages(after the hold is released)", res, err, 1, 3, 3)

	// A restore, and each kind of retention change, reopens what was examined. Before each, seq 4
	// is made live again without one (as a longer policy does), below the watermark.
	for _, tc := range []struct {
		name   string
		change func() error
	}{
		{"RestoreExpired", func() error { _, err := s.RestoreExpired(ctx, f.org.ID, c2.ID, 4, 4, t0); return err }},
		{"SavePolicy", func() error { p := chatvault.DefaultPolicy(); return s.SavePolicy(ctx, f.org.ID, &p) }},
		{"SetConversationRetention", func() error { return s.SetConversationRetention(ctx, f.org.ID, c2.ID, ptr(5)) }},
		{"SetUserRetention", func() error { return s.SetUserRetention(ctx, f.org.ID, f.users[1].ID, ptr(5)) }},
	} {
		if tc.name != "RestoreExpired" {
			un := chatvault.ExpireStep{Selection: f.sel(c2, 100)}
			un.AfterSeq = 3
			if res, err := s.UnexpireMessages(ctx, un); err != nil || res.Count != 1 {
				t.Fatalf("UnexpireMessages(seq 4) = %+v, %v; want 1", res, err)
			}
			if res, err := s.ExpireMessages(ctx, step); err != nil || res.Count != 0 {
				t.Fatalf("ExpireMessages(below the watermark) = %+v, %v; want nothing before %s", res, err, tc.name)
			}
		}
		if err := tc.change(); err != nil {
			t.Fatalf("%s() = %v", tc.name, err)
		}
		res, err := s.ExpireMessages(ctx, step)
		checkStep(t, "ExpireMessages(after "+tc.name+")", res, err, 1, 4, 4)
	}
}

func testExpireImportant(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	f.hourly(t, c, 6)
	for _, seq := range []int64{2, 4, 5} {
		if _, err := s.SetImportance(ctx, f.org.ID, c.ID, seq, f.users[1].ID, chatvault.ImportantByStar, true, t0); err != nil {
			t.Fatalf("SetImportance(star %d) = %v", seq, err)
		}
	}
	step := chatvault.ExpireStep{Selection: f.sel(c, 100), SentBefore: hour(10), Important: true}
	res, err := s.ExpireMessages(ctx, step)
	if err != nil || res.Count != 0 || !res.Done {
		t.Fatalf("ExpireMessages(important, no important cutoff) = %+v, %v; want nothing, done", res, err)
	}
	step.ImportantBefore = ptr(hour(5)) // seq 2 and 4; 5 is not old enough
	step.Limit = 1
	res, err = s.ExpireMessages(ctx, step)
	checkStep(t, "ExpireMessages(important, limit 1)", res, err, 1, 2, 2)
	if res.Done {
		t.Fatalf("ExpireMessages(important, limit 1) Done = true; want false")
	}
	step.AfterSeq = res.Scanned
	res, err = s.ExpireMessages(ctx, step)
	checkStep(t, "ExpireMessages(important, resumed)", res, err, 1, 4, 4)
	expired, _ := f.states(t, c)
	checkSeqs(t, "expired seqs", expired, []int64{2, 4})
}

func testDestroyExpired(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	ms := f.hourly(t, c, 6)
	if _, err := s.EditMessage(ctx, f.org.ID, c.ID, 1, 1, "edited", hour(1)); err != nil {
		t.Fatalf("EditMessage() = %v", err)
	}
	s.HideMessage(ctx, f.org.ID, c.ID, f.users[1].ID, 2, t0)
	s.SetImportance(ctx, f.org.ID, c.ID, 3, f.users[1].ID, chatvault.ImportantByStar, true, t0)
	s.SetImportance(ctx, f.org.ID, c.ID, 3, f.users[1].ID, chatvault.ImportantByStar, false, t0)
	// Expire 1..3 early and 4..5 later: a destroy step takes only what expired before its cutoff.
	early := chatvault.ExpireStep{Selection: f.sel(c, 100), SentBefore: hour(3)}
	early.At = hour(10)
	if res, err := s.ExpireMessages(ctx, early); err != nil || res.Count != 3 {
		t.Fatalf("ExpireMessages() = %+v, %v; want 3", res, err)
	}
	late := chatvault.ExpireStep{Selection: f.sel(c, 100), SentBefore: hour(5)}
	late.At = hour(20)
	if res, err := s.ExpireMessages(ctx, late); err != nil || res.Count != 2 {
		t.Fatalf("ExpireMessages() = %+v, %v; want 2", res, err)
	}
	step := chatvault.DestroyStep{Selection: f.sel(c, 2), ExpiredBefore: ptr(hour(15))}
	step.At = hour(30)
	res, err := s.DestroyMessages(ctx, step)
	checkStep(t, "DestroyMessages(limit 2)", res, err, 2, 1, 2)
	if res.Done {
		t.Fatalf("DestroyMessages(limit 2) Done = true; want false")
	}
	step.AfterSeq = res.Scanned
	res, err = s.DestroyMessages(ctx, step)
	checkStep(t, "DestroyMessages(resumed)", res, err, 1, 3, 3)
	if !res.Done {
		t.Fatalf("DestroyMessages(resumed) Done = false; want true")
	}
	expired, destroyed := f.states(t, c)
	checkSeqs(t, "destroyed seqs", destroyed, []int64{1, 2, 3})
	checkSeqs(t, "expired seqs", expired, []int64{4, 5})

	// A tombstone keeps id, conversation, seq, sender and time; nothing of the content.
	for _, m := range ms[:3] {
		got, err := s.FindMessageByID(ctx, f.org.ID, c.ID, m.ID)
		if err != nil || got.State != chatvault.StatePurged || got.Text != "" || got.Seq != m.Seq || got.SenderID != m.SenderID ||
			!got.SentAt.Equal(m.SentAt) || got.StateAt == nil || !got.StateAt.Equal(step.At) || got.Important {
			t.Fatalf("destroyed seq %d = %+v, %v; want a tombstone destroyed at %v", m.Seq, got, err, step.At)
		}
	}
	if vs, err := s.FindMessageVersions(ctx, f.org.ID, c.ID, 1); err != nil || len(vs) != 0 {
		t.Fatalf("FindMessageVersions(destroyed) = %d versions, %v; want none", len(vs), err)
	}
	// The hide went with the message: the hider sees the tombstone like everyone else.
	if got := f.seqs(t, c, chatvault.MessageQuery{HiddenFor: f.users[1].ID}); !equal(got, []int64{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("FindMessages(hidden for user1) = %v; want every seq (the hide of 2 is gone)", got)
	}
	_, err = s.SetImportance(ctx, f.org.ID, c.ID, 1, f.users[1].ID, chatvault.ImportantByStar, true, t0)
	wantCode(t, "SetImportance(destroyed)", err, chatvault.ECONFLICT)
	_, err = s.EditMessage(ctx, f.org.ID, c.ID, 1, 2, "x", t0)
	wantCode(t, "EditMessage(destroyed)", err, chatvault.ECONFLICT)
	if res, err := s.DestroyMessages(ctx, chatvault.DestroyStep{Selection: f.sel(c, 100), ExpiredBefore: ptr(hour(15))}); err != nil || res.Count != 0 {
		t.Fatalf("DestroyMessages(again) = %+v, %v; want nothing: a tombstone is not destroyed twice", res, err)
	}
	if _, err := s.DestroyMessages(ctx, chatvault.DestroyStep{Selection: f.sel(c, 100)}); err == nil {
		t.Fatalf("DestroyMessages(no criterion) = nil; want an error, not everything")
	}
}

func testDestroyRecalledAndBatch(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 3)
	c := f.group(t, 0, false, 1, 2)
	for i := range 8 {
		f.sendAt(t, c, i%2, "m", hour(i)) // user0 sends odd seqs, user1 even
	}
	s.RecallMessage(ctx, f.org.ID, c.ID, 3, t0)
	res, err := s.DestroyMessages(ctx, chatvault.DestroyStep{Selection: f.sel(c, 100), Recalled: true})
	checkStep(t, "DestroyMessages(recalled)", res, err, 1, 3, 3)

	// Erasure of user1's messages sent in [1h, 7h), refusing what is younger than 5h.
	batch := &chatvault.BatchFilter{SenderID: f.users[1].ID, From: ptr(hour(1)), To: ptr(hour(7)), SentBefore: hour(5)}
	res, err = s.DestroyMessages(ctx, chatvault.DestroyStep{Selection: f.sel(c, 100), Batch: batch})
	checkStep(t, "DestroyMessages(batch)", res, err, 2, 2, 4)
	_, destroyed := f.states(t, c)
	checkSeqs(t, "destroyed seqs", destroyed, []int64{2, 3, 4})
	// Without a sender, a batch takes everyone's messages in range.
	res, err = s.DestroyMessages(ctx, chatvault.DestroyStep{Selection: f.sel(c, 100), Batch: &chatvault.BatchFilter{SentBefore: hour(6)}})
	checkStep(t, "DestroyMessages(batch, everyone)", res, err, 3, 1, 6)
	_, destroyed = f.states(t, c)
	checkSeqs(t, "destroyed seqs", destroyed, []int64{1, 2, 3, 4, 5, 6})
}

// Counts say what the steps would do, without doing it; Held says how much a hold keeps back and
// TooYoung how much the min_days floor refuses.
func testCounts(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	f.hourly(t, c, 8)
	s.SetImportance(ctx, f.org.ID, c.ID, 2, f.users[0].ID, chatvault.ImportantByAdmin, true, t0)
	s.RecallMessage(ctx, f.org.ID, c.ID, 4, t0)
	held := []chatvault.TimeRange{{From: ptr(hour(5)), To: ptr(hour(6))}} // seq 6
	step := chatvault.ExpireStep{Selection: f.sel(c, 100), SentBefore: hour(7)}
	step.Held, step.ExcludeRecalled = held, true
	n, err := s.CountExpirable(ctx, step)
	// Seq 1..7 are old; 2 is important, 4 recalled (excluded), 6 held.
	if err != nil || n.ConversationID != c.ID || n.Count != 4 || n.FirstSeq != 1 || n.LastSeq != 7 || n.Held != 1 ||
		n.FirstSentAt == nil || !n.FirstSentAt.Equal(hour(0)) || n.LastSentAt == nil || !n.LastSentAt.Equal(hour(6)) {
		t.Fatalf("CountExpirable() = %+v, %v; want 4 in [1, 7] sent %v..%v, 1 held", n, err, hour(0), hour(6))
	}
	step.ImportantBefore = ptr(hour(3))
	if n, err := s.CountExpirable(ctx, step); err != nil || n.Count != 5 {
		t.Fatalf("CountExpirable(important too) = %+v, %v; want 5", n, err)
	}
	step.ImportantBefore = nil
	all := step
	all.HeldAll = true
	if n, err := s.CountExpirable(ctx, all); err != nil || n.Count != 0 || n.Held != 5 {
		t.Fatalf("CountExpirable(whole conversation held) = %+v, %v; want 0, 5 held", n, err)
	}
	if expired, _ := f.states(t, c); len(expired) != 0 {
		t.Fatalf("counting expired %v", expired)
	}
	// The count is what the step then does.
	res, err := s.ExpireMessages(ctx, step)
	checkStep(t, "ExpireMessages()", res, err, 4, 1, 7)
	if n, err := s.CountExpirable(ctx, step); err != nil || n.Count != 0 || n.Held != 1 {
		t.Fatalf("CountExpirable(after expiry) = %+v, %v; want 0, 1 held", n, err)
	}

	d := chatvault.DestroyStep{Selection: f.sel(c, 100), ExpiredBefore: ptr(hour(200))}
	if n, err := s.CountDestroyable(ctx, d); err != nil || n.Count != 4 || n.FirstSeq != 1 || n.LastSeq != 7 {
		t.Fatalf("CountDestroyable(expired) = %+v, %v; want 4 in [1, 7]", n, err)
	}
	d.ExpiredBefore = ptr(hour(50)) // expired at hour(100): not yet
	if n, err := s.CountDestroyable(ctx, d); err != nil || n.Count != 0 {
		t.Fatalf("CountDestroyable(grace not over) = %+v, %v; want 0", n, err)
	}
	d = chatvault.DestroyStep{Selection: f.sel(c, 100), Recalled: true}
	if n, err := s.CountDestroyable(ctx, d); err != nil || n.Count != 1 || n.FirstSeq != 4 {
		t.Fatalf("CountDestroyable(recalled) = %+v, %v; want seq 4", n, err)
	}
	d = chatvault.DestroyStep{Selection: f.sel(c, 100), Batch: &chatvault.BatchFilter{SentBefore: hour(4)}}
	d.Held = held
	if n, err := s.CountDestroyable(ctx, d); err != nil || n.Count != 4 || n.LastSeq != 4 || n.TooYoung != 4 || n.Held != 0 {
		t.Fatalf("CountDestroyable(batch) = %+v, %v; want 4 in [1, 4], 4 too young, none held", n, err)
	}
	d.Batch.SentBefore = hour(7)
	if n, err := s.CountDestroyable(ctx, d); err != nil || n.Count != 6 || n.TooYoung != 1 || n.Held != 1 {
		t.Fatalf("CountDestroyable(batch) = %+v, %v; want 6, 1 too young, 1 held", n, err)
	}
}

func testUnexpireRestore(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	f.hourly(t, c, 6)
	if res, err := s.ExpireMessages(ctx, chatvault.ExpireStep{Selection: f.sel(c, 100), SentBefore: hour(10)}); err != nil || res.Count != 6 {
		t.Fatalf("ExpireMessages() = %+v, %v; want 6", res, err)
	}
	// The policy grew longer: what is sent from 4h on is kept again; seq 2 became important.
	s.SetImportance(ctx, f.org.ID, c.ID, 2, f.users[0].ID, chatvault.ImportantByAdmin, true, t0)
	step := chatvault.ExpireStep{Selection: f.sel(c, 100), SentBefore: hour(4)}
	res, err := s.UnexpireMessages(ctx, step)
	checkStep(t, "UnexpireMessages()", res, err, 3, 2, 6)
	expired, _ := f.states(t, c)
	checkSeqs(t, "expired seqs", expired, []int64{1, 3, 4})
	step.ImportantBefore = ptr(hour(0))
	if res, err := s.UnexpireMessages(ctx, step); err != nil || res.Count != 0 {
		t.Fatalf("UnexpireMessages(again) = %+v, %v; want nothing", res, err)
	}
	// A zero cutoff keeps everything; a bounded step resumes.
	step = chatvault.ExpireStep{Selection: f.sel(c, 2)}
	res, err = s.UnexpireMessages(ctx, step)
	checkStep(t, "UnexpireMessages(keep all, limit 2)", res, err, 2, 1, 3)
	step.AfterSeq = res.Scanned
	res, err = s.UnexpireMessages(ctx, step)
	checkStep(t, "UnexpireMessages(resumed)", res, err, 1, 4, 4)
	if expired, _ := f.states(t, c); len(expired) != 0 {
		t.Fatalf("expired seqs = %v; want none", expired)
	}

	// RestoreExpired brings back expired messages in a seq range, not destroyed ones.
	c = f.group(t, 0, false, 1)
	f.hourly(t, c, 6)
	if res, err := s.ExpireMessages(ctx, chatvault.ExpireStep{Selection: f.sel(c, 100), SentBefore: hour(10)}); err != nil || res.Count != 6 {
		t.Fatalf("ExpireMessages() = %+v, %v; want 6", res, err)
	}
	if _, err := s.DestroyMessages(ctx, chatvault.DestroyStep{Selection: f.sel(c, 100), Batch: &chatvault.BatchFilter{SentBefore: hour(1)}}); err != nil {
		t.Fatal(err)
	}
	res, err = s.RestoreExpired(ctx, f.org.ID, c.ID, 1, 3, hour(101))
	checkStep(t, "RestoreExpired(1, 3)", res, err, 2, 2, 3)
	expired, destroyed := f.states(t, c)
	checkSeqs(t, "expired seqs", expired, []int64{4, 5, 6})
	checkSeqs(t, "destroyed seqs", destroyed, []int64{1})
	if m := f.messages(t, c)[2]; m.State != chatvault.StateLive || m.ExpiredAt != nil || m.Text == "" {
		t.Fatalf("restored seq 2 = %+v; want live with its body", m)
	}
}
