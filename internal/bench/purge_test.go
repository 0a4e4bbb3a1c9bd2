package bench

import (
	"context"
	"testing"
	"time"
)

// TestPurgeScenario runs the purge scenario on a tiny data set: every message past the policy is
// expired in the first phase and destroyed in the second, with traffic alongside. No timings are
// asserted.
func TestPurgeScenario(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	if _, err := Generate(ctx, data, 5, 2000, t.Logf); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	cfg := DefaultConfig()
	cfg.Data, cfg.Work, cfg.Server, cfg.Logf = data, t.TempDir(), serverCommand(t), t.Logf
	cfg.Senders, cfg.Readers, cfg.Duration = 4, 2, 300*time.Millisecond
	rep, err := Purge(0.25)(ctx, cfg)
	if err != nil {
		t.Fatalf("Purge: %v", err)
	}
	exp, dst := rep.Results["expire"], rep.Results["destroy"]
	if exp == nil || dst == nil {
		t.Fatalf("report results = %v; want expire and destroy", rep.order)
	}
	// Whole days of policy: about a quarter of 2000, never none.
	if exp.Ops < 300 || exp.Ops > 700 || dst.Ops != exp.Ops {
		t.Errorf("expired %d, destroyed %d; want about 500 each, the same", exp.Ops, dst.Ops)
	}
	for _, k := range []string{"send_without_purge", "read_without_purge", "send_expire", "read_destroy"} {
		if r := rep.Results[k]; r == nil || r.Ops == 0 || r.Errors > 0 {
			t.Errorf("result %s = %+v; want operations and no errors", k, r)
		}
	}
	if _, ok := rep.Ratio["send_p99_destroy_vs_without"]; !ok {
		t.Errorf("ratios = %v; want send_p99_destroy_vs_without", rep.Ratio)
	}
}
