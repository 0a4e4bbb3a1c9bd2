package backup

import (
	"fmt"
	"io"
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// Metrics counts what the backup job did; serve exports them on /metrics (internal/metrics), and
// the same events are logged (failures at level ERROR).
type Metrics struct {
	Backups        atomic.Int64 // backups stored on at least one target
	BackupFailures atomic.Int64 // backups that failed (snapshot, check, or no target reached)
	TargetFailures atomic.Int64 // targets that did not get a backup after retries
	Verifies       atomic.Int64 // verifications run
	VerifyFailures atomic.Int64 // verifications (and pre-upload checks) that failed
	LastSuccess    atomic.Int64 // Unix time of the last stored backup
	LastBytes      atomic.Int64 // encrypted size of the last data backup
	LastVerify     atomic.Int64 // Unix time the last verification ended (not cancelled)
	LastVerifyOK   atomic.Bool  // whether it passed

	mu      sync.Mutex
	uploads map[string]time.Duration // the last data backup's upload to each target, by target
}

// RecordUpload records how long the upload of a data backup to target took.
func (m *Metrics) RecordUpload(target string, took time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.uploads == nil {
		m.uploads = map[string]time.Duration{}
	}
	m.uploads[target] = took
}

// Uploads returns how long the last data backup's upload to each target took, by target.
func (m *Metrics) Uploads() map[string]time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.uploads)
}

// WritePrometheus writes the metrics in the Prometheus text exposition format.
func (m *Metrics) WritePrometheus(w io.Writer) error {
	for _, c := range []struct {
		name, kind, help string
		v                int64
	}{
		{"chatvault_backups_total", "counter", "Backups stored on at least one target.", m.Backups.Load()},
		{"chatvault_backup_failures_total", "counter", "Backups that failed.", m.BackupFailures.Load()},
		{"chatvault_backup_target_failures_total", "counter", "Targets that did not get a backup after retries.", m.TargetFailures.Load()},
		{"chatvault_backup_verifies_total", "counter", "Backup verifications run.", m.Verifies.Load()},
		{"chatvault_backup_verify_failures_total", "counter", "Backup verifications that failed.", m.VerifyFailures.Load()},
		{"chatvault_backup_last_success_timestamp_seconds", "gauge", "Unix time of the last stored backup.", m.LastSuccess.Load()},
		{"chatvault_backup_last_size_bytes", "gauge", "Encrypted size of the last data backup.", m.LastBytes.Load()},
	} {
		if _, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", c.name, c.help, c.name, c.kind, c.name, c.v); err != nil {
			return err
		}
	}
	return nil
}
