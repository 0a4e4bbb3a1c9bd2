package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/backup"
	"github.com/chatvault/chatvault/internal/clocktest"
)

// exported gathers a Metrics with every family touched and returns the names it exports.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	b := &backup.Metrics{}
	m := New(b)
	// Touch every labelled family, so each appears in a gather.
	b.RecordUpload("dir:/backups", 2*time.Second)
	m.Request("GET /healthz", 200, time.Millisecond)
	m.Commit(3, time.Millisecond)
	m.WebSocketOpened()
	m.WebSocketClosed(true)
	m.MessageStored()
	m.JobRun("retention", time.Now(), time.Second, nil)
	m.JobRun("backup", time.Now(), time.Second, errors.New("target down"))
	m.RetentionRun(&chatvault.PurgeRun{Totals: map[string]int{"destroyed": 2}})
	m.SyncLag(3 * time.Millisecond)
	m.SetStore(func(context.Context) (*StoreStats, error) { return &StoreStats{}, nil }, clocktest.New(time.Now()))
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
	}
	return names
}

var series = regexp.MustCompile(`chatvault_[a-z_]+`)

// checkSeries reports every chatvault_* series in expr that is not exported (a histogram's
// _bucket, _count and _sum are its own).
func checkSeries(t *testing.T, names map[string]bool, where, expr string) {
	t.Helper()
	for _, s := range series.FindAllString(expr, -1) {
		name := s
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if base, ok := strings.CutSuffix(s, suffix); ok && names[base] {
				name = base
			}
		}
		if !names[name] {
			t.Errorf("%s queries %s, which chatvault does not export", where, s)
		}
	}
}

// TestAlertRulesUseRealMetrics: every chatvault_* series that deploy/prometheus/alerts.yaml
// queries is one this package exports, so a renamed metric cannot leave an alert that never fires.
func TestAlertRulesUseRealMetrics(t *testing.T) {
	t.Parallel()
	names := exported(t)
	raw, err := os.ReadFile("../../deploy/prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("rule %+v needs alert and expr", r)
			}
			checkSeries(t, names, "alert "+r.Alert, r.Expr)
		}
	}
	for _, want := range []string{"ChatvaultRetentionNotRunning", "ChatvaultBackupNotVerified", "ChatvaultDiskFilling", "ChatvaultPurgeLagging"} {
		if !alerts[want] {
			t.Errorf("alerts.yaml has no %s rule", want)
		}
	}
}

// TestDashboardUsesRealMetrics: deploy/grafana/chatvault.json is a dashboard whose every query
// names series chatvault exports, and which shows every chatvault family at least once.
func TestDashboardUsesRealMetrics(t *testing.T) {
	t.Parallel()
	names := exported(t)
	raw, err := os.ReadFile("../../deploy/grafana/chatvault.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("chatvault.json: %v", err)
	}
	shown := map[string]bool{}
	for _, p := range dash.Panels {
		if p.Title == "" || len(p.Targets) == 0 {
			t.Errorf("panel %q needs a title and a query", p.Title)
		}
		for _, q := range p.Targets {
			checkSeries(t, names, "panel "+p.Title, q.Expr)
			for _, s := range series.FindAllString(q.Expr, -1) {
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					s = strings.TrimSuffix(s, suffix)
				}
				shown[s] = true
			}
		}
	}
	for name := range names {
		if strings.HasPrefix(name, "chatvault_") && !shown[name] {
			t.Errorf("the dashboard shows no panel for %s", name)
		}
	}
}

// TestPurgeLag: the age of the oldest expired message waiting for destruction, by the clock; 0
// when none waits; and a store that cannot be read is counted, not a failed scrape.
func TestPurgeLag(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	stats := &StoreStats{OldestExpired: clock.Now().Add(-8 * 24 * time.Hour), LiveDataKeys: 5, ExportJobs: map[string]int64{"done": 2}}
	var readErr error
	m := New(nil)
	m.SetStore(func(context.Context) (*StoreStats, error) { return stats, readErr }, clock)
	gauge := func(name, label string) (float64, bool) {
		fams, err := m.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() != name {
				continue
			}
			for _, mm := range f.GetMetric() {
				if label == "" || (len(mm.GetLabel()) > 0 && mm.GetLabel()[0].GetValue() == label) {
					if mm.Counter != nil {
						return mm.Counter.GetValue(), true
					}
					return mm.Gauge.GetValue(), true
				}
			}
		}
		return 0, false
	}
	if got, _ := gauge("chatvault_retention_purge_lag_seconds", ""); got != 8*86400 {
		t.Errorf("purge lag = %v; want 8 days (691200)", got)
	}
	if got, _ := gauge("chatvault_data_keys", "live"); got != 5 {
		t.Errorf("live data keys = %v; want 5", got)
	}
	if got, _ := gauge("chatvault_export_jobs", "done"); got != 2 {
		t.Errorf("done export jobs = %v; want 2", got)
	}
	if got, ok := gauge("chatvault_export_jobs", "failed"); !ok || got != 0 {
		t.Errorf("failed export jobs = %v (present %v); want a 0", got, ok)
	}
	stats.OldestExpired = time.Time{}
	if got, _ := gauge("chatvault_retention_purge_lag_seconds", ""); got != 0 {
		t.Errorf("purge lag with nothing waiting = %v; want 0", got)
	}
	readErr = errors.New("database is locked")
	if got, _ := gauge("chatvault_store_stats_errors_total", ""); got != 1 {
		t.Errorf("store stats errors = %v; want 1", got)
	}
	if _, ok := gauge("chatvault_retention_purge_lag_seconds", ""); ok {
		t.Errorf("purge lag reported from a store that could not be read; want it absent")
	}
}

// TestJobRunOutcomes: a run stopped by shutdown is neither a success nor a failure.
func TestJobRunOutcomes(t *testing.T) {
	t.Parallel()
	m := New(nil)
	start := time.Unix(1_800_000_000, 0)
	m.JobRun("retention", start, 2*time.Second, nil)
	m.JobRun("retention", start.Add(time.Hour), time.Second, context.Canceled)
	m.JobRun("retention", start.Add(2*time.Hour), time.Second, errors.New("disk full"))
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mm := range f.GetMetric() {
			key := f.GetName()
			for _, l := range mm.GetLabel() {
				if l.GetName() == "result" {
					key += "/" + l.GetValue()
				}
			}
			switch {
			case mm.Counter != nil:
				got[key] = mm.Counter.GetValue()
			case mm.Gauge != nil:
				got[key] = mm.Gauge.GetValue()
			}
		}
	}
	for k, want := range map[string]float64{
		"chatvault_job_runs_total/ok":                  1,
		"chatvault_job_runs_total/stopped":             1,
		"chatvault_job_runs_total/failed":              1,
		"chatvault_job_last_success_timestamp_seconds": float64(start.Unix() + 2),
		"chatvault_job_last_run_timestamp_seconds":     float64(start.Add(2 * time.Hour).Unix()),
	} {
		if got[k] != want {
			t.Errorf("%s = %v; want %v", k, got[k], want)
		}
	}
}
