package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
)

// Purge runs and their certificate lines, and the audit log.

func testPurgeRuns(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	f.hourly(t, c, 5)
	run := &chatvault.PurgeRun{OrgID: f.org.ID, ID: id(), StartedAt: hour(100), Policy: chatvault.DefaultPolicy(), Holds: []string{id()},
		Totals: map[string]int{}}
	if err := s.SavePurgeRun(ctx, run); err != nil {
		t.Fatalf("SavePurgeRun(started) = %v", err)
	}
	// A step with a run id writes its certificate line with its changes.
	sel := f.sel(c, 2)
	sel.RunID = run.ID
	res, err := s.ExpireMessages(ctx, chatvault.ExpireStep{Selection: sel, SentBefore: hour(10)})
	checkStep(t, "ExpireMessages(run)", res, err, 2, 1, 2)
	sel.AfterSeq = 3 // seq 3 stays
	if _, err := s.ExpireMessages(ctx, chatvault.ExpireStep{Selection: sel, SentBefore: hour(10)}); err != nil {
		t.Fatal(err)
	}
	sel.AfterSeq = 0
	if _, err := s.DestroyMessages(ctx, chatvault.DestroyStep{Selection: sel, ExpiredBefore: ptr(hour(200))}); err != nil {
		t.Fatal(err)
	}
	// A step that changes nothing writes no line.
	if _, err := s.ExpireMessages(ctx, chatvault.ExpireStep{Selection: sel, SentBefore: hour(0)}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordPurgeItem(ctx, f.org.ID, run.ID, chatvault.PurgeRunItem{ConversationID: c.ID, Action: "data_keys_destroyed", Count: 1}); err != nil {
		t.Fatalf("RecordPurgeItem() = %v", err)
	}
	// Steps without a run id, and another run's steps, are not this run's.
	other := f.group(t, 0, false, 1)
	f.hourly(t, other, 1)
	osel := f.sel(other, 10)
	osel.RunID = id()
	s.ExpireMessages(ctx, chatvault.ExpireStep{Selection: osel, SentBefore: hour(10)})
	s.RestoreExpired(ctx, f.org.ID, c.ID, 3, 3, hour(101))

	items, err := s.FindPurgeRunItems(ctx, f.org.ID, run.ID)
	want := []chatvault.PurgeRunItem{
		{ConversationID: c.ID, Action: "expired", Count: 2, FirstSeq: 1, LastSeq: 2},
		{ConversationID: c.ID, Action: "expired", Count: 2, FirstSeq: 4, LastSeq: 5},
		{ConversationID: c.ID, Action: "destroyed", Count: 2, FirstSeq: 1, LastSeq: 2},
		{ConversationID: c.ID, Action: "data_keys_destroyed", Count: 1},
	}
	if err != nil || !equal(items, want) {
		t.Fatalf("FindPurgeRunItems() = %+v, %v; want %+v, in the order written", items, err, want)
	}
	if items, err := s.FindPurgeRunItems(ctx, f.org.ID, id()); err != nil || len(items) != 0 {
		t.Fatalf("FindPurgeRunItems(unknown run) = %v, %v; want none", items, err)
	}

	run.FinishedAt = ptr(hour(101))
	run.Items, run.Totals = want, map[string]int{"expired": 4, "destroyed": 2}
	run.Evidence = map[string]any{"before": "x"}
	if err := s.SavePurgeRun(ctx, run); err != nil {
		t.Fatalf("SavePurgeRun(finished) = %v", err)
	}
	got, err := s.FindPurgeRun(ctx, f.org.ID, run.ID)
	if err != nil || got.ID != run.ID || got.OrgID != f.org.ID || !got.StartedAt.Equal(run.StartedAt) || got.FinishedAt == nil || !got.FinishedAt.Equal(hour(101)) ||
		got.Policy != run.Policy || !equal(got.Holds, run.Holds) || !equal(got.Items, want) || got.Totals["expired"] != 4 || got.Totals["destroyed"] != 2 ||
		got.Evidence["before"] != "x" || got.DryRun {
		t.Fatalf("FindPurgeRun() = %+v, %v; want %+v", got, err, run)
	}
	_, err = s.FindPurgeRun(ctx, f.org.ID, id())
	wantCode(t, "FindPurgeRun(unknown)", err, chatvault.ENOTFOUND)
	g := newFixture(t, s, 1)
	_, err = s.FindPurgeRun(ctx, g.org.ID, run.ID)
	wantCode(t, "FindPurgeRun(other org)", err, chatvault.ENOTFOUND)

	for i := range 3 {
		r := &chatvault.PurgeRun{OrgID: f.org.ID, ID: id(), StartedAt: hour(200 + i), DryRun: i == 1, Totals: map[string]int{}}
		if err := s.SavePurgeRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	runs, err := s.FindPurgeRuns(ctx, f.org.ID, 3)
	if err != nil || len(runs) != 3 || !runs[0].StartedAt.Equal(hour(202)) || !runs[2].StartedAt.Equal(hour(200)) || !runs[1].DryRun {
		t.Fatalf("FindPurgeRuns(limit 3) = %d runs, %v; want the three newest, newest first", len(runs), err)
	}
	if runs, _ := s.FindPurgeRuns(ctx, g.org.ID, 10); len(runs) != 0 {
		t.Fatalf("FindPurgeRuns(other org) = %d runs; want 0", len(runs))
	}
}

func testAudit(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	g := newFixture(t, s, 1)
	var entries []*chatvault.AuditEntry
	for i := range 4 {
		e := &chatvault.AuditEntry{OrgID: f.org.ID, At: t0.Add(time.Duration(i) * time.Minute), ActorID: f.users[i%2].ID, Action: "search.org",
			Target: "conversation " + id(), Reason: "调查 inquiry", Outcome: "ok", Details: map[string]any{"query": "合同", "hits": 3}}
		if i == 3 {
			e.Outcome, e.Details = "refused: locked", nil
		}
		if err := s.RecordAudit(ctx, e); err != nil {
			t.Fatalf("RecordAudit() = %v", err)
		}
		if i > 0 && e.ID <= entries[i-1].ID {
			t.Fatalf("RecordAudit() id = %d after %d; want increasing ids", e.ID, entries[i-1].ID)
		}
		entries = append(entries, e)
	}
	if err := s.RecordAudit(ctx, &chatvault.AuditEntry{OrgID: g.org.ID, At: t0, ActorID: g.users[0].ID, Action: "x", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.FindAudit(ctx, f.org.ID, 3)
	if err != nil || len(got) != 3 {
		t.Fatalf("FindAudit(limit 3) = %d entries, %v; want 3", len(got), err)
	}
	for i, e := range got {
		want := entries[3-i]
		if e.ID != want.ID || !e.At.Equal(want.At) || e.ActorID != want.ActorID || e.Action != want.Action || e.Target != want.Target ||
			e.Reason != want.Reason || e.Outcome != want.Outcome {
			t.Fatalf("FindAudit()[%d] = %+v; want %+v (newest first)", i, e, want)
		}
	}
	if d := got[1].Details; d["query"] != "合同" || d["hits"] != float64(3) {
		t.Fatalf("FindAudit() details = %v; want query 合同, hits 3", d)
	}
	if all, _ := s.FindAudit(ctx, g.org.ID, 10); len(all) != 1 {
		t.Fatalf("FindAudit(other org) = %d entries; want its own 1", len(all))
	}
}
