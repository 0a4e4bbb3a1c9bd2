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
	// StartDelay is how long after the server starts (or takes the schedule over from another
	// instance) the first run begins: soon, but after the first clients have reconnected.
	StartDelay Duration `yaml:"start_delay"`
	// TakeoverCheck is how often an instance that does not run the schedule (another instance on
	// the same PostgreSQL store does) checks whether it should take it over. With SQLite there is
	// one instance, which always runs it.
	TakeoverCheck Duration `yaml:"takeover_check"`
}

// Bounds of retention.interval: a run examines every conversation, so not more often than every
// minute; retention counts days, so not less often than daily.
const (
	minRetentionInterval = time.Minute
	maxRetentionInterval = 24 * time.Hour
)

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
	durationFlag("retention-takeover-check", "how often an instance that does not run the retention schedule checks whether to take it over (env CHATVAULT_RETENTION_TAKEOVER_CHECK)", &cfg.Retention.TakeoverCheck)
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

// leadership decides which of the processes sharing a store runs a scheduled job.
type leadership interface {
	// Lead reports whether this process runs the job now, taking the lead when nobody holds it.
	// While it leads, a call checks that it still does.
	Lead(ctx context.Context) (bool, error)
}

// soleInstance is the leadership of a store only one process opens (SQLite): it always leads.
type soleInstance struct{}

func (soleInstance) Lead(context.Context) (bool, error) { return true, nil }

// firstRetentionRun is the default of retention.start_delay: how long after start the schedule's
// first run begins: soon, but after the server is up and the first clients have reconnected.
var firstRetentionRun = 30 * time.Second

// defaultTakeoverCheck is the default of retention.takeover_check.
const defaultTakeoverCheck = 15 * time.Second

// retentionSchedule is when and where the retention job runs.
type retentionSchedule struct {
	Interval      time.Duration // 0: the schedule is off
	StartDelay    time.Duration // before the first run, after start or takeover
	TakeoverCheck time.Duration // how often a process that does not lead tries to
	Leader        leadership
}

// startRetentionSchedule runs the retention job in every org every interval, the first time
// shortly after start, until stop is called; this process is the only one that runs it.
func startRetentionSchedule(interval time.Duration, job retentionJob, logger *slog.Logger) (stop func()) {
	return startLedRetentionSchedule(retentionSchedule{Interval: interval, StartDelay: firstRetentionRun,
		TakeoverCheck: defaultTakeoverCheck, Leader: soleInstance{}}, job, logger)
}

// startLedRetentionSchedule runs the retention job every s.Interval while this process leads
// (s.Leader), and checks every s.TakeoverCheck whether to take the lead while it does not. A
// process that takes the lead runs the job s.StartDelay later, like a fresh start. stop cancels a
// run in progress (the next run, here or in the process that takes over, resumes it) and returns
// once the loop has ended, so the store can be closed after it. With interval 0 nothing runs. stop
// may be called more than once.
func startLedRetentionSchedule(s retentionSchedule, job retentionJob, logger *slog.Logger) (stop func()) {
	if s.Interval <= 0 {
		logger.Info("retention schedule is off (retention.interval 0): run `chatvault retention run` to apply retention")
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		timer := time.NewTimer(0)
		defer timer.Stop()
		leading, standbyLogged := false, false
		for {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			lead, err := s.Leader.Lead(ctx)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				// Unknown is treated as not leading: two runs at once must not happen, a late run may.
				logger.Warn("retention schedule: cannot tell whether this instance runs it; checking again later", "error", err)
				leading = false
				timer.Reset(s.TakeoverCheck)
			case !lead:
				if leading || !standbyLogged {
					logger.Info("retention schedule: another instance runs it; this one takes over if that one stops",
						"check_every", s.TakeoverCheck)
					standbyLogged = true
				}
				leading = false
				timer.Reset(s.TakeoverCheck)
			case !leading:
				leading = true
				if _, sole := s.Leader.(soleInstance); !sole {
					logger.Info("retention schedule: this instance runs it", "first_run_in", min(s.StartDelay, s.Interval), "interval", s.Interval)
				}
				timer.Reset(min(s.StartDelay, s.Interval))
			default:
				runCtx, end := s.watchLead(ctx, logger)
				runRetentionOnce(ctx, runCtx, job, logger)
				end()
				timer.Reset(s.Interval)
			}
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

// watchLead returns the context of one run: it ends when this process stops leading (its lock
// connection died, so another process may take over), checked every TakeoverCheck. A run cut
// short is resumed by the next one, wherever that runs. end releases the watch.
func (s retentionSchedule) watchLead(ctx context.Context, logger *slog.Logger) (runCtx context.Context, end func()) {
	runCtx, cancel := context.WithCancel(ctx)
	if _, sole := s.Leader.(soleInstance); sole {
		return runCtx, cancel
	}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		t := time.NewTicker(s.TakeoverCheck)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
			if lead, err := s.Leader.Lead(runCtx); runCtx.Err() == nil && (err != nil || !lead) {
				logger.Warn("retention schedule: this instance lost the lead; stopping its run (the next leader resumes it)", "error", err)
				cancel()
				return
			}
		}
	}()
	return runCtx, func() { cancel(); <-watched }
}

// runRetentionOnce runs the job once in runCtx (ctx, or a context that ends when this process
// stops leading) and logs the outcome: one line per org, and any error once.
func runRetentionOnce(ctx, runCtx context.Context, job retentionJob, logger *slog.Logger) {
	t0 := time.Now()
	runs, err := job.RunAll(runCtx, false)
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
	case runCtx.Err() != nil && errors.Is(err, runCtx.Err()):
		logger.Info("retention run stopped: this instance no longer leads; the next leader resumes it", "after", time.Since(t0).Round(time.Millisecond))
	default:
		logger.Error("retention run failed; the next run resumes it", "error", err, "after", time.Since(t0).Round(time.Millisecond))
	}
}
