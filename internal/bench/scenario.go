package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatvault/chatvault/internal/account"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/sqlite"
)

// Config is how a scenario runs.
type Config struct {
	// Data is a data set made by Generate. Scenarios work on copies of it in Work.
	Data string
	// Work is a scratch directory for working copies; it should be empty, and is left to the caller
	// to remove.
	Work string
	// Seed drives the workload (who sends what where, which pages are read).
	Seed uint64
	// Senders is how many clients send at once (ingest); Readers how many read at once (history).
	Senders int
	Readers int
	// Each path runs for Duration, or for Count operations when Count > 0.
	Duration time.Duration
	Count    int
	// RawBatch is how many rows the raw insert reference commits per transaction.
	RawBatch int
	// PageSize is the history page size.
	PageSize int
	// Sync and Fanout size the sync and fanout scenarios.
	Sync   SyncSizes
	Fanout FanoutSizes
	// Server returns the command that starts `chatvault serve --data dir --listen 127.0.0.1:0
	// --log-format json`; the HTTP paths run against that process.
	Server func(dir string) *exec.Cmd
	// Logf reports progress.
	Logf func(format string, args ...any)
}

// DefaultConfig is the configuration the command starts from.
func DefaultConfig() Config {
	return Config{Seed: 1, Senders: 64, Readers: 8, Duration: 10 * time.Second, RawBatch: 512, PageSize: 50,
		Sync: DefaultSyncSizes(), Fanout: DefaultFanoutSizes(), Logf: func(string, ...any) {}}
}

func (cfg *Config) validate() error {
	var errs []error
	if cfg.Data == "" {
		errs = append(errs, errors.New("data: name a generated data set"))
	}
	if cfg.Work == "" {
		errs = append(errs, errors.New("work: name a scratch directory"))
	}
	if cfg.Senders < 1 || cfg.Readers < 1 {
		errs = append(errs, errors.New("senders and readers must be at least 1"))
	}
	if cfg.Count <= 0 && cfg.Duration <= 0 {
		errs = append(errs, errors.New("give a positive duration or count"))
	}
	if cfg.RawBatch < 1 || cfg.PageSize < 1 || cfg.PageSize > chat.MaxPageLimit {
		errs = append(errs, fmt.Errorf("raw batch must be at least 1 and page size 1-%d", chat.MaxPageLimit))
	}
	if cfg.Server == nil {
		errs = append(errs, errors.New("server: say how to start `chatvault serve`"))
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	return errors.Join(errs...)
}

func (cfg *Config) settings() map[string]any {
	s := map[string]any{"seed": cfg.Seed}
	if cfg.Count > 0 {
		s["count"] = cfg.Count
	} else {
		s["duration"] = cfg.Duration.String()
	}
	return s
}

// run calls op from n goroutines until Duration has passed or Count operations were started, and
// returns the latency of every operation that succeeded, the number that failed with the first
// failure, and the wall time. op gets the goroutine's number and its own random source.
func (cfg *Config) run(ctx context.Context, n int, op func(ctx context.Context, g int, r *rand.Rand) error) ([]time.Duration, int, time.Duration, error) {
	var (
		started  atomic.Int64
		failures atomic.Int64
		firstErr error
		errOnce  sync.Once
		lats     = make([][]time.Duration, n)
		wg       sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	deadline := time.Now().Add(cfg.Duration)
	begin := time.Now()
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(cfg.Seed, uint64(g)+1))
			for ctx.Err() == nil {
				if cfg.Count > 0 {
					if started.Add(1) > int64(cfg.Count) {
						return
					}
				} else if time.Now().After(deadline) {
					return
				}
				t0 := time.Now()
				err := op(ctx, g, r)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					failures.Add(1)
					errOnce.Do(func() { firstErr = err })
					// A path that fails everything would otherwise spin; give up after many.
					if failures.Load() > 1000 && failures.Load() > started.Load()/10 {
						cancel()
					}
					continue
				}
				lats[g] = append(lats[g], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return all, int(failures.Load()), elapsed, firstErr
}

// result turns a run into a Result.
func result(name, unit, latencyOf string, lats []time.Duration, failures int, firstErr error, elapsed time.Duration) *Result {
	r := fromSummary(Summarize(lats), elapsed)
	r.Name, r.Unit, r.LatencyOf, r.Errors = name, unit, latencyOf, failures
	if firstErr != nil {
		r.Note = "first error: " + firstErr.Error()
	}
	return r
}

// local is an in-process store, chat service and account service over one working copy.
type local struct {
	db    *sqlite.DB
	chat  *chat.Service
	accts *account.Service
	once  sync.Once
	err   error
}

// close closes the store once; a scenario closes it before starting a server on the same copy,
// and defers it for the paths that return early.
func (l *local) close() error {
	l.once.Do(func() { l.err = l.db.Close() })
	return l.err
}

// workStore makes a working copy named name, opens it in process as serve would, and records the
// store's durability settings in the report. The caller removes dir and closes the store.
func (cfg *Config) workStore(ctx context.Context, ds *dataset, name string, rep *Report) (*local, string, error) {
	dir, err := cfg.workCopy(ds, name)
	if err != nil {
		return nil, "", err
	}
	l, err := openSealed(dir, cfg.Logf)
	if err == nil {
		rep.Durability, err = durability(ctx, l.db)
		if err != nil {
			l.close()
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	return l, dir, nil
}

// openLocal opens a working copy in process as `chatvault serve` would: encrypted at rest.
func openLocal(dir string) (*local, error) {
	return openSealed(dir, func(string, ...any) {})
}

func durability(ctx context.Context, db *sqlite.DB) (string, error) {
	jm, sync, err := db.Durability(ctx)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("journal_mode=%s synchronous=%s: every acknowledged write was fsynced before its ack", jm, sync), nil
}

// logins signs users in over HTTP, two at a time (each login costs an argon2id hash on the
// server), and returns their tokens by user id.
func logins(ctx context.Context, c *client, ds *dataset, userIDs []string) (map[string]string, error) {
	tokens := map[string]string{}
	var mu sync.Mutex
	ids := slices.Clone(userIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	work := make(chan string)
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				u := ds.users[id]
				tok, err := c.login(ctx, ds.orgSlug[u.OrgID], u.Username, ds.password)
				if err != nil {
					errc <- fmt.Errorf("log %s in: %w", u.Username, err)
					return
				}
				mu.Lock()
				tokens[id] = tok
				mu.Unlock()
			}
		}()
	}
	var err error
feed:
	for _, id := range ids {
		select {
		case work <- id:
		case err = <-errc:
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	return tokens, err
}

// withServer starts `chatvault serve` on dir, runs fn against it and stops it.
func (cfg *Config) withServer(ctx context.Context, dir string, fn func(s *server) error) error {
	s, err := startServer(ctx, cfg.Server(dir))
	if err != nil {
		return err
	}
	ferr := fn(s)
	return errors.Join(ferr, s.stop())
}

// workDir makes an empty directory under cfg.Work and a working copy of the data set in it.
func (cfg *Config) workCopy(ds *dataset, name string) (string, error) {
	dir := filepath.Join(cfg.Work, name)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	t0 := time.Now()
	if err := ds.copyTo(dir); err != nil {
		return "", err
	}
	cfg.Logf("%s: working copy made in %.1fs", name, time.Since(t0).Seconds())
	return dir, nil
}

// start validates cfg, opens the data set and begins the scenario's report with the settings every
// scenario shares.
func (cfg *Config) start(scenario string) (*dataset, *Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, nil, err
	}
	ds, err := openDataset(cfg.Data)
	if err != nil {
		return nil, nil, err
	}
	rep := newReport(scenario, time.Now(), cfg.Work)
	rep.Store, rep.Dataset = "sqlite", ds.info()
	rep.Settings = cfg.settings()
	return ds, rep, nil
}
