package main

import (
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/chatvault/chatvault/internal/backup"
	"github.com/chatvault/chatvault/internal/datadir"
	"github.com/chatvault/chatvault/internal/sqlite"
)

// openLocked opens dir's store as a command does, holding the directory's lock until done.
func openLocked(t testing.TB, dir string) (db *sqlite.DB, done func()) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Data = dir
	lock, err := lockDataDir(cfg, "test", datadir.Exclusive)
	if err != nil {
		t.Fatalf("lockDataDir(%s) = %v", dir, err)
	}
	db, err = openStore(cfg, lock)
	if err != nil {
		lock.Release()
		t.Fatalf("openStore(%s) = %v", dir, err)
	}
	return db, func() { db.Close(); lock.Release() }
}

// runBinary runs the chatvault binary with args and returns its combined output.
func runBinary(t *testing.T, bin string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(withoutChatvaultEnv(os.Environ()), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// stopServer ends a server the way an operator does (SIGTERM) and waits for it to exit.
func stopServer(t *testing.T, p *serverProc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	<-p.exited
	p.client.CloseIdleConnections()
	if p.exitErr != nil {
		t.Fatalf("server exit after SIGTERM = %v\n%s", p.exitErr, p.tail(20))
	}
}

// waitExit waits for a server that should refuse to start, and fails the test if it starts instead.
func waitExit(t *testing.T, p *serverProc) {
	t.Helper()
	select {
	case <-p.exited:
	case addr := <-p.addrc:
		t.Fatalf("chatvault serve started on %s; want it to refuse\n%s", addr, p.tail(10))
	case <-time.After(30 * time.Second):
		t.Fatalf("chatvault serve neither started nor exited within 30s\n%s", p.tail(10))
	}
}

// Issue 25, finding 2: a forced restore into a running server's directory replaced the files
// under it, and a message the server had acknowledged with 201 was gone after a restart.
func TestRestoreForceRefusedWhileServing(t *testing.T) {
	bin := chatvaultBinary(t)
	dir, cfgFile, idFile, _ := backupSetup(t, "")
	out, err := runBinary(t, bin, nil, "backup", "create", "--config", cfgFile, "--data", dir)
	if err != nil {
		t.Fatalf("backup create = %v\n%s", err, out)
	}
	id := regexp.MustCompile(`backup (\S+):`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("backup create printed no id:\n%s", out)
	}

	srv := startServer(t, bin, dir)
	token, convID := setup(t, srv, dir)
	status, sent, body, err := srv.send(token, convID, "after-backup-1", "acknowledged after the backup")
	if err != nil || status != http.StatusCreated {
		t.Fatalf("send = %d, %v, %s; want 201", status, err, body)
	}

	out, err = runBinary(t, bin, nil, "restore", id[1], "--data", dir, "--identity", idFile, "--config", cfgFile, "--force")
	want := fmt.Sprintf("chatvault serve (pid %d) is using %s; stop it or use the API", srv.cmd.Process.Pid, dir)
	if err == nil || !strings.Contains(out, want) {
		t.Fatalf("restore --force into a running server's directory = %v\n%s\nwant a refusal saying %q", err, out, want)
	}
	// A second server on the same directory is refused the same way.
	second := spawnServer(t, bin, []string{"--data", dir}, nil)
	waitExit(t, second)
	if second.exitErr == nil || !strings.Contains(second.tail(5), want) {
		t.Fatalf("second serve on %s = %v\n%s\nwant a refusal saying %q", dir, second.exitErr, second.tail(5), want)
	}

	stopServer(t, srv)
	srv = startServer(t, bin, dir)
	found := false
	for _, m := range srv.history(token, convID) {
		found = found || (m.ID == sent.ID && m.Text == "acknowledged after the backup")
	}
	if !found {
		t.Fatalf("message %s, acknowledged with 201, is gone after the refused restore and a restart", sent.ID)
	}
}

// flock belongs to the process: a server killed with SIGKILL leaves its lock file, with its pid,
// and the next start takes the lock all the same.
func TestStaleLockFileDoesNotBlockStart(t *testing.T) {
	t.Parallel()
	bin := chatvaultBinary(t)
	dir := t.TempDir()
	first := startServer(t, bin, dir)
	first.kill()
	lockFile := filepath.Join(dir, datadir.LockFile)
	raw, err := os.ReadFile(lockFile)
	if err != nil || !strings.HasPrefix(string(raw), fmt.Sprintf("%d serve", first.cmd.Process.Pid)) {
		t.Fatalf("lock file after SIGKILL = %q, %v; want the killed server's pid", raw, err)
	}
	next := startServer(t, bin, dir)
	raw, _ = os.ReadFile(lockFile)
	if want := fmt.Sprintf("%d serve\n", next.cmd.Process.Pid); string(raw) != want {
		t.Fatalf("lock file = %q; want %q", raw, want)
	}
}

// Issue 25, finding 3: with a pre-existing 0755 data directory and umask 022, the databases and
// their -wal and -shm were created 0644, readable by every local user.
func TestFilesArePrivate(t *testing.T) {
	bin := chatvaultBinary(t)
	old := syscall.Umask(0o022) // inherited by the binary
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	refused := spawnServer(t, bin, []string{"--data", dir}, nil)
	waitExit(t, refused)
	if fix := "chmod 700 " + dir; refused.exitErr == nil || !strings.Contains(refused.tail(5), fix) {
		t.Fatalf("serve on a 0755 data directory = %v\n%s\nwant a refusal with %q", refused.exitErr, refused.tail(5), fix)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("the refused serve wrote %v into %s", entries, dir)
	}

	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, bin, dir)
	token, convID := setup(t, srv, dir)
	for i := range 3 {
		if status, _, body, err := srv.send(token, convID, fmt.Sprintf("m%d", i), "秘密 private"); err != nil || status != http.StatusCreated {
			t.Fatalf("send = %d, %v, %s", status, err, body)
		}
	}
	// While it runs, both databases have their -wal and -shm.
	checkPrivate(t, dir, "chatvault.db", "chatvault.db-wal", "chatvault.db-shm", "keys/keys.db", "keys/keys.db-wal",
		"keys/keys.db-shm", "keys/kek.json", InitialPasswordFile, datadir.LockFile)
	stopServer(t, srv)

	// A backup's working files and state, the stored copies, and a restored directory.
	identity, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(t.TempDir(), "identity.txt")
	target := filepath.Join(t.TempDir(), "target")
	cfgFile := filepath.Join(t.TempDir(), "chatvault.yaml")
	os.WriteFile(idFile, []byte(identity.String()+"\n"), 0o600)
	os.WriteFile(cfgFile, []byte(fmt.Sprintf("backup:\n  recipients: [%s]\n  targets:\n    - {type: dir, path: %s}\n", identity.Recipient(), target)), 0o600)
	out, err := runBinary(t, bin, nil, "backup", "create", "--config", cfgFile, "--data", dir)
	if err != nil {
		t.Fatalf("backup create = %v\n%s", err, out)
	}
	id := regexp.MustCompile(`backup (\S+):`).FindStringSubmatch(out)[1]
	checkPrivate(t, dir, "backup/work", "backup/journal.json", backup.SigningKeyFile)
	// A restore on another machine trusts the backups signed with the pinned key.
	pub, err := runBinary(t, bin, nil, "backup", "key", "--config", cfgFile, "--data", dir)
	if err != nil {
		t.Fatalf("backup key = %v\n%s", err, pub)
	}
	key := regexp.MustCompile(`chatvault-ed25519:\S+`).FindString(pub)
	os.WriteFile(cfgFile, []byte(fmt.Sprintf("backup:\n  recipients: [%s]\n  manifest_public_key: %s\n  targets:\n    - {type: dir, path: %s}\n",
		identity.Recipient(), key, target)), 0o600)
	checkPrivate(t, target)
	if out, err := runBinary(t, bin, nil, "backup", "verify", id, "--identity", idFile, "--config", cfgFile, "--data", dir); err != nil {
		t.Fatalf("backup verify = %v\n%s", err, out)
	}
	checkPrivate(t, dir)

	restored := filepath.Join(t.TempDir(), "restored")
	if out, err := runBinary(t, bin, nil, "restore", id, "--data", restored, "--identity", idFile, "--config", cfgFile); err != nil {
		t.Fatalf("restore = %v\n%s", err, out)
	}
	checkPrivate(t, restored, "chatvault.db", "keys/keys.db", "keys/kek.json")
	srv = startServer(t, bin, restored)
	checkPrivate(t, restored, "chatvault.db-wal", "chatvault.db-shm", "keys/keys.db-wal", "keys/keys.db-shm")
	stopServer(t, srv)

	// allow_shared_data_dir lets the operator keep a shared directory; the files are private still.
	shared := filepath.Join(t.TempDir(), "shared")
	os.Mkdir(shared, 0o755)
	srv = spawnServer(t, bin, []string{"--data", shared}, []string{"CHATVAULT_ALLOW_SHARED_DATA_DIR=true"})
	srv.waitListening(t)
	if st, _ := os.Stat(filepath.Join(shared, "chatvault.db")); st == nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("chatvault.db in an allowed shared directory: %v; want mode 0600", st)
	}
	stopServer(t, srv)
}

// checkPrivate walks dir and fails the test for any file that is not 0600 or directory that is
// not 0700; want names files (relative to dir) that must be there.
func checkPrivate(t *testing.T, dir string, want ...string) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		seen[filepath.ToSlash(rel)] = true
		perm := fs.FileMode(0o600)
		if d.IsDir() {
			perm = 0o700
		}
		if st.Mode().Perm() != perm {
			t.Errorf("mode of %s = %v; want %v", path, st.Mode().Perm(), perm)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range want {
		if !seen[f] {
			t.Errorf("%s is not in %s (seen: %v)", f, dir, seen)
		}
	}
}
