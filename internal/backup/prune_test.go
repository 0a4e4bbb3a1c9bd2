package backup_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/backup"
	"github.com/chatvault/chatvault/internal/clocktest"
)

func TestKeepSelect(t *testing.T) {
	start := time.Date(2025, 1, 1, 3, 0, 0, 0, time.UTC) // a Wednesday
	times := map[string]time.Time{}
	for d := range 120 { // one backup a day for 120 days, two on the last day
		times[start.AddDate(0, 0, d).Format("0102")] = start.AddDate(0, 0, d)
	}
	last := start.AddDate(0, 0, 119)
	times["last"] = last.Add(time.Hour)
	got := backup.Keep{Daily: 3, Weekly: 2, Monthly: 3}.Select(times)
	var ids []string
	for id := range got {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	// Daily: the newest of each of the last three days (Apr 28, 29 and 30, whose newest is "last");
	// weekly: also the newest of the previous ISO week (Sunday 0427); monthly: March and February.
	want := []string{"0228", "0331", "0427", "0428", "0429", "last"}
	if !slices.Equal(ids, want) {
		t.Fatalf("Select() = %v; want %v", ids, want)
	}
}

// TestPrune: ten daily backups with keep 3 daily and 2 weekly, key backups kept 2 days, and the
// journal segments no kept backup needs, all pruned from the target.
func TestPrune(t *testing.T) {
	e := newEnv(t, backup.TargetConfig{Type: "dir", Path: t.TempDir()})
	ctx := context.Background()
	clock := clocktest.New(time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC)) // a Monday
	e.job.Clock = clock
	e.job.Keep = backup.Keep{Daily: 3, Weekly: 2}
	e.job.KeysKeepDays = 2
	c := e.conv(t)
	m, err := e.send(c, "going", clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := e.db.RecallMessage(ctx, e.org.ID, c.ID, m.Seq, now); err != nil {
		t.Fatal(err)
	}
	if n, err := e.job.ShipJournal(ctx); err != nil || n != 1 {
		t.Fatalf("ShipJournal() = %d, %v", n, err)
	}
	var ids []string
	for d := range 10 {
		res, err := e.job.Create(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
		if d < 9 {
			clock.Advance(24 * time.Hour)
		}
	}
	rep, err := e.job.Prune(ctx)
	if err != nil {
		t.Fatalf("Prune() = %v", err)
	}
	if want := []string{ids[6], ids[7], ids[8], ids[9]}; !slices.Equal(rep.KeptData, want) {
		t.Errorf("Prune() kept data %v; want %v", rep.KeptData, want)
	}
	if want := []string{ids[8], ids[9]}; !slices.Equal(rep.KeptKeys, want) {
		t.Errorf("Prune() kept keys %v; want %v", rep.KeptKeys, want)
	}
	if rep.DeletedJournal != 1 {
		t.Errorf("Prune() deleted %d journal segments; want 1", rep.DeletedJournal)
	}
	for _, kind := range []string{backup.KindData, backup.KindKeys} {
		list, err := e.job.List(ctx, kind)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range list {
			got = append(got, e.Manifest.ID)
		}
		want := rep.KeptData
		if kind == backup.KindKeys {
			want = rep.KeptKeys
		}
		if !slices.Equal(got, want) {
			t.Errorf("List(%s) after Prune() = %v; want %v", kind, got, want)
		}
	}
	// Every kept data backup still restores (with the newest key backup).
	if _, err := e.job.Restore(ctx, ids[6], t.TempDir(), identities(e), false); err != nil {
		t.Fatalf("Restore() of the oldest kept backup = %v", err)
	}
	_ = chatvault.DeletionRecalled
}
