package bench

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/account"
	"github.com/chatvault/chatvault/internal/audit"
)

// tinyDataset generates a small data set for the sync and fanout tests.
func tinyDataset(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	if _, err := Generate(context.Background(), data, 5, 300, t.Logf); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return data
}

// checkReport writes rep both ways and checks its JSON holds every dotted path in keys.
func checkReport(t *testing.T, rep *Report, scenario string, keys []string) map[string]any {
	t.Helper()
	var buf strings.Builder
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(rep)
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	for _, path := range keys {
		v := any(got)
		for _, k := range strings.Split(path, ".") {
			obj, _ := v.(map[string]any)
			v = obj[k]
		}
		if v == nil {
			t.Errorf("%s report lacks %q", scenario, path)
		}
	}
	if got["scenario"] != scenario {
		t.Errorf("report scenario = %v, want %s", got["scenario"], scenario)
	}
	return got
}

// TestSyncScenario runs the sync scenario end to end with a few conversations, the HTTP paths
// against a child server, and checks the report's keys. No timings are asserted.
func TestSyncScenario(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Data, cfg.Work, cfg.Server, cfg.Logf = tinyDataset(t), t.TempDir(), serverCommand(t), t.Logf
	cfg.Count = 8
	cfg.Sync = SyncSizes{Conversations: 12, Changed: 3, InitialConversations: 5, Messages: 2}
	rep, err := Sync(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	checkReport(t, rep, "sync", []string{"started_at", "machine.cpus", "dataset.messages", "durability", "settings.conversations",
		"settings.changed", "settings.initial_conversations",
		"results.incremental_service.p50_ms", "results.incremental_service.p99_ms", "results.incremental_service.peak_rss_bytes",
		"results.incremental_http.p50_ms", "results.incremental_http.p99_ms", "results.incremental_http.peak_rss_bytes",
		"results.initial_service.p50_ms", "results.initial_service.p99_ms",
		"results.initial_http.p50_ms", "results.initial_http.p99_ms",
		"results.raw_initial_listing.p50_ms",
		"reference.name", "reference.p50_ms", "reference.p99_ms", "ratio.incremental_service_vs_raw", "ratio.initial_http_vs_raw"})
	for k, r := range rep.Results {
		if r.Errors > 0 || r.Ops != cfg.Count {
			t.Errorf("sync path %s: %d ops, %d errors (%s); want %d ops and no errors", k, r.Ops, r.Errors, r.Note, cfg.Count)
		}
	}
	if r := rep.Reference; r.Errors > 0 || r.Ops != cfg.Count {
		t.Errorf("sync reference: %d ops, %d errors (%s); want %d ops and no errors", r.Ops, r.Errors, r.Note, cfg.Count)
	}
}

// TestSignIn checks that tokens made by SignIn authenticate through the product's own path.
func TestSignIn(t *testing.T) {
	ctx := context.Background()
	data := tinyDataset(t)
	l, err := openLocal(data)
	if err != nil {
		t.Fatal(err)
	}
	db := l.db
	defer db.Close()
	d := NewDataset(Params{Seed: 5, Messages: 300})
	users := d.Users[:3]
	toks, err := SignIn(ctx, db, users, "test")
	if err != nil {
		t.Fatalf("SignIn: %v", err)
	}
	accts := account.NewService(db, chatvault.SystemClock{}, account.Config{Audit: audit.New(db, db.Keyring(), chatvault.SystemClock{})})
	for i, tok := range toks {
		a, err := accts.Authenticate(ctx, tok)
		if err != nil {
			t.Fatalf("Authenticate(token of %s): %v", users[i].Username, err)
		}
		if a.UserID != users[i].ID || a.OrgID != users[i].OrgID {
			t.Errorf("Authenticate(token of %s) = user %s of org %s, want %s of %s", users[i].Username, a.UserID, a.OrgID, users[i].ID, users[i].OrgID)
		}
	}
}
