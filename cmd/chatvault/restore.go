package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/chatvault/chatvault/internal/backup"
	"github.com/chatvault/chatvault/internal/datadir"
)

const restoreUsage = `Usage: chatvault restore ID --data NEW_DIR --identity FILE [--force] [--allow-unsigned] [--config FILE]

Restores backup ID (see chatvault backup list) into NEW_DIR: the data, the newest key backup, and
every deletion recorded in the deletion journal since the backup was taken, applied again, so
nothing purged, erased or recalled after the backup comes back. Then runs the integrity check.
NEW_DIR must not hold a database; --force replaces one. Either way restore refuses a directory
another chatvault process (a running server) is using: stop it first.
The targets come from the "backup" section of the config file. The backup's manifest must be
signed with the key pinned there (backup.manifest_public_key) or, without a pin, the signing key
of NEW_DIR; --allow-unsigned accepts a backup made before chatvault signed backups.

Flags:
`

func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, restoreUsage); fs.PrintDefaults() }
	cf := addConfigFlags(fs, false)
	identity := fs.String("identity", "", "age identity file (AGE-SECRET-KEY-1...) of one of the backup's recipients (required)")
	force := fs.Bool("force", false, "replace the database in --data (never while a server uses it)")
	allowUnsigned := fs.Bool("allow-unsigned", false, "accept a backup (and journal segments) made before chatvault signed them: only if you trust every writer of the targets")
	id, err := parseWithArg(fs, args, true)
	if err != nil {
		return err
	}
	dataSet := false
	fs.Visit(func(f *flag.Flag) { dataSet = dataSet || f.Name == "data" })
	if !dataSet {
		return errors.New("restore: give the directory to restore into with --data NEW_DIR")
	}
	if *identity == "" {
		return errors.New("restore: give the age identity file of a recipient with --identity FILE")
	}
	cfg, err := cf.resolve()
	if err != nil {
		return err
	}
	if cfg.postgresStore() {
		return errPostgresStore("chatvault restore", "restore PostgreSQL with pg_restore or point-in-time recovery (docs/scaling.md); "+
			"to move a restored SQLite directory to PostgreSQL, restore it without --store, then run chatvault migrate")
	}
	// With or without --force: a server using the directory would keep writing to files the
	// restore replaces, and lose what it acknowledged.
	lock, err := lockDataDir(cfg, "restore", datadir.Exclusive)
	if err != nil {
		return err
	}
	defer lock.Release()
	ids, err := backup.ReadIdentities(*identity)
	if err != nil {
		return err
	}
	job, err := newBackupJob(cfg, nil, newLogger(cfg.Log, stderr))
	if err != nil {
		return err
	}
	job.AllowUnsigned = *allowUnsigned
	rep, err := job.Restore(ctx, id, cfg.Data, ids, *force)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored backup %s from %s into %s with key backup %s in %s\n", rep.ID, rep.From, cfg.Data, rep.Keys, rep.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(stdout, "deletion journal: %d segments, %d entries, %d applied again\n", rep.Segments, rep.Entries, rep.Applied)
	fmt.Fprintf(stdout, "integrity %s; %d messages; %d of %d sampled bodies decrypted (%d shredded)\n",
		rep.Check.Integrity, rep.Check.Tables["messages"], rep.Check.Opened, rep.Check.Sampled, rep.Check.Shredded)
	return nil
}
