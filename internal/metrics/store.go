package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatvault/chatvault"
)

// StoreStats are the store's sizes and counts, read at each scrape.
type StoreStats struct {
	DatabaseBytes, WALBytes, KeysBytes int64
	LiveDataKeys, DestroyedDataKeys    int64
	// OldestExpired: when the longest-waiting expired message was expired; zero when none waits.
	OldestExpired time.Time
	ExportJobs    map[string]int64 // by state
}

// exportStates are always reported, so a state with no jobs is a zero rather than a gap.
var exportStates = []chatvault.ExportState{chatvault.ExportQueued, chatvault.ExportRunning, chatvault.ExportDone,
	chatvault.ExportFailed, chatvault.ExportCanceled, chatvault.ExportExpired}

// storeTimeout bounds the store's reads at a scrape: a busy store answers a scrape without them
// (and counts the failure) rather than holding Prometheus past its own timeout.
const storeTimeout = 5 * time.Second

var (
	dbBytesDesc = prometheus.NewDesc("chatvault_store_size_bytes",
		"Size of the store's files: the database, its write-ahead log, and the keys database (with its log).", []string{"file"}, nil)
	dataKeysDesc = prometheus.NewDesc("chatvault_data_keys",
		"Data keys by state: live (sealing messages) or destroyed (crypto-shredded by retention).", []string{"state"}, nil)
	purgeLagDesc = prometheus.NewDesc("chatvault_retention_purge_lag_seconds",
		"Age of the oldest expired message still waiting for destruction: above purge_grace_days plus retention.interval, destruction is late.", nil, nil)
	exportJobsDesc = prometheus.NewDesc("chatvault_export_jobs",
		"Export jobs kept by the server, by state.", []string{"state"}, nil)
)

// storeCollector reads the store at each scrape.
type storeCollector struct {
	read   func(context.Context) (*StoreStats, error)
	now    func() time.Time
	errors prometheus.Counter
}

// SetStore makes every scrape report the store's sizes, key counts, purge lag and export jobs,
// read by read. Call it once, before serving.
func (m *Metrics) SetStore(read func(context.Context) (*StoreStats, error), clock chatvault.Clock) {
	c := &storeCollector{read: read, now: clock.Now, errors: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chatvault_store_stats_errors_total", Help: "Scrapes at which the store's sizes and counts could not be read."})}
	m.reg.MustRegister(c)
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dbBytesDesc, dataKeysDesc, purgeLagDesc, exportJobsDesc} {
		ch <- d
	}
	c.errors.Describe(ch)
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	s, err := c.read(ctx)
	if err != nil {
		c.errors.Inc()
	}
	ch <- c.errors
	if err != nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(dbBytesDesc, float64(s.DatabaseBytes), "database")
	gauge(dbBytesDesc, float64(s.WALBytes), "wal")
	gauge(dbBytesDesc, float64(s.KeysBytes), "keys")
	gauge(dataKeysDesc, float64(s.LiveDataKeys), "live")
	gauge(dataKeysDesc, float64(s.DestroyedDataKeys), "destroyed")
	lag := 0.0
	if !s.OldestExpired.IsZero() {
		lag = max(0, c.now().Sub(s.OldestExpired).Seconds())
	}
	gauge(purgeLagDesc, lag)
	for _, st := range exportStates {
		gauge(exportJobsDesc, float64(s.ExportJobs[string(st)]), string(st))
	}
}
