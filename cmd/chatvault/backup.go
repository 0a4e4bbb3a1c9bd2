package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"filippo.io/age"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/backup"
	"github.com/chatvault/chatvault/internal/datadir"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/sqlite"
)

// BackupConfig is the "backup" section of the configuration (internal/backup.Config).
type BackupConfig = backup.Config

const backupUsage = `Usage: chatvault backup COMMAND [--config FILE] [--data DIR]

Commands:
  create              take a backup now: snapshot, check, encrypt, write to every target (refused
                      while a server uses the data directory: it backs up on its schedule)
  list [--keys]       the backups on the targets (--keys: the key backups)
  verify ID [--identity FILE] [--allow-unsigned]
                      compare every stored copy with its manifest; with --identity, also decrypt,
                      restore into a temporary directory, run the integrity check, compare counts
                      and decrypt a sample of messages
  prune               apply the retention (backup.keep, backup.keys_keep_days) on every target
  key                 print the public key backups are signed with (made if there is none yet):
                      pin it as backup.manifest_public_key where you restore

Targets, recipients and retention come from the "backup" section of the config file; see
docs/operations.md. Restore with: chatvault restore ID --data NEW_DIR --identity FILE
`

func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, backupUsage)
		return flag.ErrHelp
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, backupUsage)
		return nil
	}
	cmd := args[0]
	fs := flag.NewFlagSet("backup "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, backupUsage); fs.PrintDefaults() }
	cf := addConfigFlags(fs, false)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	var identity *string
	var keys, noCheck, allowUnsigned *bool
	switch cmd {
	case "create":
		noCheck = fs.Bool("no-check", false, "skip the check of the snapshot before upload (integrity, counts, sample decrypt)")
	case "list":
		keys = fs.Bool("keys", false, "list key backups instead of data backups")
	case "verify":
		identity = fs.String("identity", "", "age identity file (AGE-SECRET-KEY-1...) of a recipient: verify in full")
		allowUnsigned = fs.Bool("allow-unsigned", false, "accept a backup made before chatvault signed backups (only if you trust every writer of the targets)")
	case "prune", "key":
	default:
		fmt.Fprint(stderr, backupUsage)
		return fmt.Errorf("unknown backup command %q", cmd)
	}
	id, err := parseWithArg(fs, args[1:], cmd == "verify")
	if err != nil {
		return err
	}
	cfg, err := cf.resolve()
	if err != nil {
		return err
	}
	if cfg.postgresStore() {
		return errPostgresStore("chatvault backup", "back PostgreSQL up with pg_basebackup and WAL archiving, or pg_dump (docs/scaling.md)")
	}
	logger := newLogger(cfg.Log, stderr)
	if cmd == "key" {
		key, created, err := backup.LoadOrCreateSigningKey(cfg.Data)
		if err != nil {
			return err
		}
		if created {
			fmt.Fprintf(stderr, "made a new backup signing key in %s\n", filepath.Join(cfg.Data, filepath.FromSlash(backup.SigningKeyFile)))
		}
		fmt.Fprintln(stdout, backup.FormatPublicKey(key.Public().(ed25519.PublicKey)))
		fmt.Fprintln(stderr, "pin it in the config of every machine you restore or verify on: backup: {manifest_public_key: KEY}")
		return nil
	}
	var store chatvault.BackupStore // nil unless the command takes a backup
	// list and prune work on the targets only; verify restores into its own directory under
	// DATA/backup/work; create snapshots the store and advances the journal.
	if cmd == "create" || cmd == "verify" {
		mode := datadir.Exclusive
		if cmd == "verify" {
			mode = datadir.Shared
		}
		lock, err := lockDataDir(cfg, "backup "+cmd, mode)
		if err != nil {
			return err
		}
		defer lock.Release()
		if cmd == "create" {
			db, err := openStore(cfg, lock)
			if err != nil {
				return err
			}
			defer db.Close()
			store = db
		}
	}
	job, err := newBackupJob(cfg, store, logger)
	if err != nil {
		return err
	}
	if allowUnsigned != nil {
		job.AllowUnsigned = *allowUnsigned
	}
	out := func(v any, text func(w io.Writer)) error {
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		}
		text(stdout)
		return nil
	}
	switch cmd {
	case "create":
		res, err := job.Create(ctx, !*noCheck)
		if err != nil {
			return err
		}
		err = out(res, func(w io.Writer) {
			fmt.Fprintf(w, "backup %s: %s encrypted, %d messages, stored on %d of %d targets in %s\n", res.ID,
				humanBytes(res.Data.Parts[0].Size), res.Data.Tables["messages"], len(res.Stored), len(job.Targets), res.Duration.Round(time.Millisecond))
			if res.Check != nil {
				fmt.Fprintf(w, "checked before upload: integrity %s, %d sampled bodies decrypted\n", res.Check.Integrity, res.Check.Opened)
			}
			for _, f := range res.Failed {
				fmt.Fprintf(w, "FAILED: %v\n", f)
			}
		})
		if len(res.Failed) > 0 && err == nil {
			return fmt.Errorf("%d target(s) did not get backup %s (the others did)", len(res.Failed), res.ID)
		}
		return err
	case "list":
		kind := backup.KindData
		if *keys {
			kind = backup.KindKeys
		}
		entries, lerr := job.List(ctx, kind)
		err := out(entries, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCREATED\tSIZE\tMESSAGES\tSIGNED\tTARGETS")
			for _, e := range entries {
				var size int64
				for _, p := range e.Manifest.Parts {
					size += p.Size
				}
				msgs := "-"
				if n, ok := e.Manifest.Tables["messages"]; ok {
					msgs = fmt.Sprint(n)
				}
				signed := "yes"
				if e.Unsigned {
					signed = "NO (--allow-unsigned to restore)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Manifest.ID, e.Manifest.CreatedAt.Format(time.RFC3339), humanBytes(size), msgs, signed, strings.Join(e.Targets, ", "))
			}
			tw.Flush()
		})
		return errors.Join(err, lerr)
	case "verify":
		var ids []age.Identity
		if *identity != "" {
			if ids, err = backup.ReadIdentities(*identity); err != nil {
				return err
			}
		}
		rep, verr := job.Verify(ctx, id, ids)
		if rep != nil {
			out(rep, func(w io.Writer) {
				for t, err := range rep.Stored {
					if err == nil {
						fmt.Fprintf(w, "%s: stored copy matches the manifest\n", t)
					} else {
						fmt.Fprintf(w, "%s: BAD: %v\n", t, err)
					}
				}
				if rep.Check != nil {
					fmt.Fprintf(w, "restored with key backup %s: integrity %s, row counts match the manifest, %d of %d sampled bodies decrypted (%d shredded)\n",
						rep.Keys, rep.Check.Integrity, rep.Check.Opened, rep.Check.Sampled, rep.Check.Shredded)
				} else if !rep.Full {
					fmt.Fprintln(w, "stored copies only: add --identity FILE to decrypt and restore the backup as well")
				}
			})
		}
		if verr != nil {
			return fmt.Errorf("backup %s did not verify: %w", id, verr)
		}
		fmt.Fprintf(stdout, "backup %s verified in %s\n", id, rep.Elapsed.Round(time.Millisecond))
		return nil
	case "prune":
		rep, err := job.Prune(ctx)
		if rep != nil {
			out(rep, func(w io.Writer) {
				fmt.Fprintf(w, "data backups: kept %d, deleted %d; key backups: kept %d, deleted %d; journal segments deleted: %d\n",
					len(rep.KeptData), len(rep.DeletedData), len(rep.KeptKeys), len(rep.DeletedKeys), rep.DeletedJournal)
			})
		}
		return err
	}
	return nil
}

// parseWithArg parses flags given before or after one positional argument (required when want).
func parseWithArg(fs *flag.FlagSet, args []string, want bool) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	arg := ""
	if fs.NArg() > 0 {
		arg = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return "", err
		}
	}
	switch {
	case fs.NArg() > 0:
		return "", fmt.Errorf("%s: unexpected arguments %q", fs.Name(), fs.Args())
	case want && arg == "":
		return "", fmt.Errorf("%s: give a backup ID (see chatvault backup list)", fs.Name())
	case !want && arg != "":
		return "", fmt.Errorf("%s takes no arguments, got %q", fs.Name(), arg)
	}
	return arg, nil
}

// newBackupJob wires the backup job of a configuration; store may be nil for commands that do
// not take backups.
func newBackupJob(cfg Config, store chatvault.BackupStore, logger *slog.Logger) (*backup.Job, error) {
	bc := cfg.Backup
	if !bc.Enabled() {
		return nil, errors.New("no backup targets are configured: add a backup section with targets and recipients to the config file (see docs/operations.md)")
	}
	targets, err := backup.OpenTargets(bc.Targets, os.Getenv)
	if err != nil {
		return nil, err
	}
	keyTargets, err := backup.OpenTargets(bc.KeyTargetsOrDefault(), os.Getenv)
	if err != nil {
		return nil, err
	}
	rs, err := backup.ParseRecipients(bc.Recipients)
	if err != nil {
		return nil, err
	}
	kekFile := cfg.keyFile()
	if keyring.EnvConfigured(os.Getenv) {
		kekFile = "" // the KEK is in the environment: keep it there, not in backups
	}
	job := &backup.Job{Open: openRestored, Targets: targets, KeyTargets: keyTargets, Recipients: rs, RecipientKeys: bc.Recipients,
		KEKFile: kekFile, Work: filepath.Join(cfg.Data, "backup", "work"), JournalState: filepath.Join(cfg.Data, "backup", "journal.json"),
		VerifyState: verifyStatePath(cfg),
		Keep:        bc.Keep, KeysKeepDays: bc.KeysKeepDays, Clock: chatvault.SystemClock{}, Logger: logger, Metrics: backupMetrics, Version: version()}
	if store != nil {
		job.Store = store
	}
	if err := setBackupKeys(cfg, job, store != nil, logger); err != nil {
		return nil, err
	}
	return job, nil
}

// setBackupKeys gives a job its signing key (sign: made if missing) and the keys it trusts: the
// pinned backup.manifest_public_key, else the data directory's own key. With neither, nothing
// verifies, and commands that read backups say to pin the key.
func setBackupKeys(cfg Config, job *backup.Job, sign bool, logger *slog.Logger) error {
	var pinned ed25519.PublicKey
	if cfg.Backup.ManifestPublicKey != "" {
		var err error
		if pinned, err = backup.ParsePublicKey(cfg.Backup.ManifestPublicKey); err != nil {
			return fmt.Errorf("backup.manifest_public_key: %w", err)
		}
	}
	keyFile := filepath.Join(cfg.Data, filepath.FromSlash(backup.SigningKeyFile))
	var key ed25519.PrivateKey
	var err error
	if sign {
		var created bool
		if key, created, err = backup.LoadOrCreateSigningKey(cfg.Data); err != nil {
			return err
		}
		if created {
			logger.Info("made a backup signing key; pin its public key as backup.manifest_public_key wherever you restore",
				"file", keyFile, "public_key", backup.FormatPublicKey(key.Public().(ed25519.PublicKey)))
		}
		job.SigningKey = key
	} else if key, err = backup.LoadSigningKey(cfg.Data); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var local ed25519.PublicKey
	if key != nil {
		local = key.Public().(ed25519.PublicKey)
	}
	switch {
	case pinned == nil && local != nil:
		job.TrustedKeys = []ed25519.PublicKey{local}
	case pinned != nil:
		if sign && !pinned.Equal(local) {
			return fmt.Errorf("backup signing key %s has public key %s, but backup.manifest_public_key is %s: backups signed with it would not verify where the pin is used. "+
				"Copy the signing key of the server that made the pinned backups to %s, or pin the new key", keyFile, backup.FormatPublicKey(local), cfg.Backup.ManifestPublicKey, keyFile)
		}
		job.TrustedKeys = []ed25519.PublicKey{pinned}
	}
	return nil
}

// backupMetrics are the process's backup counters (no /metrics endpoint yet; see internal/backup).
var backupMetrics = &backup.Metrics{}

// openRestored opens a restored data directory with its keys: the KEK from the environment when
// CHATVAULT_KEK is set, else the key file restored from the key backup.
func openRestored(ctx context.Context, dir string) (chatvault.RestoredStore, error) {
	var p keyring.Provider
	var err error
	if keyring.EnvConfigured(os.Getenv) {
		p, err = keyring.OpenEnv(os.Getenv)
	} else {
		kek := filepath.Join(dir, filepath.FromSlash(backup.KEKFile))
		if _, serr := os.Stat(kek); serr != nil {
			return nil, fmt.Errorf("the key backup holds no key file (%s), and CHATVAULT_KEK is not set: set CHATVAULT_KEK to the KEK the data was made with", backup.KEKFile)
		}
		p, err = keyring.OpenFile(kek)
	}
	if err != nil {
		return nil, err
	}
	return sqlite.OpenWith(dir, sqlite.Options{Keyring: keyring.New(p, 0)})
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// verifyStatePath is where the last backup verification is recorded (chatvault doctor reads it).
func verifyStatePath(cfg Config) string { return filepath.Join(cfg.Data, "backup", "verify.json") }

func backupDefaults() BackupConfig { return backup.DefaultConfig() }
