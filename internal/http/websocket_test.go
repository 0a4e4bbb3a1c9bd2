package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	cvhttp "github.com/chatvault/chatvault/internal/http"
	"github.com/coder/websocket"
)

type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

// dialWS opens /api/v1/ws; readBuffer > 0 shrinks the client's socket buffer, so a client that
// stops reading backs up quickly.
func (ts *testServer) dialWS(t *testing.T, token, since string, readBuffer int) *wsClient {
	t.Helper()
	u := "ws" + strings.TrimPrefix(ts.URL, "http") + "/api/v1/ws"
	if since != "" {
		u += "?since=" + url.QueryEscape(since)
	}
	client := http.DefaultClient
	if readBuffer > 0 {
		client = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				c.(*net.TCPConn).SetReadBuffer(readBuffer)
			}
			return c, err
		}}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: client,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		t.Fatalf("dial ws: %v (%v)", err, resp)
	}
	conn.SetReadLimit(1 << 20)
	t.Cleanup(func() { conn.CloseNow() })
	return &wsClient{t: t, conn: conn}
}

// next reads one frame, failing the test if none comes within a generous bound.
func (c *wsClient) next() (cvhttp.WSFrame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, data, err := c.conn.Read(ctx)
	if err != nil {
		return cvhttp.WSFrame{}, err
	}
	var f cvhttp.WSFrame
	if err := json.Unmarshal(data, &f); err != nil {
		c.t.Fatalf("frame %s: %v", data, err)
	}
	return f, nil
}

func (c *wsClient) must() cvhttp.WSFrame {
	c.t.Helper()
	f, err := c.next()
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	return f
}

// nextMessage skips sync frames and returns the next pushed message.
func (c *wsClient) nextMessage() *chatvault.Message {
	c.t.Helper()
	for {
		f := c.must()
		if f.Type == "message" {
			return f.Message
		}
	}
}

func TestWebSocketDeliversToEveryDeviceOfEveryMember(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice, bob, eve := ts.newUser("alice"), ts.newUser("bob"), ts.newUser("eve")
	alicePhone := ts.login("alice", "password-alice", "")
	c := ts.group(alice, "live", false, bob)
	eveOnly := ts.group(eve, "eve alone", false)

	clients := map[string]*wsClient{
		"alice laptop": ts.dialWS(t, alice.Token, "", 0),
		"alice phone":  ts.dialWS(t, alicePhone.Token, "", 0),
		"bob":          ts.dialWS(t, bob.Token, "", 0),
	}
	eveWS := ts.dialWS(t, eve.Token, "", 0)
	for name, cl := range clients {
		if f := cl.must(); f.Type != "sync" || !f.Sync.Initial {
			t.Fatalf("%s: first frame %+v; want the initial sync", name, f)
		}
	}
	eveWS.must()

	sent := ts.send(alice, c.ID, "大家好 hello all")
	for name, cl := range clients {
		if m := cl.nextMessage(); m.ID != sent.ID || m.Text != "大家好 hello all" || m.Seq != 1 {
			t.Fatalf("%s got %+v; want the sent message", name, m)
		}
	}
	// Eve is in no shared conversation: the first thing she receives is her own group's message.
	own := ts.send(eve, eveOnly.ID, "just me")
	if m := eveWS.nextMessage(); m.ID != own.ID {
		t.Fatalf("eve received %+v before her own message; she must not see the group's", m)
	}

	// Sending over the socket: acknowledged once durable, and idempotent like REST.
	bobWS := clients["bob"]
	frame := map[string]string{"type": "send", "conversation_id": c.ID, "client_msg_id": "ws-1", "text": "from the socket"}
	for i, wantCreated := range []bool{true, false} {
		data, _ := json.Marshal(frame)
		if err := bobWS.conn.Write(context.Background(), websocket.MessageText, data); err != nil {
			t.Fatal(err)
		}
		var ack cvhttp.WSFrame
		for ack.Type != "ack" {
			ack = bobWS.must()
			if ack.Type == "error" {
				t.Fatalf("send %d: %+v", i, ack.Error)
			}
		}
		if ack.ClientMsgID != "ws-1" || ack.Created != wantCreated || ack.Message.Seq != 2 {
			t.Fatalf("ack %d = %+v; want seq 2, created %v", i, ack, wantCreated)
		}
	}
	if m := clients["alice phone"].nextMessage(); m.Text != "from the socket" {
		t.Fatalf("alice's phone got %+v", m)
	}
	bad, _ := json.Marshal(map[string]string{"type": "send", "conversation_id": eveOnly.ID, "client_msg_id": "x", "text": "intrude"})
	bobWS.conn.Write(context.Background(), websocket.MessageText, bad)
	for {
		f := bobWS.must()
		if f.Type == "error" {
			if f.Error.Code != "not_found" || f.ClientMsgID != "x" {
				t.Fatalf("send to a foreign conversation: %+v; want not_found", f.Error)
			}
			break
		}
	}

	// After leaving, bob's socket stops receiving the group's messages.
	ts.must(http.StatusNoContent, "POST", "/api/v1/conversations/"+c.ID+"/leave", bob.Token, nil)
	gone := ts.send(alice, c.ID, "bob has gone")
	bobsOwn := ts.group(bob, "bob's new group", false)
	mine := ts.send(bob, bobsOwn.ID, "mine")
	bobWS.awaitDelivery(bobsOwn.ID, mine.Seq, func(f cvhttp.WSFrame) {
		if f.Type == "message" && f.Message.ConversationID == c.ID {
			t.Fatalf("after leaving, bob received %+v from the group he left", f.Message)
		}
		if f.Type == "sync" {
			for _, sc := range f.Sync.Conversations {
				if sc.ID == c.ID && sc.LastSeq >= gone.Seq {
					t.Fatalf("after leaving, a sync frame shows bob the group he left at seq %d", sc.LastSeq)
				}
			}
		}
	})
}

// awaitDelivery reads frames until the client has learned of seq in conversation convID, either
// form the protocol allows: the message pushed whole, or a sync frame listing the conversation at
// or past seq (the event the message frame would carry was already covered by that sync). check
// sees every frame read on the way.
func (c *wsClient) awaitDelivery(convID string, seq int64, check func(cvhttp.WSFrame)) {
	c.t.Helper()
	for {
		f := c.must()
		check(f)
		switch f.Type {
		case "message":
			if f.Message.ConversationID == convID && f.Message.Seq >= seq {
				return
			}
		case "sync":
			for _, sc := range f.Sync.Conversations {
				if sc.ID == convID && sc.LastSeq >= seq {
					return
				}
			}
		}
	}
}

func TestWebSocketSlowConsumerResumesWithoutLoss(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice, bob := ts.newUser("alice"), ts.newUser("bob")
	c := ts.group(alice, "firehose", false, bob)
	slow := ts.dialWS(t, bob.Token, "", 4096)
	first := slow.must()
	lastCursor := first.Cursor

	// Bob stops reading while far more arrives than his queue (256 events) and the socket buffers
	// (64 KiB on the server's side, 4 KiB on his) hold.
	const total = 600
	big := strings.Repeat("长消息 long message ", 350)
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += 6 {
				ts.send(alice, c.ID, fmt.Sprintf("%d %s", i, big))
			}
		}()
	}
	wg.Wait()

	got := map[int64]bool{}
	var closeErr error
	for {
		f, err := slow.next()
		if err != nil {
			closeErr = err
			break
		}
		if f.Type == "message" {
			got[f.Message.Seq] = true
			lastCursor = f.Cursor
		}
	}
	if status := websocket.CloseStatus(closeErr); status != cvhttp.CloseSlowConsumer {
		t.Fatalf("slow consumer closed with %v (status %d); want %d", closeErr, status, cvhttp.CloseSlowConsumer)
	}
	var ce websocket.CloseError
	errors.As(closeErr, &ce)
	if !strings.Contains(ce.Reason, "since="+lastCursor) {
		t.Fatalf("close reason %q; want the resume cursor %s (the last frame's)", ce.Reason, lastCursor)
	}
	if len(got) == total {
		t.Fatalf("the slow consumer got all %d messages without falling behind; the test did not push hard enough", total)
	}
	// Resume from the last cursor it saw: the feed names the conversation, the gap is fetched.
	var res syncResult
	ts.must(http.StatusOK, "GET", "/api/v1/sync?since="+url.QueryEscape(lastCursor), bob.Token, nil).decode(t, &res)
	if len(res.Conversations) != 1 || res.Conversations[0].LastSeq != total {
		t.Fatalf("resume sync = %+v; want the conversation at last_seq %d", res, total)
	}
	after := int64(0)
	for {
		p := ts.history(bob, c.ID, fmt.Sprintf("?after_seq=%d&limit=200", after))
		for _, m := range p.Messages {
			got[m.Seq] = true
			after = m.Seq
		}
		if !p.HasMore {
			break
		}
	}
	for seq := int64(1); seq <= total; seq++ {
		if !got[seq] {
			t.Fatalf("seq %d lost after resuming", seq)
		}
	}
}

func TestWebSocketClosesWhenSignedOut(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	bob := ts.newUser("bob")
	phone := ts.login("bob", "password-bob", "")
	ws := ts.dialWS(t, phone.Token, "", 0)
	ws.must()
	ts.must(http.StatusNoContent, "DELETE", "/api/v1/devices/"+phone.DeviceID, bob.Token, nil)
	_, err := ws.next()
	if got := websocket.CloseStatus(err); got != cvhttp.CloseSignedOut {
		t.Fatalf("after revoking the device, read = %v (status %d); want close %d", err, got, cvhttp.CloseSignedOut)
	}

	other := ts.dialWS(t, bob.Token, "", 0)
	other.must()
	ts.must(http.StatusOK, "POST", "/api/v1/admin/users/"+bob.ID+"/disable", ts.adminToken, nil)
	_, err = other.next()
	if got := websocket.CloseStatus(err); got != cvhttp.CloseSignedOut {
		t.Fatalf("after disabling the user, read = %v (status %d); want close %d", err, got, cvhttp.CloseSignedOut)
	}
	// A revoked token cannot open a new socket.
	u := "ws" + strings.TrimPrefix(ts.URL, "http") + "/api/v1/ws?access_token=" + phone.Token
	_, resp, err := websocket.Dial(context.Background(), u, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("dial with a revoked token: %v %v; want 401", err, resp)
	}
}
