package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/account"
	"github.com/chatvault/chatvault/internal/audit"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/clocktest"
	"github.com/chatvault/chatvault/internal/export"
	"github.com/chatvault/chatvault/internal/export/xlsx"
	cvhttp "github.com/chatvault/chatvault/internal/http"
	"github.com/chatvault/chatvault/internal/hub"
	"github.com/chatvault/chatvault/internal/retention"
	"github.com/chatvault/chatvault/internal/sqlite"
)

// testServer is a real chatvault API on 127.0.0.1:0 over a temporary SQLite store.
type testServer struct {
	t        *testing.T
	URL      string
	clock    *clocktest.Clock
	accounts *account.Service
	db       *sqlite.DB
	exports  *export.Jobs
	// stop stops the hub and shuts the server down, as chatvault serve does on SIGTERM; cleanup
	// calls it too, and only the first call acts.
	stop func()
	srv  *cvhttp.Server

	adminToken string
	orgID      string

	// validate, when set, checks every response (the OpenAPI contract test sets it).
	validate func(t *testing.T, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte)
}

// newTestServer starts a server; opts change the account service's configuration.
func newTestServer(t *testing.T, opts ...func(*account.Config)) *testServer {
	t.Helper()
	db, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	clock := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	logger := slog.New(slog.NewTextHandler(testLogWriter{t}, nil))
	aud := audit.New(db, db.Keyring(), clock)
	acfg := account.Config{Audit: aud}
	for _, o := range opts {
		o(&acfg)
	}
	accounts := account.NewService(db, clock, acfg)
	ret := retention.New(db, aud, clock, logger, nil)
	chatSvc := chat.NewService(db, clock, chat.Config{RecallWindow: 2 * time.Minute, Classifier: ret, Audit: aud})
	h := hub.New(db, logger)
	db.SetEventSink(h.Publish)
	hubCtx, stopHub := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() { h.Run(hubCtx); close(hubDone) }()
	exports, err := export.NewJobs(export.JobsConfig{Store: db, Chat: chatSvc, Clock: clock, Logger: logger, Dir: t.TempDir(), NewWriter: xlsx.NewWriter, Seal: aud})
	if err != nil {
		t.Fatal(err)
	}
	srv := cvhttp.NewServer(cvhttp.Services{Accounts: accounts, Chat: chatSvc, Retention: ret, Audit: aud, Hub: h, Store: db, Exports: exports}, logger, cvhttp.Config{MaxBodyBytes: 64 << 10,
		// Long, so a client the slow-consumer test stalls on purpose meets the queue bound, not
		// this timeout, even on a loaded machine.
		WSWriteTimeout: 2 * time.Minute})
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	stop := sync.OnceFunc(func() {
		stopHub()
		<-hubDone
		srv.Shutdown(context.Background())
	})
	t.Cleanup(func() {
		stop()
		exports.Close()
		db.Close()
	})
	ts := &testServer{t: t, URL: "http://" + srv.Addr(), clock: clock, accounts: accounts, db: db, exports: exports, stop: stop, srv: srv}

	org, _, password, err := accounts.Bootstrap(context.Background())
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	ts.orgID = org.ID
	ts.adminToken = ts.login("admin", password, "").Token
	// The one-time password only lets the admin choose their own; the session then works.
	ts.must(http.StatusNoContent, "PUT", "/api/v1/me/password", ts.adminToken, map[string]string{
		"current_password": password, "new_password": adminPassword})
	return ts
}

// adminPassword is the bootstrap admin's password once changed from the one-time one.
const adminPassword = "管理员-admin-pw-2026"

// response is a decoded API response.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// errorCode returns the error code of an error response.
func (r response) errorCode(t *testing.T) (code, field string) {
	t.Helper()
	var body cvhttp.ErrorBody
	r.decode(t, &body)
	if body.Error.Code == "" || body.Error.Message == "" {
		t.Fatalf("error response %s lacks code or message", r.Body)
	}
	return body.Error.Code, body.Error.Field
}

// do sends a request; body may be nil, a []byte sent as is, or a value sent as JSON.
func (ts *testServer) do(method, path, token string, body any) response {
	ts.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			ts.t.Fatal(err)
		}
	}
	contentType := ""
	if raw != nil {
		contentType = "application/json"
	}
	return ts.doRaw(method, path, token, contentType, raw)
}

// doRaw makes one request with a raw body and the given Content-Type ("" for none).
func (ts *testServer) doRaw(method, path, token, contentType string, raw []byte) response {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, bytes.NewReader(raw))
	if err != nil {
		ts.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	if ts.validate != nil {
		req.Body = io.NopCloser(bytes.NewReader(raw))
		ts.validate(ts.t, req, raw, resp, out)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: out}
}

// must sends a request and fails the test unless the status is want.
func (ts *testServer) must(want int, method, path, token string, body any) response {
	ts.t.Helper()
	r := ts.do(method, path, token, body)
	if r.Status != want {
		ts.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, r.Status, want, r.Body)
	}
	return r
}

func (ts *testServer) login(username, password, org string) account.LoginResult {
	ts.t.Helper()
	var res account.LoginResult
	ts.must(http.StatusOK, "POST", "/api/v1/auth/login", "", map[string]string{
		"username": username, "password": password, "device_name": "test device", "org": org}).decode(ts.t, &res)
	return res
}

// user creates a member of the default org and signs them in.
type user struct {
	ID    string
	Name  string
	Token string
}

func (ts *testServer) newUser(name string) user {
	ts.t.Helper()
	var u chatvault.User
	ts.must(http.StatusCreated, "POST", "/api/v1/admin/users", ts.adminToken, map[string]any{
		"username": name, "password": "password-" + name, "display_name": name}).decode(ts.t, &u)
	return user{ID: u.ID, Name: name, Token: ts.login(name, "password-"+name, "").Token}
}

type conversation struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	LastSeq int64  `json:"last_seq"`
}

func (ts *testServer) group(owner user, title string, history bool, members ...user) conversation {
	ts.t.Helper()
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	var c conversation
	ts.must(http.StatusCreated, "POST", "/api/v1/conversations", owner.Token, map[string]any{
		"type": "group", "title": title, "members": ids, "history_visible_to_new_members": history}).decode(ts.t, &c)
	return c
}

var msgCounter struct {
	sync.Mutex
	n int
}

func nextClientID() string {
	msgCounter.Lock()
	defer msgCounter.Unlock()
	msgCounter.n++
	return fmt.Sprintf("c-%d", msgCounter.n)
}

func (ts *testServer) send(from user, convID, text string) chatvault.Message {
	ts.t.Helper()
	var m chatvault.Message
	ts.must(http.StatusCreated, "POST", "/api/v1/conversations/"+convID+"/messages", from.Token, map[string]any{
		"client_msg_id": nextClientID(), "text": text}).decode(ts.t, &m)
	return m
}

type page struct {
	Messages      []chatvault.Message `json:"messages"`
	HasMore       bool                `json:"has_more"`
	HasMoreBefore bool                `json:"has_more_before"`
	HasMoreAfter  bool                `json:"has_more_after"`
}

func (ts *testServer) history(u user, convID, query string) page {
	ts.t.Helper()
	var p page
	ts.must(http.StatusOK, "GET", "/api/v1/conversations/"+convID+"/messages"+query, u.Token, nil).decode(ts.t, &p)
	return p
}

func texts(ms []chatvault.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Text
	}
	return out
}

// testLogWriter sends the server's log to the test's log, shown only when the test fails.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
