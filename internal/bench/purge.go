package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/audit"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/retention"
	"github.com/chatvault/chatvault/internal/sqlite"
)

// DefaultExpiredFraction is the share of the data set the purge scenario's policy lets go.
const DefaultExpiredFraction = 0.2

// The purge scenario's live traffic is paced, not closed-loop: on two cores, readers going flat
// out would take the CPU from the job and measure the machine, not the job's effect on latency.
const (
	purgeSendRate = 200 // messages per second, over all senders
	purgeReadRate = 400 // pages per second, over all readers
)

// pacedRun calls op from n goroutines, together about rate times a second, until d has passed
// or ctx is done, and returns the latency of each call that succeeded (the pause is not in it),
// the failures with the first, and the wall time.
func pacedRun(ctx context.Context, seed uint64, n, rate int, d time.Duration, op func(ctx context.Context, r *rand.Rand) error) ([]time.Duration, int, time.Duration, error) {
	every := time.Duration(float64(n) / float64(rate) * float64(time.Second))
	var (
		mu       sync.Mutex
		all      []time.Duration
		failures int
		firstErr error
		wg       sync.WaitGroup
	)
	begin := time.Now()
	deadline := begin.Add(d)
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(g)+1))
			// Spread the goroutines' first calls over one period.
			next := begin.Add(time.Duration(r.Int64N(int64(every))))
			var lats []time.Duration
			for ctx.Err() == nil && time.Now().Before(deadline) {
				select {
				case <-time.After(time.Until(next)):
				case <-ctx.Done():
				}
				if ctx.Err() != nil {
					break
				}
				next = next.Add(every)
				t0 := time.Now()
				err := op(ctx, r)
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					mu.Lock()
					if failures++; firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				lats = append(lats, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lats...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all, failures, time.Since(begin), firstErr
}

// Purge returns the purge scenario with expiredFraction of the messages older than the policy.
func Purge(expiredFraction float64) func(context.Context, Config) (*Report, error) {
	return func(ctx context.Context, cfg Config) (*Report, error) { return purge(ctx, cfg, expiredFraction) }
}

// fixedClock is the retention job's clock: fixed, so the policy's cutoff falls where the
// scenario put it however long the run takes.
type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

// timedSteps is the store with every purge step timed: a step is one write transaction, so its
// latency is how long it holds the writer.
type timedSteps struct {
	*sqlite.DB
	mu    sync.Mutex
	steps []time.Duration
}

func (s *timedSteps) time(t0 time.Time) {
	s.mu.Lock()
	s.steps = append(s.steps, time.Since(t0))
	s.mu.Unlock()
}

func (s *timedSteps) take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.steps
	s.steps = nil
	return out
}

func (s *timedSteps) ExpireMessages(ctx context.Context, st chatvault.ExpireStep) (*chatvault.StepResult, error) {
	defer s.time(time.Now())
	return s.DB.ExpireMessages(ctx, st)
}

func (s *timedSteps) DestroyMessages(ctx context.Context, st chatvault.DestroyStep) (*chatvault.StepResult, error) {
	defer s.time(time.Now())
	return s.DB.DestroyMessages(ctx, st)
}

// purge measures the retention job on a store where expiredFraction of the messages are older
// than the policy: the expire phase (messages leave every reader) and the destroy phase (bodies,
// versions, hidden and star rows go; a tombstone stays) separately, each as messages per second.
// Senders and readers work the store throughout; their latency during each phase is compared with
// the same workload without a purge, measured first in the same run (the reference).
func purge(ctx context.Context, cfg Config, expiredFraction float64) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if expiredFraction <= 0 || expiredFraction >= 1 {
		return nil, fmt.Errorf("expired fraction %v must be between 0 and 1, like 0.2", expiredFraction)
	}
	ds, err := openDataset(cfg.Data)
	if err != nil {
		return nil, err
	}
	rep := newReport("purge", time.Now(), cfg.Work)
	rep.Store, rep.Dataset = "sqlite", ds.info()
	rep.Settings = cfg.settings()
	rep.Settings["senders"] = cfg.Senders
	rep.Settings["readers"] = cfg.Readers
	rep.Settings["page_size"] = cfg.PageSize
	rep.Settings["expired_fraction"] = expiredFraction
	rep.Settings["step_size"] = retention.StepSize
	rep.Settings["send_rate"] = purgeSendRate
	rep.Settings["read_rate"] = purgeReadRate
	dir, err := cfg.workCopy(ds, "purge")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	cutoff, err := sentAtQuantile(ctx, filepath.Join(dir, sqlite.FileName), expiredFraction)
	if err != nil {
		return nil, err
	}
	// The policy keeps `days` days; the job's clock stands `days` days after the cutoff.
	days := int(math.Ceil(End.Sub(cutoff).Hours()/24)) + 1
	clock := fixedClock{cutoff.Add(time.Duration(days) * 24 * time.Hour)}
	rep.Settings["policy_days"] = days

	l, err := openLocal(dir)
	if err != nil {
		return nil, err
	}
	defer l.db.Close()
	if rep.Durability, err = durability(ctx, l.db); err != nil {
		return nil, err
	}
	store := &timedSteps{DB: l.db}
	// The store shreds data keys left protecting nothing when the data set is encrypted.
	ret := retention.New(store, audit.New(l.db, l.db.Keyring(), clock), clock, slog.New(slog.NewTextHandler(io.Discard, nil)), l.db)
	orgs, err := l.db.FindOrgs(ctx)
	if err != nil {
		return nil, err
	}
	setGrace := func(grace int) error {
		for _, o := range orgs {
			p := chatvault.DefaultPolicy()
			p.DefaultDays, p.GraceDays, p.UpdatedAt = days, grace, clock.t
			if err := l.db.SavePolicy(ctx, o.ID, &p); err != nil {
				return err
			}
		}
		return nil
	}

	senders, err := newSenders(ds, cfg.Senders, cfg.Seed)
	if err != nil {
		return nil, err
	}
	qs, err := pageQueries(ctx, ds, l.db, cfg.Seed, 100_000)
	if err != nil {
		return nil, err
	}
	sendOp := func(prefix string) func(ctx context.Context, r *rand.Rand) error {
		return func(ctx context.Context, r *rand.Rand) error {
			s := senders[r.IntN(len(senders))]
			_, created, err := l.chat.Send(ctx, s.actor, s.pick(r).ID, chat.SendRequest{ClientMsgID: prefix + token(r, 20), Text: Body(r)})
			if err == nil && !created {
				err = errors.New("send created = false, want true")
			}
			return err
		}
	}
	// Pages may come back short or empty once the purge has taken their messages.
	readOp := func(ctx context.Context, r *rand.Rand) error {
		q := qs[r.IntN(len(qs))]
		b := q.before
		_, err := l.chat.Messages(ctx, q.actor, q.conv.ID, chat.Page{Before: &b, Limit: cfg.PageSize})
		return err
	}

	// workload runs the senders and readers for cfg.Duration, or, with job set, for as long as
	// job takes, and returns their results and job's error.
	workload := func(label string, job func(ctx context.Context) error) (send, read *Result, err error) {
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		d := cfg.Duration
		if job != nil {
			d = 24 * time.Hour
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			lats, fails, el, ferr := pacedRun(wctx, cfg.Seed, cfg.Senders, purgeSendRate, d, sendOp(label+"-"))
			send = result("chat.Service.Send in process, "+label, "messages", "one acknowledged message", lats, fails, ferr, el)
		}()
		go func() {
			defer wg.Done()
			lats, fails, el, ferr := pacedRun(wctx, cfg.Seed+1, cfg.Readers, purgeReadRate, d, readOp)
			read = result("chat.Service.Messages in process, "+label, "pages", "one page", lats, fails, ferr, el)
		}()
		if job != nil {
			err = job(ctx)
			stop()
		}
		wg.Wait()
		return send, read, err
	}

	if err := setGrace(7); err != nil {
		return nil, err
	}
	pacedRun(ctx, cfg.Seed+2, cfg.Readers, purgeReadRate, 2*time.Second, readOp) // warm the caches
	cfg.Logf("purge: reference: %d senders and %d readers without a purge, %s", cfg.Senders, cfg.Readers, cfg.Duration)
	m := startMeter(os.Getpid())
	sendRef, readRef, _ := workload("without a purge (reference)", nil)
	peak, _ := m.stop()
	sendRef.PeakRSSBytes, readRef.PeakRSSBytes = peak, peak
	sendRef.RSSOf, readRef.RSSOf = m.rssNote("the bench process"), m.rssNote("the bench process")

	// phase runs the job once with the workload alongside and records its rate and step latency.
	keysDestroyed := 0
	phase := func(key, action, name string) (*Result, error) {
		var n int
		var took time.Duration
		m := startMeter(os.Getpid())
		send, read, err := workload("during the "+key+" phase", func(ctx context.Context) error {
			t0 := time.Now()
			runs, err := ret.RunAll(ctx, false)
			took = time.Since(t0)
			for _, r := range runs {
				n += r.Totals[action]
				keysDestroyed += r.Totals["data_keys_destroyed"]
			}
			return err
		})
		peak, cpu := m.stop()
		if err != nil {
			return nil, fmt.Errorf("%s phase: %w", key, err)
		}
		steps := store.take()
		r := fromSummary(Summarize(steps), took)
		r.Ops, r.Rate = n, math.Round(float64(n)/took.Seconds())
		r.Name, r.Unit, r.LatencyOf = name, "messages", "one step (one write transaction)"
		r.PeakRSSBytes, r.RSSOf, r.BenchCPUSecs = peak, m.rssNote("the bench process"), round1(cpu.Seconds())
		r.Note = fmt.Sprintf("%d steps", len(steps))
		rep.add(key, r)
		rep.add("send_"+key, send)
		rep.add("read_"+key, read)
		rep.Ratio["send_p99_"+key+"_vs_without"] = ratio(send.P99Ms, sendRef.P99Ms)
		rep.Ratio["read_p99_"+key+"_vs_without"] = ratio(read.P99Ms, readRef.P99Ms)
		cfg.Logf("purge: %s phase: %d messages in %.1fs (%.0f/s)", key, n, took.Seconds(), r.Rate)
		return r, nil
	}

	cfg.Logf("purge: expire phase (policy %d days, grace 7: expire only), with the same workload", days)
	exp, err := phase("expire", "expired", "retention run, expire phase: messages leave every reader (expired_at set, RETURNING seq, purge event), in steps")
	if err != nil {
		return nil, err
	}
	if err := setGrace(0); err != nil {
		return nil, err
	}
	cfg.Logf("purge: destroy phase (grace 0: what was expired is destroyed), with the same workload")
	dst, err := phase("destroy", "destroyed", "retention run, destroy phase: body, client id and reply cleared, versions, hidden and star rows deleted, tombstone kept, in steps")
	if err != nil {
		return nil, err
	}
	rep.add("send_without_purge", sendRef)
	rep.add("read_without_purge", readRef)
	rep.Notes = append(rep.Notes,
		fmt.Sprintf("policy keeps %d days; the job's clock is fixed at %s, so messages sent before %s (%.0f%% asked) are past it; data keys destroyed: %d",
			days, clock.t.Format(time.DateOnly), cutoff.Format(time.DateTime), expiredFraction*100, keysDestroyed),
		fmt.Sprintf("targets (retention issue): >= 100000 messages/s destroyed: %s (%.0f/s; expire phase %.0f/s); p99 during the purge <= 2x without: sends %.2fx / %.2fx, reads %.2fx / %.2fx (expire / destroy)",
			verdict(dst.Rate >= 100_000), dst.Rate, exp.Rate, rep.Ratio["send_p99_expire_vs_without"], rep.Ratio["send_p99_destroy_vs_without"],
			rep.Ratio["read_p99_expire_vs_without"], rep.Ratio["read_p99_destroy_vs_without"]))
	return rep, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return math.Round(a/b*100) / 100
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// sentAtQuantile returns the send time below which fraction q of the store's messages lie.
func sentAtQuantile(ctx context.Context, path string, q float64) (time.Time, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return time.Time{}, err
	}
	defer db.Close()
	var n int64
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM messages`).Scan(&n); err != nil {
		return time.Time{}, fmt.Errorf("count messages: %w", err)
	}
	var ms int64
	err = db.QueryRowContext(ctx, `SELECT sent_at FROM messages ORDER BY sent_at LIMIT 1 OFFSET ?`, int64(float64(n)*q)).Scan(&ms)
	if err != nil {
		return time.Time{}, fmt.Errorf("find the %.0f%% send time: %w", q*100, err)
	}
	return time.UnixMilli(ms).UTC(), nil
}
