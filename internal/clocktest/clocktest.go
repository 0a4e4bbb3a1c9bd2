// Package clocktest is time for tests, in one place: a Clock that moves only when the test moves
// it (for code that takes a chatvault.Clock, and for the jobs runner, which also sleeps on it), and
// Poll, the one way a test waits for something that happens in real time (a server starting, a
// listener delivering, a goroutine reaching a point), instead of sleeping a guessed while.
package clocktest

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Clock is a settable clock, safe for concurrent use; the zero value stands at the zero time. Now returns what was last set; Sleep
// returns when the clock is set or advanced to (or past) its end, never on its own.
type Clock struct {
	mu       sync.Mutex
	now      time.Time
	sleepers map[*sleeper]struct{}
}

type sleeper struct {
	until time.Time
	woken chan struct{}
}

// New returns a clock standing at t.
func New(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t (backwards too) and wakes every sleeper whose end has come.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	c.wake()
}

// Advance moves the clock forward by d and wakes every sleeper whose end has come.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.wake()
}

// Sleep waits until the clock reaches now+d, or ctx ends (it then returns ctx.Err()). With d <= 0
// it returns at once.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil || d <= 0 {
		return err
	}
	c.mu.Lock()
	s := &sleeper{until: c.now.Add(d), woken: make(chan struct{})}
	if c.sleepers == nil {
		c.sleepers = map[*sleeper]struct{}{}
	}
	c.sleepers[s] = struct{}{}
	c.mu.Unlock()
	select {
	case <-s.woken:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.sleepers, s)
		c.mu.Unlock()
		return ctx.Err()
	}
}

// Sleepers is how many goroutines are in Sleep: a test polls it to know that the code under test
// is waiting for the clock before it moves the clock.
func (c *Clock) Sleepers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sleepers)
}

func (c *Clock) wake() {
	for s := range c.sleepers {
		if !s.until.After(c.now) {
			close(s.woken)
			delete(c.sleepers, s)
		}
	}
}

// PollTimeout bounds every Poll. It measures nothing: it only turns a broken test into a failure
// instead of a hang, so it is far longer than anything should take even on a loaded machine.
const PollTimeout = 60 * time.Second

// pollEvery is how often Poll checks.
const pollEvery = 5 * time.Millisecond

// Poll calls check until it returns nil, and fails the test with check's last error if that has
// not happened within PollTimeout. check runs on the test's goroutine, so it may itself stop the
// test (t.Fatalf) when waiting longer is pointless, such as a server that has exited.
func Poll(t testing.TB, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(PollTimeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %s: %v", what, PollTimeout, err)
		}
		time.Sleep(pollEvery)
	}
}

// Until is Poll for a condition that says only yes or no.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Poll(t, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

var errNotYet = notYet{}

type notYet struct{}

func (notYet) Error() string { return "not yet" }
