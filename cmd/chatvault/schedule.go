package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/backup"
	"github.com/chatvault/chatvault/internal/export"
	"github.com/chatvault/chatvault/internal/jobs"
	"github.com/chatvault/chatvault/internal/metrics"
)

// This file holds all of serve's scheduling: the settings (retention.*, backup.schedule) and the
// jobs registered with the one runner (internal/jobs): retention, backups, and shipping the
// deletion journal between backups. They run on the instance that leads (the store's Lead).

// RetentionConfig says how often the server runs the retention job.
type RetentionConfig struct {
	// Interval between runs; 0 turns the schedule off (run `chatvault retention run` from cron instead).
	Interval Duration `yaml:"interval"`
	// StartDelay is how long after the server starts (or takes the schedule over from another
	// instance) the first run begins: soon, but after the first clients have reconnected.
	StartDelay Duration `yaml:"start_delay"`
	// TakeoverCheck is how often an instance that does not run the scheduled jobs (another
	// instance on the same PostgreSQL store does) checks whether it should take them over, and how
	// often the instance that runs them checks that it still does. With SQLite there is one
	// instance, which always runs them.
	TakeoverCheck Duration `yaml:"takeover_check"`
}

// Bounds of retention.interval: a run examines every conversation, so not more often than every
// minute; retention counts days, so not less often than daily.
const (
	minRetentionInterval = time.Minute
	maxRetentionInterval = 24 * time.Hour
)

// Defaults of the schedules.
const (
	// defaultRetentionStartDelay is the default of retention.start_delay: soon after start, but
	// after the server is up and the first clients have reconnected.
	defaultRetentionStartDelay = 30 * time.Second
	// defaultTakeoverCheck is the default of retention.takeover_check.
	defaultTakeoverCheck = jobs.DefaultLeaderCheck
	// journalInterval is how often the deletion journal is shipped between backups: the longest a
	// deletion can go unrecorded outside the server.
	journalInterval = time.Minute
)

// validateSchedules checks every schedule setting.
func (c Config) validateSchedules() []error {
	errs := c.Retention.validate()
	if _, err := jobs.Cron(c.Backup.Schedule); err != nil {
		errs = append(errs, fmt.Errorf("backup.schedule: %q: %v (use 5-field cron like \"0 3 * * *\", or @daily, @hourly, @every 6h)", c.Backup.Schedule, err))
	}
	return errs
}

func (r RetentionConfig) validate() []error {
	var errs []error
	d := time.Duration(r.Interval)
	if d != 0 && (d < minRetentionInterval || d > maxRetentionInterval) {
		errs = append(errs, fmt.Errorf("retention.interval: %s must be 0 (no schedule) or between %s and %s, for example 1h "+
			"(--retention-interval or CHATVAULT_RETENTION_INTERVAL)", d, minRetentionInterval, maxRetentionInterval))
	}
	if sd := time.Duration(r.StartDelay); sd < 0 || sd > time.Hour {
		errs = append(errs, fmt.Errorf("retention.start_delay: %s must be between 0 and 1h, for example 30s "+
			"(--retention-start-delay or CHATVAULT_RETENTION_START_DELAY)", sd))
	}
	if tc := time.Duration(r.TakeoverCheck); tc < time.Second || tc > time.Hour {
		errs = append(errs, fmt.Errorf("retention.takeover_check: %s must be between 1s and 1h, for example 15s "+
			"(--retention-takeover-check or CHATVAULT_RETENTION_TAKEOVER_CHECK)", tc))
	}
	return errs
}

func addRetentionFlags(fs *flag.FlagSet, cfg *Config) {
	durationFlag := func(name, usage string, dst *Duration) {
		fs.Func(name, usage, func(s string) error {
			d, err := time.ParseDuration(s)
			*dst = Duration(d)
			return err
		})
	}
	durationFlag("retention-interval", "how often the retention job runs, e.g. 1h; 0 turns it off (env CHATVAULT_RETENTION_INTERVAL)", &cfg.Retention.Interval)
	durationFlag("retention-start-delay", "how long after start (or takeover) the first retention run begins (env CHATVAULT_RETENTION_START_DELAY)", &cfg.Retention.StartDelay)
	durationFlag("retention-takeover-check", "how often an instance that does not run the scheduled jobs checks whether to take them over (env CHATVAULT_RETENTION_TAKEOVER_CHECK)", &cfg.Retention.TakeoverCheck)
}

func applyRetentionEnv(cfg *Config) error {
	for _, e := range []struct {
		name, example string
		dst           *Duration
	}{
		{"CHATVAULT_RETENTION_INTERVAL", `"1h" (0 turns the schedule off)`, &cfg.Retention.Interval},
		{"CHATVAULT_RETENTION_START_DELAY", `"30s"`, &cfg.Retention.StartDelay},
		{"CHATVAULT_RETENTION_TAKEOVER_CHECK", `"15s"`, &cfg.Retention.TakeoverCheck},
	} {
		if v, ok := os.LookupEnv(e.name); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s: %q is not a duration like %s", e.name, v, e.example)
			}
			*e.dst = Duration(d)
		}
	}
	return nil
}

// retentionJob is what the schedule needs of the retention service.
type retentionJob interface {
	RunAll(ctx context.Context, dryRun bool) ([]*chatvault.PurgeRun, error)
}

// scheduledJobs returns the runner with every job cfg schedules: retention unless
// retention.interval is 0; with backup targets (SQLite only: backups is nil on PostgreSQL, and
// Validate refuses targets there), backups and the deletion journal. clock is the runner's time.
func scheduledJobs(cfg Config, clock jobs.Clock, leader jobs.Leader, ret retentionJob, backups chatvault.BackupStore,
	logger *slog.Logger, m *metrics.Metrics) (*jobs.Runner, error) {
	jc := jobs.Config{Clock: clock, Logger: logger, Leader: leader, LeaderCheck: time.Duration(cfg.Retention.TakeoverCheck)}
	if m != nil {
		jc.Observe = m.JobRun
	}
	r := jobs.New(jc)
	if interval := time.Duration(cfg.Retention.Interval); interval > 0 {
		sched := jobs.Every(interval).StartAfter(time.Duration(cfg.Retention.StartDelay))
		if err := r.Add(jobs.Job{Name: "retention", Schedule: sched, Run: func(ctx context.Context) error {
			return retentionOnce(ctx, ret, logger, m)
		}}); err != nil {
			return nil, err
		}
	} else {
		logger.Info("retention schedule is off (retention.interval 0): run `chatvault retention run` to apply retention")
	}
	if !cfg.Backup.Enabled() || backups == nil {
		logger.Info("backups are off: no backup targets configured (backup.targets)")
		return r, nil
	}
	job, err := newBackupJob(cfg, backups, logger)
	if err != nil {
		return nil, err
	}
	sched, err := jobs.Cron(cfg.Backup.Schedule)
	if err != nil {
		return nil, fmt.Errorf("backup.schedule: %w", err)
	}
	var ids []age.Identity
	if cfg.Backup.IdentityFile != "" {
		if ids, err = backup.ReadIdentities(cfg.Backup.IdentityFile); err != nil {
			return nil, fmt.Errorf("backup.identity_file: %w", err)
		}
	}
	// A backup ships the journal first; a scheduled shipment during a backup has nothing to add
	// and would race it for the journal's state file, so it lets that one be.
	var shipping sync.Mutex
	err = r.Add(jobs.Job{Name: "backup", Schedule: sched, Run: func(ctx context.Context) error {
		shipping.Lock()
		defer shipping.Unlock()
		return job.Scheduled(ctx, cfg.Backup.Verify, ids)
	}})
	if err != nil {
		return nil, err
	}
	err = r.Add(jobs.Job{Name: "deletion-journal", Schedule: jobs.Every(journalInterval), Run: func(ctx context.Context) error {
		if !shipping.TryLock() {
			return nil
		}
		defer shipping.Unlock()
		if _, err := job.ShipJournal(ctx); err != nil {
			return fmt.Errorf("ship the deletion journal (retried at the next run): %w", err)
		}
		return nil
	}})
	if err != nil {
		return nil, err
	}
	logger.Info("backups scheduled", "schedule", cfg.Backup.Schedule, "targets", len(job.Targets), "verify", cfg.Backup.Verify,
		"full_verify", len(ids) > 0)
	return r, nil
}

// startJobs runs r until stop is called; stop returns once every run in progress has returned
// (cancelled: the next run, here or on the instance that takes over, resumes it), so the store
// can be closed after it. stop may be called more than once.
func startJobs(r *jobs.Runner) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	var once sync.Once
	return func() { once.Do(func() { cancel(); <-done }) }
}

// retentionOnce runs the retention job once in every org and logs one line per org. A failure is
// returned for the runner to log.
func retentionOnce(ctx context.Context, job retentionJob, logger *slog.Logger, m *metrics.Metrics) error {
	runs, err := job.RunAll(ctx, false)
	for _, r := range runs {
		if m != nil {
			m.RetentionRun(r)
		}
		took := time.Duration(0)
		if r.FinishedAt != nil {
			took = r.FinishedAt.Sub(r.StartedAt)
		}
		logger.Info("retention run", "org", r.OrgID, "run", r.ID, "expired", r.Totals["expired"], "destroyed", r.Totals["destroyed"],
			"restored", r.Totals["restored"], "data_keys_destroyed", r.Totals["data_keys_destroyed"], "holds", len(r.Holds),
			"took", took.Round(time.Millisecond))
	}
	if err != nil {
		return fmt.Errorf("retention run (the next run resumes it): %w", err)
	}
	return nil
}

// exportExpiryInterval is how often finished export files past their expiry are deleted.
const exportExpiryInterval = time.Hour

// addExportExpiry registers the deletion of expired export files (export.DefaultTTL after they
// finished) with the runner.
func addExportExpiry(r *jobs.Runner, exports *export.Jobs) error {
	return r.Add(jobs.Job{Name: "export-expiry", Schedule: jobs.Every(exportExpiryInterval).StartAfter(time.Minute),
		Run: func(ctx context.Context) error {
			if _, err := exports.Expire(ctx); err != nil {
				return fmt.Errorf("delete expired exports (retried at the next run): %w", err)
			}
			return nil
		}})
}
