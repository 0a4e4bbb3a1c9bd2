package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/chatvault/chatvault/internal/bench"
)

const benchUsage = `Usage:
  chatvault bench gen --messages N --out DIR [--seed S]
      generate a realistic data set: a chatvault data directory "chatvault serve --data DIR" opens
  chatvault bench ingest  [--data DIR | --messages N] [--senders 64] [--duration 10s | --count N] [--json FILE]
      messages/s and ack latency through the store and the HTTP API; reference: raw batched INSERTs
  chatvault bench history [--data DIR | --messages N] [--readers 8] [--duration 10s | --count N] [--json FILE]
      random pages of 50 at random depths through the store, the read path and HTTP; reference: raw range query
  chatvault bench sync    [--data DIR | --messages N] [--conversations 5000] [--changed 3] [--initial-conversations 1000]
                          [--conversation-messages 3] [--duration 10s | --count N] [--json FILE]
      incremental sync (a few of many conversations changed) and a new device's initial sync, in process and
      over HTTP; reference: raw listing of the user's memberships
  chatvault bench fanout  [--data DIR | --messages N] [--users 2500] [--devices 4] [--group 500] [--rate 1000]
                          [--group-rate 10] [--senders 64] [--duration 10s | --count N] [--json FILE]
      server memory per idle WebSocket connection, and group delivery latency under a paced send load
  chatvault bench purge   [--data DIR | --messages N] [--expired-fraction 0.2] [--senders 64] [--readers 8] [--duration 10s] [--json FILE]
      the retention job's expire and destroy rates (messages/s) on a store where a fraction is past the policy, and
      send and history-read latency during each phase; reference: the same workload without a purge
  chatvault bench backup  [--data DIR | --messages N] [--json FILE]
      backup create, a full verify and a restore, in MB/s and messages/s; reference: a plain copy of the database
  chatvault bench search  [--data DIR | --messages N] [--senders 64] [--duration 10s] [--count N] [--json FILE]
      N user-scoped and N org-wide searches (default 300 each), one at a time; reference: a member's
      brute-force scan of their own history; ingest with the search index off and on; index bytes
  chatvault bench export  [--data DIR | --messages N] [--json FILE]
      every org exported whole by a compliance officer as CSV, JSONL and XLSX, in messages/s with peak RSS;
      reference: a raw read-and-decrypt scan of the same rows in the same run
  chatvault bench postgres --pg URL [--data DIR | --messages N] [--readers 8] [--senders 64] [--duration 10s | --count N] [--json FILE]
      the PostgreSQL store against the SQLite store in the same run, same data: history pages and ingest through
      chatvault.Store, and the rate of copying the data set in (chatvault migrate); URL names an empty database

Without --data, a data set of --messages messages is generated into a temporary directory first.
Runs work on copies of the data set in a temporary directory; the data set itself is not changed.
The HTTP paths start "chatvault serve" (this binary) on 127.0.0.1:0. See docs/benchmarks.md.

Flags:
`

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, benchUsage)
		return flag.ErrHelp
	}
	scenario := args[0]
	fs := flag.NewFlagSet("bench "+scenario, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchUsage); fs.PrintDefaults() }
	cfg := bench.DefaultConfig()
	messages := fs.Int("messages", 0, "messages to generate (gen: required; scenarios without --data: default 100000)")
	out := fs.String("out", "", "gen: directory to write the data set into (new or empty)")
	data := fs.String("data", "", "a data set made by `chatvault bench gen` to run on (it is copied, never changed)")
	store := fs.String("store", "sqlite", "store to measure (only sqlite for now)")
	jsonPath := fs.String("json", "", "also write the report as JSON to this file")
	pgURL := fs.String("pg", os.Getenv("CHATVAULT_BENCH_POSTGRES"), "postgres: an empty PostgreSQL database to compare with (env CHATVAULT_BENCH_POSTGRES)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the bench process to this file")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the generator and of the workload")
	fs.IntVar(&cfg.Senders, "senders", cfg.Senders, "ingest, fanout: concurrent senders (each a different user where the data set allows)")
	fs.IntVar(&cfg.Readers, "readers", cfg.Readers, "history: concurrent readers")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long each measured path runs")
	fs.IntVar(&cfg.Count, "count", 0, "run each path for this many operations instead of --duration")
	fs.IntVar(&cfg.RawBatch, "raw-batch", cfg.RawBatch, "ingest: rows per transaction of the raw insert reference")
	fs.IntVar(&cfg.Sync.Conversations, "conversations", cfg.Sync.Conversations, "sync: conversations of the incremental-sync user")
	fs.IntVar(&cfg.Sync.Changed, "changed", cfg.Sync.Changed, "sync: conversations changed before each incremental sync")
	fs.IntVar(&cfg.Sync.InitialConversations, "initial-conversations", cfg.Sync.InitialConversations, "sync: conversations of the initial-sync user")
	fs.IntVar(&cfg.Sync.Messages, "conversation-messages", cfg.Sync.Messages, "sync: messages in each of those conversations")
	fs.IntVar(&cfg.Fanout.Users, "users", cfg.Fanout.Users, "fanout: users online")
	fs.IntVar(&cfg.Fanout.Devices, "devices", cfg.Fanout.Devices, "fanout: WebSocket connections per user")
	fs.IntVar(&cfg.Fanout.Group, "group", cfg.Fanout.Group, "fanout: members of the measured group (all online)")
	fs.IntVar(&cfg.Fanout.Rate, "rate", cfg.Fanout.Rate, "fanout: messages per second sent in all")
	fs.IntVar(&cfg.Fanout.GroupRate, "group-rate", cfg.Fanout.GroupRate, "fanout: of which to the group")
	fs.DurationVar(&cfg.Fanout.Settle, "settle", cfg.Fanout.Settle, "fanout: idle time after opening the connections before the server's RSS is read")
	expiredFraction := fs.Float64("expired-fraction", bench.DefaultExpiredFraction, "purge: fraction of the messages older than the policy")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench %s takes no arguments, got %q", scenario, fs.Args())
	}
	if *store != "sqlite" {
		return fmt.Errorf("--store %q: only sqlite can be benchmarked so far (postgres comes with the postgres store)", *store)
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
	cfg.Logf = logf

	if scenario == "gen" {
		if *out == "" || *messages < 1 {
			return errors.New("gen needs --out DIR and --messages N")
		}
		t0 := time.Now()
		m, err := bench.Generate(ctx, *out, cfg.Seed, *messages, logf)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "generated %d messages in %d conversations (%d users, %d orgs, avg body %.1f bytes) into %s in %s\n",
			m.Messages, m.Conversations, m.Users, m.Orgs, m.AvgBodyBytes, *out, time.Since(t0).Round(100*time.Millisecond))
		fmt.Fprintf(stdout, "every user's password is in %s\n", filepath.Join(*out, bench.PasswordFile))
		return nil
	}
	run, ok := map[string]func(context.Context, bench.Config) (*bench.Report, error){
		"ingest":   bench.Ingest,
		"history":  bench.History,
		"purge":    bench.Purge(*expiredFraction),
		"sync":     bench.Sync,
		"fanout":   bench.Fanout,
		"backup":   bench.Backup,
		"search":   bench.Search,
		"export":   bench.Export,
		"postgres": bench.Postgres(*pgURL),
	}[scenario]
	if !ok {
		fmt.Fprint(stderr, benchUsage)
		return fmt.Errorf("unknown bench scenario %q", scenario)
	}

	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this binary to start the server: %w", err)
	}
	cfg.Server = func(dir string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, exe, "serve", "--data", dir, "--listen", "127.0.0.1:0", "--log-format", "json")
		cmd.Env = append(os.Environ(), "CHATVAULT_CONFIG=")
		return cmd
	}
	work, err := os.MkdirTemp("", "chatvault-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	cfg.Work = work
	cfg.Data = *data
	if cfg.Data == "" {
		n := *messages
		if n == 0 {
			n = 100_000
		}
		cfg.Data = filepath.Join(work, "dataset")
		t0 := time.Now()
		if _, err := bench.Generate(ctx, cfg.Data, cfg.Seed, n, logf); err != nil {
			return err
		}
		logf("generated %d messages in %s", n, time.Since(t0).Round(100*time.Millisecond))
	} else if *messages != 0 {
		return errors.New("give --data or --messages, not both: a data set has its size")
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	rep, err := run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("bench %s: %w", scenario, err)
	}
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	if *jsonPath != "" {
		f, err := os.Create(*jsonPath)
		if err != nil {
			return err
		}
		werr := rep.WriteJSON(f)
		if err := errors.Join(werr, f.Close()); err != nil {
			return fmt.Errorf("write %s: %w", *jsonPath, err)
		}
	}
	return nil
}
