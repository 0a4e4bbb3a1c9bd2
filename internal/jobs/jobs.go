// Package jobs runs chatvault's scheduled work in one place. Each job has a schedule (Every or
// Cron) and runs only in the process that leads (Leader: on PostgreSQL the holder of an advisory
// lock, on SQLite the one process), never twice at once, timed by an injected Clock so tests move
// time instead of sleeping. A run that fails is logged once, with the job's name, by the runner
// (jobs return their errors, they do not log them), and the job runs again at its next time.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/chatvault/chatvault"
)

// Clock is the runner's time: chatvault.Clock, and a way to wait on it.
type Clock interface {
	chatvault.Clock
	// Sleep waits until d has passed or ctx ends; it then returns ctx.Err().
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the wall clock.
type SystemClock struct{ chatvault.SystemClock }

// Sleep waits on a real timer.
func (SystemClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil || d <= 0 {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Leader decides which of the processes sharing a store runs the scheduled jobs.
type Leader interface {
	// Lead reports whether this process runs them now, taking the lead when nobody holds it.
	// While it leads, a call checks that it still does. An error means "do not know", and the
	// runner then acts as if it did not lead: two runs at once must not happen, a late one may.
	Lead(ctx context.Context) (bool, error)
}

// Job is one piece of scheduled work.
type Job struct {
	// Name identifies the job in logs; unique within a runner.
	Name     string
	Schedule Schedule
	// Run does the work once. It returns when done or when ctx ends (shutdown, or this process
	// stopped leading); work cut short must be safe to resume on the next run, wherever that is.
	Run func(ctx context.Context) error
}

// Config are a runner's settings.
type Config struct {
	Clock  Clock        // default SystemClock
	Logger *slog.Logger // default slog.Default()
	// Leader says whether this process runs the jobs; nil: it always does (a store only one
	// process opens).
	Leader Leader
	// LeaderCheck is how often a process that does not lead checks whether to take the lead, and
	// how often the leader checks that it still leads. Default 15s.
	LeaderCheck time.Duration
	// Observe, when set, is told of every run once it returns: its job, when it started, how long
	// it took and its error (a context error when shutdown or a lost lead stopped it). Metrics use
	// it, so an operator sees a job that stopped running or keeps failing.
	Observe func(job string, started time.Time, took time.Duration, err error)
}

// DefaultLeaderCheck is the default of Config.LeaderCheck.
const DefaultLeaderCheck = 15 * time.Second

// Runner runs jobs on their schedules. Add every job, then call Run once.
type Runner struct {
	clock  Clock
	log    *slog.Logger
	leader Leader
	check  time.Duration
	obs    func(job string, started time.Time, took time.Duration, err error)

	mu      sync.Mutex
	jobs    []Job
	started bool
}

// New returns a runner without jobs.
func New(cfg Config) *Runner {
	r := &Runner{clock: cfg.Clock, log: cfg.Logger, leader: cfg.Leader, check: cfg.LeaderCheck, obs: cfg.Observe}
	if r.clock == nil {
		r.clock = SystemClock{}
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.check <= 0 {
		r.check = DefaultLeaderCheck
	}
	return r
}

// Add registers a job. It must be called before Run.
func (r *Runner) Add(j Job) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.started:
		return fmt.Errorf("add job %q: the runner is already running", j.Name)
	case j.Name == "":
		return errors.New("add job: a job needs a name")
	case j.Schedule == nil || j.Run == nil:
		return fmt.Errorf("add job %q: a job needs a schedule and a function", j.Name)
	case slices.ContainsFunc(r.jobs, func(o Job) bool { return o.Name == j.Name }):
		return fmt.Errorf("add job %q: a job of that name is already registered", j.Name)
	}
	r.jobs = append(r.jobs, j)
	return nil
}

// Names lists the registered jobs, in the order they were added.
func (r *Runner) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, len(r.jobs))
	for i, j := range r.jobs {
		names[i] = j.Name
	}
	return names
}

// Run runs the jobs until ctx ends, and returns once every run in progress has returned, so the
// store can be closed after it. While another process leads, it only checks, every LeaderCheck,
// whether to take over; a process that takes the lead starts every schedule afresh, as at start.
func (r *Runner) Run(ctx context.Context) {
	r.mu.Lock()
	r.started = true
	jobs := slices.Clone(r.jobs)
	r.mu.Unlock()
	if len(jobs) == 0 {
		<-ctx.Done()
		return
	}
	standbyLogged := false
	for {
		lead, err := r.lead(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			r.log.Warn("scheduled jobs: cannot tell whether this instance runs them; checking again later", "error", err)
		case !lead:
			if !standbyLogged {
				r.log.Info("scheduled jobs: another instance runs them; this one takes over if that one stops", "check_every", r.check)
				standbyLogged = true
			}
		default:
			standbyLogged = false
			r.term(ctx, jobs)
		}
		if r.clock.Sleep(ctx, r.check) != nil {
			return
		}
	}
}

func (r *Runner) lead(ctx context.Context) (bool, error) {
	if r.leader == nil {
		return true, nil
	}
	return r.leader.Lead(ctx)
}

// term runs the jobs while this process leads: until ctx ends or a check finds the lead lost.
func (r *Runner) term(ctx context.Context, jobs []Job) {
	names := make([]string, len(jobs))
	for i, j := range jobs {
		names[i] = j.Name + " (" + j.Schedule.String() + ")"
	}
	r.log.Info("scheduled jobs: this instance runs them", "jobs", names)
	termCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var once sync.Once
	// stillLeads checks the lead, and ends the term when it is lost or unknown.
	stillLeads := func() bool {
		if r.leader == nil {
			return true
		}
		lead, err := r.leader.Lead(termCtx)
		if termCtx.Err() != nil {
			return false
		}
		if err != nil || !lead {
			once.Do(func() {
				r.log.Warn("scheduled jobs: this instance lost the lead; stopping its runs (the next leader resumes them)", "error", err)
				cancel()
			})
			return false
		}
		return true
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() { r.loop(ctx, termCtx, j, stillLeads) })
	}
	if r.leader == nil {
		<-ctx.Done()
	} else {
		for r.clock.Sleep(termCtx, r.check) == nil && stillLeads() {
			// Checked every LeaderCheck, so that a run in progress stops once the lead is gone.
		}
	}
	cancel()
	wg.Wait()
}

// loop runs one job on its schedule until termCtx ends. One loop per job and term, and terms one
// after another, is what keeps a job from running twice at once: a run that lasts past the next
// due time delays that run, it does not overlap it.
func (r *Runner) loop(ctx, termCtx context.Context, j Job, stillLeads func() bool) {
	next := j.Schedule.First(r.clock.Now())
	for {
		// The lead is checked again right before each run, not only every LeaderCheck: a run is
		// the one thing two processes must not do at once.
		if r.clock.Sleep(termCtx, next.Sub(r.clock.Now())) != nil || !stillLeads() {
			return
		}
		start := r.clock.Now()
		err := r.runOnce(termCtx, j)
		end := r.clock.Now()
		took := end.Sub(start)
		if r.obs != nil {
			r.obs(j.Name, start, took, err)
		}
		switch {
		case err == nil:
			r.log.Debug("scheduled job done", "job", j.Name, "took", took)
		case ctx.Err() != nil:
			r.log.Info("scheduled job stopped by shutdown; its next run resumes it", "job", j.Name, "after", took)
		case termCtx.Err() != nil:
			r.log.Info("scheduled job stopped: this instance no longer leads; the next leader resumes it", "job", j.Name, "after", took)
		default:
			r.log.Error("scheduled job failed; it runs again at its next time", "job", j.Name, "error", err, "took", took,
				"next", j.Schedule.Next(end))
		}
		if termCtx.Err() != nil {
			return
		}
		if missed := j.Schedule.Next(start); missed.Before(end) {
			r.log.Info("scheduled job ran past its next time; that run is skipped", "job", j.Name, "took", took,
				"next", j.Schedule.Next(end))
		}
		next = j.Schedule.Next(end)
	}
}

// runOnce runs the job, turning a panic into its error: one job's bug must not take the server
// and the other jobs down with it.
func (r *Runner) runOnce(ctx context.Context, j Job) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return j.Run(ctx)
}
