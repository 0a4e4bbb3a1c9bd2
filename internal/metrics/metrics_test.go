package metrics

import (
	"context"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/backup"
)

// TestAlertRulesUseRealMetrics: every chatvault_* series that deploy/prometheus/alerts.yaml
// queries is one this package exports, so a renamed metric cannot leave an alert that never fires.
func TestAlertRulesUseRealMetrics(t *testing.T) {
	t.Parallel()
	m := New(&backup.Metrics{})
	// Touch every labelled family, so each appears in a gather.
	m.Request("GET /healthz", 200, time.Millisecond)
	m.Commit(3, time.Millisecond)
	m.WebSocketOpened()
	m.WebSocketClosed(true)
	m.MessageStored()
	m.JobRun("retention", time.Now(), time.Second, nil)
	m.JobRun("backup", time.Now(), time.Second, errors.New("target down"))
	m.RetentionRun(&chatvault.PurgeRun{Totals: map[string]int{"destroyed": 2}})
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range fams {
		exported[f.GetName()] = true
	}

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
	series := regexp.MustCompile(`chatvault_[a-z_]+`)
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("rule %+v needs alert and expr", r)
			}
			for _, s := range series.FindAllString(r.Expr, -1) {
				name := s
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if base, ok := strings.CutSuffix(s, suffix); ok && exported[base] {
						name = base
					}
				}
				if !exported[name] {
					t.Errorf("alert %s queries %s, which chatvault does not export", r.Alert, s)
				}
			}
		}
	}
	if n < 5 {
		t.Fatalf("alerts.yaml has %d rules; want the retention, backup, disk and error alerts", n)
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
