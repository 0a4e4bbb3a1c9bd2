package main

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/chatvault/chatvault/internal/datadir"
)

func TestStoreConfig(t *testing.T) {
	t.Setenv("CHATVAULT_STORE", "")
	os.Unsetenv("CHATVAULT_STORE")
	cfg, err := resolveWith(t, nil, nil)
	if err != nil || cfg.Store != "" || cfg.storeKind() != "sqlite" {
		t.Fatalf("default store = %q (%s), %v; want empty: SQLite in the data directory", cfg.Store, cfg.storeKind(), err)
	}
	const pg = "postgres://chatvault:secret@db.example:5432/chatvault"
	file := writeFile(t, "store: postgres://file@db.example/chatvault\n")
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"file", []string{"--config", file}, nil, "postgres://file@db.example/chatvault"},
		{"env over file", []string{"--config", file}, map[string]string{"CHATVAULT_STORE": pg}, pg},
		{"flag over env", []string{"--store", "postgresql://flag@db/x"}, map[string]string{"CHATVAULT_STORE": pg}, "postgresql://flag@db/x"},
	} {
		cfg, err := resolveWith(t, tc.args, tc.env)
		if err != nil || cfg.Store != tc.want || cfg.storeKind() != "postgres" {
			t.Errorf("%s: store = %q, %v; want %q", tc.name, cfg.Store, err, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"not a URL", []string{"--store", "host=db dbname=x"}, "store: not a PostgreSQL URL"},
		{"wrong scheme", []string{"--store", "mysql://db/x"}, "--store or CHATVAULT_STORE"},
		{"backups", []string{"--store", pg, "--config", writeFile(t, "backup:\n  targets: [{type: dir, path: /tmp/x}]\n  recipients: [age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq]\n")}, "pg_basebackup"},
	} {
		_, err := resolveWith(t, tc.args, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v; want one mentioning %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error %q shows the password", tc.name, err)
		}
	}
}

// Commands that work on the SQLite data directory refuse a PostgreSQL store rather than quietly
// using (or creating) an SQLite store in --data.
func TestSQLiteOnlyCommandsRefusePostgres(t *testing.T) {
	dir := t.TempDir()
	const pg = "postgres://chatvault@127.0.0.1:1/chatvault"
	for _, args := range [][]string{
		{"backup", "list"},
		{"backup", "create"},
		{"restore", "some-id", "--identity", "x"},
		{"keys", "status"},
		{"keys", "rotate"},
		{"admin", "list-orgs"},
		{"retention", "run"},
	} {
		err := run(context.Background(), append(args, "--data", dir, "--store", pg), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "PostgreSQL") {
			t.Errorf("chatvault %s with --store = %v; want a refusal naming PostgreSQL", strings.Join(args, " "), err)
		}
	}
	// The lock file is all they may leave: the commands that do support PostgreSQL (admin,
	// retention) take the directory's lock before they try the store.
	if entries, _ := os.ReadDir(dir); len(entries) > 1 || len(entries) == 1 && entries[0].Name() != datadir.LockFile {
		t.Errorf("refused commands left %v in the data directory; want at most %s", entries, datadir.LockFile)
	}
	if err := run(context.Background(), []string{"keys", "generate", "--store", pg}, io.Discard, io.Discard); err != nil {
		t.Errorf("keys generate with --store = %v; want it to work (it opens nothing)", err)
	}
}
