// Package pgtest gives tests a real PostgreSQL: one temporary cluster per test binary, and a fresh
// empty database per test.
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		url := pgtest.Server(t).NewDatabase(t) // dropped when t ends
//		...
//	}
//
// The cluster is made with the installed initdb and started with the installed postgres binary
// (/usr/lib/postgresql/15/bin, else PATH), listening on a free TCP port on 127.0.0.1, its unix
// socket in its own temporary directory. When CHATVAULT_TEST_POSTGRES holds a URL, that server is
// used instead (the URL's user must be allowed to create and drop databases). When no PostgreSQL
// is found, Server skips the test, or fails it when CI=true, so CI never passes by skipping.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable that points the tests at an existing server.
const EnvURL = "CHATVAULT_TEST_POSTGRES"

// dirPrefix marks the cluster directories in os.TempDir, so a later run finds those a crashed
// run left behind.
const dirPrefix = "chatvault-pgtest-"

// Cluster is a running PostgreSQL server the tests may create databases on.
type Cluster struct {
	admin *url.URL // the maintenance database, as superuser

	// Set only for a cluster this package started.
	dir  string
	proc *exec.Cmd
	done chan struct{} // closed when proc has exited
}

// shared is the one cluster of this test binary. A package variable is the point: every test
// and every package-level helper of the binary must reach the same server, and Main stops it.
var shared struct {
	once    sync.Once
	cluster *Cluster
	skip    string // why there is no cluster, when none was found
	err     error
}

// Server returns the shared cluster, starting it on first use. Without PostgreSQL it skips t
// (fails it when CI=true).
func Server(t testing.TB) *Cluster {
	t.Helper()
	shared.once.Do(func() {
		if u := os.Getenv(EnvURL); u != "" {
			shared.cluster, shared.err = external(u)
			return
		}
		bin, ok := findBin()
		if !ok {
			shared.skip = "no PostgreSQL found (initdb and postgres not in /usr/lib/postgresql/15/bin or PATH; or set " + EnvURL + ")"
			return
		}
		shared.cluster, shared.err = start(bin)
	})
	switch {
	case shared.skip != "" && os.Getenv("CI") == "true":
		t.Fatalf("pgtest: %s, and CI=true", shared.skip)
	case shared.skip != "":
		t.Skip("pgtest: " + shared.skip)
	case shared.err != nil:
		t.Fatalf("pgtest: %v", shared.err)
	}
	return shared.cluster
}

// Main runs the tests, then stops the shared cluster (if one was started) and exits. Use it as
// the package's TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if shared.cluster != nil {
		shared.cluster.stop()
	}
	os.Exit(code)
}

// NewDatabase creates an empty database and returns its URL; the database is dropped when t
// ends (forcefully: connections a test leaked do not keep it alive).
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	name := "chatvault_test_" + randomHex(8)
	conn, err := pgx.Connect(ctx, c.admin.String())
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, c.admin.String())
		if err != nil {
			t.Errorf("pgtest: connect to drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u := *c.admin
	u.Path = "/" + name
	return u.String()
}

// DataDir is the cluster's data directory (its tables and WAL), for tests that look at what
// reaches the disk; empty for a server this package did not start.
func (c *Cluster) DataDir() string {
	if c.dir == "" {
		return ""
	}
	return filepath.Join(c.dir, "data")
}

func external(raw string) (*Cluster, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", EnvURL, err)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/postgres"
	}
	return &Cluster{admin: u}, nil
}

func findBin() (string, bool) {
	for _, dir := range []string{"/usr/lib/postgresql/15/bin", ""} {
		initdb, postgres := filepath.Join(dir, "initdb"), filepath.Join(dir, "postgres")
		if dir == "" {
			var err1, err2 error
			initdb, err1 = exec.LookPath("initdb")
			postgres, err2 = exec.LookPath("postgres")
			if err1 != nil || err2 != nil {
				continue
			}
		}
		if isExec(initdb) && isExec(postgres) {
			return filepath.Dir(postgres), true
		}
	}
	return "", false
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// start makes a cluster in a new temporary directory and starts it.
func start(bin string) (*Cluster, error) {
	reapStale()
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("make cluster directory: %w", err)
	}
	// The owner file lets a later run tell an abandoned directory from a live one.
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, fmt.Errorf("write owner file: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("chown cluster directory: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
		"--locale=C.UTF-8", "-E", "UTF8", "--no-sync", "--no-instructions")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	// A port taken between choosing and binding makes postgres exit: try again with another.
	var lastErr error
	for range 5 {
		c, err := launch(bin, dir, data, cred)
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

func launch(bin, dir, data string, cred *syscall.Credential) (*Cluster, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open server log: %w", err)
	}
	defer logFile.Close()
	// postgres runs as our child, not daemonised by pg_ctl, so that Pdeathsig stops it (SIGQUIT,
	// immediate shutdown) even when this test binary is killed and Main never runs.
	// fsync and full_page_writes are off: the cluster is thrown away with the test binary and
	// never survives an OS crash, and without them tests spend their time testing rather than
	// waiting for disks. (Durability is PostgreSQL's own, tested by PostgreSQL.)
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(port),
		"-c", "unix_socket_directories="+dir,
		"-c", "fsync=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=400",
		"-c", "shared_buffers=64MB",
		"-c", "max_locks_per_transaction=256",
		"-c", "log_min_messages=warning",
	)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	c := &Cluster{
		admin: &url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			Path: "/postgres", RawQuery: "sslmode=disable"},
		dir: dir, proc: cmd, done: make(chan struct{}),
	}
	go func() { cmd.Wait(); close(c.done) }()
	if err := c.waitReady(); err != nil {
		c.kill()
		out, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%w\n%s", err, out)
	}
	return c, nil
}

// waitReady polls until the server accepts connections or exits. The deadline only stops a hung
// start from hanging the test binary; it measures nothing.
func (c *Cluster) waitReady() error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, c.admin.String())
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("postgres exited during start: %v", c.proc.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready: %w", err)
		}
	}
}

// stop shuts the cluster down (fast mode: sessions are ended, no checkpoint wait matters with
// fsync off) and removes its directory.
func (c *Cluster) stop() {
	if c.proc == nil {
		return
	}
	c.proc.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.kill()
	}
	os.RemoveAll(c.dir)
}

func (c *Cluster) kill() {
	c.proc.Process.Signal(syscall.SIGQUIT)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.proc.Process.Kill()
		<-c.done
	}
}

// reapStale stops the servers and removes the directories of earlier runs whose test binary is
// gone (killed before Main could clean up). Pdeathsig normally stopped their server already;
// this catches the rest, so leftovers never pile up.
func reapStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
		if err != nil {
			continue // being created right now, or not ours
		}
		owner, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || alive(owner) {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			line, _, _ := strings.Cut(string(b), "\n")
			if pid, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && isPostgres(pid) {
				syscall.Kill(pid, syscall.SIGQUIT)
			}
		}
		os.RemoveAll(dir)
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func isPostgres(pid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.HasPrefix(strings.TrimSpace(string(comm)), "postgres")
}

// runAs returns the unprivileged user to run the server as when we are root (initdb and
// postgres refuse to run as root), or nil to run as ourselves.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
	}
	return nil, errors.New("running as root and no postgres or nobody user to run PostgreSQL as")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
