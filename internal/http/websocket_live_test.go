package http_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	cvhttp "github.com/chatvault/chatvault/internal/http"
	"github.com/coder/websocket"
)

// Many connections, several devices per user, several senders at once: every connection receives
// every message, each exactly once and in commit (seq) order.
func TestWebSocketManyConnectionsReceiveEveryFrameInOrder(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	var users []user
	for i := range 8 {
		users = append(users, ts.newUser(fmt.Sprintf("user%d", i)))
	}
	c := ts.group(users[0], "everyone 大家", false, users[1:]...)
	var clients []*wsClient
	for i, u := range users {
		clients = append(clients, ts.dialWS(t, u.Token, "", 0))
		for range 3 {
			d := ts.login(u.Name, "password-"+u.Name, "")
			clients = append(clients, ts.dialWS(t, d.Token, "", 0))
		}
		_ = i
	}
	for _, cl := range clients {
		if f := cl.must(); f.Type != "sync" {
			t.Fatalf("first frame %+v; want sync", f)
		}
	}
	const senders, each = 4, 40
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				ts.send(users[s], c.ID, fmt.Sprintf("%d-%d 你好", s, i))
			}
		}()
	}
	errs := make(chan error, len(clients))
	for n, cl := range clients {
		go func() {
			var last int64
			for last < senders*each {
				f, err := cl.next()
				if err != nil {
					errs <- fmt.Errorf("connection %d after seq %d: %w", n, last, err)
					return
				}
				if f.Type != "message" {
					continue
				}
				if f.Message.Seq != last+1 {
					errs <- fmt.Errorf("connection %d: seq %d after %d; want every message once, in order", n, f.Message.Seq, last)
					return
				}
				last = f.Message.Seq
			}
			errs <- nil
		}()
	}
	wg.Wait()
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// A client that stops reading is cut off with 4008 while a member reading normally keeps
// receiving every message, in order.
func TestWebSocketSlowConsumerDoesNotHoldUpOthers(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice, bob, carol := ts.newUser("alice"), ts.newUser("bob"), ts.newUser("carol")
	c := ts.group(alice, "firehose", false, bob, carol)
	slow := ts.dialWS(t, bob.Token, "", 4096)
	fast := ts.dialWS(t, carol.Token, "", 0)
	slow.must()
	fast.must()

	const total = 600
	big := strings.Repeat("长消息 long message ", 350)
	fastDone := make(chan error, 1)
	go func() {
		var last int64
		for last < total {
			f, err := fast.next()
			if err != nil {
				fastDone <- fmt.Errorf("after seq %d: %w", last, err)
				return
			}
			if f.Type == "message" {
				if f.Message.Seq != last+1 {
					fastDone <- fmt.Errorf("seq %d after %d", f.Message.Seq, last)
					return
				}
				last = f.Message.Seq
			}
		}
		fastDone <- nil
	}()
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
	if err := <-fastDone; err != nil {
		t.Fatalf("the reading member: %v", err)
	}
	var closeErr error
	for closeErr == nil {
		_, closeErr = slow.next()
	}
	if status := websocket.CloseStatus(closeErr); status != cvhttp.CloseSlowConsumer {
		t.Fatalf("slow consumer closed with %v (status %d); want %d", closeErr, status, cvhttp.CloseSlowConsumer)
	}
}

// Shutting the server down closes every live socket with 1001 and the cursor to resume from, and
// no new socket opens.
func TestWebSocketServerShutdownClosesEverySocket(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice, bob := ts.newUser("alice"), ts.newUser("bob")
	c := ts.group(alice, "before the restart", false, bob)
	var clients []*wsClient
	for _, u := range []user{alice, bob, alice, bob} {
		cl := ts.dialWS(t, u.Token, "", 0)
		cl.must()
		clients = append(clients, cl)
	}
	ts.send(alice, c.ID, "last words")
	cursors := make([]string, len(clients))
	for i, cl := range clients {
		for {
			f := cl.must()
			if f.Type == "message" {
				cursors[i] = f.Cursor
				break
			}
		}
	}
	ts.stop()
	for i, cl := range clients {
		_, err := cl.next()
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway || !strings.Contains(ce.Reason, "since="+cursors[i]) {
			t.Fatalf("socket %d on shutdown: %v; want close 1001 naming since=%s", i, err, cursors[i])
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/api/v1/ws?access_token="+alice.Token, nil); err == nil {
		conn.CloseNow()
		t.Fatal("a socket opened after shutdown")
	}
}

// A message over the size limit closes with 1009; frames RFC 6455 forbids close with 1002; a
// fragmented message is put together; a page from another origin is refused.
func TestWebSocketFrameErrors(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.newUser("alice")
	c := ts.group(alice, "frames", false)

	t.Run("oversized message", func(t *testing.T) {
		cl := ts.dialWS(t, alice.Token, "", 0)
		cl.must()
		huge, _ := json.Marshal(map[string]string{"type": "send", "conversation_id": c.ID, "client_msg_id": "big", "text": strings.Repeat("大", 30000)})
		if err := cl.conn.Write(context.Background(), websocket.MessageText, huge); err != nil {
			t.Fatal(err)
		}
		_, err := cl.next()
		if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
			t.Fatalf("after a %d-byte message: %v (status %d); want 1009", len(huge), err, got)
		}
	})

	send, _ := json.Marshal(map[string]string{"type": "send", "conversation_id": c.ID, "client_msg_id": "frag", "text": "分片 fragments"})
	for _, tc := range []struct {
		name   string
		frames [][]byte
		want   int // close code; 0: an ack
	}{
		{"unmasked frame", [][]byte{rawFrame(true, 0x1, send, false)}, 1002},
		{"reserved opcode", [][]byte{rawFrame(true, 0x3, []byte("x"), true)}, 1002},
		{"reserved bit", [][]byte{func() []byte { f := rawFrame(true, 0x1, send, true); f[0] |= 0x40; return f }()}, 1002},
		{"continuation without a start", [][]byte{rawFrame(true, 0x0, send, true)}, 1002},
		{"fragmented ping", [][]byte{rawFrame(false, 0x9, nil, true)}, 1002},
		{"oversized frame header", [][]byte{rawFrame(true, 0x1, make([]byte, 70000), true)}, 1009},
		{"fragmented message", [][]byte{rawFrame(false, 0x1, send[:10], true), rawFrame(true, 0x9, []byte("ping"), true), rawFrame(true, 0x0, send[10:], true)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, br := ts.dialRaw(t, alice.Token, "")
			for _, f := range tc.frames {
				conn.Write(f)
			}
			for {
				op, payload, err := readRawFrame(br)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				switch op {
				case 0x8:
					if code := int(binary.BigEndian.Uint16(payload)); code != tc.want {
						t.Fatalf("closed with %d (%s); want %d", code, payload[2:], tc.want)
					}
					return
				case 0x1:
					var f cvhttp.WSFrame
					json.Unmarshal(payload, &f)
					if f.Type == "ack" && tc.want == 0 {
						if f.ClientMsgID != "frag" || f.Message.Text != "分片 fragments" {
							t.Fatalf("ack %+v", f)
						}
						return
					}
				}
			}
		})
	}

	t.Run("foreign origin", func(t *testing.T) {
		req, _ := http.NewRequest("GET", ts.URL+"/api/v1/ws", nil)
		for k, v := range map[string]string{"Authorization": "Bearer " + alice.Token, "Connection": "Upgrade", "Upgrade": "websocket",
			"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": "https://evil.example"} {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("handshake from another origin: %d; want 403", resp.StatusCode)
		}
	})
}

// dialRaw does the WebSocket handshake by hand and reads the first (sync) frame, for tests that
// send what no library would.
func (ts *testServer) dialRaw(t *testing.T, token, origin string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	fmt.Fprintf(conn, "GET /api/v1/ws HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n",
		strings.TrimPrefix(ts.URL, "http://"), token, key)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s", resp.Status)
	}
	if op, _, err := readRawFrame(br); err != nil || op != 0x1 {
		t.Fatalf("first frame: op %d, %v", op, err)
	}
	return conn, br
}

func rawFrame(fin bool, op byte, payload []byte, masked bool) []byte {
	b := []byte{op}
	if fin {
		b[0] |= 0x80
	}
	var m byte
	if masked {
		m = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, m|byte(n))
	case n <= 0xFFFF:
		b = append(b, m|126, byte(n>>8), byte(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !masked {
		return append(b, payload...)
	}
	mask := [4]byte{1, 2, 3, 4}
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	return b
}

func readRawFrame(br *bufio.Reader) (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	p := make([]byte, n)
	_, err := io.ReadFull(br, p)
	return h[0] & 0x0F, p, err
}

// The goroutine-per-connection path (TLS, systems without the event loop) serves the same
// protocol from the same hub: delivery in order, slow consumers cut off with 4008, revocation.
func TestWebSocketGoroutinePerConnectionPath(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	cvhttp.UseGoroutinePerConnection(ts.srv)
	alice, bob, carol := ts.newUser("alice"), ts.newUser("bob"), ts.newUser("carol")
	c := ts.group(alice, "old path", false, bob, carol)
	slow := ts.dialWS(t, bob.Token, "", 4096)
	fast := ts.dialWS(t, carol.Token, "", 0)
	slow.must()
	fast.must()
	const total = 400
	big := strings.Repeat("长消息 long message ", 350)
	for i := range total {
		ts.send(alice, c.ID, fmt.Sprintf("%d %s", i, big))
		if f := fast.nextMessage(); f.Seq != int64(i+1) {
			t.Fatalf("reading member got seq %d; want %d", f.Seq, i+1)
		}
	}
	var closeErr error
	for closeErr == nil {
		_, closeErr = slow.next()
	}
	if status := websocket.CloseStatus(closeErr); status != cvhttp.CloseSlowConsumer {
		t.Fatalf("slow consumer closed with %v; want %d", closeErr, cvhttp.CloseSlowConsumer)
	}
	phone := ts.login("carol", "password-carol", "")
	ws := ts.dialWS(t, phone.Token, "", 0)
	ws.must()
	ts.must(http.StatusNoContent, "DELETE", "/api/v1/devices/"+phone.DeviceID, carol.Token, nil)
	if _, err := ws.next(); websocket.CloseStatus(err) != cvhttp.CloseSignedOut {
		t.Fatalf("after revoking the device: %v; want close %d", err, cvhttp.CloseSignedOut)
	}
}
