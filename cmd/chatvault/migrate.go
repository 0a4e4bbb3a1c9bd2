package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/chatvault/chatvault/internal/datadir"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/migrate"
	"github.com/chatvault/chatvault/internal/postgres"
	"github.com/chatvault/chatvault/internal/sqlite"
)

const migrateUsage = `Usage: chatvault migrate --from DIR --to postgres://USER@HOST:5432/DB [--key-file FILE] [--batch N]

Copies the SQLite store in DIR (chatvault.db and keys/keys.db) into an empty PostgreSQL database,
table by table in primary-key order, in batches. Sealed bodies are copied as they are (nothing is
decrypted); the wrapped data keys go to the database's chatvault_keys schema, and the key file
stays where it is: the server keeps using it (or CHATVAULT_KEK).

Stop the server that uses DIR first: migrate refuses a database another process has open. An
interrupted migrate (Ctrl-C, a lost connection) resumes where it stopped when run again with the
same arguments. At the end it counts and checksums every table on both sides and prints both.
Then serve from PostgreSQL:

  chatvault serve --data DIR --store postgres://USER@HOST:5432/DB

See docs/scaling.md.

Flags:
`

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, migrateUsage); fs.PrintDefaults() }
	from := fs.String("from", "", "the SQLite data directory to copy (required)")
	to := fs.String("to", "", "URL of the PostgreSQL database to fill (required; default CHATVAULT_STORE)")
	keyFile := fs.String("key-file", "", "key-encryption key file (default FROM/keys/kek.json; CHATVAULT_KEK takes its place)")
	batch := fs.Int("batch", migrate.DefaultBatch, "rows per transaction")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("migrate takes no arguments, got %q", fs.Args())
	}
	if *to == "" {
		*to = os.Getenv("CHATVAULT_STORE")
	}
	if *from == "" || *to == "" {
		fs.Usage()
		return errors.New("migrate: give the SQLite data directory with --from DIR and the PostgreSQL database with --to URL")
	}
	if *batch < 1 || *batch > 100000 {
		return fmt.Errorf("migrate: --batch %d must be between 1 and 100000", *batch)
	}
	cfg := DefaultConfig()
	cfg.Data, cfg.KeyFile, cfg.Store = *from, *keyFile, *to
	if errs := cfg.validateStore(); len(errs) > 0 {
		return errors.Join(errs...)
	}
	if _, err := os.Stat(cfg.Data + "/" + sqlite.FileName); err != nil {
		return fmt.Errorf("migrate: %s holds no chatvault database (%s): %w", cfg.Data, sqlite.FileName, err)
	}
	if v, ok := os.LookupEnv("CHATVAULT_ALLOW_SHARED_DATA_DIR"); ok {
		allow, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("CHATVAULT_ALLOW_SHARED_DATA_DIR: %q is not true or false", v)
		}
		cfg.AllowSharedDataDir = allow
	}
	// Exclusive while copying, so the copy is of one moment and nothing written after it is lost.
	lock, err := lockDataDir(cfg, "migrate", datadir.Exclusive)
	if err != nil {
		return err
	}
	defer lock.Release()
	logger := newLogger(cfg.Log, stderr)

	kr, err := migrationKeyring(cfg)
	if err != nil {
		return err
	}
	target, err := postgres.OpenCopyTarget(ctx, cfg.Store)
	if err != nil {
		return fmt.Errorf("open the PostgreSQL target: %w", err)
	}
	defer target.Close()
	rep, err := migrate.Run(ctx, migrate.Options{From: cfg.Data, KeysPath: sqlite.KeysPath(cfg.Data), Target: target, Batch: *batch,
		Logf: func(format string, args ...any) { fmt.Fprintf(stderr, "migrate: "+format+"\n", args...) }})
	if rep != nil && rep.Verified {
		writeMigrateReport(stdout, rep)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("migrate stopped (%d rows copied by this run); run it again with the same arguments to resume: %w", repCopied(rep), err)
		}
		return err
	}
	target.Close()
	if rep.Complete {
		fmt.Fprintf(stdout, "%s already holds a finished, verified copy of %s: nothing to do\n", redactURL(cfg.Store), cfg.Data)
		return nil
	}
	// Open it as the server will: the store checks the copied data keys against the KEK, and
	// builds its search index over the copied messages.
	fmt.Fprintln(stderr, "migrate: opening the copy as the server will (checks the keys, builds the search index)")
	check, err := postgres.Open(ctx, cfg.Store, postgres.Options{Keyring: kr, Logger: logger})
	if err != nil {
		return fmt.Errorf("the copy is complete but does not open with these keys: %w", err)
	}
	check.Close()
	fmt.Fprintf(stdout, "migrated %s to %s: %d rows copied by this run in %s; every table matches.\nServe it with: chatvault serve --data %s --store '%s'\n",
		cfg.Data, redactURL(cfg.Store), rep.Copied, rep.Elapsed.Round(time.Millisecond), cfg.Data, redactURL(cfg.Store))
	return nil
}

// migrationKeyring is the keyring of the source: the configured provider when the environment
// names one or the key file exists; nil for a store that was never encrypted. Unlike serve, it
// never creates a key file.
func migrationKeyring(cfg Config) (*keyring.Keyring, error) {
	if !keyring.EnvConfigured(os.Getenv) {
		if _, err := os.Stat(cfg.keyFile()); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	}
	return openKeyring(cfg)
}

func repCopied(rep *migrate.Report) int64 {
	if rep == nil {
		return 0
	}
	return rep.Copied
}

func writeMigrateReport(w io.Writer, rep *migrate.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tSQLITE ROWS\tPOSTGRES ROWS\tSQLITE CHECKSUM\tPOSTGRES CHECKSUM\tCOPIED NOW\t")
	for _, t := range rep.Tables {
		if t.Skipped != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\tnot copied: %s\n", t.Table, t.Skipped)
			continue
		}
		status := "ok"
		if !t.Match() {
			status = "DIFFERENT"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%d\t%s\n", t.Table, t.SourceRows, t.TargetRows, t.SourceSum, t.TargetSum, t.CopiedNow, status)
	}
	tw.Flush()
}

// redactURL hides a password in a store URL for printing.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(store URL)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
