package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chatvault/chatvault/internal/clocktest"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/postgres/pgtest"
)

// These tests run several real `chatvault serve` processes on one PostgreSQL database.

const (
	logLeads    = "scheduled jobs: this instance runs them"
	logStandby  = "scheduled jobs: another instance runs them; this one takes over if that one stops"
	logRun      = "retention run"
	logCreated  = "created the first org and its admin; the admin's one-time password is in the file"
	clusterText = "跨进程 message across processes 🚀"
)

func TestClusterTwoServersOneDatabase(t *testing.T) {
	bin := chatvaultBinary(t)
	store := pgtest.Server(t).NewDatabase(t)
	// Two machines: each its own data directory, one KEK from the environment (a key file made by
	// each on its own would be two different keys).
	env := []string{"CHATVAULT_KEK=" + base64.StdEncoding.EncodeToString(keyring.Generate())}
	args := func(dir string) []string {
		return []string{"--data", dir, "--store", store, "--retention-interval", "1m",
			"--retention-start-delay", "0s", "--retention-takeover-check", "1s"}
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	// Both start at once on the empty database: the schema and the first org are made once.
	a, b := spawnServer(t, bin, args(dirA), env), spawnServer(t, bin, args(dirB), env)
	a.waitListening(t)
	b.waitListening(t)

	var pwFiles []string
	for _, dir := range []string{dirA, dirB} {
		if _, err := os.Stat(filepath.Join(dir, InitialPasswordFile)); err == nil {
			pwFiles = append(pwFiles, dir)
		}
	}
	if n := a.logged(logCreated) + b.logged(logCreated); len(pwFiles) != 1 || n != 1 {
		t.Fatalf("after two simultaneous first starts, %d password files and %d \"created the first org\" lines; want exactly 1 of each", len(pwFiles), n)
	}
	admin, convID := setup(t, a, pwFiles[0])

	// A second user, signed in on B only.
	var bob struct {
		ID string `json:"id"`
	}
	a.must("POST", "/api/v1/admin/users", admin, map[string]any{"username": "bob", "password": "correct horse battery staple 42"}, &bob, http.StatusCreated)
	a.must("POST", "/api/v1/conversations/"+convID+"/members", admin, map[string]any{"members": []string{bob.ID}}, nil, http.StatusOK)
	var login struct {
		Token string `json:"token"`
	}
	b.must("POST", "/api/v1/auth/login", "", map[string]string{"org": "default", "username": "bob",
		"password": "correct horse battery staple 42", "device_name": "phone"}, &login, http.StatusOK)
	bobToken := login.Token

	// Bob listens on B: a WebSocket, and a long-poll from the current cursor.
	ws := dialClusterWS(t, b.URL, bobToken)
	first := ws.next(t)
	if first.Type != "sync" || first.Cursor == "" {
		t.Fatalf("first WebSocket frame = %+v; want a sync frame with a cursor", first)
	}
	polled := make(chan []byte, 1)
	go func() {
		_, body, err := b.do("GET", "/api/v1/sync?timeout=60&since="+url.QueryEscape(first.Cursor), bobToken, nil, nil)
		if err != nil {
			body = []byte("error: " + err.Error())
		}
		polled <- body
	}()

	// The admin sends on A.
	status, sent, body, err := a.send(admin, convID, "cluster-1", clusterText)
	if err != nil || status != http.StatusCreated {
		t.Fatalf("send on A = %d, %v, %s; want 201", status, err, body)
	}

	// B's WebSocket gets it: pushed whole, or as a sync frame covering it (both are the protocol).
	for {
		f := ws.next(t)
		if f.Type == "message" && f.Message != nil {
			if f.Message.ID != sent.ID || f.Message.Text != clusterText {
				t.Fatalf("WebSocket on B got message %s %q; want %s %q", f.Message.ID, f.Message.Text, sent.ID, clusterText)
			}
			break
		}
		if f.Type == "sync" && syncHas(f.Sync, convID, sent.Seq) {
			break
		}
	}
	select {
	case raw := <-polled:
		var res syncBody
		if err := json.Unmarshal(raw, &res); err != nil || !syncHas(&res, convID, sent.Seq) {
			t.Fatalf("long-poll on B returned %s; want the conversation changed up to seq %d", raw, sent.Seq)
		}
	case <-time.After(70 * time.Second):
		t.Fatal("long-poll on B did not return")
	}
	// And history through B is the message A stored.
	got := b.history(bobToken, convID)
	if len(got) != 1 || got[0].ID != sent.ID || got[0].Text != clusterText {
		t.Fatalf("history on B = %+v; want the one message sent on A", got)
	}

	// Exactly one instance runs the retention schedule; kill -9 it and the other takes over.
	var leader, standby *serverProc
	clocktest.Poll(t, "one leader that has run, and one standby", func() error {
		la, lb := a.logged(logLeads), b.logged(logLeads)
		switch {
		case la == 1 && lb == 0 && a.logged(logRun) > 0 && b.logged(logStandby) == 1:
			leader, standby = a, b
		case lb == 1 && la == 0 && b.logged(logRun) > 0 && a.logged(logStandby) == 1:
			leader, standby = b, a
		default:
			return fmt.Errorf("leads: A %d, B %d; runs: A %d, B %d; want one leader that has run, and one standby",
				la, lb, a.logged(logRun), b.logged(logRun))
		}
		return nil
	})
	if standby.logged(logRun) != 0 {
		t.Fatalf("the standby ran the retention job %d times; want 0", standby.logged(logRun))
	}
	leader.kill()
	clocktest.Poll(t, "the takeover", func() error {
		if standby.logged(logLeads) != 1 || standby.logged(logRun) == 0 {
			return fmt.Errorf("after the leader's death the other logged %d leads and %d runs; want 1 and at least 1",
				standby.logged(logLeads), standby.logged(logRun))
		}
		return nil
	})
	// The survivor still serves, and its runs are in the store.
	if status, _, body, err := standby.send(admin, convID, "cluster-2", "after the failover"); err != nil || status != http.StatusCreated {
		t.Fatalf("send on the survivor = %d, %v, %s; want 201", status, err, body)
	}
	var runs struct {
		Runs []json.RawMessage `json:"runs"`
	}
	standby.must("GET", "/api/v1/admin/retention/runs", admin, nil, &runs, http.StatusOK)
	if len(runs.Runs) < 2 {
		t.Fatalf("purge runs recorded = %d; want one by each leader at least", len(runs.Runs))
	}
}

// syncBody is the part of a sync result the cluster test reads.
type syncBody struct {
	Cursor        string `json:"cursor"`
	Conversations []struct {
		ID      string `json:"id"`
		LastSeq int64  `json:"last_seq"`
	} `json:"conversations"`
}

func syncHas(s *syncBody, convID string, seq int64) bool {
	if s == nil {
		return false
	}
	for _, c := range s.Conversations {
		if c.ID == convID && c.LastSeq >= seq {
			return true
		}
	}
	return false
}

type clusterWS struct{ conn *websocket.Conn }

type clusterFrame struct {
	Type    string    `json:"type"`
	Cursor  string    `json:"cursor"`
	Sync    *syncBody `json:"sync"`
	Message *message  `json:"message"`
}

func dialClusterWS(t *testing.T, base, token string) *clusterWS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/api/v1/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		t.Fatalf("dial WebSocket: %v", err)
	}
	conn.SetReadLimit(1 << 20)
	t.Cleanup(func() { conn.CloseNow() })
	return &clusterWS{conn: conn}
}

// next reads one frame; the bound only keeps a broken server from hanging the test.
func (c *clusterWS) next(t *testing.T) clusterFrame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, data, err := c.conn.Read(ctx)
	if err != nil {
		t.Fatalf("read WebSocket frame: %v", err)
	}
	var f clusterFrame
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("decode WebSocket frame %s: %v", data, err)
	}
	return f
}
