package jobs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/clocktest"
	"github.com/chatvault/chatvault/internal/jobs"
)

var start = time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)

// logBuffer is a log the runner writes and the test reads at once.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// counter is a job that records when it ran (on the runner's clock) and how many runs overlapped.
type counter struct {
	clock   *clocktest.Clock
	mu      sync.Mutex
	at      []time.Time
	running atomic.Int32
	most    atomic.Int32
	// hold, when set, makes runs wait for a value (or their context) before returning it.
	hold chan error
}

func (c *counter) run(ctx context.Context) error {
	n := c.running.Add(1)
	defer c.running.Add(-1)
	for {
		m := c.most.Load()
		if n <= m || c.most.CompareAndSwap(m, n) {
			break
		}
	}
	c.mu.Lock()
	c.at = append(c.at, c.clock.Now())
	c.mu.Unlock()
	if c.hold == nil {
		return nil
	}
	select {
	case err := <-c.hold:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *counter) runs() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.at...)
}

// harness runs one runner on a test clock until the test ends.
type harness struct {
	t     *testing.T
	clock *clocktest.Clock
	logs  *logBuffer
	stop  func()
}

func startRunner(t *testing.T, clock *clocktest.Clock, cfg jobs.Config, js ...jobs.Job) *harness {
	t.Helper()
	h := &harness{t: t, clock: clock, logs: &logBuffer{}}
	cfg.Clock = clock
	cfg.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := jobs.New(cfg)
	for _, j := range js {
		if err := r.Add(j); err != nil {
			t.Fatalf("Add(%q) = %v", j.Name, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	var once sync.Once
	h.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(h.stop)
	return h
}

// settle waits until the runner's n goroutines are all asleep on the clock: every run the clock's
// time allows has happened, and nothing else will until the clock moves.
func (h *harness) settle(n int) {
	h.t.Helper()
	clocktest.Poll(h.t, fmt.Sprintf("%d sleepers on the clock", n), func() error {
		if got := h.clock.Sleepers(); got != n {
			return fmt.Errorf("%d sleepers", got)
		}
		return nil
	})
}

// advance moves the clock by d and waits for the runner to settle again.
func (h *harness) advance(d time.Duration, sleepers int) {
	h.t.Helper()
	h.clock.Advance(d)
	h.settle(sleepers)
}

func wantRuns(t *testing.T, c *counter, want ...time.Time) {
	t.Helper()
	got := c.runs()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("runs at %v; want %v", got, want)
	}
}

func TestEvery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		sched  jobs.Interval
		first  time.Duration
		string string
	}{
		{"first run one interval after start", jobs.Every(time.Hour), time.Hour, "every 1h0m0s"},
		{"first run after the start delay", jobs.Every(time.Hour).StartAfter(30 * time.Second), 30 * time.Second, "every 1h0m0s"},
		{"start delay longer than the interval", jobs.Every(time.Hour).StartAfter(2 * time.Hour), time.Hour, "every 1h0m0s"},
		{"no start delay", jobs.Every(time.Hour).StartAfter(0), 0, "every 1h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.sched.String(); got != tc.string {
				t.Errorf("String() = %q; want %q", got, tc.string)
			}
			clock := clocktest.New(start)
			c := &counter{clock: clock}
			h := startRunner(t, clock, jobs.Config{}, jobs.Job{Name: "tick", Schedule: tc.sched, Run: c.run})
			h.settle(1)
			if tc.first > 0 {
				wantRuns(t, c)
				h.advance(tc.first-time.Millisecond, 1)
				wantRuns(t, c)
				h.advance(time.Millisecond, 1)
			}
			first := start.Add(tc.first)
			wantRuns(t, c, first)
			h.advance(time.Hour-time.Millisecond, 1)
			wantRuns(t, c, first)
			h.advance(time.Millisecond, 1)
			wantRuns(t, c, first, first.Add(time.Hour))
		})
	}
}

func TestCron(t *testing.T) {
	t.Parallel()
	sched, err := jobs.Cron("CRON_TZ=UTC 30 3 * * *")
	if err != nil {
		t.Fatalf("Cron() = %v", err)
	}
	clock := clocktest.New(start) // 02:00
	c := &counter{clock: clock}
	h := startRunner(t, clock, jobs.Config{}, jobs.Job{Name: "nightly", Schedule: sched, Run: c.run})
	h.settle(1)
	h.advance(89*time.Minute, 1) // 03:29
	wantRuns(t, c)
	h.advance(time.Minute, 1) // 03:30
	day1 := time.Date(2026, 3, 2, 3, 30, 0, 0, time.UTC)
	wantRuns(t, c, day1)
	h.advance(24*time.Hour, 1)
	wantRuns(t, c, day1, day1.Add(24*time.Hour))

	for _, spec := range []string{"", "every day", "61 * * * *"} {
		if _, err := jobs.Cron(spec); err == nil {
			t.Errorf("Cron(%q) = nil error; want one", spec)
		}
	}
}

// A run that lasts past the next due time delays that run; it never runs beside it.
func TestOverlappingRunSkipped(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(start)
	c := &counter{clock: clock, hold: make(chan error)}
	h := startRunner(t, clock, jobs.Config{}, jobs.Job{Name: "slow", Schedule: jobs.Every(time.Minute).StartAfter(0), Run: c.run})
	clocktest.Until(t, "the first run", func() bool { return len(c.runs()) == 1 })
	clock.Advance(3*time.Minute + 30*time.Second) // three due times pass during the run
	if n := clock.Sleepers(); n != 0 {
		t.Fatalf("sleepers during the run = %d; want 0 (nothing waits to start another run)", n)
	}
	c.hold <- nil
	h.settle(1)
	wantRuns(t, c, start)
	if !strings.Contains(h.logs.String(), `msg="scheduled job ran past its next time; that run is skipped" job=slow`) {
		t.Errorf("log = %s; want the skipped run noted", h.logs)
	}
	h.advance(time.Minute, 0) // the next run, a minute after the long one ended, holds again
	c.hold <- nil
	h.settle(1)
	wantRuns(t, c, start, start.Add(4*time.Minute+30*time.Second))
	if n := c.most.Load(); n != 1 {
		t.Fatalf("runs at once = %d; want 1", n)
	}
}

// A failing run is logged once, with the job's name, and the job runs again at its next time; a
// panic is a failure like any other.
func TestFailureLoggedOnceAndRetried(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		fail func() error
		want string
	}{
		{"error", func() error { return errors.New("disk full") }, `level=ERROR msg="scheduled job failed; it runs again at its next time" job=flaky error="disk full"`},
		{"panic", func() error { panic("nil map") }, `level=ERROR msg="scheduled job failed; it runs again at its next time" job=flaky error="panic: nil map`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := clocktest.New(start)
			var runs atomic.Int32
			run := func(context.Context) error {
				if runs.Add(1) == 1 {
					return tc.fail()
				}
				return nil
			}
			h := startRunner(t, clock, jobs.Config{}, jobs.Job{Name: "flaky", Schedule: jobs.Every(time.Minute), Run: run})
			h.settle(1)
			h.advance(time.Minute, 1)
			logs := h.logs.String()
			if n := strings.Count(logs, "level=ERROR"); n != 1 || !strings.Contains(logs, tc.want) {
				t.Fatalf("log after a failed run has %d errors; want one line containing %s:\n%s", n, tc.want, logs)
			}
			h.advance(time.Minute, 1)
			if n := runs.Load(); n != 2 {
				t.Fatalf("runs after the failure and one more interval = %d; want 2", n)
			}
			if n := strings.Count(h.logs.String(), "level=ERROR"); n != 1 {
				t.Fatalf("errors logged after a good run = %d; want still 1:\n%s", n, h.logs)
			}
		})
	}
}

// Stopping cancels a run in progress, waits for it, and says so without an error.
func TestStopEndsRunInProgress(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(start)
	c := &counter{clock: clock, hold: make(chan error)}
	h := startRunner(t, clock, jobs.Config{}, jobs.Job{Name: "long", Schedule: jobs.Every(time.Hour).StartAfter(0), Run: c.run})
	clocktest.Until(t, "the run", func() bool { return c.running.Load() == 1 })
	h.stop()
	if n := c.running.Load(); n != 0 {
		t.Fatalf("runs in progress after stop returned = %d; want 0", n)
	}
	if logs := h.logs.String(); strings.Contains(logs, "level=ERROR") ||
		!strings.Contains(logs, `msg="scheduled job stopped by shutdown; its next run resumes it" job=long`) {
		t.Fatalf("log after stopping mid-run = %s; want an info line, no error", logs)
	}
}

// flipLeader leads while lead is set.
type flipLeader struct {
	lead  atomic.Bool
	err   atomic.Pointer[error]
	calls atomic.Int32
}

func (f *flipLeader) Lead(context.Context) (bool, error) {
	f.calls.Add(1)
	if e := f.err.Load(); e != nil {
		return false, *e
	}
	return f.lead.Load(), nil
}

// Only the leader runs jobs; a standby takes over when the lead comes free, and a leader that
// loses it (or cannot tell) stops its runs.
func TestLeadership(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(start)
	leader := &flipLeader{}
	c := &counter{clock: clock, hold: make(chan error)}
	h := startRunner(t, clock, jobs.Config{Leader: leader, LeaderCheck: 5 * time.Second},
		jobs.Job{Name: "retention", Schedule: jobs.Every(time.Minute).StartAfter(10 * time.Second), Run: c.run})
	// Standby: only the check sleeps, every 5s; no run however long it waits.
	h.settle(1)
	for range 30 {
		h.advance(5*time.Second, 1)
	}
	wantRuns(t, c)
	if n := strings.Count(h.logs.String(), "another instance runs them"); n != 1 {
		t.Fatalf("standby logged %d times; want once:\n%s", n, h.logs)
	}
	// The lead comes free: taken at the next check; the first run follows the start delay.
	leader.lead.Store(true)
	h.advance(5*time.Second, 2) // the job's sleep and the leader's watch
	took := clock.Now()
	h.advance(10*time.Second, 1) // the watch sleeps again; the run holds
	clocktest.Until(t, "the first run", func() bool { return c.running.Load() == 1 })
	wantRuns(t, c, took.Add(10*time.Second))
	if !strings.Contains(h.logs.String(), `msg="scheduled jobs: this instance runs them" jobs="[retention (every 1m0s)]"`) {
		t.Fatalf("takeover not logged:\n%s", h.logs)
	}
	// Losing the lead ends the run in progress, without an error.
	leader.lead.Store(false)
	h.advance(5*time.Second, 1)
	clocktest.Until(t, "the run to stop", func() bool { return c.running.Load() == 0 })
	logs := h.logs.String()
	if strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "this instance no longer leads; the next leader resumes it") ||
		!strings.Contains(logs, "this instance lost the lead") {
		t.Fatalf("log after losing the lead:\n%s", logs)
	}
	// Not knowing counts as not leading: no runs, a warning each check.
	err := errors.New("connection refused")
	leader.err.Store(&err)
	leader.lead.Store(true)
	for range 3 {
		h.advance(5*time.Second, 1)
	}
	if got := len(c.runs()); got != 1 {
		t.Fatalf("runs while the lead is unknown = %d; want still 1", got)
	}
	if n := strings.Count(h.logs.String(), "cannot tell whether this instance runs them"); n != 3 {
		t.Fatalf("unknown lead logged %d times in 3 checks; want 3:\n%s", n, h.logs)
	}
}

func TestAddRefuses(t *testing.T) {
	t.Parallel()
	r := jobs.New(jobs.Config{})
	ok := jobs.Job{Name: "a", Schedule: jobs.Every(time.Minute), Run: func(context.Context) error { return nil }}
	if err := r.Add(ok); err != nil {
		t.Fatalf("Add(a) = %v", err)
	}
	for _, tc := range []struct {
		name string
		job  jobs.Job
		want string
	}{
		{"duplicate", ok, "already registered"},
		{"no name", jobs.Job{Schedule: ok.Schedule, Run: ok.Run}, "needs a name"},
		{"no schedule", jobs.Job{Name: "b", Run: ok.Run}, "needs a schedule"},
		{"no function", jobs.Job{Name: "c", Schedule: ok.Schedule}, "needs a schedule and a function"},
	} {
		if err := r.Add(tc.job); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Add(%s) = %v; want an error mentioning %q", tc.name, err, tc.want)
		}
	}
	if got := fmt.Sprint(r.Names()); got != "[a]" {
		t.Errorf("Names() = %s; want [a]", got)
	}
}

// The lead is checked right before each run, not only every LeaderCheck: a process that lost the
// lead since its last check does not start a run.
func TestLeadCheckedBeforeEachRun(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(start)
	leader := &flipLeader{}
	leader.lead.Store(true)
	c := &counter{clock: clock}
	h := startRunner(t, clock, jobs.Config{Leader: leader, LeaderCheck: time.Hour},
		jobs.Job{Name: "retention", Schedule: jobs.Every(time.Minute).StartAfter(0), Run: c.run})
	h.settle(2) // the job, after its first run, and the hourly watch
	wantRuns(t, c, start)
	leader.lead.Store(false)
	// The job is due before the watch: it checks, finds the lead gone, and ends the term.
	clock.Advance(time.Minute)
	clocktest.Until(t, "the lost lead noted", func() bool { return strings.Contains(h.logs.String(), "this instance lost the lead") })
	h.settle(1) // only the standby's check sleeps: the term has ended
	wantRuns(t, c, start)
}
