package bench

import (
	"context"
	"testing"
)

// TestBackupScenario runs the backup scenario on a tiny data set: the backup is made, verified in
// full and restored, and the report compares each with the plain copy. No timings are asserted.
func TestBackupScenario(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	if _, err := Generate(ctx, data, 7, 500, t.Logf); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	cfg := DefaultConfig()
	cfg.Data, cfg.Work, cfg.Server, cfg.Logf = data, t.TempDir(), serverCommand(t), t.Logf
	rep, err := Backup(ctx, cfg)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if rep.Reference == nil || rep.Reference.Rate <= 0 {
		t.Fatalf("reference = %+v; want the plain copy's rate", rep.Reference)
	}
	for _, k := range []string{"create", "verify", "restore"} {
		r := rep.Results[k]
		if r == nil || r.Rate <= 0 || r.Errors > 0 {
			t.Errorf("result %s = %+v; want a rate and no errors", k, r)
		}
		if _, ok := rep.Ratio[k+"_vs_raw"]; !ok {
			t.Errorf("ratios = %v; want %s_vs_raw", rep.Ratio, k)
		}
	}
}
