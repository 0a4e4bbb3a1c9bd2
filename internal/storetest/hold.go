package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
)

// Holds, importance rules and flags: what the store keeps of them, and what a held range
// protects from every step.

func testHolds(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 3)
	c := f.group(t, 0, false, 1)
	whole := &chatvault.Hold{OrgID: f.org.ID, ID: id(), Name: "案件 case 1", Reason: "litigation", Custodians: []string{f.users[1].ID, f.users[2].ID},
		Conversations: []string{c.ID}, CreatedBy: f.users[0].ID, CreatedAt: t0}
	span := &chatvault.Hold{OrgID: f.org.ID, ID: id(), Name: "case 2", Reason: "audit", From: ptr(hour(1)), To: ptr(hour(2)),
		CreatedBy: f.users[0].ID, CreatedAt: t0.Add(time.Minute)}
	for _, h := range []*chatvault.Hold{whole, span} {
		if err := s.CreateHold(ctx, h); err != nil {
			t.Fatalf("CreateHold(%s) = %v", h.Name, err)
		}
	}
	newFixture(t, s, 1) // another org's holds never show
	hs, err := s.FindHolds(ctx, f.org.ID, true)
	if err != nil || len(hs) != 2 || hs[0].ID != span.ID || hs[1].ID != whole.ID {
		t.Fatalf("FindHolds(active) = %d holds, %v; want both, newest first", len(hs), err)
	}
	got := hs[1]
	if got.Name != whole.Name || got.Reason != whole.Reason || !equal(got.Custodians, whole.Custodians) || !equal(got.Conversations, whole.Conversations) ||
		got.From != nil || got.To != nil || got.CreatedBy != whole.CreatedBy || !got.CreatedAt.Equal(t0) || !got.Active() {
		t.Fatalf("FindHolds() hold = %+v; want %+v", got, whole)
	}
	if got := hs[0]; got.From == nil || !got.From.Equal(hour(1)) || got.To == nil || !got.To.Equal(hour(2)) || len(got.Custodians) != 0 || len(got.Conversations) != 0 {
		t.Fatalf("FindHolds() time-range hold = %+v; want [%v, %v)", got, hour(1), hour(2))
	}

	rel, err := s.ReleaseHold(ctx, f.org.ID, whole.ID, f.users[2].ID, t0.Add(time.Hour))
	if err != nil || rel.ID != whole.ID || rel.Active() || !rel.ReleasedAt.Equal(t0.Add(time.Hour)) || rel.ReleasedBy != f.users[2].ID {
		t.Fatalf("ReleaseHold() = %+v, %v; want released at %v by %s", rel, err, t0.Add(time.Hour), f.users[2].ID)
	}
	_, err = s.ReleaseHold(ctx, f.org.ID, whole.ID, f.users[2].ID, t0)
	wantCode(t, "ReleaseHold(twice)", err, chatvault.ENOTFOUND)
	_, err = s.ReleaseHold(ctx, f.org.ID, id(), f.users[2].ID, t0)
	wantCode(t, "ReleaseHold(unknown)", err, chatvault.ENOTFOUND)
	if hs, err := s.FindHolds(ctx, f.org.ID, true); err != nil || len(hs) != 1 || hs[0].ID != span.ID {
		t.Fatalf("FindHolds(active) after release = %d, %v; want the time-range hold only", len(hs), err)
	}
	if hs, err := s.FindHolds(ctx, f.org.ID, false); err != nil || len(hs) != 2 || hs[1].Active() {
		t.Fatalf("FindHolds(all) after release = %d, %v; want both, the released one inactive", len(hs), err)
	}
}

// A held range is excluded from every step, whatever else selects it.
func testHeldRanges(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	f.hourly(t, c, 6)
	s.RecallMessage(ctx, f.org.ID, c.ID, 5, t0)
	held := []chatvault.TimeRange{{From: ptr(hour(1)), To: ptr(hour(3))}, {From: ptr(hour(4))}} // seq 2, 3 and 5, 6
	sel := f.sel(c, 100)
	sel.Held = held
	res, err := s.ExpireMessages(ctx, chatvault.ExpireStep{Selection: sel, SentBefore: hour(10)})
	checkStep(t, "ExpireMessages(held)", res, err, 2, 1, 4)
	for _, d := range []chatvault.DestroyStep{
		{Selection: sel, ExpiredBefore: ptr(hour(200))},
		{Selection: sel, Recalled: true},
		{Selection: sel, Batch: &chatvault.BatchFilter{SentBefore: hour(10)}},
		{Selection: sel, Batch: &chatvault.BatchFilter{SenderID: f.users[0].ID, From: ptr(hour(1)), SentBefore: hour(10)}},
	} {
		if _, err := s.DestroyMessages(ctx, d); err != nil {
			t.Fatalf("DestroyMessages(%+v) = %v", d, err)
		}
	}
	_, destroyed := f.states(t, c)
	checkSeqs(t, "destroyed seqs", destroyed, []int64{1, 4})
	for _, seq := range []int64{2, 3, 6} {
		if m := f.messages(t, c)[seq]; m.State != chatvault.StateLive || m.ExpiredAt != nil || m.Text == "" {
			t.Fatalf("held seq %d = %+v; want it untouched", seq, m)
		}
	}
	if m := f.messages(t, c)[5]; m.State != chatvault.StateRecalled {
		t.Fatalf("held recalled seq 5 = %s; want still recalled, not destroyed", m.State)
	}
}

func testRules(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 1)
	other := newFixture(t, s, 1)
	r1 := &chatvault.ImportantRule{OrgID: f.org.ID, ID: id(), Pattern: "合同", CreatedBy: f.users[0].ID, CreatedAt: t0}
	r2 := &chatvault.ImportantRule{OrgID: f.org.ID, ID: id(), Pattern: `HT-\d{4}`, Regex: true, CreatedBy: f.users[0].ID, CreatedAt: t0.Add(time.Second)}
	for _, r := range []*chatvault.ImportantRule{r1, r2, {OrgID: other.org.ID, ID: id(), Pattern: "x", CreatedBy: other.users[0].ID, CreatedAt: t0}} {
		if err := s.CreateRule(ctx, r); err != nil {
			t.Fatalf("CreateRule(%q) = %v", r.Pattern, err)
		}
	}
	rs, err := s.FindRules(ctx, f.org.ID)
	if err != nil || len(rs) != 2 {
		t.Fatalf("FindRules() = %d rules, %v; want 2", len(rs), err)
	}
	for i, want := range []*chatvault.ImportantRule{r1, r2} {
		if g := rs[i]; g.ID != want.ID || g.Pattern != want.Pattern || g.Regex != want.Regex || g.CreatedBy != want.CreatedBy || !g.CreatedAt.Equal(want.CreatedAt) {
			t.Fatalf("FindRules()[%d] = %+v; want %+v (in creation order)", i, g, want)
		}
	}
	if err := s.DeleteRule(ctx, f.org.ID, r1.ID); err != nil {
		t.Fatalf("DeleteRule() = %v", err)
	}
	wantCode(t, "DeleteRule(twice)", s.DeleteRule(ctx, f.org.ID, r1.ID), chatvault.ENOTFOUND)
	wantCode(t, "DeleteRule(other org's rule)", s.DeleteRule(ctx, other.org.ID, r2.ID), chatvault.ENOTFOUND)
	if rs, _ := s.FindRules(ctx, f.org.ID); len(rs) != 1 || rs[0].ID != r2.ID {
		t.Fatalf("FindRules() after delete = %d rules; want r2 only", len(rs))
	}
}

// Each flag holds on its own; a star holds while any member's star does.
func testImportance(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 3)
	c := f.group(t, 0, false, 1, 2)
	f.hourly(t, c, 2)
	set := func(user, flag int, on bool, want int) {
		t.Helper()
		m, err := s.SetImportance(ctx, f.org.ID, c.ID, 1, f.users[user].ID, flag, on, t0)
		if err != nil || m.Importance != want || m.Important != (want != 0) || m.Seq != 1 {
			t.Fatalf("SetImportance(user %d, flag %d, %v) = %+v, %v; want importance %d", user, flag, on, m, err, want)
		}
		got, _ := s.FindMessageByID(ctx, f.org.ID, c.ID, m.ID)
		if got.Importance != want || got.Important != (want != 0) {
			t.Fatalf("after SetImportance, FindMessageByID() importance = %d; want %d", got.Importance, want)
		}
	}
	set(1, chatvault.ImportantByStar, true, chatvault.ImportantByStar)
	set(2, chatvault.ImportantByStar, true, chatvault.ImportantByStar)
	set(1, chatvault.ImportantByStar, true, chatvault.ImportantByStar) // starring twice is fine
	set(0, chatvault.ImportantByAdmin, true, chatvault.ImportantByStar|chatvault.ImportantByAdmin)
	set(1, chatvault.ImportantByStar, false, chatvault.ImportantByStar|chatvault.ImportantByAdmin) // user 2's star stays
	set(0, chatvault.ImportantByAdmin, false, chatvault.ImportantByStar)
	set(2, chatvault.ImportantByStar, false, 0)
	set(0, chatvault.ImportantByRule, true, chatvault.ImportantByRule)
	if m := f.messages(t, c)[2]; m.Important || m.Importance != 0 {
		t.Fatalf("seq 2 importance = %d; want 0 (flags are per message)", m.Importance)
	}
	_, err := s.SetImportance(ctx, f.org.ID, c.ID, 99, f.users[0].ID, chatvault.ImportantByAdmin, true, t0)
	wantCode(t, "SetImportance(no such seq)", err, chatvault.ENOTFOUND)
	// An important message stays out of the ordinary expiry step.
	res, err := s.ExpireMessages(ctx, chatvault.ExpireStep{Selection: f.sel(c, 100), SentBefore: hour(10)})
	checkStep(t, "ExpireMessages()", res, err, 1, 2, 2)
}
