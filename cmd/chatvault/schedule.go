package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/chatvault/chatvault"
)

// This file holds the retention schedule: its setting and the loop serve runs it in.

// RetentionConfig says how often the server runs the retention job.
type RetentionConfig struct {
	// Interval between runs; 0 turns the schedule off (run `chatvault retention run` from cron instead).
	Interval Duration `yaml:"interval"`
}

// Bounds of retention.interval: a run examines every conversation, so not more often than every
// minute; retention counts days, so not less often than daily.
const (
	minRetentionInterval = time.Minute
	maxRetentionInterval = 24 * time.Hour
)

func (r RetentionConfig) validate() []error {
	d := time.Duration(r.Interval)
	if d != 0 && (d < minRetentionInterval || d > maxRetentionInterval) {
		return []error{fmt.Errorf("retention.interval: %s must be 0 (no schedule) or between %s and %s, for example 1h "+
			"(--retention-interval or CHATVAULT_RETENTION_INTERVAL)", d, minRetentionInterval, maxRetentionInterval)}
	}
	return nil
}

func addRetentionFlags(fs *flag.FlagSet, cfg *Config) {
	fs.Func("retention-interval", "how often the retention job runs, e.g. 1h; 0 turns it off (env CHATVAULT_RETENTION_INTERVAL)", func(s string) error {
		d, err := time.ParseDuration(s)
		cfg.Retention.Interval = Duration(d)
		return err
	})
}

func applyRetentionEnv(cfg *Config) error {
	if v, ok := os.LookupEnv("CHATVAULT_RETENTION_INTERVAL"); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("CHATVAULT_RETENTION_INTERVAL: %q is not a duration like \"1h\" (0 turns the schedule off)", v)
		}
		cfg.Retention.Interval = Duration(d)
	}
	return nil
}

// retentionJob is what the schedule needs of the retention service.
type retentionJob interface {
	RunAll(ctx context.Context, dryRun bool) ([]*chatvault.PurgeRun, error)
}

// firstRetentionRun is how long after start the schedule's first run begins: soon, but after the
// server is up and the first clients have reconnected.
var firstRetentionRun = 30 * time.Second

// startRetentionSchedule runs the retention job in every org every interval, the first time
// shortly after start, until stop is called. stop cancels a run in progress (the next run resumes
// it) and returns once the loop has ended, so the store can be closed after it. With interval 0
// nothing runs. stop may be called more than once.
func startRetentionSchedule(interval time.Duration, job retentionJob, logger *slog.Logger) (stop func()) {
	if interval <= 0 {
		logger.Info("retention schedule is off (retention.interval 0): run `chatvault retention run` to apply retention")
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		timer := time.NewTimer(min(firstRetentionRun, interval))
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			runRetentionOnce(ctx, job, logger)
			timer.Reset(interval)
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
}

// runRetentionOnce runs the job once and logs the outcome: one line per org, and any error once.
func runRetentionOnce(ctx context.Context, job retentionJob, logger *slog.Logger) {
	t0 := time.Now()
	runs, err := job.RunAll(ctx, false)
	for _, r := range runs {
		took := time.Duration(0)
		if r.FinishedAt != nil {
			took = r.FinishedAt.Sub(r.StartedAt)
		}
		logger.Info("retention run", "org", r.OrgID, "run", r.ID, "expired", r.Totals["expired"], "destroyed", r.Totals["destroyed"],
			"restored", r.Totals["restored"], "data_keys_destroyed", r.Totals["data_keys_destroyed"], "holds", len(r.Holds),
			"took", took.Round(time.Millisecond))
	}
	switch {
	case err == nil:
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		logger.Info("retention run stopped by shutdown; the next run resumes it", "after", time.Since(t0).Round(time.Millisecond))
	default:
		logger.Error("retention run failed; the next run resumes it", "error", err, "after", time.Since(t0).Round(time.Millisecond))
	}
}
