package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/clocktest"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/postgres/pgtest"
	"github.com/chatvault/chatvault/internal/sqlite"
)

// These tests run the real binary: chatvault doctor, and serve's refusals at start, each with a
// message that names what is wrong and how to fix it.

// runBin runs the binary with args and env (besides the environment without CHATVAULT_*); it
// returns stdout, stderr and the exit status.
func runBin(t *testing.T, bin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(withoutChatvaultEnv(os.Environ()), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", args, err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("run %v: %v", args, err)
		}
		return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%v still running after 2 minutes\n%s", args, errOut.String())
	}
	return "", "", -1
}

// doctor runs chatvault doctor --json and decodes its report.
func doctor(t *testing.T, bin string, env []string, args ...string) (doctorReport, int) {
	t.Helper()
	out, errOut, code := runBin(t, bin, env, append([]string{"doctor", "--json"}, args...)...)
	var rep doctorReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("doctor --json printed no report: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	return rep, code
}

func (r doctorReport) check(t *testing.T, name string) doctorCheck {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("doctor report has no %q check: %+v", name, r.Checks)
	return doctorCheck{}
}

// messagesThenStop starts a server on dir, stores n messages through the API, and stops it with
// SIGTERM (a clean stop checkpoints the WAL into the database file).
func messagesThenStop(t *testing.T, bin, dir string, n int) (token, convID string) {
	t.Helper()
	srv := startServer(t, bin, dir)
	token, convID = setup(t, srv, dir)
	for i := range n {
		if status, _, body, err := srv.send(token, convID, fmt.Sprintf("m%d", i), fmt.Sprintf("消息 message %d", i)); err != nil || status != 201 {
			t.Fatalf("send %d = %d, %v, %s", i, status, err, body)
		}
	}
	stopServer(t, srv)
	return token, convID
}

func TestDoctorBesideARunningServer(t *testing.T) {
	bin := chatvaultBinary(t)
	dir := t.TempDir()
	messagesThenStop(t, bin, dir, 3)
	srv := startServer(t, bin, dir)

	rep, code := doctor(t, bin, nil, "--data", dir)
	if code != 0 || !rep.OK {
		t.Fatalf("doctor beside a server = exit %d, %+v; want 0 and ok", code, rep)
	}
	want := map[string]string{"config": checkOK, "permissions": checkOK, "lock": checkOK, "disk": "", "keys": checkOK,
		"schema": checkOK, "integrity": checkOK, "data keys": checkOK, "backups": checkWarn}
	for name, status := range want {
		c := rep.check(t, name)
		if status != "" && c.Status != status {
			t.Errorf("check %s = %+v; want status %s", name, c, status)
		}
	}
	if c := rep.check(t, "lock"); !strings.Contains(c.Detail, fmt.Sprintf("pid %d", srv.cmd.Process.Pid)) {
		t.Errorf("lock check = %q; want it to name the running server's pid %d", c.Detail, srv.cmd.Process.Pid)
	}
	// 3 messages in one conversation: its data key, the org's search index key, and the org's
	// audit key (account changes are audited from the first admin on).
	if c := rep.check(t, "data keys"); !strings.HasPrefix(c.Detail, "3 data keys under 1 ") {
		t.Errorf("data keys check = %q; want 3 data keys under 1 KEK", c.Detail)
	}
	// The server was not disturbed: it still takes writes.
	token, convID := setup(t, srv, dir)
	if status, _, body, err := srv.send(token, convID, "after-doctor", "still writable"); err != nil || status != 201 {
		t.Fatalf("send after doctor = %d, %v, %s", status, err, body)
	}

	// Text output: one line per check, and the summary.
	out, _, code := runBin(t, bin, nil, "doctor", "--data", dir)
	if code != 0 || !strings.Contains(out, "OK    integrity") || !strings.Contains(out, "0 failed") {
		t.Errorf("doctor (text) = exit %d\n%s", code, out)
	}
}

func TestDoctorFindsProblemsAndSaysHowToFix(t *testing.T) {
	bin := chatvaultBinary(t)
	dir := t.TempDir()
	messagesThenStop(t, bin, dir, 3)

	t.Run("shared data directory", func(t *testing.T) {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(dir, 0o700)
		rep, code := doctor(t, bin, nil, "--data", dir)
		c := rep.check(t, "permissions")
		if code == 0 || rep.OK || c.Status != checkFail || !strings.Contains(c.Fix, "chmod 700 "+dir) {
			t.Errorf("doctor on a 0755 data directory = exit %d, %+v; want a failure with the chmod that fixes it", code, c)
		}
	})

	t.Run("wrong key file", func(t *testing.T) {
		// Another server's key file: the provider opens, but it is not this data's key.
		other := t.TempDir()
		srv := startServer(t, bin, other)
		stopServer(t, srv)
		keyFile := filepath.Join(t.TempDir(), "other-kek.json")
		raw, err := os.ReadFile(filepath.Join(other, "keys", "kek.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		rep, code := doctor(t, bin, nil, "--data", dir, "--key-file", keyFile)
		c := rep.check(t, "data keys")
		if code == 0 || c.Status != checkFail || !strings.Contains(c.Detail, "data keys wrapped by KEK") || !strings.Contains(c.Fix, "key backup") {
			t.Errorf("doctor with another server's key = exit %d, %+v; want the data keys check to fail, pointing to the key backup", code, c)
		}
	})

	t.Run("failed verification", func(t *testing.T) {
		rec := fmt.Sprintf(`{"at":%q,"id":"20261201T030000.000Z-abcdef","ok":false,"error":"data.db.age on dir /b: sha256 mismatch"}`,
			time.Now().UTC().Format(time.RFC3339))
		cfg := filepath.Join(t.TempDir(), "chatvault.yaml")
		target := t.TempDir()
		yaml := fmt.Sprintf("backup:\n  recipients: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]\n  targets:\n    - {type: dir, path: %s}\n", target)
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "backup", "verify.json")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(rec), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(path)
		rep, code := doctor(t, bin, nil, "--data", dir, "--config", cfg)
		if c := rep.check(t, "backup target 0"); c.Status != checkOK {
			t.Errorf("backup target check = %+v; want ok", c)
		}
		if c := rep.check(t, "last backup"); c.Status != checkWarn {
			t.Errorf("last backup check on an empty target = %+v; want a warning", c)
		}
		c := rep.check(t, "last verify")
		if code == 0 || c.Status != checkFail || !strings.Contains(c.Detail, "sha256 mismatch") {
			t.Errorf("doctor after a failed verification = exit %d, %+v; want a failure quoting it", code, c)
		}
	})

	t.Run("invalid configuration", func(t *testing.T) {
		out, errOut, code := runBin(t, bin, []string{"CHATVAULT_LISTEN=nonsense"}, "doctor", "--data", dir)
		if code == 0 || !strings.Contains(out, "FAIL  config") || !strings.Contains(out, "listen:") {
			t.Errorf("doctor with CHATVAULT_LISTEN=nonsense = exit %d\n%s%s; want the config check to fail naming listen", code, out, errOut)
		}
	})

	t.Run("damaged database", func(t *testing.T) {
		damageDatabase(t, filepath.Join(dir, sqlite.FileName))
		rep, code := doctor(t, bin, nil, "--data", dir)
		c := rep.check(t, "integrity")
		if code == 0 || c.Status != checkFail || !strings.Contains(c.Detail, filepath.Join(dir, sqlite.FileName)) || !strings.Contains(c.Fix, "chatvault restore") {
			t.Errorf("doctor on a damaged database = exit %d, %+v; want the file named and the restore path", code, c)
		}
	})
}

// damageDatabase overwrites the pages of the second half of a database file, as a failing disk or
// a stray write would: the header stays, so the file still opens as a database.
func damageDatabase(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path + "-wal"); err == nil {
		if st, _ := os.Stat(path + "-wal"); st.Size() > 0 {
			t.Fatalf("%s-wal holds %d bytes: the damage would be hidden by the WAL; stop the server cleanly first", path, st.Size())
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	pages := st.Size() / page
	if pages < 8 {
		t.Fatalf("%s has %d pages; want at least 8 to damage some", path, pages)
	}
	junk := bytes.Repeat([]byte{0xA5, 0x5A, 0x00, 0xFF}, page/4)
	for p := pages / 2; p < pages; p++ {
		if _, err := f.WriteAt(junk, p*page); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func TestServeRefusesADamagedDatabase(t *testing.T) {
	bin := chatvaultBinary(t)
	dir := t.TempDir()
	messagesThenStop(t, bin, dir, 20)
	damageDatabase(t, filepath.Join(dir, sqlite.FileName))

	_, errOut, code := runBin(t, bin, nil, "serve", "--data", dir, "--listen", "127.0.0.1:0")
	want := []string{filepath.Join(dir, sqlite.FileName) + " is damaged", "does not serve from a damaged database", "chatvault restore ID --data NEW_DIR"}
	for _, w := range want {
		if !strings.Contains(errOut, w) {
			t.Errorf("serve on a damaged database: stderr lacks %q\n%s", w, errOut)
		}
	}
	if code == 0 || strings.Contains(errOut, `msg=listening`) {
		t.Errorf("serve on a damaged database = exit %d; want a refusal before listening\n%s", code, errOut)
	}
}

func TestServeStartFailuresSayHowToFix(t *testing.T) {
	bin := chatvaultBinary(t)
	dir := t.TempDir()
	token, convID := messagesThenStop(t, bin, dir, 1)
	other := t.TempDir()
	stopServer(t, startServer(t, bin, other))

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"wrong key", []string{"--key-file", filepath.Join(other, "keys", "kek.json")},
			[]string{"data keys wrapped by KEK", "restore the key file from your key backup, or set CHATVAULT_KEK"}},
		{"missing key", []string{"--key-file", filepath.Join(other, "no-such-kek.json")},
			[]string{"data keys wrapped by KEK", "restore the key file from your key backup"}},
		{"missing config", []string{"--config", filepath.Join(other, "no-such.yaml")},
			[]string{"read config file", "check --config or CHATVAULT_CONFIG"}},
		{"unreadable config", []string{"--config", other}, // a directory: unreadable as a file, even for root
			[]string{"read config file", "is a directory", "check --config or CHATVAULT_CONFIG"}},
		{"port in use", []string{"--listen", busy.Addr().String()},
			[]string{"address already in use", "choose another address with --listen"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve", "--data", dir, "--listen", "127.0.0.1:0"}, tt.args...)
			_, errOut, code := runBin(t, bin, nil, args...)
			if code == 0 {
				t.Fatalf("serve %v = exit 0; want a refusal", tt.args)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("serve %v: stderr lacks %q\n%s", tt.args, w, errOut)
				}
			}
		})
	}
	// Nothing was lost to the failed starts: the data opens with its own key.
	srv := startServer(t, bin, dir)
	if got := srv.history(token, convID); len(got) != 1 || got[0].Text != "消息 message 0" {
		t.Fatalf("history after the refused starts = %+v; want the one message", got)
	}
}

// mountSmallDisk mounts a tmpfs of size bytes at a new directory for the test, and unmounts it
// when the test ends (after the server the test started there has been killed). It needs root:
// without it the test is skipped, except under CI=true, where it fails, so CI never passes by
// skipping.
func mountSmallDisk(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the disk-full test mounts a tmpfs and needs root; CI must run it as root")
		}
		t.Skip("the disk-full test mounts a tmpfs and needs root (it runs under CI=true)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs on %s: %v\n%s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes zeros to path until the file system is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v; want ENOSPC", path, err)
			}
			break
		}
	}
	// The last partial pages too.
	for _, n := range []int{4096, 512, 1} {
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
}

func TestDiskFullWhileSending(t *testing.T) {
	bin := chatvaultBinary(t)
	disk := mountSmallDisk(t, 32<<20)
	dir := filepath.Join(disk, "data")
	srv := startServer(t, bin, dir)
	token, convID := setup(t, srv, dir)

	acked := map[string]string{} // client_msg_id → text of every 201
	send := func(id string) (int, []byte) {
		t.Helper()
		text := fmt.Sprintf("%s %s", id, strings.Repeat("磁盘已满 disk full ", 100))
		status, _, body, err := srv.send(token, convID, id, text)
		if err != nil {
			t.Fatalf("send %s: %v", id, err)
		}
		if status == 201 {
			acked[id] = text
		}
		return status, body
	}
	for i := range 20 {
		if status, body := send(fmt.Sprintf("before-%d", i)); status != 201 {
			t.Fatalf("send before the disk filled = %d %s", status, body)
		}
	}

	filler := filepath.Join(disk, "filler")
	fillDisk(t, filler)
	// Sends may still land in space SQLite already holds (the WAL is reused); keep sending until
	// the store needs space it cannot get.
	full := 0
	for i := 0; i < 3000 && full < 5; i++ {
		status, body := send(fmt.Sprintf("full-%d", i))
		switch status {
		case 201:
		case 507:
			full++
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != "storage_full" || !strings.Contains(e.Error.Message, "storage is full") {
				t.Fatalf("507 body = %s (%v); want a JSON error with code storage_full", body, err)
			}
		default:
			t.Fatalf("send on a full disk = %d %s; want 201 or 507", status, body)
		}
	}
	if full == 0 {
		t.Fatalf("3000 sends on a full disk all succeeded; want 507 once the store needs space")
	}
	status, body, err := srv.do("GET", "/readyz", "", nil, nil)
	if err != nil || status != 503 {
		t.Errorf("GET /readyz on a full disk = %d %s, %v; want 503", status, body, err)
	}
	t.Logf("disk full: %d sends acknowledged in all, then 507", len(acked))

	// An export on the full disk is refused (507) or fails saying the disk is full; it leaves no
	// file behind.
	type exportJob struct {
		ID, State, Error string
	}
	exportNow := func() exportJob {
		t.Helper()
		var job exportJob
		status, body, err := srv.do("POST", "/api/v1/exports", token, map[string]any{"format": "csv"}, &job)
		if err != nil {
			t.Fatalf("POST /api/v1/exports: %v", err)
		}
		switch status {
		case 507:
			if !strings.Contains(string(body), "storage_full") {
				t.Fatalf("export on a full disk = 507 %s; want code storage_full", body)
			}
			return exportJob{State: "refused"}
		case 202:
		default:
			t.Fatalf("POST /api/v1/exports = %d %s; want 202 or 507", status, body)
		}
		clocktest.Poll(t, "export "+job.ID, func() error {
			srv.must("GET", "/api/v1/exports/"+job.ID, token, nil, &job, 200)
			if job.State == "queued" || job.State == "running" {
				return fmt.Errorf("export is %s", job.State)
			}
			return nil
		})
		return job
	}
	if job := exportNow(); job.State != "refused" && (job.State != "failed" || !strings.Contains(job.Error, "disk is full")) {
		t.Errorf("export on a full disk = %+v; want refused with 507, or failed saying the disk is full", job)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "exports", "*"))
	for _, f := range leftovers {
		if !strings.HasSuffix(f, ".zip") {
			t.Errorf("the failed export left %s behind", f)
		}
	}

	// Space returns: the same server takes sends again, by itself.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if status, body := send(fmt.Sprintf("after-%d", i)); status != 201 {
			t.Fatalf("send after space returned = %d %s; want 201", status, body)
		}
	}
	if status, body, err := srv.do("GET", "/readyz", "", nil, nil); err != nil || status != 200 {
		t.Errorf("GET /readyz after space returned = %d %s, %v; want 200", status, body, err)
	}
	if job := exportNow(); job.State != "done" {
		t.Errorf("export after space returned = %+v; want done", job)
	}

	// Nothing acknowledged was lost: not now, and not after a restart.
	checkAcked := func(when string) {
		t.Helper()
		got := map[string]string{}
		for _, m := range srv.history(token, convID) {
			got[m.ClientMsgID] = m.Text
		}
		for id, text := range acked {
			if got[id] != text {
				t.Errorf("%s: acknowledged message %s is missing or changed", when, id)
			}
		}
		if len(got) != len(acked) {
			t.Errorf("%s: history holds %d messages; want the %d acknowledged", when, len(got), len(acked))
		}
	}
	checkAcked("after space returned")
	stopServer(t, srv)
	srv = startServer(t, bin, dir)
	checkAcked("after a restart")
}

// TestBackupSIGTERMLeavesNothingHalfDone stops `chatvault backup create` with SIGTERM at moments
// spread over its run. Wherever the signal lands, the backups on the target are complete ones
// that verify in full, the work directory is left empty, and the next backup succeeds.
func TestBackupSIGTERMLeavesNothingHalfDone(t *testing.T) {
	bin := chatvaultBinary(t)
	dir, cfgFile, idFile, target := backupSetup(t, "")
	interrupted := 0
	for try := 0; try < 12; try++ {
		cmd := exec.Command(bin, "backup", "create", "--config", cfgFile, "--data", dir)
		cmd.Env = withoutChatvaultEnv(os.Environ())
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Once the run has begun its work (its scratch directory exists), a delay chooses where
		// the signal lands; what is checked holds wherever it does.
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var err error
		began := false
	wait:
		for {
			select {
			case err = <-exited:
				break wait
			case <-time.After(time.Millisecond):
				if !began {
					if w, _ := os.ReadDir(filepath.Join(dir, "backup", "work")); len(w) > 0 {
						began = true
						time.Sleep(time.Duration(try*try*5) * time.Millisecond)
						cmd.Process.Signal(syscall.SIGTERM)
					}
				}
			}
		}
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit) && exit.ExitCode() == -1:
			t.Fatalf("try %d: backup create was killed by the signal instead of stopping: %v", try, err)
		case err != nil:
			interrupted++
			t.Logf("try %d: stopped %dms into its work: %v: %s", try, try*try*5, err, strings.TrimSpace(out.String()))
		}
	}
	if interrupted == 0 {
		t.Fatal("every backup create finished before SIGTERM; the test interrupted none")
	}

	work, _ := os.ReadDir(filepath.Join(dir, "backup", "work"))
	if len(work) != 0 {
		t.Errorf("backup work directory holds %d entries after the interrupted runs; want none", len(work))
	}
	// Parts are uploaded first and the manifest last: an interrupted upload leaves parts without
	// a manifest, which no command lists or restores (prune removes them after a day). Every
	// backup with a manifest is complete, and verifies in full.
	list, err := runCmd(t, "backup", "list", "--config", cfgFile, "--data", dir)
	if err != nil {
		t.Fatalf("backup list = %v\n%s", err, list)
	}
	ids, _ := os.ReadDir(filepath.Join(target, "data"))
	complete := 0
	for _, e := range ids {
		if _, err := os.Stat(filepath.Join(target, "data", e.Name(), "manifest.json")); err != nil {
			if strings.Contains(list, e.Name()) {
				t.Errorf("backup list shows %s, whose upload was interrupted before its manifest", e.Name())
			}
			continue
		}
		complete++
		if out, err := runCmd(t, "backup", "verify", e.Name(), "--config", cfgFile, "--data", dir, "--identity", idFile); err != nil {
			t.Errorf("backup verify %s after the interrupted runs = %v\n%s", e.Name(), err, out)
		}
	}
	t.Logf("%d of 12 runs stopped by SIGTERM; %d complete backups on the target, %d interrupted uploads", interrupted, complete, len(ids)-complete)
	if out, err := runCmd(t, "backup", "create", "--config", cfgFile, "--data", dir); err != nil || !strings.Contains(out, "stored on 2 of 2 targets") {
		t.Fatalf("backup create after the interrupted runs = %v\n%s", err, out)
	}
}

// TestDoctorOnPostgreSQL: with a PostgreSQL store the doctor reaches the database, reads its
// schema version (a new database: a warning that serve will migrate it; after serve: current)
// and measures the clock against it; backups are PostgreSQL's own business.
func TestDoctorOnPostgreSQL(t *testing.T) {
	bin := chatvaultBinary(t)
	store := pgtest.Server(t).NewDatabase(t)
	env := []string{"CHATVAULT_KEK=" + base64.StdEncoding.EncodeToString(keyring.Generate())}
	dir := t.TempDir()

	rep, code := doctor(t, bin, env, "--data", dir, "--store", store)
	if c := rep.check(t, "schema"); code != 0 || c.Status != checkWarn || !strings.Contains(c.Detail, "version 0") {
		t.Errorf("doctor on an empty database = exit %d, schema %+v; want 0 and a warning that serve migrates it", code, c)
	}
	stopServer(t, startServerWith(t, bin, []string{"--data", dir, "--store", store}, env))
	rep, code = doctor(t, bin, env, "--data", dir, "--store", store)
	if code != 0 || !rep.OK {
		t.Fatalf("doctor after serve = exit %d, %+v; want 0", code, rep)
	}
	for name, status := range map[string]string{"database": checkOK, "schema": checkOK, "clock": checkOK, "backups": checkSkip, "keys": checkOK} {
		if c := rep.check(t, name); c.Status != status {
			t.Errorf("check %s = %+v; want %s", name, c, status)
		}
	}
	if c := rep.check(t, "clock"); !strings.Contains(c.Detail, "this machine's") {
		t.Errorf("clock check = %q; want the skew against this machine", c.Detail)
	}

	// A database that does not answer is a failure that says what to check.
	rep, code = doctor(t, bin, env, "--data", dir, "--store", "postgres://chatvault@127.0.0.1:1/none?sslmode=disable&connect_timeout=5")
	if c := rep.check(t, "database"); code == 0 || c.Status != checkFail || !strings.Contains(c.Fix, "CHATVAULT_STORE") {
		t.Errorf("doctor with an unreachable database = exit %d, %+v; want a failure naming the setting", code, c)
	}
}

// startServerWith is startServer with extra arguments and environment.
func startServerWith(t *testing.T, bin string, args, env []string) *serverProc {
	t.Helper()
	p := spawnServer(t, bin, args, env)
	p.waitListening(t)
	return p
}

// A backup to a target whose disk is full fails, says so and names the target, and leaves no
// backup there that list would show or restore would take; once space returns the next backup
// succeeds and verifies.
func TestBackupToAFullDisk(t *testing.T) {
	disk := mountSmallDisk(t, 8<<20)
	dir, cfgFile, idFile, _ := backupSetup(t, "")
	target := filepath.Join(disk, "backups")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	// Only the full target: a backup that reaches another one is a success, not this test.
	cfg, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(cfg), "\n")
	var kept []string
	for _, l := range lines {
		switch {
		case strings.Contains(l, "type: s3"):
		case strings.Contains(l, "type: dir"):
			kept = append(kept, fmt.Sprintf("    - {type: dir, path: %s}", target))
		default:
			kept = append(kept, l)
		}
	}
	if err := os.WriteFile(cfgFile, []byte(strings.Join(kept, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(disk, "filler")
	fillDisk(t, filler)

	out, err := runCmd(t, "backup", "create", "--config", cfgFile, "--data", dir)
	if err == nil {
		t.Fatalf("backup create to a full disk succeeded:\n%s", out)
	}
	if msg := out + err.Error(); !strings.Contains(msg, "no space left on device") || !strings.Contains(msg, target) {
		t.Errorf("backup create to a full disk = %v\n%s; want an error naming the target and the full disk", err, out)
	}
	if out, err := runCmd(t, "backup", "list", "--config", cfgFile, "--data", dir); err != nil || backupID.MatchString(out) {
		t.Errorf("backup list after the failed backup = %v\n%s; want no backup", err, out)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	out, err = runCmd(t, "backup", "create", "--config", cfgFile, "--data", dir)
	if err != nil || !strings.Contains(out, "stored on 1 of 1 targets") {
		t.Fatalf("backup create after space returned = %v\n%s", err, out)
	}
	id := regexp.MustCompile(`backup (\S+):`).FindStringSubmatch(out)[1]
	if out, err := runCmd(t, "backup", "verify", id, "--config", cfgFile, "--data", dir, "--identity", idFile); err != nil || !strings.Contains(out, "verified") {
		t.Fatalf("backup verify after space returned = %v\n%s", err, out)
	}
	if out, err := runCmd(t, "backup", "list", "--config", cfgFile, "--data", dir); err != nil || !strings.Contains(out, id) || !backupID.MatchString(out) {
		t.Errorf("backup list after the good backup = %v\n%s; want it listed", err, out)
	}
}

var backupID = regexp.MustCompile(`\d{8}T\d{6}\.\d{3}Z`)

// walAfterKill sends messages, kills the server before it checkpoints them, and returns the
// acknowledged messages in order with the WAL's bytes, its page size and frame count.
func walAfterKill(t *testing.T, bin, dir string) (order []string, acked map[string]string, token, convID string) {
	t.Helper()
	srv := startServer(t, bin, dir)
	token, convID = setup(t, srv, dir)
	acked = map[string]string{}
	for i := range 60 {
		id := fmt.Sprintf("wal-%02d", i)
		text := fmt.Sprintf("%s 预写日志 write-ahead log %s", id, strings.Repeat("x", i*50))
		if status, _, body, err := srv.send(token, convID, id, text); err != nil || status != 201 {
			t.Fatalf("send %s = %d, %v, %s", id, status, err, body)
		}
		acked[id] = text
		order = append(order, id)
	}
	srv.kill()
	return order, acked, token, convID
}

// walFrames reads the WAL of the data directory: its bytes, page size and whole frames.
func walFrames(t *testing.T, dir string) (wal []byte, walPath string, pageSize, frames int) {
	t.Helper()
	walPath = filepath.Join(dir, sqlite.FileName) + "-wal"
	wal, err := os.ReadFile(walPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(wal) < 32 {
		t.Fatalf("the WAL holds %d bytes; the test needs frames the server did not checkpoint", len(wal))
	}
	pageSize = int(binary.BigEndian.Uint32(wal[8:12]))
	frames = (len(wal) - 32) / (24 + pageSize)
	if frames < 4 {
		t.Fatalf("the WAL holds %d frames; want at least 4", frames)
	}
	return wal, walPath, pageSize, frames
}

// A write-ahead log damaged in the middle (a bad sector under frames that were acknowledged, the
// server killed before it checkpointed them) would open quietly at the frame before the damage,
// dropping acknowledged commits: serve refuses it, naming the log and the restore path.
func TestServeRefusesADamagedWAL(t *testing.T) {
	bin := chatvaultBinary(t)
	dir := t.TempDir()
	walAfterKill(t, bin, dir)
	wal, walPath, pageSize, frames := walFrames(t, dir)
	at := 32 + (frames/2)*(24+pageSize) + 24 + pageSize/2
	for i := range 64 {
		wal[at+i] ^= 0x5A
	}
	if err := os.WriteFile(walPath, wal, 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runBin(t, bin, nil, "serve", "--data", dir, "--listen", "127.0.0.1:0")
	for _, w := range []string{walPath + ": frame", "the log is damaged", "does not serve from a damaged database", "chatvault restore ID --data NEW_DIR"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("serve on a damaged WAL: stderr lacks %q\n%s", w, errOut)
		}
	}
	if code == 0 || strings.Contains(errOut, `msg=listening`) {
		t.Errorf("serve on a damaged WAL = exit %d; want a refusal before listening\n%s", code, errOut)
	}
	// Nothing was changed: the evidence is there for whoever restores.
	if after, err := os.ReadFile(walPath); err != nil || !bytes.Equal(after, wal) {
		t.Errorf("the refused start changed the WAL (%v)", err)
	}
}

// A WAL torn at its end, as a crash in the middle of a write leaves it, is not damage: the torn
// frame was never acknowledged (the ack waits for the fsync). The server starts and serves every
// acknowledged message, each exactly as it was.
func TestServeRecoversATornWAL(t *testing.T) {
	bin := chatvaultBinary(t)
	dir := t.TempDir()
	order, acked, token, convID := walAfterKill(t, bin, dir)
	wal, walPath, pageSize, frames := walFrames(t, dir)
	// A frame half written when the power went: this log's salts, a checksum that cannot match,
	// half a page.
	last := wal[32+(frames-1)*(24+pageSize):]
	torn := append(append([]byte(nil), last[:24]...), bytes.Repeat([]byte{0xEE}, pageSize/2)...)
	binary.BigEndian.PutUint32(torn[0:4], binary.BigEndian.Uint32(torn[0:4])+1) // another page
	if err := os.WriteFile(walPath, append(wal, torn...), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, bin, dir)
	got := srv.history(token, convID)
	for i, m := range got {
		if i >= len(order) || m.ClientMsgID != order[i] || m.Text != acked[order[i]] {
			t.Fatalf("after a torn WAL, message %d is %q (%d bytes of text); want a prefix of the acknowledged messages, each exact", i, m.ClientMsgID, len(m.Text))
		}
	}
	if len(got) != len(order) {
		t.Errorf("after a torn WAL, %d of %d acknowledged messages; want every one", len(got), len(order))
	}
}
