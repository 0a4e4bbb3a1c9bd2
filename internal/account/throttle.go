package account

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/chatvault/chatvault"
)

// LoginPolicy is how sign-in resists guessing. The zero value of a field takes its default.
type LoginPolicy struct {
	// MaxFailures wrong passwords in a row lock an account (known or not: see below) for Lockout.
	MaxFailures int
	Lockout     time.Duration
	// After FreeFailures failures on one account, each further attempt must wait BaseDelay,
	// doubling with each failure, up to MaxDelay. Attempts made while waiting are refused (429)
	// without checking the password and without counting.
	FreeFailures int
	BaseDelay    time.Duration
	MaxDelay     time.Duration
	// SourceFreeFailures is the same allowance for one network source across every account it
	// tries (large, since an office may sign in through one address).
	SourceFreeFailures int
	// Forget is how long a quiet key keeps its failures.
	Forget time.Duration
	// HashConcurrency bounds the argon2id checks running at once (19 MiB each); a login that
	// cannot get a slot within HashWait is refused (429) before hashing.
	HashConcurrency int
	HashWait        time.Duration
}

// DefaultLoginPolicy returns the defaults, with HashConcurrency from the CPUs Go may use: argon2id
// with one lane is CPU-bound, so more at once only adds memory and queueing.
func DefaultLoginPolicy() LoginPolicy {
	return LoginPolicy{MaxFailures: 10, Lockout: 15 * time.Minute, FreeFailures: 3, BaseDelay: time.Second,
		MaxDelay: 5 * time.Minute, SourceFreeFailures: 30, Forget: time.Hour,
		HashConcurrency: max(2, runtime.GOMAXPROCS(0)), HashWait: 2 * time.Second}
}

func (p LoginPolicy) withDefaults() LoginPolicy {
	d := DefaultLoginPolicy()
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setD := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&p.MaxFailures, d.MaxFailures)
	set(&p.FreeFailures, d.FreeFailures)
	set(&p.SourceFreeFailures, d.SourceFreeFailures)
	set(&p.HashConcurrency, d.HashConcurrency)
	setD(&p.Lockout, d.Lockout)
	setD(&p.BaseDelay, d.BaseDelay)
	setD(&p.MaxDelay, d.MaxDelay)
	setD(&p.Forget, d.Forget)
	setD(&p.HashWait, d.HashWait)
	return p
}

// maxThrottleKeys bounds the failure table, so an attacker cycling names or addresses cannot grow
// it without end: past it, keys whose failures are forgotten are dropped, then arbitrary ones.
const maxThrottleKeys = 100_000

// throttle counts failed sign-ins per account and per source, in memory. Accounts are keyed by
// the org slug and username as typed (normalised), whether or not they exist, so that an unknown
// username is throttled and locked exactly like a known one and answers the same.
type throttle struct {
	mu     sync.Mutex
	policy LoginPolicy
	keys   map[string]*failures
}

type failures struct {
	n           int
	last        time.Time
	lockedUntil time.Time
}

func newThrottle(p LoginPolicy) *throttle {
	return &throttle{policy: p, keys: map[string]*failures{}}
}

func accountKey(org, username string) string { return "a\x00" + org + "\x00" + username }
func sourceKey(source string) string         { return "s\x00" + source }

// wait returns how long the attempt must wait, and whether the account is locked.
func (t *throttle) wait(now time.Time, account, source string) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var w time.Duration
	if f := t.get(now, account); f != nil {
		if now.Before(f.lockedUntil) {
			return f.lockedUntil.Sub(now), true
		}
		w = max(w, t.delay(now, f, t.policy.FreeFailures))
	}
	if source != "" {
		if f := t.get(now, source); f != nil {
			w = max(w, t.delay(now, f, t.policy.SourceFreeFailures))
		}
	}
	return w, false
}

// delay is what is left of the wait a key with f's failures imposes.
func (t *throttle) delay(now time.Time, f *failures, free int) time.Duration {
	if f.n < free {
		return 0
	}
	d := t.policy.BaseDelay << min(f.n-free, 30)
	if d <= 0 || d > t.policy.MaxDelay {
		d = t.policy.MaxDelay
	}
	return max(0, f.last.Add(d).Sub(now))
}

// get returns the key's failures, forgetting them once they are older than Forget.
func (t *throttle) get(now time.Time, key string) *failures {
	f := t.keys[key]
	if f != nil && now.Sub(f.last) > t.policy.Forget && !now.Before(f.lockedUntil) {
		delete(t.keys, key)
		return nil
	}
	return f
}

// fail counts a wrong password and reports whether it locked the account.
func (t *throttle) fail(now time.Time, account, source string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.keys) >= maxThrottleKeys {
		t.prune(now)
	}
	locked := false
	for _, k := range []string{account, source} {
		if k == sourceKey("") {
			continue
		}
		f := t.get(now, k)
		if f == nil {
			f = &failures{}
			t.keys[k] = f
		}
		f.n++
		f.last = now
		if k == account && f.n >= t.policy.MaxFailures {
			f.lockedUntil = now.Add(t.policy.Lockout)
			f.n = 0 // after the lock, the count starts again
			locked = true
		}
	}
	return locked
}

// succeed forgets the account's failures; the source's stay, so one good password does not buy
// an address another round of guesses at other accounts.
func (t *throttle) succeed(account string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.keys, account)
}

// unlock lifts a lock and forgets the account's failures.
func (t *throttle) unlock(account string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.keys[account]
	delete(t.keys, account)
	return ok
}

func (t *throttle) prune(now time.Time) {
	for k, f := range t.keys {
		if now.Sub(f.last) > t.policy.Forget && !now.Before(f.lockedUntil) {
			delete(t.keys, k)
		}
	}
	for k := range t.keys {
		if len(t.keys) < maxThrottleKeys*9/10 {
			return
		}
		delete(t.keys, k)
	}
}

// errTooMany is the answer to an attempt that must wait; it is the same for every account, known
// or not, so it tells nothing about who exists.
func errTooMany(wait time.Duration, locked bool) error {
	msg := "too many failed sign-ins; try again later"
	if locked {
		msg = "too many failed sign-ins: this account is locked for now; try again later or ask a security admin"
	}
	return &chatvault.Error{Code: chatvault.ETOOMANY, Message: msg, RetryAfter: max(wait, time.Second)}
}

// hashSlot waits for one of the argon2id slots, at most HashWait, and returns its release.
func (s *Service) hashSlot(ctx context.Context) (func(), error) {
	select {
	case s.hashes <- struct{}{}:
		return func() { <-s.hashes }, nil
	default:
	}
	timer := time.NewTimer(s.cfg.Login.HashWait)
	defer timer.Stop()
	select {
	case s.hashes <- struct{}{}:
		return func() { <-s.hashes }, nil
	case <-timer.C:
		return nil, &chatvault.Error{Code: chatvault.ETOOMANY, Message: "the server is busy checking passwords; try again shortly", RetryAfter: time.Second}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
