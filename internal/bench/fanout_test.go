package bench

import (
	"context"
	"testing"
	"time"
)

// TestFanoutScenario runs the fanout scenario end to end with a few connections against a child
// server and checks the report's keys. No timings are asserted.
func TestFanoutScenario(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Data, cfg.Work, cfg.Server, cfg.Logf = tinyDataset(t), t.TempDir(), serverCommand(t), t.Logf
	cfg.Count, cfg.Senders = 60, 4
	cfg.Fanout = FanoutSizes{Users: 8, Devices: 2, Group: 4, Rate: 100, GroupRate: 20, Settle: 100 * time.Millisecond}
	rep, err := Fanout(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Fanout: %v", err)
	}
	checkReport(t, rep, "fanout", []string{"started_at", "machine.cpus", "durability", "settings.connections", "settings.rate",
		"settings.group_rate", "settings.group_members",
		"results.connect.ops", "results.connect.p99_ms",
		"results.send.per_second", "results.send.p99_ms", "results.send.peak_rss_bytes",
		"results.group_delivery.p50_ms", "results.group_delivery.p99_ms", "results.group_delivery.ops",
		"figures.server_bytes_per_connection", "figures.server_rss_before_bytes", "figures.server_rss_after_bytes",
		"figures.connections_opened", "figures.open_file_limit", "figures.achieved_send_rate", "figures.sends_missed"})
	if got := rep.Figures["connections_opened"]; got != 16 {
		t.Errorf("connections opened = %v, want 16", got)
	}
	if r := rep.Results["send"]; r.Errors > 0 || r.Ops == 0 {
		t.Errorf("send: %d ops, %d errors (%s); want ops and no errors", r.Ops, r.Errors, r.Note)
	}
	if r := rep.Results["group_delivery"]; r.Errors > 0 || r.Ops == 0 {
		t.Errorf("group_delivery: %d receipts, %d missing (%s); want receipts and none missing", r.Ops, r.Errors, r.Note)
	}
}
