package retention_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/clocktest"
	"github.com/chatvault/chatvault/internal/retention"
	"github.com/google/uuid"
)

// Fixed retention scenarios through the real services, on each store, sealed: what a run, a
// restore, a hold, the important tier and a batch delete do, down to the certificate, the feed
// and the previews. The conformance suite (internal/storetest) checks what the tables hold
// underneath; the simulation checks the rules over years of random activity.

// scenario is one org on a fresh sealed store, with the real chat and retention services.
type scenario struct {
	t    *testing.T
	ctx  context.Context
	clk  *clocktest.Clock
	db   chatvault.Store
	ret  *retention.Service
	chat *chat.Service
	org  string

	admin, officer, alice, bob chatvault.Actor
}

var s0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

// runScenario runs fn on each store.
func runScenario(t *testing.T, p chatvault.Policy, fn func(t *testing.T, f *scenario)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			clk := clocktest.New(s0)
			db, shredder := e.open(t, clk, true)
			f := &scenario{t: t, ctx: context.Background(), clk: clk, db: db}
			aud := auditOf(db, clk)
			f.ret = retention.New(db, aud, clk, slog.New(slog.NewTextHandler(io.Discard, nil)), shredder)
			f.chat = chat.NewService(db, clk, chat.Config{Classifier: f.ret, Audit: aud})
			f.setup(p)
			fn(t, f)
		})
	}
}

// setup creates the org and its people.
func (f *scenario) setup(p chatvault.Policy) {
	f.t.Helper()
	org := &chatvault.Org{ID: uuid.NewString(), Slug: "acme", Name: "Acme", CreatedAt: s0}
	f.org = org.ID
	mk := func(name string, roles ...chatvault.Role) chatvault.Actor {
		u := &chatvault.User{OrgID: org.ID, ID: uuid.NewString(), Username: name, DisplayName: name, PasswordHash: "$argon2id$fake",
			Roles: append([]chatvault.Role{chatvault.RoleMember}, roles...), CreatedAt: s0}
		var err error
		if name == "admin" {
			err = f.db.CreateOrg(f.ctx, org, u)
		} else {
			err = f.db.CreateUser(f.ctx, u)
		}
		if err != nil {
			f.t.Fatalf("create %s: %v", name, err)
		}
		return chatvault.Actor{OrgID: org.ID, UserID: u.ID, Roles: u.Roles}
	}
	f.admin = mk("admin", chatvault.RoleOrgAdmin)
	f.officer = mk("officer", chatvault.RoleComplianceOfficer)
	f.alice, f.bob = mk("alice"), mk("bob")
	if _, err := f.ret.SetPolicy(f.ctx, f.admin, p, "test"); err != nil {
		f.t.Fatalf("SetPolicy() = %v", err)
	}
}

func (f *scenario) group() string {
	f.t.Helper()
	d, _, err := f.chat.CreateConversation(f.ctx, f.alice, chat.NewConversation{Kind: chatvault.Group, Title: "g", Members: []string{f.bob.UserID}})
	if err != nil {
		f.t.Fatalf("CreateConversation() = %v", err)
	}
	return d.ID
}

// sendAt sends text as a at time at (the clock stays there).
func (f *scenario) sendAt(a chatvault.Actor, conv, text string, at time.Time) *chatvault.Message {
	f.t.Helper()
	f.clk.Set(at)
	m, _, err := f.chat.Send(f.ctx, a, conv, chat.SendRequest{ClientMsgID: uuid.NewString(), Text: text})
	if err != nil {
		f.t.Fatalf("Send(%q) = %v", text, err)
	}
	return m
}

// runAt runs the job at time at, as an admin on demand.
func (f *scenario) runAt(at time.Time) *chatvault.PurgeRun {
	f.t.Helper()
	f.clk.Set(at)
	r, err := f.ret.RunNow(f.ctx, f.admin, false)
	if err != nil {
		f.t.Fatalf("RunNow(%s) = %v", at.Format(time.DateOnly), err)
	}
	if r.FinishedAt == nil {
		f.t.Fatalf("RunNow(%s) finished_at = nil", at.Format(time.DateOnly))
	}
	return r
}

// view is what a reads of conv, by seq.
func (f *scenario) view(a chatvault.Actor, conv string) map[int64]*chatvault.Message {
	f.t.Helper()
	out := map[int64]*chatvault.Message{}
	after := int64(0)
	for {
		page, err := f.chat.Messages(f.ctx, a, conv, chat.Page{After: &after, Limit: chat.MaxPageLimit})
		if err != nil {
			f.t.Fatalf("Messages() = %v", err)
		}
		for _, m := range page.Messages {
			out[m.Seq] = m
			after = m.Seq
		}
		if !page.HasMore {
			return out
		}
	}
}

// stored reads m as the store holds it.
func (f *scenario) stored(conv string, m *chatvault.Message) *chatvault.Message {
	f.t.Helper()
	got, err := f.db.FindMessageByID(f.ctx, f.org, conv, m.ID)
	if err != nil {
		f.t.Fatalf("FindMessageByID(seq %d) = %v", m.Seq, err)
	}
	return got
}

// checkDestroyed fails unless m is a tombstone: same id and seq, no body, no versions.
func (f *scenario) checkDestroyed(conv string, m *chatvault.Message) {
	f.t.Helper()
	s := f.stored(conv, m)
	vs, err := f.db.FindMessageVersions(f.ctx, f.org, conv, m.Seq)
	if s.State != chatvault.StatePurged || s.Text != "" || s.Seq != m.Seq || err != nil || len(vs) != 0 {
		f.t.Errorf("seq %d (%q): state %s, text %q, %d versions (%v); want a tombstone", m.Seq, m.Text, s.State, s.Text, len(vs), err)
	}
}

// checkKept fails unless m still has its body and has not expired.
func (f *scenario) checkKept(conv string, m *chatvault.Message) {
	f.t.Helper()
	s := f.stored(conv, m)
	if s.Text == "" || s.ExpiredAt != nil || s.State != chatvault.StateLive {
		f.t.Errorf("seq %d (%q): state %s text %q expired %v; want it kept, live", m.Seq, m.Text, s.State, s.Text, s.ExpiredAt)
	}
}

// certified sums a run's certificate lines of one action in conv, with their seq span.
func certified(r *chatvault.PurgeRun, conv, action string) (count int, first, last int64) {
	for _, it := range r.Items {
		if it.ConversationID != conv || it.Action != action {
			continue
		}
		if count == 0 || it.FirstSeq < first {
			first = it.FirstSeq
		}
		last = max(last, it.LastSeq)
		count += it.Count
	}
	return count, first, last
}

func (f *scenario) searchHits(a chatvault.Actor, query string) int {
	f.t.Helper()
	page, err := f.chat.Search(f.ctx, a, chat.SearchRequest{Query: query})
	if err != nil {
		f.t.Fatalf("Search(%q) = %v", query, err)
	}
	return len(page.Hits)
}

// A policy run expires what is past retention (gone from readers at once, announced in the feed,
// restorable in the grace window), destroys it after the window (body, versions, index entry;
// a tombstone stays), certifies it, and shreds the month's data key once nothing uses it; the
// search index key is never shredded.
func TestRetentionExpiresThenDestroys(t *testing.T) {
	runScenario(t, chatvault.Policy{DefaultDays: 30, GraceDays: 7, Mode: chatvault.ModeOrg}, func(t *testing.T, f *scenario) {
		conv := f.group()
		words := []string{"apricot", "banana", "cherry", "damson", "elder"}
		var old []*chatvault.Message
		for i, w := range words {
			old = append(old, f.sendAt(f.alice, conv, "old "+w, s0.Add(time.Duration(i)*time.Hour)))
		}
		if _, err := f.chat.Edit(f.ctx, f.alice, conv, old[0].ID, "old apricot, edited", 0); err != nil {
			t.Fatalf("Edit() = %v", err)
		}
		old[0].Text = "old apricot, edited"
		if vs, err := f.db.FindMessageVersions(f.ctx, f.org, conv, 1); err != nil || len(vs) != 1 {
			t.Fatalf("edited seq 1: %d versions, %v; want 1", len(vs), err)
		}
		t1 := s0.Add(45 * day) // February: the January messages are past 30 days
		fresh := []*chatvault.Message{f.sendAt(f.bob, conv, "fresh kiwi one", t1), f.sendAt(f.bob, conv, "fresh kiwi two", t1)}
		sync0, err := f.chat.InitialSync(f.ctx, f.bob)
		if err != nil {
			t.Fatal(err)
		}

		// Preview: five go from readers now, and are destroyed a grace window later.
		pv, err := f.ret.Preview(f.ctx, f.admin, time.Time{}, nil)
		if err != nil || pv.Totals["expire"] != 5 || pv.Totals["destroy"] != 0 {
			t.Fatalf("Preview(now) = %v, %v; want expire 5, destroy 0", pv.Totals, err)
		}
		if pv, err = f.ret.Preview(f.ctx, f.admin, t1.Add(8*day), nil); err != nil || pv.Totals["destroy"] != 5 {
			t.Fatalf("Preview(now+8d) = %v, %v; want destroy 5", pv.Totals, err)
		}

		r1 := f.runAt(t1)
		if r1.Totals["expired"] != 5 || r1.Totals["destroyed"] != 0 {
			t.Fatalf("run 1 totals = %v; want expired 5, destroyed 0", r1.Totals)
		}
		if n, first, last := certified(r1, conv, "expired"); n != 5 || first != 1 || last != 5 {
			t.Errorf("run 1 certificate: expired %d in [%d, %d]; want 5 in [1, 5]", n, first, last)
		}
		seen := f.view(f.bob, conv)
		for _, m := range old {
			if g := seen[m.Seq]; g == nil || g.State != chatvault.StatePurged || g.Text != "" || g.ID != m.ID {
				t.Errorf("bob reads expired seq %d as %+v; want a purged placeholder with its id", m.Seq, g)
			}
		}
		for _, m := range fresh {
			if g := seen[m.Seq]; g == nil || g.State != chatvault.StateLive || g.Text != m.Text {
				t.Errorf("bob reads fresh seq %d as %+v; want it live", m.Seq, g)
			}
		}
		if n := f.searchHits(f.bob, "apricot"); n != 0 {
			t.Errorf("search apricot after expiry: %d hits; want 0", n)
		}
		if n := f.searchHits(f.bob, "kiwi"); n != 2 {
			t.Errorf("search kiwi: %d hits; want 2", n)
		}
		// In the grace window the body and index entry stay, for a restore.
		if s := f.stored(conv, old[1]); s.Text == "" || s.ExpiredAt == nil {
			t.Errorf("expired seq 2 in grace: %+v; want its body kept, expired", s)
		}
		since, _ := chat.DecodeCursor(sync0.Cursor)
		sync1, err := f.chat.Sync(f.ctx, f.bob, since)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(sync1.Events, func(ev chatvault.Event) bool {
			return ev.Kind == chatvault.EventPurged && ev.ConversationID == conv && ev.FromSeq <= 1 && ev.Seq >= 5
		}) {
			t.Errorf("bob's sync after expiry: events %+v; want messages_purged over seqs 1..5", sync1.Events)
		}

		// An admin's mistake is undone within the grace window.
		if n, err := f.ret.Restore(f.ctx, f.admin, conv, 2, 2, "wrong policy"); err != nil || n != 1 {
			t.Fatalf("Restore(2..2) = %d, %v; want 1", n, err)
		}
		if g := f.view(f.bob, conv)[2]; g == nil || g.State != chatvault.StateLive || g.Text != "old banana" {
			t.Errorf("bob reads restored seq 2 as %+v; want it live", g)
		}
		since, _ = chat.DecodeCursor(sync1.Cursor)
		if sync2, err := f.chat.Sync(f.ctx, f.bob, since); err != nil || !slices.ContainsFunc(sync2.Events, func(ev chatvault.Event) bool {
			return ev.Kind == chatvault.EventRestored && ev.ConversationID == conv && ev.FromSeq <= 2 && ev.Seq >= 2
		}) {
			t.Errorf("bob's sync after restore: %+v, %v; want messages_restored over seq 2", sync2, err)
		}

		// After the window: the four still expired are destroyed; the restored one, still past the
		// policy, expires again and waits out its own window.
		r2 := f.runAt(t1.Add(8 * day))
		if r2.Totals["destroyed"] != 4 || r2.Totals["expired"] != 1 || r2.Totals["data_keys_destroyed"] != 0 {
			t.Fatalf("run 2 totals = %v; want destroyed 4, expired 1, no key destroyed", r2.Totals)
		}
		if n, first, last := certified(r2, conv, "destroyed"); n != 4 || first != 1 || last != 5 {
			t.Errorf("run 2 certificate: destroyed %d in [%d, %d]; want 4 in [1, 5]", n, first, last)
		}
		for _, m := range []*chatvault.Message{old[0], old[2], old[3], old[4]} {
			f.checkDestroyed(conv, m)
		}
		// Its body stays readable: January's key is not shredded while seq 2 uses it.
		if s := f.stored(conv, old[1]); s.Text != "old banana" || s.ExpiredAt == nil {
			t.Errorf("re-expired seq 2: %+v; want its body kept in its grace window", s)
		}

		r3 := f.runAt(t1.Add(16 * day))
		if n, first, last := certified(r3, conv, "destroyed"); n != 1 || first != 2 || last != 2 {
			t.Errorf("run 3 certificate: destroyed %d in [%d, %d]; want 1 in [2, 2]", n, first, last)
		}
		f.checkDestroyed(conv, old[1])
		for _, m := range fresh {
			f.checkKept(conv, m)
		}
		// Crypto-shredding: January's key goes; February's, and the search index key, stay and work
		// (the conformance suite and internal/postgres check the key material itself).
		if r3.Totals["data_keys_destroyed"] != 1 {
			t.Errorf("run 3: data_keys_destroyed %d; want 1", r3.Totals["data_keys_destroyed"])
		}
		if n := f.searchHits(f.bob, "kiwi"); n != 2 {
			t.Errorf("search kiwi after shredding: %d hits; want 2", n)
		}
		seen = f.view(f.alice, conv)
		for _, m := range old {
			if g := seen[m.Seq]; g == nil || g.State != chatvault.StatePurged || g.ID != m.ID {
				t.Errorf("alice reads destroyed seq %d as %+v; want its tombstone", m.Seq, g)
			}
		}
		runs, err := f.ret.Runs(f.ctx, f.admin, 10)
		if err != nil || len(runs) != 3 || runs[0].ID != r3.ID || runs[0].FinishedAt == nil {
			t.Errorf("Runs() = %d runs, %v; want the three, newest (finished) first", len(runs), err)
		}
	})
}

// A legal hold stops expiry and destruction of what it covers, whole conversations or time
// ranges; once released, the next run goes on.
func TestRetentionHoldsStopDestruction(t *testing.T) {
	runScenario(t, chatvault.Policy{DefaultDays: 30, GraceDays: 0, Mode: chatvault.ModeOrg}, func(t *testing.T, f *scenario) {
		held, other := f.group(), f.group()
		var inHeld, inOther []*chatvault.Message
		for i := range 4 {
			at := s0.Add(time.Duration(i) * day)
			inHeld = append(inHeld, f.sendAt(f.alice, held, fmt.Sprintf("held %d", i), at))
			inOther = append(inOther, f.sendAt(f.bob, other, fmt.Sprintf("other %d", i), at))
		}
		from, to := s0.Add(day), s0.Add(2*day) // covers message 1 of each conversation
		whole, err := f.ret.CreateHold(f.ctx, f.officer, retention.HoldRequest{Name: "case 1", Reason: "litigation", Conversations: []string{held}})
		if err != nil {
			t.Fatalf("CreateHold(conversation) = %v", err)
		}
		span, err := f.ret.CreateHold(f.ctx, f.officer, retention.HoldRequest{Name: "case 2", Reason: "audit", From: &from, To: &to})
		if err != nil {
			t.Fatalf("CreateHold(time range) = %v", err)
		}
		t1 := s0.Add(60 * day)
		f.clk.Set(t1)
		pv, err := f.ret.Preview(f.ctx, f.admin, time.Time{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range pv.Conversations {
			want := map[string][2]int{held: {0, 4}, other: {3, 1}}[c.ConversationID] // expire, held
			if c.Expire.Count != want[0] || c.Expire.Held != want[1] {
				t.Errorf("Preview: conversation %s would expire %d (held %d); want %d (held %d)",
					c.ConversationID[:8], c.Expire.Count, c.Expire.Held, want[0], want[1])
			}
		}

		dry, err := f.ret.RunNow(f.ctx, f.admin, true)
		if err != nil || dry.Totals["expired"] != 3 || dry.Totals["held"] != 5 {
			t.Errorf("dry run totals = %v, %v; want expired 3, held 5", dry.Totals, err)
		}

		r := f.runAt(t1)
		if !slices.Contains(r.Holds, whole.ID) || !slices.Contains(r.Holds, span.ID) {
			t.Errorf("run holds = %v; want both", r.Holds)
		}
		for _, m := range inHeld {
			f.checkKept(held, m)
		}
		f.checkKept(other, inOther[1])
		for _, i := range []int{0, 2, 3} {
			f.checkDestroyed(other, inOther[i])
		}

		if _, err := f.ret.ReleaseHold(f.ctx, f.officer, whole.ID, "case closed"); err != nil {
			t.Fatalf("ReleaseHold() = %v", err)
		}
		r = f.runAt(t1.Add(time.Hour))
		if n, _, _ := certified(r, held, "destroyed"); n != 3 {
			t.Errorf("run after release: destroyed %d in the released conversation; want 3", n)
		}
		for _, i := range []int{0, 2, 3} {
			f.checkDestroyed(held, inHeld[i])
		}
		f.checkKept(held, inHeld[1])
		f.checkKept(other, inOther[1])

		if _, err := f.ret.ReleaseHold(f.ctx, f.officer, span.ID, "audit done"); err != nil {
			t.Fatalf("ReleaseHold() = %v", err)
		}
		r = f.runAt(t1.Add(2 * time.Hour))
		if r.Totals["destroyed"] != 2 {
			t.Errorf("run after the last release: totals %v; want destroyed 2", r.Totals)
		}
		f.checkDestroyed(held, inHeld[1])
		f.checkDestroyed(other, inOther[1])
	})
}

// Important messages (a rule, a star, an admin flag) outlive default_days and go at
// important_days.
func TestRetentionImportantTier(t *testing.T) {
	runScenario(t, chatvault.Policy{DefaultDays: 30, ImportantDays: 90, GraceDays: 0, Mode: chatvault.ModeOrg}, func(t *testing.T, f *scenario) {
		if _, err := f.ret.CreateRule(f.ctx, f.admin, "合同", false); err != nil {
			t.Fatalf("CreateRule() = %v", err)
		}
		conv := f.group()
		plain1 := f.sendAt(f.alice, conv, "plain one", s0)
		ruled := f.sendAt(f.alice, conv, "请审阅合同", s0)
		starred := f.sendAt(f.alice, conv, "star me", s0)
		flagged := f.sendAt(f.alice, conv, "flag me", s0)
		plain2 := f.sendAt(f.bob, conv, "plain two", s0)
		if !ruled.Important || plain1.Important {
			t.Fatalf("rule: important %v / %v; want the 合同 message only", ruled.Important, plain1.Important)
		}
		if _, err := f.chat.Star(f.ctx, f.bob, conv, starred.ID, true); err != nil {
			t.Fatalf("Star() = %v", err)
		}
		if _, err := f.ret.Flag(f.ctx, f.admin, conv, flagged.ID, true); err != nil {
			t.Fatalf("Flag() = %v", err)
		}
		important := []*chatvault.Message{ruled, starred, flagged}

		r := f.runAt(s0.Add(40 * day))
		if r.Totals["destroyed"] != 2 {
			t.Errorf("run at 40 days: totals %v; want the two plain ones destroyed", r.Totals)
		}
		f.checkDestroyed(conv, plain1)
		f.checkDestroyed(conv, plain2)
		for _, m := range important {
			f.checkKept(conv, m)
		}
		if r = f.runAt(s0.Add(89 * day)); r.Totals["expired"]+r.Totals["destroyed"] != 0 {
			t.Errorf("run at 89 days: totals %v; want nothing", r.Totals)
		}
		for _, m := range important {
			f.checkKept(conv, m)
		}
		r = f.runAt(s0.Add(91 * day))
		if n, first, last := certified(r, conv, "destroyed"); n != 3 || first != ruled.Seq || last != flagged.Seq {
			t.Errorf("run at 91 days: destroyed %d in [%d, %d]; want 3 in [%d, %d]", n, first, last, ruled.Seq, flagged.Seq)
		}
		for _, m := range important {
			f.checkDestroyed(conv, m)
		}
	})
}

// A batch delete and an erasure destroy exactly what their preview said, refusing what a hold
// covers and what is younger than min_days.
func TestRetentionBatchDeleteAndErasure(t *testing.T) {
	runScenario(t, chatvault.Policy{DefaultDays: 180, MinDays: 10, GraceDays: 7, Mode: chatvault.ModeOrg}, func(t *testing.T, f *scenario) {
		a, b := f.group(), f.group()
		type sent struct {
			conv string
			m    *chatvault.Message
		}
		var all []sent
		for i := range 8 {
			from := []chatvault.Actor{f.alice, f.bob}[i%2]
			at := s0.Add(time.Duration(i) * day)
			all = append(all, sent{a, f.sendAt(from, a, fmt.Sprintf("a %d", i), at)}, sent{b, f.sendAt(from, b, fmt.Sprintf("b %d", i), at)})
		}
		now := s0.Add(15 * day) // min_days 10: messages from day 5 on are too young
		f.clk.Set(now)
		heldFrom, heldTo := s0.Add(3*day), s0.Add(3*day+time.Hour) // bob's day-3 messages
		if _, err := f.ret.CreateHold(f.ctx, f.officer, retention.HoldRequest{Name: "h", Reason: "r", From: &heldFrom, To: &heldTo}); err != nil {
			t.Fatal(err)
		}
		gone := map[string]bool{} // message id: destroyed so far
		// check compares the tables with what has been confirmed.
		check := func(what string) {
			t.Helper()
			for _, s := range all {
				if gone[s.m.ID] {
					f.checkDestroyed(s.conv, s.m)
				} else {
					f.checkKept(s.conv, s.m)
				}
			}
			if t.Failed() {
				t.Fatalf("after %s", what)
			}
		}
		// confirm previews f, checks the preview against want (message ids), confirms, and checks
		// that exactly those went.
		confirm := func(what string, filter chatvault.BatchFilter, want []*chatvault.Message, held, young int) {
			t.Helper()
			pv, err := f.ret.PreviewDeletion(f.ctx, f.admin, filter, what)
			if err != nil {
				t.Fatalf("PreviewDeletion(%s) = %v", what, err)
			}
			if pv.Totals["delete"] != len(want) || pv.Totals["held"] != held || pv.Totals["too_young"] != young {
				t.Errorf("PreviewDeletion(%s) totals = %v; want delete %d, held %d, too_young %d", what, pv.Totals, len(want), held, young)
			}
			for _, c := range pv.Conversations {
				var seqs []int64
				for _, s := range all {
					if s.conv == c.ConversationID && slices.Contains(want, s.m) {
						seqs = append(seqs, s.m.Seq)
					}
				}
				if c.Count != len(seqs) || len(seqs) > 0 && (c.FirstSeq != slices.Min(seqs) || c.LastSeq != slices.Max(seqs)) {
					t.Errorf("PreviewDeletion(%s) conversation %s: %d in [%d, %d]; want seqs %v", what, c.ConversationID[:8], c.Count, c.FirstSeq, c.LastSeq, seqs)
				}
			}
			res, err := f.ret.ConfirmDeletion(f.ctx, f.admin, pv.Token)
			if err != nil || res.Deleted != len(want) {
				t.Fatalf("ConfirmDeletion(%s) = %+v, %v; want %d deleted", what, res, err, len(want))
			}
			for _, m := range want {
				gone[m.ID] = true
			}
			check(what)
		}

		// Batch delete: conversation a, days 1 to 4 (day 3 is bob's, held).
		from, to := s0.Add(day), s0.Add(5*day)
		var want []*chatvault.Message
		for _, s := range all {
			if s.conv == a && !s.m.SentAt.Before(from) && s.m.SentAt.Before(to) && !s.m.SentAt.Equal(s0.Add(3*day)) {
				want = append(want, s.m)
			}
		}
		confirm("batch delete", chatvault.BatchFilter{ConversationID: a, From: &from, To: &to}, want, 1, 0)

		// Erasure: everything bob sent, in both conversations, except the held and the young.
		want, young := nil, 0
		for _, s := range all {
			switch {
			case s.m.SenderID != f.bob.UserID || gone[s.m.ID] || s.m.SentAt.Equal(s0.Add(3*day)):
			case !s.m.SentAt.Before(now.Add(-10 * day)):
				young++
			default:
				want = append(want, s.m)
			}
		}
		confirm("erasure", chatvault.BatchFilter{SenderID: f.bob.UserID}, want, 2, young)
	})
}
