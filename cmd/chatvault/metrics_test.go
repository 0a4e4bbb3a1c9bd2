package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/chatvault/chatvault/internal/clocktest"
	"github.com/chatvault/chatvault/internal/postgres/pgtest"
)

// scrape reads /metrics and parses it with Prometheus's own text parser.
func scrape(t *testing.T, p *serverProc, metricsURL string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := p.client.Get(metricsURL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d; want 200", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value is the value of the sample of family name whose labels include want: a counter's or
// gauge's value, a histogram's count.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// metricsURL waits for the server's "metrics listening" line and returns the listener's URL.
func metricsURL(t *testing.T, p *serverProc) string {
	t.Helper()
	var url string
	clocktest.Poll(t, "metrics listening line", func() error {
		for _, line := range p.logLines() {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "metrics listening" {
				url = "http://" + rec.Addr
				return nil
			}
		}
		return fmt.Errorf("no \"metrics listening\" line")
	})
	return url
}

// The store's sizes and counts are reported on PostgreSQL too: the database's size, the keys'
// table, the data keys and the export jobs.
func TestStoreMetricsOnPostgreSQL(t *testing.T) {
	bin := chatvaultBinary(t)
	store := pgtest.Server(t).NewDatabase(t)
	dir := t.TempDir()
	p := spawnServer(t, bin, []string{"--data", dir, "--store", store, "--metrics-listen", "127.0.0.1:0"}, nil)
	p.waitListening(t)
	url := metricsURL(t, p)
	token, conv := setup(t, p, dir)
	if status, _, body, err := p.send(token, conv, "m-1", "你好 PostgreSQL"); err != nil || status != http.StatusCreated {
		t.Fatalf("send = %d, %v, %s", status, err, body)
	}
	fams := scrape(t, p, url)
	for _, c := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"chatvault_store_size_bytes", map[string]string{"file": "database"}, 1 << 20},
		{"chatvault_store_size_bytes", map[string]string{"file": "keys"}, 1},
		{"chatvault_data_keys", map[string]string{"state": "live"}, 1},
		{"chatvault_export_jobs", map[string]string{"state": "done"}, 0},
	} {
		if v, ok := value(fams, c.name, c.labels); !ok || v < c.min {
			t.Errorf("%s%v = %v (present %v); want at least %v", c.name, c.labels, v, ok, c.min)
		}
	}
	if v, ok := value(fams, "chatvault_store_stats_errors_total", nil); !ok || v != 0 {
		t.Errorf("chatvault_store_stats_errors_total = %v (present %v); want 0", v, ok)
	}
}

// TestMetricsAgreeWithTheWork starts the real server with its metrics listener, does a known
// amount of work through the API, and checks that /metrics, parsed by Prometheus's parser, counts
// exactly that work, and shows no user names, content or ids.
func TestMetricsAgreeWithTheWork(t *testing.T) {
	bin := chatvaultBinary(t)
	dir := t.TempDir()
	p := spawnServer(t, bin, []string{"--data", dir, "--metrics-listen", "127.0.0.1:0",
		"--retention-interval", "1m", "--retention-start-delay", "0s"}, nil)
	p.waitListening(t)
	metricsURL := metricsURL(t, p)
	// The API's listener serves no metrics: they are for the operator's network only.
	if resp, err := p.client.Get(p.URL + "/metrics"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /metrics on the API listener = %v, %v; want 404", resp.StatusCode, err)
	}

	token, conv := setup(t, p, dir)
	const sends = 7
	secret := "秘密内容 secret-body-text"
	for i := range sends {
		if status, _, body, err := p.send(token, conv, fmt.Sprintf("m-%d", i), fmt.Sprintf("%s %d", secret, i)); err != nil || status != http.StatusCreated {
			t.Fatalf("send %d = %d, %v, %s", i, status, err, body)
		}
	}
	// A retry with the same client_msg_id returns the first message: 200, and nothing new stored.
	if status, _, body, err := p.send(token, conv, "m-0", secret+" 0"); err != nil || status != http.StatusOK {
		t.Fatalf("retried send = %d, %v, %s; want 200", status, err, body)
	}

	// One WebSocket connection that sends one message.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ws, _, err := websocket.Dial(ctx, strings.Replace(p.URL, "http", "ws", 1)+"/api/v1/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		t.Fatalf("dial WebSocket: %v", err)
	}
	var frame map[string]any
	if err := wsjson.Read(ctx, ws, &frame); err != nil || frame["type"] != "sync" {
		t.Fatalf("first frame = %v, %v; want sync", frame, err)
	}
	if err := wsjson.Write(ctx, ws, map[string]string{"type": "send", "conversation_id": conv, "client_msg_id": "ws-1", "text": secret}); err != nil {
		t.Fatal(err)
	}
	for frame["type"] != "ack" {
		if err := wsjson.Read(ctx, ws, &frame); err != nil {
			t.Fatalf("read ack: %v", err)
		}
	}

	sendRoute := map[string]string{"method": "POST", "route": "/api/v1/conversations/{conversation_id}/messages"}
	var fams map[string]*dto.MetricFamily
	clocktest.Poll(t, "metrics after the work", func() error {
		fams = scrape(t, p, metricsURL)
		for _, c := range []struct {
			name    string
			labels  map[string]string
			want    float64
			atLeast bool
		}{
			{"chatvault_messages_ingested_total", nil, sends + 1, false},
			{"chatvault_http_request_duration_seconds", merge(sendRoute, "code", "201"), sends, false},
			{"chatvault_http_request_duration_seconds", merge(sendRoute, "code", "200"), 1, false},
			{"chatvault_http_request_duration_seconds", map[string]string{"method": "POST", "route": "/api/v1/auth/login", "code": "200"}, 1, false},
			{"chatvault_websocket_connections", nil, 1, false},
			// Every send is at least one write of the group-commit writer (setup wrote more).
			{"chatvault_sqlite_commit_seconds", nil, 1, true},
			{"chatvault_job_runs_total", map[string]string{"job": "retention", "result": "ok"}, 1, true},
			{"chatvault_job_last_success_timestamp_seconds", map[string]string{"job": "retention"}, 1, true},
			{"chatvault_retention_messages_total", map[string]string{"action": "destroyed"}, 0, false},
			// The store's sizes and counts, read at the scrape: one conversation's data key.
			{"chatvault_store_size_bytes", map[string]string{"file": "database"}, 4096, true},
			{"chatvault_data_keys", map[string]string{"state": "live"}, 1, true},
			{"chatvault_data_keys", map[string]string{"state": "destroyed"}, 0, false},
			{"chatvault_retention_purge_lag_seconds", nil, 0, false},
			{"chatvault_export_jobs", map[string]string{"state": "done"}, 0, false},
			{"chatvault_store_stats_errors_total", nil, 0, false},
			// Every send's batch reached the live hub (the WebSocket send included).
			{"chatvault_sync_lag_seconds", nil, 1, true},
			{"go_goroutines", nil, 1, true},
			{"process_resident_memory_bytes", nil, 1, true},
		} {
			got, ok := value(fams, c.name, c.labels)
			if !ok || (c.atLeast && got < c.want) || (!c.atLeast && got != c.want) {
				return fmt.Errorf("%s%v = %v (present %v); want %v (at least: %v)", c.name, c.labels, got, ok, c.want, c.atLeast)
			}
		}
		return nil
	})
	// The writes the commit histogram saw cover at least every send.
	if h := fams["chatvault_sqlite_commit_batch_writes"].GetMetric()[0].GetHistogram(); h.GetSampleSum() < sends+1 {
		t.Errorf("chatvault_sqlite_commit_batch_writes sum = %v; want at least %d", h.GetSampleSum(), sends+1)
	}

	ws.Close(websocket.StatusNormalClosure, "")
	clocktest.Poll(t, "WebSocket gauge back to 0", func() error {
		if got, _ := value(scrape(t, p, metricsURL), "chatvault_websocket_connections", nil); got != 0 {
			return fmt.Errorf("chatvault_websocket_connections = %v; want 0", got)
		}
		return nil
	})

	// Nothing personal in any label: no user name, no content, no ids.
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				v := l.GetValue()
				if strings.Contains(v, "admin") || strings.Contains(v, "secret") || strings.Contains(v, "秘密") || strings.Contains(v, conv) {
					t.Errorf("%s has label %s=%q: labels must not carry names, content or ids", name, l.GetName(), v)
				}
			}
		}
	}
}

func merge(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for a, b := range m {
		out[a] = b
	}
	return out
}

// TestAccessLogAndRequestID: every request gets an X-Request-Id (the client's own when it sent
// one), and the access log line carries it, with no token, body or query string.
func TestAccessLogAndRequestID(t *testing.T) {
	bin := chatvaultBinary(t)
	dir := t.TempDir()
	p := startServer(t, bin, dir)
	token, conv := setup(t, p, dir)
	req, _ := http.NewRequest("GET", p.URL+"/api/v1/conversations/"+conv+"/messages?limit=5&access_token=should-not-show", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Request-Id", "trace-abc-123")
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got != "trace-abc-123" {
		t.Fatalf("X-Request-Id = %q; want the client's trace-abc-123", got)
	}
	resp, err = p.client.Get(p.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if id := resp.Header.Get("X-Request-Id"); len(id) < 8 {
		t.Fatalf("X-Request-Id = %q; want one made by the server", id)
	}
	pw, _ := os.ReadFile(filepath.Join(dir, InitialPasswordFile))
	var line map[string]any
	clocktest.Poll(t, "access log line", func() error {
		for _, l := range p.logLines() {
			var rec map[string]any
			if json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == "request" && rec["request_id"] == "trace-abc-123" {
				line = rec
				return nil
			}
		}
		return fmt.Errorf("no access log line with request_id trace-abc-123")
	})
	if line["route"] != "GET /api/v1/conversations/{conversation_id}/messages" || line["status"] != float64(200) {
		t.Errorf("access log line = %v; want route and status 200", line)
	}
	if took, _ := line["took"].(string); !strings.HasSuffix(took, "s") {
		t.Errorf("access log took = %v; want a duration like \"1.2ms\"", line["took"])
	}
	for _, l := range p.logLines() {
		for _, secret := range []string{token, "should-not-show", strings.TrimSpace(string(pw)), "崩溃测试"} {
			if strings.Contains(l, secret) {
				t.Errorf("log line holds a secret or content %q: %s", secret, l)
			}
		}
	}
}
