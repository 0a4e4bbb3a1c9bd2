// Package metrics exports what chatvault measures in the Prometheus format, on a listener of its
// own (serve's metrics_listen), with the Go runtime's and the process's standard metrics and the
// profiler. Labels hold route patterns, statuses, job names and outcomes: never content, user
// names, ids or paths, so a scrape reveals nothing about anyone's chats.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/backup"
)

// Metrics holds every chatvault metric and the registry they are served from. Its methods are the
// observers the transport, the SQLite writer and the jobs runner are given.
type Metrics struct {
	reg *prometheus.Registry

	requests    *prometheus.HistogramVec
	ingested    prometheus.Counter
	batch       prometheus.Histogram
	commit      prometheus.Histogram
	wsOpen      prometheus.Gauge
	wsDrops     prometheus.Counter
	jobRuns     *prometheus.CounterVec
	jobLastRun  *prometheus.GaugeVec
	jobLastOK   *prometheus.GaugeVec
	jobDuration *prometheus.GaugeVec
	retention   *prometheus.CounterVec
	syncLag     prometheus.Histogram
}

// New registers every metric. backups are the backup job's counters (nil: none yet).
func New(backups *backup.Metrics) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chatvault_http_request_duration_seconds",
			Help: "Time to answer an API request, by route pattern and status (WebSocket: the whole session).",
			// From a cached read (well under a millisecond) to a long-poll (up to 60 s).
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"method", "route", "code"}),
		ingested: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatvault_messages_ingested_total",
			Help: "Messages stored by sends (REST and WebSocket); a retried send that returns the first result is not counted.",
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chatvault_sqlite_commit_batch_writes",
			Help:    "Writes made durable by one group commit of the SQLite writer.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 to 1024
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chatvault_sqlite_commit_seconds",
			Help:    "Time of a group commit's COMMIT, which is where SQLite fsyncs the WAL.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		wsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chatvault_websocket_connections",
			Help: "Open WebSocket connections.",
		}),
		wsDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatvault_websocket_queue_drops_total",
			Help: "WebSocket connections closed because their queue was full (4008: the client resumes from its cursor).",
		}),
		jobRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatvault_job_runs_total",
			Help: "Runs of scheduled jobs (retention, backup, deletion-journal), by outcome: ok, failed, stopped.",
		}, []string{"job", "result"}),
		jobLastRun: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chatvault_job_last_run_timestamp_seconds",
			Help: "Unix time the last run of a scheduled job started.",
		}, []string{"job"}),
		jobLastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chatvault_job_last_success_timestamp_seconds",
			Help: "Unix time the last successful run of a scheduled job ended.",
		}, []string{"job"}),
		jobDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chatvault_job_last_duration_seconds",
			Help: "How long the last run of a scheduled job took.",
		}, []string{"job"}),
		retention: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatvault_retention_messages_total",
			Help: "Messages the retention job expired (hidden, in the grace window), destroyed, or gave back (restored).",
		}, []string{"action"}),
		syncLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chatvault_sync_lag_seconds",
			Help: "Time from a message's send to its routing to live connections (group commit, hand-off, and on PostgreSQL the notification between processes).",
			// From a group commit (milliseconds) to a stalled hand-off.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
	}
	reg.MustRegister(m.syncLag, m.requests, m.ingested, m.batch, m.commit, m.wsOpen, m.wsDrops, m.jobRuns, m.jobLastRun, m.jobLastOK,
		m.jobDuration, m.retention,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, a := range []string{"expired", "destroyed", "restored", "data_keys_destroyed"} {
		m.retention.WithLabelValues(a) // present from the start, so rate() and alerts see a zero
	}
	if backups != nil {
		m.registerBackups(backups)
	}
	return m
}

func (m *Metrics) registerBackups(b *backup.Metrics) {
	counter := func(name, help string, v func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v()) })
	}
	gauge := func(name, help string, v func() int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(v()) })
	}
	m.reg.MustRegister(&uploadCollector{b: b},
		counter("chatvault_backups_total", "Backups stored on at least one target.", b.Backups.Load),
		counter("chatvault_backup_failures_total", "Backups that failed (snapshot, check, or no target reached).", b.BackupFailures.Load),
		counter("chatvault_backup_target_failures_total", "Targets that did not get a backup after retries.", b.TargetFailures.Load),
		counter("chatvault_backup_verifies_total", "Backup verifications run.", b.Verifies.Load),
		counter("chatvault_backup_verify_failures_total", "Backup verifications that failed.", b.VerifyFailures.Load),
		gauge("chatvault_backup_last_success_timestamp_seconds", "Unix time of the last stored backup (0: none since start).", b.LastSuccess.Load),
		gauge("chatvault_backup_last_size_bytes", "Encrypted size of the last data backup.", b.LastBytes.Load),
		gauge("chatvault_backup_last_verify_timestamp_seconds", "Unix time the last verification ended (0: none since start).", b.LastVerify.Load),
		gauge("chatvault_backup_last_verify_success", "1 if the last verification passed, else 0.", func() int64 {
			if b.LastVerifyOK.Load() {
				return 1
			}
			return 0
		}),
	)
}

// Request implements the transport's Observer. route is "METHOD /pattern" or "unmatched".
func (m *Metrics) Request(route string, status int, took time.Duration) {
	method, path, ok := cutRoute(route)
	if !ok {
		method, path = "", route
	}
	m.requests.WithLabelValues(method, path, strconv.Itoa(status)).Observe(took.Seconds())
}

func cutRoute(route string) (method, path string, ok bool) {
	for i := 0; i < len(route); i++ {
		if route[i] == ' ' {
			return route[:i], route[i+1:], true
		}
	}
	return "", "", false
}

// MessageStored implements the transport's Observer.
func (m *Metrics) MessageStored() { m.ingested.Inc() }

// WebSocketOpened implements the transport's Observer.
func (m *Metrics) WebSocketOpened() { m.wsOpen.Inc() }

// WebSocketClosed implements the transport's Observer.
func (m *Metrics) WebSocketClosed(slow bool) {
	m.wsOpen.Dec()
	if slow {
		m.wsDrops.Inc()
	}
}

// Commit observes one group commit of the SQLite writer.
func (m *Metrics) Commit(writes int, commit time.Duration) {
	m.batch.Observe(float64(writes))
	m.commit.Observe(commit.Seconds())
}

// JobRun observes one run of a scheduled job (the jobs runner's Observe).
func (m *Metrics) JobRun(job string, started time.Time, took time.Duration, err error) {
	result := "ok"
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		result = "stopped"
	case err != nil:
		result = "failed"
	}
	m.jobRuns.WithLabelValues(job, result).Inc()
	m.jobLastRun.WithLabelValues(job).Set(float64(started.Unix()))
	m.jobDuration.WithLabelValues(job).Set(took.Seconds())
	if err == nil {
		m.jobLastOK.WithLabelValues(job).Set(float64(started.Add(took).Unix()))
	}
}

// SyncLag observes the live hub's delay for one batch of new messages (hub.SetLagObserver).
func (m *Metrics) SyncLag(d time.Duration) { m.syncLag.Observe(max(0, d.Seconds())) }

// RetentionRun adds a retention run's totals.
func (m *Metrics) RetentionRun(r *chatvault.PurgeRun) {
	for _, a := range []string{"expired", "destroyed", "restored", "data_keys_destroyed"} {
		m.retention.WithLabelValues(a).Add(float64(r.Totals[a]))
	}
}

// Handler serves /metrics and the profiler (/debug/pprof/): only on the metrics listener, which
// is meant for the operator's network, never on the API's.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

var uploadDesc = prometheus.NewDesc("chatvault_backup_target_last_upload_seconds",
	"How long the last data backup took to upload to each target (since the process started).", []string{"target"}, nil)

// uploadCollector reports each target's last upload time, read from the backup job's metrics.
type uploadCollector struct{ b *backup.Metrics }

func (c *uploadCollector) Describe(ch chan<- *prometheus.Desc) { ch <- uploadDesc }

func (c *uploadCollector) Collect(ch chan<- prometheus.Metric) {
	for target, took := range c.b.Uploads() {
		ch <- prometheus.MustNewConstMetric(uploadDesc, prometheus.GaugeValue, took.Seconds(), target)
	}
}
