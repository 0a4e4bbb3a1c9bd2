package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
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
	runs  atomic.Int32
	block bool
	err   error
}

func (j *fakeJob) RunAll(ctx context.Context, dryRun bool) ([]*chatvault.PurgeRun, error) {
	j.runs.Add(1)
	if j.block {
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

func TestRetentionSchedule(t *testing.T) {
	defer func(d time.Duration) { firstRetentionRun = d }(firstRetentionRun)
	firstRetentionRun = 10 * time.Millisecond

	var logs lockedBuffer
	job := &fakeJob{err: errors.New("disk full")}
	stop := startRetentionSchedule(time.Minute, job, slog.New(slog.NewTextHandler(&logs, nil)))
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if job.runs.Load() == 0 {
			return errors.New("no run yet")
		}
		return nil
	})
	stop()
	stop() // a second stop is harmless
	out := logs.String()
	if !strings.Contains(out, `msg="retention run" org=org-1 run=run-1 expired=3 destroyed=2`) {
		t.Errorf("schedule log = %q; want one line per org with its counts", out)
	}
	if n := strings.Count(out, "disk full"); n != 1 {
		t.Errorf("schedule log mentions the error %d times; want once:\n%s", n, out)
	}

	// Stopping cancels a run in progress and waits for it.
	blocked := &fakeJob{block: true}
	var logs2 lockedBuffer
	stop = startRetentionSchedule(time.Minute, blocked, slog.New(slog.NewTextHandler(&logs2, nil)))
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if blocked.runs.Load() == 0 {
			return errors.New("no run yet")
		}
		return nil
	})
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not return within 5s of cancelling a run in progress")
	}
	if out := logs2.String(); strings.Contains(out, "level=ERROR") || !strings.Contains(out, "stopped by shutdown") {
		t.Errorf("log after stopping mid-run = %q; want an info line saying the next run resumes it, no error", out)
	}

	// Interval 0: nothing runs.
	none := &fakeJob{}
	startRetentionSchedule(0, none, slog.New(slog.NewTextHandler(&logs2, nil)))()
	time.Sleep(50 * time.Millisecond)
	if n := none.runs.Load(); n != 0 {
		t.Errorf("runs with interval 0 = %d; want 0", n)
	}
}
