package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/account"
	"github.com/chatvault/chatvault/internal/audit"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/datadir"
	"github.com/chatvault/chatvault/internal/export"
	"github.com/chatvault/chatvault/internal/export/xlsx"
	cvhttp "github.com/chatvault/chatvault/internal/http"
	"github.com/chatvault/chatvault/internal/hub"
	"github.com/chatvault/chatvault/internal/jobs"
	"github.com/chatvault/chatvault/internal/metrics"
	"github.com/chatvault/chatvault/internal/postgres"
	"github.com/chatvault/chatvault/internal/retention"
	"github.com/chatvault/chatvault/internal/sqlite"
)

// InitialPasswordFile holds the first admin's one-time password, readable only by the owner.
const InitialPasswordFile = "initial-admin-password"

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg, err := addConfigFlags(fs, true).parse(args)
	if err != nil {
		return err
	}
	logger := newLogger(cfg.Log, stderr)
	lock, err := lockDataDir(cfg, "serve", datadir.Exclusive)
	if err != nil {
		return err
	}
	defer lock.Release() // last: after the store is closed
	if err := checkBeforeServing(ctx, cfg, logger); err != nil {
		return err
	}

	db, backups, err := openServing(ctx, cfg, lock, logger)
	if err != nil {
		return err
	}
	defer db.Close()

	// Metrics are kept whether or not they are served: observing costs a few atomic adds.
	mets := metrics.New(backupMetrics)
	if w, ok := db.(interface{ SetCommitObserver(sqlite.CommitObserver) }); ok {
		w.SetCommitObserver(mets.Commit)
	}
	mets.SetStore(storeStats(db), chatvault.SystemClock{})
	stopMetrics, err := serveMetrics(cfg, mets, logger)
	if err != nil {
		return err
	}
	defer stopMetrics()

	clock := chatvault.SystemClock{}
	auditLog := audit.New(db, db.Keyring(), clock)
	acfg := cfg.Login.accountConfig()
	acfg.Audit = auditLog
	accounts := account.NewService(db, clock, acfg)
	if err := bootstrap(ctx, accounts, cfg.Data, logger.Info); err != nil {
		return err
	}
	ret := retention.New(db, auditLog, clock, logger, db)
	chatSvc := chat.NewService(db, clock, chat.Config{RecallWindow: time.Duration(cfg.RecallWindow), Classifier: ret, Audit: auditLog})
	node, err := lock.NodeID()
	if err != nil {
		return err
	}
	exports, err := export.NewJobs(export.JobsConfig{Store: db, Chat: chatSvc, Clock: clock, Logger: logger, Dir: filepath.Join(cfg.Data, "exports"), Node: node,
		NewWriter: xlsx.NewWriter, TTL: time.Duration(cfg.ExportTTL), Seal: auditLog})
	if err != nil {
		return err
	}
	defer exports.Close() // before the deferred db.Close
	runner, err := scheduledJobs(cfg, jobs.SystemClock{}, db, ret, backups, logger, mets)
	if err != nil {
		return err
	}
	if err := addExportExpiry(runner, exports); err != nil {
		return err
	}
	stopJobs := startJobs(runner)
	defer stopJobs() // before the deferred db.Close
	// Exports a stopped server left unfinished run again from the start.
	if err := exports.Resume(ctx); err != nil {
		return fmt.Errorf("resume exports: %w", err)
	}
	live := hub.New(db, logger)
	live.SetLagObserver(mets.SyncLag)
	db.SetEventSink(live.Publish)
	hubCtx, stopHub := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() { live.Run(hubCtx); close(hubDone) }()
	defer func() { stopHub(); <-hubDone }()
	certs, err := tlsCerts(cfg)
	if err != nil {
		return err
	}
	defer reloadOnSIGHUP(certs, logger)()
	srv := cvhttp.NewServer(cvhttp.Services{Accounts: accounts, Chat: chatSvc, Retention: ret, Audit: auditLog, Hub: live, Store: db, Exports: exports}, logger,
		cvhttp.Config{MaxBodyBytes: cfg.MaxBodyBytes, TLS: certs.TLSConfig(), Observer: mets, AccessLog: cfg.Log.Access})
	if err := srv.Listen(cfg.Listen); err != nil {
		return err
	}
	logger.Info("listening", "addr", srv.Addr(), "store", cfg.storeKind(), "data", cfg.Data, "version", version(), "tls", cfg.tlsOn())

	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: draining in-flight requests")
	// Live connections and long-polls end first (each is told where to resume), so draining the
	// ordinary requests does not wait for them.
	stopHub()
	<-hubDone
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	if err := <-served; err != nil {
		return err
	}
	stopJobs()
	exports.Close()
	// Closing the store also hands the scheduled jobs to another instance at once.
	if err := db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// checkBeforeServing runs SQLite's quick_check on the data directory's databases, so that a
// damaged page is found before the server answers anything from it rather than when a request
// happens to read it (its cost is in docs/operations.md, Faults and recovery).
func checkBeforeServing(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if cfg.postgresStore() {
		return nil
	}
	t0 := time.Now()
	err := sqlite.CheckIntegrity(ctx, cfg.Data)
	var damaged *sqlite.DamagedError
	if errors.As(err, &damaged) {
		return fmt.Errorf("%w: chatvault does not serve from a damaged database. To recover: %s", err, restoreFix)
	}
	if err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	logger.Info("integrity checked", "took", time.Since(t0))
	return nil
}

// storeStats reads the store's sizes and counts for /metrics. PostgreSQL's write-ahead log is the
// server's, not the database's: its WAL size is left at zero.
func storeStats(db chatvault.Store) func(context.Context) (*metrics.StoreStats, error) {
	return func(ctx context.Context) (*metrics.StoreStats, error) {
		switch db := db.(type) {
		case *sqlite.DB:
			s, err := db.Stats(ctx)
			if err != nil {
				return nil, err
			}
			return &metrics.StoreStats{DatabaseBytes: s.DatabaseBytes, WALBytes: s.WALBytes, KeysBytes: s.KeysBytes,
				LiveDataKeys: s.LiveDataKeys, DestroyedDataKeys: s.DestroyedDataKeys, OldestExpired: s.OldestExpired, ExportJobs: s.ExportJobs}, nil
		case *postgres.DB:
			s, err := db.Stats(ctx)
			if err != nil {
				return nil, err
			}
			return &metrics.StoreStats{DatabaseBytes: s.DatabaseBytes, KeysBytes: s.KeysBytes,
				LiveDataKeys: s.LiveDataKeys, DestroyedDataKeys: s.DestroyedDataKeys, OldestExpired: s.OldestExpired, ExportJobs: s.ExportJobs}, nil
		}
		return nil, fmt.Errorf("store stats: no stats for %T", db)
	}
}

// serveMetrics serves /metrics and the profiler on cfg.MetricsListen (nothing when it is empty)
// until stop is called.
func serveMetrics(cfg Config, m *metrics.Metrics, logger *slog.Logger) (stop func(), err error) {
	if cfg.MetricsListen == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("metrics_listen: %w (is another process using the port? choose another with --metrics-listen)", err)
	}
	srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	logger.Info("metrics listening", "addr", ln.Addr().String())
	return func() { srv.Close(); <-done }, nil
}

// bootstrap creates the first org and admin on a new server and writes the admin's one-time
// password to a file only the owner can read. The password itself is never logged.
func bootstrap(ctx context.Context, accounts *account.Service, dir string, info func(string, ...any)) error {
	org, admin, password, err := accounts.Bootstrap(ctx)
	if err != nil {
		return fmt.Errorf("bootstrap first org: %w", err)
	}
	if password == "" {
		return nil
	}
	path := filepath.Join(dir, InitialPasswordFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write initial admin password: %w", err)
	}
	_, werr := fmt.Fprintln(f, password)
	err = errors.Join(werr, f.Sync(), f.Close())
	if err != nil {
		return fmt.Errorf("write initial admin password: %w", err)
	}
	info("created the first org and its admin; the admin's one-time password is in the file",
		"org", org.Slug, "username", admin.Username, "password_file", path)
	return nil
}
