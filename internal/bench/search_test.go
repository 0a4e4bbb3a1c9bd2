package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestSearchScenario(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	if _, err := Generate(ctx, data, 5, 2000, t.Logf); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	cfg := DefaultConfig()
	cfg.Data, cfg.Work, cfg.Server, cfg.Logf = data, t.TempDir(), serverCommand(t), t.Logf
	cfg.Senders, cfg.Count, cfg.Duration = 4, 20, 300*time.Millisecond
	rep, err := Search(ctx, cfg)
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	for _, k := range []string{"user", "org", "ingest_indexed", "ingest_unindexed"} {
		if r := rep.Results[k]; r == nil || r.Ops == 0 || r.Errors > 0 {
			t.Errorf("result %s = %+v; want operations and no errors", k, r)
		}
	}
	if rep.Reference == nil || rep.Reference.Ops == 0 {
		t.Errorf("no brute-force reference: %+v", rep.Reference)
	}
	if _, ok := rep.Ratio["ingest_indexed_vs_unindexed"]; !ok {
		t.Errorf("ratios %v: want ingest with the index against without", rep.Ratio)
	}
	// Every generated text message is indexed, and the index has a size.
	if !strings.Contains(strings.Join(rep.Notes, "\n"), "bytes per message") {
		t.Errorf("notes %q: want the index size", rep.Notes)
	}
}
