package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/datadir"
	"github.com/chatvault/chatvault/internal/jobs"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/postgres"
	"github.com/chatvault/chatvault/internal/retention"
)

// This file holds the choice of store: the embedded SQLite store in the data directory (the
// default) or a PostgreSQL database that several serve processes share (docs/scaling.md).

// servedStore is what serve needs of a store, whichever the engine: the domain interfaces, the
// hand-off of committed events to live delivery, crypto-shredding, and who runs the scheduled
// jobs. Backups, which only the SQLite store takes, come from openServing.
type servedStore interface {
	chatvault.Store
	chatvault.SearchStore
	retention.Shredder
	// SetEventSink receives every committed batch of events: on PostgreSQL, those committed by
	// every process sharing the database.
	SetEventSink(chatvault.EventSink)
	// Keyring wraps the store's keys (the audit log's included); nil without encryption at rest.
	Keyring() *keyring.Keyring
	// Lead reports whether this process runs the scheduled jobs: on PostgreSQL the holder of the
	// jobs' advisory lock, on SQLite always.
	jobs.Leader
}

// postgresStore reports whether the configuration names a PostgreSQL store.
func (c Config) postgresStore() bool { return c.Store != "" }

// storeKind names the engine for logs; the URL itself is never logged (it may hold a password).
func (c Config) storeKind() string {
	if c.postgresStore() {
		return "postgres"
	}
	return "sqlite"
}

func (c Config) validateStore() []error {
	if c.Store == "" {
		return nil
	}
	var errs []error
	// The URL is not repeated in the message: it may hold a password.
	u, err := url.Parse(c.Store)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		errs = append(errs, errors.New("store: not a PostgreSQL URL like postgres://chatvault@db.example:5432/chatvault?sslmode=verify-full "+
			"(--store or CHATVAULT_STORE); leave it empty for the SQLite store in the data directory"))
	}
	if c.Backup.Enabled() {
		errs = append(errs, errors.New("backup: chatvault's backups copy the SQLite store, and store is a PostgreSQL database: "+
			"back PostgreSQL up with pg_basebackup and WAL archiving, or pg_dump (docs/scaling.md), and remove backup.targets"))
	}
	return errs
}

// errPostgresStore is the refusal of a command that works on the SQLite data directory only.
func errPostgresStore(command, instead string) error {
	return fmt.Errorf("%s works on the SQLite store in the data directory, but this configuration uses a PostgreSQL store "+
		"(store, --store or CHATVAULT_STORE): %s", command, instead)
}

// openServedStore opens the configured store with encryption at rest: the SQLite store in the
// data directory, or the PostgreSQL database of cfg.Store. lock is the data directory's lock,
// held by the caller.
func openServedStore(ctx context.Context, cfg Config, lock *datadir.Lock, logger *slog.Logger) (servedStore, error) {
	db, _, err := openServing(ctx, cfg, lock, logger)
	return db, err
}

// openServing is openServedStore that also returns the store's backup side: nil on PostgreSQL,
// which is backed up with its own tools.
func openServing(ctx context.Context, cfg Config, lock *datadir.Lock, logger *slog.Logger) (servedStore, chatvault.BackupStore, error) {
	if !cfg.postgresStore() {
		db, err := openStore(cfg, lock)
		if err != nil {
			return nil, nil, err
		}
		return db, db, nil
	}
	// The data directory still holds the key file (unless the KEK is in the environment), the
	// self-signed certificate and the first admin's password file.
	if err := mustHold(lock, cfg.Data); err != nil {
		return nil, nil, err
	}
	kr, err := openKeyring(cfg)
	if err != nil {
		return nil, nil, err
	}
	db, err := postgres.Open(ctx, cfg.Store, postgres.Options{Keyring: kr, Logger: logger})
	if err != nil {
		return nil, nil, fmt.Errorf("open PostgreSQL store: %w", err)
	}
	return db, nil, nil
}

// openAlone opens the configured store for an offline command, holding the data directory's
// lock exclusively; done closes the store, then releases the lock.
func openAlone(ctx context.Context, cfg Config, command string, logger *slog.Logger) (db servedStore, done func(), err error) {
	lock, err := lockDataDir(cfg, command, datadir.Exclusive)
	if err != nil {
		return nil, nil, err
	}
	if db, err = openServedStore(ctx, cfg, lock, logger); err != nil {
		lock.Release()
		return nil, nil, err
	}
	return db, func() { db.Close(); lock.Release() }, nil
}
