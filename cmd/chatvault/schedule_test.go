package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/clocktest"
	"github.com/chatvault/chatvault/internal/jobs"
)

func TestRetentionIntervalConfig(t *testing.T) {
	t.Setenv("CHATVAULT_RETENTION_INTERVAL", "")
	os.Unsetenv("CHATVAULT_RETENTION_INTERVAL")
	cfg, err := resolveWith(t, nil, nil)
	if err != nil || time.Duration(cfg.Retention.Interval) != time.Hour {
		t.Fatalf("default retention.interval = %v, %v; want 1h", time.Duration(cfg.Retention.Interval), err)
	}
	file := writeFile(t, "retention:\n  interval: 2h\n")
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want time.Duration
	}{
		{"file", []string{"--config", file}, nil, 2 * time.Hour},
		{"env over file", []string{"--config", file}, map[string]string{"CHATVAULT_RETENTION_INTERVAL": "30m"}, 30 * time.Minute},
		{"flag over env", []string{"--config", file, "--retention-interval", "0"}, map[string]string{"CHATVAULT_RETENTION_INTERVAL": "30m"}, 0},
	} {
		cfg, err := resolveWith(t, tc.args, tc.env)
		if err != nil || time.Duration(cfg.Retention.Interval) != tc.want {
			t.Errorf("%s: retention.interval = %v, %v; want %v", tc.name, time.Duration(cfg.Retention.Interval), err, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"too often", []string{"--retention-interval", "5s"}, nil, "retention.interval: 5s must be 0 (no schedule) or between 1m0s and 24h0m0s"},
		{"negative", []string{"--retention-interval", "-1h"}, nil, "--retention-interval or CHATVAULT_RETENTION_INTERVAL"},
		{"bad env", nil, map[string]string{"CHATVAULT_RETENTION_INTERVAL": "hourly"}, "CHATVAULT_RETENTION_INTERVAL"},
		{"bad file", []string{"--config", writeFile(t, "retention:\n  interval: daily\n")}, nil, "not a duration"},
		{"unknown key", []string{"--config", writeFile(t, "retention:\n  every: 1h\n")}, nil, "every"},
	} {
		_, err := resolveWith(t, tc.args, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v; want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

// fakeJob counts runs; a run blocks until its context ends when block is set.
type fakeJob struct {
	runs    atomic.Int32
	running atomic.Int32
	block   bool
	err     error
}

func (j *fakeJob) RunAll(ctx context.Context, dryRun bool) ([]*chatvault.PurgeRun, error) {
	j.runs.Add(1)
	if j.block {
		j.running.Add(1)
		defer j.running.Add(-1)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	now := time.Now()
	return []*chatvault.PurgeRun{{OrgID: "org-1", ID: "run-1", StartedAt: now, FinishedAt: &now,
		Totals: map[string]int{"expired": 3, "destroyed": 2}}}, j.err
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// flipLeader leads while lead is set.
type flipLeader struct {
	lead  atomic.Bool
	calls atomic.Int32
}

func (f *flipLeader) Lead(context.Context) (bool, error) {
	f.calls.Add(1)
	return f.lead.Load(), nil
}

// schedule is serve's runner (scheduledJobs) over a test clock, with a retention job, running
// until the test ends.
type schedule struct {
	t     *testing.T
	clock *clocktest.Clock
	logs  *lockedBuffer
	names []string
	stop  func()
}

func startSchedule(t *testing.T, retention RetentionConfig, leader jobs.Leader, job retentionJob) *schedule {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Retention = retention
	s := &schedule{t: t, clock: clocktest.New(time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)), logs: &lockedBuffer{}}
	r, err := scheduledJobs(cfg, s.clock, leader, job, nil, slog.New(slog.NewTextHandler(s.logs, nil)), nil)
	if err != nil {
		t.Fatalf("scheduledJobs() = %v", err)
	}
	s.names = r.Names()
	s.stop = startJobs(r)
	t.Cleanup(s.stop)
	return s
}

// advance moves the clock by d, then waits until the runner's n goroutines sleep on it again.
func (s *schedule) advance(d time.Duration, n int) {
	s.t.Helper()
	s.clock.Advance(d)
	clocktest.Until(s.t, fmt.Sprintf("%d sleepers", n), func() bool { return s.clock.Sleepers() == n })
}

func TestRetentionSchedule(t *testing.T) {
	t.Parallel()
	hourly := RetentionConfig{Interval: Duration(time.Hour), StartDelay: Duration(30 * time.Second), TakeoverCheck: Duration(15 * time.Second)}
	job := &fakeJob{err: errors.New("disk full")}
	s := startSchedule(t, hourly, nil, job)
	if fmt.Sprint(s.names) != "[retention]" {
		t.Fatalf("scheduled jobs = %v; want [retention] (no backup targets)", s.names)
	}
	s.advance(0, 1)
	s.advance(30*time.Second-time.Millisecond, 1)
	if n := job.runs.Load(); n != 0 {
		t.Fatalf("runs before the start delay = %d; want 0", n)
	}
	s.advance(time.Millisecond, 1)
	if n := job.runs.Load(); n != 1 {
		t.Fatalf("runs after the start delay = %d; want 1", n)
	}
	s.advance(time.Hour, 1)
	if n := job.runs.Load(); n != 2 {
		t.Fatalf("runs an interval later = %d; want 2", n)
	}
	s.stop()
	s.stop() // a second stop is harmless
	out := s.logs.String()
	if !strings.Contains(out, `msg="retention run" org=org-1 run=run-1 expired=3 destroyed=2`) {
		t.Errorf("schedule log = %q; want one line per org with its counts", out)
	}
	if n := strings.Count(out, "disk full"); n != 2 || !strings.Contains(out, `job=retention error="retention run (the next run resumes it): disk full"`) {
		t.Errorf("schedule log mentions the error %d times in 2 failed runs; want once each, with the job's name:\n%s", n, out)
	}

	// Stopping cancels a run in progress and waits for it.
	blocked := &fakeJob{block: true}
	s = startSchedule(t, RetentionConfig{Interval: Duration(time.Minute), TakeoverCheck: Duration(time.Second)}, nil, blocked)
	clocktest.Until(t, "the first run", func() bool { return blocked.running.Load() == 1 })
	s.stop()
	if n := blocked.running.Load(); n != 0 {
		t.Fatalf("runs in progress after stop = %d; want 0", n)
	}
	if out := s.logs.String(); strings.Contains(out, "level=ERROR") || !strings.Contains(out, "stopped by shutdown") {
		t.Errorf("log after stopping mid-run = %q; want an info line saying the next run resumes it, no error", out)
	}

	// Interval 0: nothing is scheduled.
	none := &fakeJob{}
	s = startSchedule(t, RetentionConfig{TakeoverCheck: Duration(time.Second)}, nil, none)
	if len(s.names) != 0 || !strings.Contains(s.logs.String(), "retention schedule is off") {
		t.Errorf("jobs with interval 0 = %v; want none, and the log to say so:\n%s", s.names, s.logs)
	}
}

func TestRetentionScheduleRunsOnlyWhileLeading(t *testing.T) {
	t.Parallel()
	leader := &flipLeader{}
	job := &fakeJob{block: true}
	s := startSchedule(t, RetentionConfig{Interval: Duration(time.Minute), TakeoverCheck: Duration(5 * time.Second)}, leader, job)
	// A standby checks again and again, and never runs the job.
	s.advance(0, 1)
	for range 10 {
		s.advance(5*time.Second, 1)
	}
	if n := job.runs.Load(); n != 0 || leader.calls.Load() != 11 {
		t.Fatalf("runs while another instance leads = %d after %d checks; want 0 after 11", n, leader.calls.Load())
	}
	if n := strings.Count(s.logs.String(), "another instance runs them"); n != 1 {
		t.Fatalf("standby logged %d times; want once:\n%s", n, s.logs)
	}
	// It takes over when the lock comes free, and runs after the start delay (0 here).
	leader.lead.Store(true)
	s.clock.Advance(5 * time.Second)
	clocktest.Until(t, "the first run", func() bool { return job.running.Load() == 1 })
	if !strings.Contains(s.logs.String(), "this instance runs them") {
		t.Fatalf("takeover not logged:\n%s", s.logs)
	}
	// A run in progress stops when the lead is lost, without an error, and the schedule goes on.
	leader.lead.Store(false)
	s.advance(5*time.Second, 1)
	if job.running.Load() != 0 || !strings.Contains(s.logs.String(), "no longer leads") {
		t.Fatalf("run not stopped after losing the lead:\n%s", s.logs)
	}
	if strings.Contains(s.logs.String(), "level=ERROR") {
		t.Fatalf("losing the lead logged an error:\n%s", s.logs)
	}
}
