package main

import (
	"context"
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
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/chatvault/chatvault/internal/backup"
	"github.com/chatvault/chatvault/internal/datadir"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/postgres"
	"github.com/chatvault/chatvault/internal/sqlite"
)

// chatvault doctor checks what a server needs and says how to fix what is wrong. It only reads,
// so it runs beside a server: it takes the data directory's lock in shared mode when it can, and
// when serve holds the lock, it reads anyway (SQLite's own locks make a reader safe beside the
// writer); a command that replaces files (restore, keys rotate) holding it stops the store checks.

// Doctor check outcomes.
const (
	checkOK   = "ok"
	checkWarn = "warn" // works today, needs attention
	checkFail = "fail" // a server would refuse to start or lose its guarantees
	checkSkip = "skip" // does not apply to this configuration
)

// Thresholds of the checks, the same as deploy/prometheus alert rules where both exist.
const (
	diskWarnPercent   = 85
	diskFailPercent   = 95
	backupMaxAge      = 48 * time.Hour // backup not verified in 2 days
	skewWarn          = 2 * time.Second
	skewFail          = 30 * time.Second
	doctorPerCheckMax = 30 * time.Second
)

// doctorCheck is one line of the report.
type doctorCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

type doctorReport struct {
	OK     bool          `json:"ok"`
	Checks []doctorCheck `json:"checks"`
}

func (r *doctorReport) add(name, status, detail, fix string) {
	r.Checks = append(r.Checks, doctorCheck{Name: name, Status: status, Detail: detail, Fix: fix})
}

const doctorUsage = `Usage: chatvault doctor [--json] [serve's flags]

Checks the configuration, file permissions, free disk, the keys, the schema version, the integrity
of the SQLite files, the backup targets and the last verification, and (with PostgreSQL) the clock
against the database. Give it the same --config, flags and environment as serve. It only reads, and
runs while a server runs. Exit status 0 when nothing failed (warnings included), else 2.
`

// errDoctorFailed makes the exit status non-zero once the report has said what failed.
var errDoctorFailed = errors.New("doctor found problems")

func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, doctorUsage); fs.PrintDefaults() }
	cf := addConfigFlags(fs, true)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	rep := &doctorReport{}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("doctor takes no arguments, got %q", fs.Args())
	}
	// A configuration that does not load is the first finding, not a usage error.
	cfg, err := cf.resolve()
	if err != nil {
		rep.add("config", checkFail, err.Error(), "correct the settings named above in the config file, environment (CHATVAULT_*) or flags")
	} else {
		rep.add("config", checkOK, configSource(cf), "")
		doctorChecks(ctx, cfg, rep)
	}
	rep.OK = true
	for _, c := range rep.Checks {
		if c.Status == checkFail {
			rep.OK = false
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printDoctor(stdout, rep)
	}
	if !rep.OK {
		return errDoctorFailed
	}
	return nil
}

func configSource(cf *configFlags) string {
	path := *cf.config
	if path == "" {
		path = os.Getenv("CHATVAULT_CONFIG")
	}
	if path == "" {
		return "valid (defaults, environment and flags; no config file)"
	}
	return "valid: " + path
}

func printDoctor(w io.Writer, rep *doctorReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range rep.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", strings.ToUpper(c.Status), c.Name, c.Detail)
		if c.Fix != "" {
			fmt.Fprintf(tw, "\t\tfix: %s\n", c.Fix)
		}
	}
	tw.Flush()
	failed, warned := 0, 0
	for _, c := range rep.Checks {
		switch c.Status {
		case checkFail:
			failed++
		case checkWarn:
			warned++
		}
	}
	fmt.Fprintf(w, "\n%d checks: %d failed, %d warnings\n", len(rep.Checks), failed, warned)
}

// doctorChecks runs every check of a valid configuration.
func doctorChecks(ctx context.Context, cfg Config, rep *doctorReport) {
	st, err := os.Stat(cfg.Data)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !cfg.postgresStore():
		rep.add("data directory", checkFail, cfg.Data+" does not exist",
			"check --data (CHATVAULT_DATA); a new server creates it on its first start (chatvault serve)")
		return
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		rep.add("data directory", checkFail, err.Error(), "make the data directory readable by the user chatvault runs as")
		return
	case err == nil && !st.IsDir():
		rep.add("data directory", checkFail, cfg.Data+" is not a directory", "point --data (CHATVAULT_DATA) at a directory")
		return
	}
	checkPermissions(cfg, rep)
	storeChecks := true
	if err == nil {
		lock, err := datadir.Acquire(cfg.Data, datadir.Shared, "doctor")
		var held *datadir.HeldError
		switch {
		case err == nil:
			defer lock.Release()
			rep.add("lock", checkOK, "no server is running on "+cfg.Data, "")
		case errors.As(err, &held) && held.Command == "serve":
			rep.add("lock", checkOK, fmt.Sprintf("a server is running (pid %d); its files are checked read-only", held.PID), "")
		case errors.As(err, &held):
			rep.add("lock", checkWarn, err.Error(), "run chatvault doctor again once it has finished: the store was not checked")
			storeChecks = false
		default:
			rep.add("lock", checkFail, err.Error(), "make the data directory writable by the user chatvault runs as")
			storeChecks = false
		}
		checkDisk(cfg.Data, rep)
	}
	kr := checkKeys(ctx, cfg, rep)
	if !storeChecks {
		return
	}
	if cfg.postgresStore() {
		checkPostgres(ctx, cfg, rep)
	} else {
		checkSQLite(ctx, cfg, kr, rep)
	}
	checkBackups(ctx, cfg, rep)
}

// checkPermissions is serve's refusal of shared paths (lockDataDir), reported instead of refused.
func checkPermissions(cfg Config, rep *doctorReport) {
	paths := [][2]string{{"data directory", cfg.Data}, {"keys directory", filepath.Join(cfg.Data, sqlite.KeysDir)},
		{"database", filepath.Join(cfg.Data, sqlite.FileName)}, {"keys database", sqlite.KeysPath(cfg.Data)}}
	if !keyring.EnvConfigured(os.Getenv) {
		paths = append(paths, [2]string{"key file", cfg.keyFile()})
	}
	var problems, fixes []string
	for _, p := range paths {
		if err := datadir.CheckPrivate(p[0], p[1]); err != nil {
			var shared *datadir.SharedError
			if errors.As(err, &shared) {
				problems = append(problems, fmt.Sprintf("%s %s has mode %#o", shared.What, shared.Path, shared.Mode))
				fixes = append(fixes, fmt.Sprintf("chmod %o %s", shared.Want, shared.Path))
				continue
			}
			problems = append(problems, err.Error())
		}
	}
	switch {
	case len(problems) == 0:
		rep.add("permissions", checkOK, "data directory, keys and databases are private to their owner", "")
	case cfg.AllowSharedDataDir:
		rep.add("permissions", checkWarn, strings.Join(problems, "; ")+" (allowed: allow_shared_data_dir)",
			strings.Join(fixes, "; ")+", unless sharing is intended")
	default:
		rep.add("permissions", checkFail, strings.Join(problems, "; ")+": serve refuses to start",
			strings.Join(fixes, "; ")+" (or set allow_shared_data_dir: true if sharing is intended)")
	}
}

func checkDisk(dir string, rep *doctorReport) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		rep.add("disk", checkWarn, fmt.Sprintf("cannot read the free space of %s: %v", dir, err), "")
		return
	}
	total, free := int64(st.Blocks)*st.Bsize, int64(st.Bavail)*st.Bsize
	if total <= 0 {
		rep.add("disk", checkSkip, "the file system of "+dir+" reports no size", "")
		return
	}
	used := 100 - int(free*100/total)
	detail := fmt.Sprintf("%d%% of the file system of %s used, %s free", used, dir, humanBytes(free))
	fix := "free space or grow the file system: when it is full, sends fail with 507 until space returns"
	switch {
	case used >= diskFailPercent:
		rep.add("disk", checkFail, detail, fix)
	case used >= diskWarnPercent:
		rep.add("disk", checkWarn, detail, fix)
	default:
		rep.add("disk", checkOK, detail, "")
	}
}

// checkKeys opens the key provider as serve does; the keyring is nil when it cannot be opened.
func checkKeys(ctx context.Context, cfg Config, rep *doctorReport) *keyring.Keyring {
	kr, err := openKeyring(cfg)
	if err != nil {
		rep.add("keys", checkFail, err.Error(), "restore the key file from your key backup, or set CHATVAULT_KEK to the key the data was made with")
		return nil
	}
	keks, err := kr.Provider().KEKs(ctx)
	if err != nil {
		rep.add("keys", checkFail, fmt.Sprintf("%s: %v", kr.Provider(), err), "restore the key file from your key backup")
		return nil
	}
	primary := ""
	for _, k := range keks {
		if k.Primary {
			primary = k.ID
		}
	}
	switch {
	case len(keks) == 0:
		rep.add("keys", checkOK, fmt.Sprintf("%s holds no key yet: serve makes one on its first start", kr.Provider()), "")
	case primary == "":
		rep.add("keys", checkFail, fmt.Sprintf("%s has no key-encryption key that is not retired", kr.Provider()), "run chatvault keys rotate")
	default:
		rep.add("keys", checkOK, fmt.Sprintf("%s: %d key-encryption keys, primary %s", kr.Provider(), len(keks), primary), "")
	}
	return kr
}

const restoreFix = "stop the server, move the data directory aside, and restore the latest verified backup: " +
	"chatvault restore ID --data NEW_DIR --identity FILE (docs/operations.md, Faults and recovery)"

func checkSQLite(ctx context.Context, cfg Config, kr *keyring.Keyring, rep *doctorReport) {
	ctx, cancel := context.WithTimeout(ctx, 10*doctorPerCheckMax)
	defer cancel()
	in, err := sqlite.Inspect(ctx, cfg.Data)
	if err != nil {
		rep.add("integrity", checkFail, err.Error(), restoreFix)
		return
	}
	if !in.Data.Exists {
		rep.add("schema", checkOK, "no database yet: serve creates it on its first start", "")
		return
	}
	rep.schema(in.SchemaVersion, in.Want, "take a backup (chatvault backup create) before the first start of the new version")
	damaged := false
	for _, f := range []sqlite.FileInfo{in.Data, in.Keys} {
		if len(f.Problems) > 0 {
			damaged = true
			rep.add("integrity", checkFail, fmt.Sprintf("%s is damaged: %s", f.Path, strings.Join(f.Problems, "; ")), restoreFix)
		}
	}
	if !damaged {
		detail := fmt.Sprintf("quick_check ok: %s %s (WAL %s)", in.Data.Path, humanBytes(in.Data.Bytes), humanBytes(in.Data.WALBytes))
		if in.Keys.Exists {
			detail += fmt.Sprintf(", %s %s", in.Keys.Path, humanBytes(in.Keys.Bytes))
		}
		rep.add("integrity", checkOK, detail, "")
	}
	if kr == nil || damaged {
		return
	}
	// The keys open the data: the check serve makes at start (sqlstore.SetEncryption), one
	// wrapped key per KEK.
	if !in.Keys.Exists && in.LiveKeys > 0 {
		rep.add("data keys", checkFail, fmt.Sprintf("the keys database %s is missing, and the data uses %d data keys", in.Keys.Path, in.LiveKeys),
			"restore the keys database from your key backup")
		return
	}
	total := 0
	for _, s := range in.Samples {
		total += s.N
		if _, err := kr.Unwrap(ctx, s.ID, s.KEK, s.Wrapped); err != nil {
			rep.add("data keys", checkFail, fmt.Sprintf("cannot open the %d data keys wrapped by KEK %s with %s: %v", s.N, s.KEK, kr.Provider(), err),
				"use the key file (or CHATVAULT_KEK) this data was made with: restore it from your key backup")
			return
		}
	}
	rep.add("data keys", checkOK, fmt.Sprintf("%d data keys under %d key-encryption keys open with %s", total, len(in.Samples), kr.Provider()), "")
}

func checkPostgres(ctx context.Context, cfg Config, rep *doctorReport) {
	ctx, cancel := context.WithTimeout(ctx, doctorPerCheckMax)
	defer cancel()
	in, err := postgres.Inspect(ctx, cfg.Store)
	if err != nil {
		rep.add("database", checkFail, "PostgreSQL: "+err.Error(), "check store (CHATVAULT_STORE): host, port, user, password and sslmode, and that the server runs")
		return
	}
	rep.add("database", checkOK, fmt.Sprintf("PostgreSQL reachable, %s", humanBytes(in.Bytes)), "")
	rep.schema(in.SchemaVersion, in.Want, "back PostgreSQL up before the first start of the new version")
	skew := in.Skew.Abs()
	detail := fmt.Sprintf("the database's clock is %s %s this machine's (±%s)", skew.Round(time.Millisecond), aheadBehind(in.Skew),
		(in.RoundTrip / 2).Round(time.Microsecond))
	fix := "run time synchronisation (chrony, systemd-timesyncd) on this machine and the database's: retention, " +
		"recall windows and sessions compare times written by both"
	switch {
	case skew-in.RoundTrip/2 > skewFail:
		rep.add("clock", checkFail, detail, fix)
	case skew-in.RoundTrip/2 > skewWarn:
		rep.add("clock", checkWarn, detail, fix)
	default:
		rep.add("clock", checkOK, detail, "")
	}
}

func aheadBehind(d time.Duration) string {
	if d < 0 {
		return "behind"
	}
	return "ahead of"
}

// checkBackups lists every target (reachable, and the newest backup) and reads the record of the
// last verification.
func checkBackups(ctx context.Context, cfg Config, rep *doctorReport) {
	if !cfg.Backup.Enabled() {
		if cfg.postgresStore() {
			rep.add("backups", checkSkip, "PostgreSQL is backed up with its own tools (docs/scaling.md)", "")
		} else {
			rep.add("backups", checkWarn, "no backup targets are configured", "add a backup section with targets and recipients (docs/operations.md, Backups)")
		}
		return
	}
	logger := slog.New(slog.DiscardHandler)
	job, err := newBackupJob(cfg, nil, logger)
	if err != nil {
		rep.add("backups", checkFail, err.Error(), "correct the backup section of the configuration")
		return
	}
	reachable := 0
	for i, t := range job.Targets {
		tctx, cancel := context.WithTimeout(ctx, doctorPerCheckMax)
		_, err := t.List(tctx, backup.KindData+"/")
		cancel()
		if err != nil {
			rep.add(fmt.Sprintf("backup target %d", i), checkFail, fmt.Sprintf("%s: %v", t, err),
				"check the target's path or endpoint, bucket and credentials, and that chatvault may write there")
			continue
		}
		reachable++
		rep.add(fmt.Sprintf("backup target %d", i), checkOK, t.String()+" reachable", "")
	}
	if reachable > 0 {
		lctx, cancel := context.WithTimeout(ctx, doctorPerCheckMax)
		entries, err := job.List(lctx, backup.KindData)
		cancel()
		var newest *backup.Entry
		for _, e := range entries {
			if newest == nil || e.Manifest.CreatedAt.After(newest.Manifest.CreatedAt) {
				newest = e
			}
		}
		switch {
		case err != nil:
			rep.add("last backup", checkFail, err.Error(), "see chatvault backup list")
		case newest == nil:
			rep.add("last backup", checkWarn, "no backup on the targets yet", "take one: chatvault backup create (or wait for backup.schedule)")
		case time.Since(newest.Manifest.CreatedAt) > backupMaxAge:
			rep.add("last backup", checkWarn, fmt.Sprintf("%s, %s ago", newest.Manifest.ID, time.Since(newest.Manifest.CreatedAt).Round(time.Minute)),
				"check the server's log for backup errors, or take one: chatvault backup create")
		default:
			rep.add("last backup", checkOK, fmt.Sprintf("%s, %s ago", newest.Manifest.ID, time.Since(newest.Manifest.CreatedAt).Round(time.Minute)), "")
		}
	}
	rec, err := backup.ReadVerifyRecord(verifyStatePath(cfg))
	verifyFix := "verify the latest backup: chatvault backup verify ID --identity FILE (the server does after each scheduled backup with backup.verify)"
	switch {
	case err != nil:
		rep.add("last verify", checkWarn, err.Error(), verifyFix)
	case rec == nil:
		rep.add("last verify", checkWarn, "no verification recorded in this data directory", verifyFix)
	case !rec.OK:
		rep.add("last verify", checkFail, fmt.Sprintf("backup %s failed verification at %s: %s", rec.ID, rec.At.Format(time.RFC3339), rec.Error),
			"take a new backup (chatvault backup create) and verify it; see docs/operations.md, Backups")
	case time.Since(rec.At) > backupMaxAge:
		rep.add("last verify", checkWarn, fmt.Sprintf("backup %s verified %s ago", rec.ID, time.Since(rec.At).Round(time.Minute)), verifyFix)
	default:
		how := "stored copies compared"
		if rec.Full {
			how = "restored and checked"
		}
		rep.add("last verify", checkOK, fmt.Sprintf("backup %s verified %s ago (%s)", rec.ID, time.Since(rec.At).Round(time.Minute), how), "")
	}
}

// schema reports the store's schema version against the one this binary migrates to; backUp says
// how to keep a copy before an upgrade migrates it.
func (r *doctorReport) schema(have, want int, backUp string) {
	switch {
	case have > want:
		r.add("schema", checkFail, fmt.Sprintf("version %d, newer than this chatvault knows (%d)", have, want),
			"run the chatvault release that wrote it, or a newer one")
	case have < want:
		r.add("schema", checkWarn, fmt.Sprintf("version %d; this chatvault migrates it to %d when serve starts", have, want), backUp)
	default:
		r.add("schema", checkOK, fmt.Sprintf("version %d (current)", have), "")
	}
}
