// Command chatvault is the chat-history server and its operator tools, in one binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
)

const usage = `chatvault: a chat-history server

Usage:
  chatvault serve [flags]     run the server (default: ./chatvault-data, 127.0.0.1:8080)
  chatvault admin COMMAND     manage orgs and users without the API (create-org, list-orgs, reset-password)
  chatvault bench SCENARIO    benchmark with generated data (gen, ingest, history, sync, fanout, purge, backup, search, export, postgres); see docs/benchmarks.md
  chatvault keys COMMAND      encryption keys: status, rotate, retire, generate
  chatvault backup COMMAND    backups: create, list, verify ID, prune
  chatvault restore ID        restore a backup into a new data directory (--data DIR --identity FILE)
  chatvault retention run     run the retention job now in every org ([--dry-run] [--json])
  chatvault export            export chat records as CSV, XLSX, JSONL or HTML (--as USER --format F --out FILE)
  chatvault migrate           copy an SQLite data directory into PostgreSQL (--from DIR --to URL)
  chatvault doctor            check configuration, permissions, disk, keys, database, backups ([--json])
  chatvault version           print the version

Run "chatvault COMMAND -h" for a command's flags.
`

func main() {
	// Everything chatvault creates is private to its user whatever umask the shell or service
	// manager set; the stores also set their files' modes themselves (docs/decisions.md).
	syscall.Umask(0o077)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			// -h after a command's flags: the usage was asked for, and printed (exit 0, as the
			// flag package's own -h does); a bare "chatvault admin" is a usage error (exit 2).
			if slices.ContainsFunc(os.Args[1:], isHelp) {
				os.Exit(0)
			}
		} else {
			fmt.Fprintln(os.Stderr, "chatvault:", err)
		}
		os.Exit(2)
	}
}

// isHelp reports whether a command-line word asks for usage.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// run dispatches on the first argument.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stderr)
	case "admin":
		return runAdmin(ctx, args[1:], stdout, stderr)
	case "keys":
		return runKeys(ctx, args[1:], stdout, stderr)
	case "backup":
		return runBackup(ctx, args[1:], stdout, stderr)
	case "restore":
		return runRestore(ctx, args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "retention":
		return runRetention(ctx, args[1:], stdout, stderr)
	case "migrate":
		return runMigrate(ctx, args[1:], stdout, stderr)
	case "export":
		return runExport(ctx, args[1:], stdout, stderr)
	case "doctor":
		return runDoctor(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "chatvault", version())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}
