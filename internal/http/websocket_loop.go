package http

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/hub"
	"github.com/chatvault/chatvault/internal/wsloop"
	"github.com/coder/websocket"
)

// liveLoop returns the server's WebSocket event loop, started on first use; nil where there is
// none (not Linux, or it could not start), and connections then keep a goroutine each.
func (s *Server) liveLoop() *wsloop.Loop {
	if !wsloop.Supported {
		return nil
	}
	s.loopOnce.Do(func() {
		loop, err := wsloop.New(wsloop.Config{ReadLimit: s.cfg.MaxBodyBytes, WriteTimeout: s.cfg.WSWriteTimeout,
			PingInterval: wsPingInterval, Logger: s.logger})
		if err != nil {
			s.logger.Error("start the WebSocket event loop; live connections keep a goroutine each", "error", err)
			return
		}
		s.loop.Store(loop)
	})
	return s.loop.Load()
}

// websocketLoop serves a live connection from the event loop: the handshake, the subscription and
// the first sync frame happen here, on the request's goroutine; then the socket joins the loop
// and this goroutine ends. Between events the connection holds no goroutine and no buffer.
func (s *Server) websocketLoop(loop *wsloop.Loop, w http.ResponseWriter, r *http.Request, a chatvault.Actor, since int64) error {
	nc, early, err := wsloop.Upgrade(w, r)
	if err != nil {
		return nil // Upgrade has answered the client
	}
	s.cfg.Observer.WebSocketOpened()
	ss := &wsSession{s: s, a: a, token: bearer(r)}
	// The session outlives the request. It keeps the request id for logs but not the request's
	// context, which would hold the hijacked connection's objects for the socket's lifetime; and
	// it is not cancellable: a cancel context would keep, per idle socket, a done channel and a
	// map of the children every query registers. A send or sync in flight when the socket
	// closes finishes, as a REST request whose client hung up does once the store has it.
	ss.ctx = context.WithValue(context.Background(), requestIDKey{}, requestID(r.Context()))
	abandon := func(code websocket.StatusCode, reason string) error {
		nc.SetWriteDeadline(time.Now().Add(s.cfg.WSWriteTimeout))
		nc.Write(wsloop.AppendClose(nil, int(code), reason))
		nc.Close()
		ss.sub.Close()
		s.cfg.Observer.WebSocketClosed(false)
		return nil
	}

	// Subscribe before the first sync, so nothing committed in between is missed; what arrives
	// meanwhile waits in the subscription until the connection is in the loop.
	ss.sub = s.hub.Notify(a, wsQueue, ss.wake)
	var first *chat.SyncResult
	if since < 0 {
		first, err = s.chat.InitialSync(ss.ctx, a)
	} else {
		first, err = s.chat.Sync(ss.ctx, a, since)
	}
	if err != nil {
		if chatvault.ErrorCode(err) == chatvault.ERESYNC {
			return abandon(CloseResync, "cursor unusable: reconnect without since")
		}
		return abandon(websocket.StatusInternalError, "sync failed")
	}
	ss.cursor, _ = chat.DecodeCursor(first.Cursor)
	data, err := json.Marshal(WSFrame{Type: "sync", Cursor: first.Cursor, Sync: first})
	if err != nil {
		return abandon(websocket.StatusInternalError, "sync failed")
	}
	nc.SetWriteDeadline(time.Now().Add(s.cfg.WSWriteTimeout))
	if _, err := nc.Write(wsloop.AppendText(nil, data)); err != nil {
		nc.Close()
		ss.sub.Close()
		s.cfg.Observer.WebSocketClosed(false)
		return nil
	}
	nc.SetWriteDeadline(time.Time{})
	c, err := loop.Add(nc, early, ss)
	if err != nil {
		return abandon(websocket.StatusGoingAway, "server shutting down")
	}
	ss.conn.Store(c)
	c.Wake() // for what the subscription collected meanwhile
	return nil
}

// wsSession is one live connection's state in the event loop.
type wsSession struct {
	s     *Server
	a     chatvault.Actor
	token string
	ctx   context.Context
	sub   *hub.Subscription
	conn  atomic.Pointer[wsloop.Conn]
	slow  atomic.Bool

	// cursor is the last event the client was sent; only Fill touches it after the first sync.
	cursor int64

	// replies are answers to the client's sends waiting for Fill; end, when set, closes the
	// connection after them.
	mu        sync.Mutex
	replies   [][]byte
	endCode   websocket.StatusCode
	endReason string
}

// wake is the subscription's: events are waiting, or it was dropped.
func (ss *wsSession) wake() {
	if c := ss.conn.Load(); c != nil {
		c.Wake()
	}
}

// Message handles a frame the client sent, off the event loop; the answer goes out with the next
// Fill.
func (ss *wsSession) Message(c *wsloop.Conn, data []byte) {
	reply, signedOut := ss.s.wsReceive(ss.ctx, ss.a, ss.token, data)
	b, err := json.Marshal(reply)
	ss.mu.Lock()
	if err == nil {
		ss.replies = append(ss.replies, b)
	}
	if signedOut && ss.endCode == 0 {
		ss.endCode, ss.endReason = CloseSignedOut, "signed out"
	}
	ss.mu.Unlock()
	c.Wake()
}

// Fill writes what the client should receive now, as the goroutine-per-connection handler does:
// a dropped subscription wins over queued events (the client is told where to resume), a new
// message is the shared pre-encoded frame, any other event becomes a sync frame from the cursor.
func (ss *wsSession) Fill(c *wsloop.Conn, out []byte) ([]byte, int, string) {
	ss.mu.Lock()
	replies, code, reason := ss.replies, ss.endCode, ss.endReason
	ss.replies = nil
	ss.mu.Unlock()
	for _, r := range replies {
		out = wsloop.AppendText(out, r)
	}
	if code != 0 {
		return out, int(code), reason
	}
	if c.ShuttingDown() {
		code, reason := closeFrameFor("server shutting down", ss.cursor)
		return out, int(code), reason
	}
	select {
	case <-ss.sub.Done():
		ss.slow.Store(ss.sub.Reason() == "slow consumer")
		code, reason := closeFrameFor(ss.sub.Reason(), ss.cursor)
		return out, int(code), reason
	default:
	}
	for _, ev := range ss.sub.Take() {
		if ev.ID <= ss.cursor {
			continue // already covered by a sync frame
		}
		if ev.Kind == chatvault.EventMessage {
			out = wsloop.AppendText(out, ss.s.frames.message(ev))
			ss.cursor = ev.ID
			continue
		}
		res, err := ss.s.chat.Sync(ss.ctx, ss.a, ss.cursor)
		if err != nil {
			return out, int(websocket.StatusInternalError), "sync failed"
		}
		data, err := json.Marshal(WSFrame{Type: "sync", Cursor: res.Cursor, Sync: res})
		if err != nil {
			return out, int(websocket.StatusInternalError), "sync failed"
		}
		out = wsloop.AppendText(out, data)
		ss.cursor, _ = chat.DecodeCursor(res.Cursor)
	}
	return out, 0, ""
}

// Closed releases the session once the socket is gone.
func (ss *wsSession) Closed(*wsloop.Conn) {
	ss.sub.Close()
	ss.s.cfg.Observer.WebSocketClosed(ss.slow.Load())
}
