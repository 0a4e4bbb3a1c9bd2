package bench

import (
	"context"
	"testing"
)

// The export scenario exports every message of the data set in each format, and the reference
// scans the same rows.
func TestExportScenario(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	if _, err := Generate(ctx, data, 5, 2000, t.Logf); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	cfg := DefaultConfig()
	cfg.Data, cfg.Work, cfg.Server, cfg.Logf = data, t.TempDir(), serverCommand(t), t.Logf
	rep, err := Export(ctx, cfg)
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	if rep.Reference == nil || rep.Reference.Ops != 2000 || rep.Reference.Errors > 0 {
		t.Fatalf("reference = %+v; want a scan of 2000 messages", rep.Reference)
	}
	for _, k := range []string{"csv", "jsonl", "xlsx"} {
		r := rep.Results[k]
		if r == nil || r.Ops != 2000 || r.Errors > 0 || r.Rate <= 0 {
			t.Errorf("result %s = %+v; want 2000 messages exported, no errors", k, r)
		}
		if _, ok := rep.Ratio[k+"_vs_raw"]; !ok {
			t.Errorf("ratios %v: want %s against the raw scan", rep.Ratio, k)
		}
	}
}
