package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/clocktest"
)

// backupSetup makes a data directory with a few messages, an age identity, a real S3 server
// (gofakes3, in process) and a config file with a dir and an s3 target. It returns the data
// directory, the config file, the identity file and the dir target.
func backupSetup(t *testing.T, extra string) (dir, cfgFile, idFile, target string) {
	t.Helper()
	t.Setenv("CHATVAULT_KEK", "")
	t.Setenv("CHATVAULT_KEK_FILE", "")
	dir = t.TempDir()
	_, _, stop := serveInProcess(t, dir)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		storeAMessage(t, dir)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile = filepath.Join(t.TempDir(), "backup-identity.txt")
	if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	be := s3mem.New()
	if err := be.CreateBucket("chatvault-backups"); err != nil {
		t.Fatal(err)
	}
	s3 := httptest.NewServer(gofakes3.New(be).Server())
	t.Cleanup(s3.Close)
	t.Setenv("BACKUP_S3_ACCESS", "access")
	t.Setenv("BACKUP_S3_SECRET", "secret")
	target = t.TempDir()
	// The operator pins the data directory's signing key, so restores elsewhere verify against it.
	pub, err := runCmd(t, "backup", "key", "--data", dir)
	if err != nil {
		t.Fatalf("backup key = %v\n%s", err, pub)
	}
	pin := regexp.MustCompile(`chatvault-ed25519:\S+`).FindString(pub)
	cfgFile = filepath.Join(t.TempDir(), "chatvault.yaml")
	yaml := fmt.Sprintf(`backup:
  manifest_public_key: %s
  recipients: [%s]
  targets:
    - {type: dir, path: %s}
    - {type: s3, endpoint: %s, bucket: chatvault-backups, prefix: prod, region: us-east-1, access_key_env: BACKUP_S3_ACCESS, secret_key_env: BACKUP_S3_SECRET}
  keep: {daily: 7, weekly: 4, monthly: 6}
  keys_keep_days: 14
%s`, pin, id.Recipient(), target, s3.URL, extra)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, cfgFile, idFile, target
}

func TestBackupCommands(t *testing.T) {
	dir, cfgFile, idFile, _ := backupSetup(t, "")
	out, err := runCmd(t, "backup", "create", "--config", cfgFile, "--data", dir)
	if err != nil || !strings.Contains(out, "stored on 2 of 2 targets") || !strings.Contains(out, "integrity ok") {
		t.Fatalf("backup create = %v\n%s", err, out)
	}
	id := regexp.MustCompile(`backup (\S+):`).FindStringSubmatch(out)[1]
	out, err = runCmd(t, "backup", "list", "--config", cfgFile, "--data", dir)
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "s3://chatvault-backups/prod/") {
		t.Fatalf("backup list = %v\n%s", err, out)
	}
	out, err = runCmd(t, "backup", "verify", id, "--config", cfgFile, "--data", dir, "--identity", idFile)
	if err != nil || !strings.Contains(out, "verified") || !strings.Contains(out, "integrity ok") {
		t.Fatalf("backup verify = %v\n%s", err, out)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	out, err = runCmd(t, "restore", id, "--data", restored, "--identity", idFile, "--config", cfgFile)
	if err != nil || !strings.Contains(out, "integrity ok; 3 messages") {
		t.Fatalf("restore = %v\n%s", err, out)
	}
	// The restored directory is a working data directory: the server starts on it.
	db, done := openLocked(t, restored)
	orgs, _ := db.FindOrgs(context.Background())
	done()
	if len(orgs) != 1 {
		t.Fatalf("restored orgs = %d; want 1", len(orgs))
	}
	if out, err := runCmd(t, "restore", id, "--data", restored, "--identity", idFile, "--config", cfgFile); err == nil || !strings.Contains(out+err.Error(), "--force") {
		t.Fatalf("restore over a data directory = %v\n%s; want a refusal naming --force", err, out)
	}
	if out, err := runCmd(t, "restore", id, "--data", restored, "--identity", idFile, "--config", cfgFile, "--force"); err != nil {
		t.Fatalf("restore --force = %v\n%s", err, out)
	}
	if out, err := runCmd(t, "backup", "prune", "--config", cfgFile, "--data", dir); err != nil || !strings.Contains(out, "kept 1") {
		t.Fatalf("backup prune = %v\n%s", err, out)
	}
	if _, err := runCmd(t, "restore", id, "--data", t.TempDir()); err == nil || !strings.Contains(err.Error(), "--identity") {
		t.Fatalf("restore without --identity = %v", err)
	}
}

func TestBackupConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"backup:\n  targets: [{type: dir, path: /tmp/x}]\n", "backup.recipients: list at least one"},
		{"backup:\n  recipients: [nope]\n  targets: [{type: dir, path: /tmp/x}]\n", `backup.recipients: [0] "nope" is not an age public key`},
		{"backup:\n  schedule: every day\n", "backup.schedule"},
		{"backup:\n  targets: [{type: ftp}]\n", "backup.targets[0].type"},
		{"backup:\n  targets: [{type: s3, bucket: b, access_key_env: A, secret_key_env: 's3cr3t!'}]\n", "backup.targets[0].endpoint"},
		{"backup:\n  targets: [{type: s3, endpoint: e, bucket: b, access_key_env: A, secret_key_env: 's3cr3t!'}]\n", "backup.targets[0].secret_key_env"},
		{"backup:\n  keep: {daily: 0, weekly: 0, monthly: 0}\n", "backup.keep: keep at least one"},
		{"backup:\n  keys_keep_days: 0\n", "backup.keys_keep_days"},
		{"backup:\n  tragets: []\n", "field tragets not found"},
	} {
		f := filepath.Join(t.TempDir(), "c.yaml")
		os.WriteFile(f, []byte(tc.yaml), 0o600)
		_, err := runCmd(t, "backup", "list", "--config", f, "--data", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %q: error %v; want it to contain %q", tc.yaml, err, tc.want)
		}
	}
}

// TestScheduledBackupInServer: a server with a schedule takes backups on its own and verifies them
// (in full, with identity_file), and they land on both targets.
func TestScheduledBackupInServer(t *testing.T) {
	dir, cfgFile, idFile, target := backupSetup(t, "")
	raw, _ := os.ReadFile(cfgFile)
	os.WriteFile(cfgFile, []byte(strings.Replace(string(raw), "backup:\n", fmt.Sprintf("backup:\n  schedule: '@every 1s'\n  identity_file: %s\n", idFile), 1)), 0o600)
	t.Setenv("CHATVAULT_CONFIG", cfgFile)
	_, logs, stop := serveInProcess(t, dir)
	clocktest.Poll(t, "a verified backup", func() error {
		if !strings.Contains(logs.String(), "backup verified") {
			return fmt.Errorf("none yet:\n%s", logs)
		}
		return nil
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("errors in the log:\n%s", logs)
	}
	ms, _ := filepath.Glob(filepath.Join(target, "data", "*", "manifest.json"))
	if len(ms) == 0 {
		t.Fatalf("no backup in the dir target")
	}
	if backupMetrics.Verifies.Load() == 0 || backupMetrics.LastSuccess.Load() == 0 {
		t.Errorf("metrics: %d verifies, last success %d", backupMetrics.Verifies.Load(), backupMetrics.LastSuccess.Load())
	}
	// Each target's upload time of the last data backup: the dir target and an S3 one (the
	// metrics are the process's, so other tests' targets are there too).
	ups := backupMetrics.Uploads()
	s3 := false
	for name, took := range ups {
		s3 = s3 || strings.HasPrefix(name, "s3://chatvault-backups/prod/") && took > 0
	}
	if ups["dir:"+target] <= 0 || !s3 {
		t.Errorf("upload times = %v; want one for dir:%s and one for the S3 target", ups, target)
	}
	var sb strings.Builder
	backupMetrics.WritePrometheus(&sb)
	if !strings.Contains(sb.String(), "chatvault_backups_total ") {
		t.Errorf("WritePrometheus() = %s", sb.String())
	}
	_ = chatvault.SystemClock{}
}
