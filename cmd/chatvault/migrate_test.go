package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/clocktest"
	"github.com/chatvault/chatvault/internal/postgres/pgtest"
)

// serveWith runs "chatvault serve" in this process with args until the returned stop is called.
func serveWith(t *testing.T, args ...string) (p *serverProc, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--listen", "127.0.0.1:0", "--retention-interval", "0"}, args...), io.Discard, logs)
	}()
	var addr string
	clocktest.Poll(t, "serve listening", func() error {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("serve exited early: %v\n%s", err, logs)
		default:
		}
		m := listenLine.FindStringSubmatch(logs.String())
		if m == nil {
			return fmt.Errorf("not listening yet:\n%s", logs)
		}
		addr = m[1]
		return nil
	})
	p = &serverProc{t: t, URL: "http://" + addr, client: &http.Client{Timeout: 30 * time.Second}}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done; p.client.CloseIdleConnections() })
		return err
	}
	t.Cleanup(func() { stop() })
	return p, stop
}

// populated is an SQLite data directory filled through the API, with what each user saw.
type populated struct {
	dir    string
	tokens map[string]string // who -> device token
	convs  map[string][]string
	edited map[string][2]string // who -> conversation, message id of an edited message
}

// populate makes several orgs, users, conversations, messages, edits, recalls, hides and stars
// through a real server on an SQLite store (encryption on, as serve always runs it).
func populate(t *testing.T) *populated {
	t.Helper()
	dir := t.TempDir()
	pw := map[string]string{}
	for _, org := range []string{"acme", "beta"} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"admin", "create-org", "--slug", org, "--name", org + " 公司", "--admin", "root", "--data", dir}, &out, io.Discard); err != nil {
			t.Fatalf("create-org %s: %v", org, err)
		}
		pw[org] = regexp.MustCompile(`password: (\S+)`).FindStringSubmatch(out.String())[1]
	}
	srv, stop := serveWith(t, "--data", dir)
	pop := &populated{dir: dir, tokens: map[string]string{}, convs: map[string][]string{}, edited: map[string][2]string{}}
	login := func(org, user, password string) string {
		var l struct {
			Token string `json:"token"`
		}
		srv.must("POST", "/api/v1/auth/login", "", map[string]string{"org": org, "username": user, "password": password, "device_name": "migrate test"}, &l, http.StatusOK)
		return l.Token
	}
	for _, org := range []string{"acme", "beta"} {
		root := login(org, "root", pw[org])
		srv.must("PUT", "/api/v1/me/password", root, map[string]string{"current_password": pw[org], "new_password": "root's own password"}, nil, http.StatusNoContent)
		var bob struct {
			ID string `json:"id"`
		}
		srv.must("POST", "/api/v1/admin/users", root, map[string]any{"username": "bob", "password": "bob's password 1"}, &bob, http.StatusCreated)
		bobToken := login(org, "bob", "bob's password 1")
		var group, direct struct {
			ID string `json:"id"`
		}
		srv.must("POST", "/api/v1/conversations", root, map[string]any{"type": "group", "title": "群聊 " + org, "members": []string{bob.ID}}, &group, http.StatusCreated)
		var rootUser struct {
			ID string `json:"id"`
		}
		srv.must("GET", "/api/v1/me", root, nil, &rootUser, http.StatusOK)
		srv.must("POST", "/api/v1/conversations", bobToken, map[string]any{"type": "direct", "members": []string{rootUser.ID}}, &direct, http.StatusCreated)
		var msgs []message
		for i := range 40 {
			tok, conv := root, group.ID
			if i%3 == 0 {
				tok = bobToken
			}
			if i%5 == 0 {
				conv = direct.ID
			}
			status, m, body, err := srv.send(tok, conv, fmt.Sprintf("%s-%d", org, i), messageText(1, i%7, i))
			if err != nil || status != http.StatusCreated {
				t.Fatalf("send: %d %v %s", status, err, body)
			}
			if conv == group.ID && tok == root {
				msgs = append(msgs, m)
			}
		}
		base := "/api/v1/conversations/" + group.ID + "/messages/"
		srv.must("PATCH", base+msgs[0].ID, root, map[string]any{"text": "编辑后 edited once"}, nil, http.StatusOK)
		srv.must("PATCH", base+msgs[0].ID, root, map[string]any{"text": "编辑后 edited twice"}, nil, http.StatusOK)
		srv.must("POST", base+msgs[1].ID+"/recall", root, nil, nil, http.StatusOK)
		srv.must("POST", base+msgs[2].ID+"/hide", bobToken, nil, nil, http.StatusNoContent)
		srv.must("PUT", base+msgs[3].ID+"/star", bobToken, nil, nil, http.StatusOK)
		srv.must("POST", "/api/v1/conversations/"+group.ID+"/read", bobToken, map[string]any{"seq": 5}, nil, http.StatusOK)
		pop.tokens[org+"/root"], pop.tokens[org+"/bob"] = root, bobToken
		pop.convs[org+"/root"] = []string{group.ID, direct.ID}
		pop.convs[org+"/bob"] = []string{group.ID, direct.ID}
		pop.edited[org+"/root"] = [2]string{group.ID, msgs[0].ID}
	}
	if err := stop(); err != nil {
		t.Fatalf("stop the SQLite server: %v", err)
	}
	return pop
}

// views reads, for every user, what the API shows: initial sync, every conversation's history,
// and the versions of an edited message, as raw response bodies.
func (pop *populated) views(t *testing.T, srv *serverProc) map[string]string {
	t.Helper()
	out := map[string]string{}
	get := func(key, path, token string) {
		status, body, err := srv.do("GET", path, token, nil, nil)
		if err != nil || status != http.StatusOK {
			t.Fatalf("GET %s = %d, %v, %s", path, status, err, body)
		}
		out[key] = string(body)
	}
	for who, token := range pop.tokens {
		get(who+" sync", "/api/v1/sync", token)
		get(who+" conversations", "/api/v1/conversations", token)
		get(who+" sync since 3", "/api/v1/sync?since="+url.QueryEscape("c1.3"), token)
		for _, q := range []string{"消息", "hello", "合同 café", "edited"} {
			get(who+" search "+q, "/api/v1/search?q="+url.QueryEscape(q), token)
		}
		for _, conv := range pop.convs[who] {
			for _, q := range []string{"after_seq=0&limit=200", "before_seq=30&limit=7", "around_seq=12&limit=5"} {
				get(who+" "+conv+" "+q, "/api/v1/conversations/"+conv+"/messages?"+q, token)
			}
		}
		if e, ok := pop.edited[who]; ok {
			get(who+" versions", "/api/v1/conversations/"+e[0]+"/messages/"+e[1]+"/versions", token)
		}
	}
	return out
}

func TestMigrateServesIdenticalHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers and PostgreSQL; skipped with -short")
	}
	cluster := pgtest.Server(t)
	pop := populate(t)
	srv, stop := serveWith(t, "--data", pop.dir)
	want := pop.views(t, srv)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	target := cluster.NewDatabase(t)
	var out, errs bytes.Buffer
	if err := runMigrate(context.Background(), []string{"--from", pop.dir, "--to", target, "--batch", "7"}, &out, &errs); err != nil {
		t.Fatalf("migrate: %v\n%s\n%s", err, out.String(), errs.String())
	}
	if !strings.Contains(out.String(), "every table matches") || strings.Contains(out.String(), "DIFFERENT") {
		t.Fatalf("migrate output:\n%s", out.String())
	}
	for _, table := range []string{"messages", "message_versions", "hidden_messages", "stars", "chatvault_keys.data_keys", "devices"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(table) + `\s+[1-9]\d*\s+[1-9]\d*\s+\w+\s+\w+`).MatchString(out.String()) {
			t.Errorf("migrate report has no non-empty line for %s:\n%s", table, out.String())
		}
	}
	t.Logf("migrate report:\n%s", out.String())

	pg, stopPG := serveWith(t, "--data", pop.dir, "--store", target)
	compareViews(t, "on PostgreSQL", pop.views(t, pg), want)
	// The migrated store takes new writes, and the same tokens work (devices were copied).
	if status, _, body, err := pg.send(pop.tokens["acme/root"], pop.convs["acme/root"][0], "after-migrate", "迁移后 after"); err != nil || status != http.StatusCreated {
		t.Fatalf("send after migrate = %d, %v, %s; want 201", status, err, body)
	}
	if err := stopPG(); err != nil {
		t.Fatal(err)
	}

	// A second migrate of the same source into the finished target changes nothing and says so.
	out.Reset()
	if err := runMigrate(context.Background(), []string{"--from", pop.dir, "--to", target}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "nothing to do") {
		t.Fatalf("second migrate into a finished copy = %v:\n%s; want nothing to do", err, out.String())
	}

	// Another store into that target is refused before anything is copied.
	other := t.TempDir()
	if err := run(context.Background(), []string{"admin", "create-org", "--slug", "gamma", "--admin", "root", "--data", other}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	err := runMigrate(context.Background(), []string{"--from", other, "--to", target}, io.Discard, io.Discard)
	// Refused either by the target's keys (the other store has its own KEK) or by the copy's record.
	if err == nil || !(strings.Contains(err.Error(), "another store") || strings.Contains(err.Error(), "not the key file")) {
		t.Fatalf("migrate of another store into a used target = %v; want a refusal", err)
	}
	// With the same KEK, the copy's record refuses it.
	if err := os.MkdirAll(filepath.Join(other, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	err = runMigrate(context.Background(), []string{"--from", other, "--to", target, "--key-file", filepath.Join(pop.dir, "keys", "kek.json")}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "another store") {
		t.Fatalf("migrate of another store into a used target = %v; want a refusal naming another store", err)
	}
}

func TestMigrateResumesAfterInterruption(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers and PostgreSQL; skipped with -short")
	}
	cluster := pgtest.Server(t)
	pop := populate(t)
	target := cluster.NewDatabase(t)

	// Stop the first run in the middle of messages: at its first progress line within that table.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch := &cancelOn{pattern: "migrate: messages: ", cancel: cancel}
	var out bytes.Buffer
	err := runMigrate(ctx, []string{"--from", pop.dir, "--to", target, "--batch", "1"}, &out, watch)
	if err == nil || !strings.Contains(err.Error(), "run it again") {
		t.Fatalf("interrupted migrate = %v; want an error telling to run it again\n%s", err, watch.String())
	}
	var errs bytes.Buffer
	out.Reset()
	if err := runMigrate(context.Background(), []string{"--from", pop.dir, "--to", target, "--batch", "3"}, &out, &errs); err != nil {
		t.Fatalf("resumed migrate: %v\n%s\n%s", err, out.String(), errs.String())
	}
	if !strings.Contains(errs.String(), "messages: resuming after") || !strings.Contains(errs.String(), "copied by an earlier run") {
		t.Errorf("resumed migrate log does not show it resumed:\n%s", errs.String())
	}
	if !strings.Contains(out.String(), "every table matches") {
		t.Fatalf("resumed migrate output:\n%s", out.String())
	}

	// And the result serves what SQLite served.
	sq, stop := serveWith(t, "--data", pop.dir)
	want := pop.views(t, sq)
	stop()
	pg, _ := serveWith(t, "--data", pop.dir, "--store", target)
	compareViews(t, "after a resumed migrate", pop.views(t, pg), want)
}

func TestMigrateRefusesARunningServer(t *testing.T) {
	bin := chatvaultBinary(t)
	target := pgtest.Server(t).NewDatabase(t)
	dir := t.TempDir()
	srv := startServer(t, bin, dir)
	err := runMigrate(context.Background(), []string{"--from", dir, "--to", target}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("chatvault serve (pid %d) is using %s", srv.cmd.Process.Pid, dir)) {
		t.Fatalf("migrate from a running server's directory = %v; want a refusal", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, "chatvault.db")); serr != nil {
		t.Fatal(serr)
	}
}

// cancelOn collects log output and cancels once it contains pattern.
type cancelOn struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	pattern string
	cancel  func()
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if strings.Contains(c.buf.String(), c.pattern) {
		c.cancel()
	}
	return len(p), nil
}

func (c *cancelOn) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func TestMigrateRefusesATargetWithData(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL; skipped with -short")
	}
	target := pgtest.Server(t).NewDatabase(t)
	_, stop := serveWith(t, "--data", t.TempDir(), "--store", target) // bootstraps its first org there
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	if err := run(context.Background(), []string{"admin", "create-org", "--slug", "acme", "--admin", "root", "--data", src}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	err := runMigrate(context.Background(), []string{"--from", src, "--to", target}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "already holds data") || !strings.Contains(err.Error(), "orgs") {
		t.Fatalf("migrate into a database a server has used = %v; want a refusal naming the tables that hold data", err)
	}
}

// compareViews fails the test for every view that differs. Sync cursors may differ: the
// PostgreSQL store takes event numbers when it indexes the copied messages on its first open,
// so its cursor may be ahead; it must never be behind (a device's cursor stays valid).
func compareViews(t *testing.T, where string, got, want map[string]string) {
	t.Helper()
	for key, w := range want {
		g := got[key]
		if strings.Contains(key, " sync") {
			var gc, wc string
			g, gc = without(t, g, "cursor")
			w, wc = without(t, w, "cursor")
			gn, gerr := chat.DecodeCursor(gc)
			wn, werr := chat.DecodeCursor(wc)
			if gerr != nil || werr != nil || gn < wn {
				t.Errorf("%s %s: cursor %s (%d, %v); want one at or after %s (%d, %v)", key, where, gc, gn, gerr, wc, wn, werr)
			}
		}
		if strings.Contains(key, " search ") {
			// The page cursor is a search document number, which the target numbers afresh.
			var gc, wc string
			g, gc = without(t, g, "next_cursor")
			w, wc = without(t, w, "next_cursor")
			if (gc == "") != (wc == "") {
				t.Errorf("%s %s: next_cursor %q; want one exactly when SQLite has one (%q)", key, where, gc, wc)
			}
		}
		if g != w {
			t.Errorf("%s %s differs from SQLite:\n got %s\nwant %s", key, where, g, w)
		}
	}
}

// without returns body without its top-level string field, and the field's value.
func without(t *testing.T, body, field string) (string, string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	var v string
	json.Unmarshal(m[field], &v)
	delete(m, field)
	out, _ := json.Marshal(m)
	return string(out), v
}
