package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/chatvault/chatvault/internal/datadir"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/sqlite"
)

// Every command that opens the data directory takes its lock first (docs/operations.md, "One
// process per data directory"):
//
//	serve                                  exclusive (also with a PostgreSQL store: the directory
//	                                       holds the key file, the TLS files, the first password)
//	admin create-org, reset-password,      exclusive: opening the store may write (schema upgrade,
//	  list-orgs                            search backlog), so no opener is a pure reader
//	keys rotate, keys retire               exclusive
//	keys status                            shared: reads the key file and keys database only
//	backup create                          exclusive: snapshots the store and advances the journal
//	backup verify                          shared: works in its own temporary directory
//	backup list, backup prune              none: they read and delete on the targets only
//	restore (into --data)                  exclusive, with or without --force
//	retention run (also --dry-run)         exclusive
//	migrate --from DIR                     exclusive on DIR while copying
//	export                                 exclusive: it opens the store as serve does
//	bench                                  none: it makes and removes its own directories

// lockDataDir refuses a data directory, keys directory or key file that other users can reach
// (unless allow_shared_data_dir is set), then takes the data directory's lock for command.
func lockDataDir(cfg Config, command string, mode datadir.Mode) (*datadir.Lock, error) {
	if !cfg.AllowSharedDataDir {
		checks := [][2]string{{"data directory", cfg.Data}, {"keys directory", filepath.Join(cfg.Data, sqlite.KeysDir)}}
		if !keyring.EnvConfigured(os.Getenv) {
			if dir := filepath.Dir(cfg.keyFile()); filepath.Clean(dir) != filepath.Clean(checks[1][1]) {
				checks = append(checks, [2]string{"key directory", dir})
			}
			checks = append(checks, [2]string{"key file", cfg.keyFile()})
		}
		for _, c := range checks {
			if err := datadir.CheckPrivate(c[0], c[1]); err != nil {
				return nil, err
			}
		}
	}
	lock, err := datadir.Acquire(cfg.Data, mode, command)
	var held *datadir.HeldError
	if errors.As(err, &held) && held.Command == "serve" {
		if hint := whileServing(command); hint != "" {
			return nil, fmt.Errorf("%s: %w (%s)", command, err, hint)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", command, err)
	}
	return lock, nil
}

// whileServing says how to get what command does while a server holds the directory.
func whileServing(command string) string {
	switch command {
	case "serve":
		return "give each server its own data directory"
	case "retention run":
		return "the server runs retention on its schedule; POST /api/v1/admin/retention/run runs it now"
	case "admin reset-password":
		return "or POST /api/v1/admin/users/{user_id}/password"
	case "backup create":
		return "the server takes backups on its schedule, backup.schedule"
	case "export":
		return "the server exports through POST /api/v1/exports"
	case "keys rotate", "keys retire":
		return "stop the server, then run it, then start the server again"
	}
	return ""
}

// mustHold is the guard in front of every opening of the data directory's store: a command that
// forgot its lock fails in its first test rather than racing a server in production.
func mustHold(lock *datadir.Lock, dir string) error {
	if lock == nil || filepath.Clean(lock.Dir()) != filepath.Clean(dir) {
		return fmt.Errorf("internal error: %s opened without its lock (lockDataDir)", dir)
	}
	return nil
}
