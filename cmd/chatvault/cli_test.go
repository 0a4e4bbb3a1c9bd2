package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/chatvault/chatvault/internal/clocktest"
)

// syncBuffer collects a command's log output while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var listenLine = regexp.MustCompile(`msg=listening addr=(\S+)`)

// serveInProcess runs "chatvault serve" until the returned stop function is called.
func serveInProcess(t *testing.T, dir string) (addr string, logs *syncBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--data", dir, "--listen", "127.0.0.1:0"}, io.Discard, logs)
	}()
	t.Cleanup(cancel)
	clocktest.Poll(t, "serve listening", func() error {
		if m := listenLine.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
			return nil
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited early: %v\n%s", err, logs)
		default:
		}
		return fmt.Errorf("serve did not start:\n%s", logs)
	})
	return addr, logs, func() error { cancel(); return <-done }
}

func TestFirstStartBootstrapsOnce(t *testing.T) {
	dir := t.TempDir()
	addr, logs, stop := serveInProcess(t, dir)
	pwFile := filepath.Join(dir, InitialPasswordFile)
	info, err := os.Stat(pwFile)
	if err != nil {
		t.Fatalf("first start wrote no password file: %v", err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("password file mode = %v; want 0600", info.Mode().Perm())
	}
	pw, _ := os.ReadFile(pwFile)
	password := strings.TrimSpace(string(pw))
	if len(password) < 20 {
		t.Fatalf("one-time password %q is too short", password)
	}
	if strings.Contains(logs.String(), password) {
		t.Fatal("the log contains the admin password")
	}
	if !strings.Contains(logs.String(), pwFile) {
		t.Fatalf("the log does not name the password file:\n%s", logs)
	}
	resp, err := http.Post("http://"+addr+"/api/v1/auth/login", "application/json",
		strings.NewReader(`{"username":"admin","password":"`+password+`","device_name":"test"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login with the one-time password: %d", resp.StatusCode)
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}

	os.Remove(pwFile)
	_, logs, stop = serveInProcess(t, dir)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pwFile); !os.IsNotExist(err) {
		t.Fatalf("a later start wrote a password file again (err %v)", err)
	}
	if strings.Contains(logs.String(), "created the first org") {
		t.Fatalf("a later start bootstrapped again:\n%s", logs)
	}
}

func TestAdminCommands(t *testing.T) {
	dir := t.TempDir()
	admin := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"admin"}, append(args, "--data", dir)...), &out, io.Discard)
		return out.String(), err
	}
	out, err := admin("create-org", "--slug", "acme", "--name", "Acme 公司", "--admin", "root")
	if err != nil || !regexp.MustCompile(`password: \S{20,}`).MatchString(out) {
		t.Fatalf("create-org = %q, %v", out, err)
	}
	if _, err := admin("create-org", "--slug", "acme", "--admin", "x"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("create-org with a taken slug: %v; want 'already exists'", err)
	}
	if _, err := admin("create-org", "--slug", "Bad Slug!", "--admin", "x"); err == nil || !strings.Contains(err.Error(), "slug") {
		t.Fatalf("create-org with a bad slug: %v", err)
	}
	admin("create-org", "--slug", "beta", "--admin", "root")
	if _, err := admin("create-org", "--slug", "gamma", "--admin", "root", "--time-zone", "Mars/Base"); err == nil || !strings.Contains(err.Error(), "time_zone") {
		t.Fatalf("create-org with a bad time zone: %v; want an error naming time_zone", err)
	}
	if out, err := admin("create-org", "--slug", "gamma", "--admin", "root", "--time-zone", "Asia/Shanghai"); err != nil || !strings.Contains(out, "timezone: Asia/Shanghai") {
		t.Fatalf("create-org --time-zone = %q, %v", out, err)
	}
	if out, err := admin("set-time-zone", "--org", "beta", "--time-zone", "Europe/Berlin"); err != nil || !strings.Contains(out, "Europe/Berlin") {
		t.Fatalf("set-time-zone = %q, %v", out, err)
	}
	if _, err := admin("set-time-zone", "--org", "beta", "--time-zone", "Local"); err == nil || !strings.Contains(err.Error(), "time_zone") {
		t.Fatalf("set-time-zone Local: %v; want an error naming time_zone", err)
	}
	out, err = admin("list-orgs")
	if err != nil || !strings.Contains(out, "acme") || !strings.Contains(out, "Acme 公司") || !strings.Contains(out, "beta") ||
		!regexp.MustCompile(`(?m)^acme .* UTC +\S+$`).MatchString(out) || !regexp.MustCompile(`(?m)^beta .* Europe/Berlin +\S+$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^gamma .* Asia/Shanghai +\S+$`).MatchString(out) {
		t.Fatalf("list-orgs = %q, %v; want each org with its time zone", out, err)
	}
	out, err = admin("reset-password", "--org", "acme", "--user", "ROOT")
	if err != nil || !strings.HasPrefix(out, "password: ") {
		t.Fatalf("reset-password = %q, %v", out, err)
	}
	if _, err := admin("reset-password", "--org", "acme", "--user", "nobody"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("reset-password of an unknown user: %v", err)
	}
	if err := run(context.Background(), []string{"admin", "frobnicate"}, io.Discard, io.Discard); err == nil {
		t.Fatal("unknown admin command succeeded")
	}
}
