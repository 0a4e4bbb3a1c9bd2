package http

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/coder/websocket"
)

// WebSocket close codes beyond the standard ones, so a client knows what to do next.
const (
	CloseSignedOut    websocket.StatusCode = 4001 // the device was revoked or the account disabled: sign in again
	CloseSlowConsumer websocket.StatusCode = 4008 // the client fell behind: resume with GET /sync?since=<cursor in the reason>
	CloseResync       websocket.StatusCode = 4010 // the cursor is unusable: reconnect without since
)

// Live connection limits.
const (
	wsQueue        = 256              // events waiting for one connection before it is a slow consumer
	wsPingInterval = 30 * time.Second // keepalive
	// wsSendBuffer caps the kernel's send buffer of a live connection. Left alone, Linux grows it to
	// 4 MiB for a client that stops reading, and the bounded queue would bound nothing.
	wsSendBuffer = 64 << 10
)

// WSFrame is every frame the server sends on /api/v1/ws. Type says which fields are set:
// "sync" (Sync), "message" (Message and Cursor), "ack" (ClientMsgID and Message), "error"
// (ClientMsgID when the error answers a send, and Error).
type WSFrame struct {
	Type        string             `json:"type"`
	Cursor      string             `json:"cursor,omitempty"`
	Sync        *chat.SyncResult   `json:"sync,omitempty"`
	Message     *chatvault.Message `json:"message,omitempty"`
	ClientMsgID string             `json:"client_msg_id,omitempty"`
	Created     bool               `json:"created,omitempty"`
	Error       *ErrorDetail       `json:"error,omitempty"`
}

// WSSend is the frame a client sends to post a message; the same rules as POST .../messages apply.
type WSSend struct {
	Type           string `json:"type"` // "send"
	ConversationID string `json:"conversation_id"`
	ClientMsgID    string `json:"client_msg_id"`
	Text           string `json:"text"`
	ReplyTo        string `json:"reply_to"`
}

// websocket serves GET /api/v1/ws[?since=CURSOR]: first a sync frame (initial, or the changes after
// since), then every change as it commits, in order; it accepts sends.
func (s *Server) websocket(w http.ResponseWriter, r *http.Request) error {
	a, err := s.authenticate(r, true)
	if err != nil {
		return err
	}
	var since int64 = -1
	if r.URL.Query().Has("since") {
		if since, err = chat.DecodeCursor(r.URL.Query().Get("since")); err != nil {
			return err
		}
	}
	if tc, ok := r.Context().Value(netConnKey{}).(*net.TCPConn); ok {
		tc.SetWriteBuffer(wsSendBuffer)
		// A plain TCP connection joins the event loop where there is one; TLS keeps a goroutine
		// per connection (the loop reads the socket itself and would need its own TLS).
		if loop := s.liveLoop(); loop != nil {
			return s.websocketLoop(loop, w, r, a, since)
		}
	}
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return nil // Accept has answered the client
	}
	conn.SetReadLimit(s.cfg.MaxBodyBytes)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	s.cfg.Observer.WebSocketOpened()
	slow := false
	defer func() { s.cfg.Observer.WebSocketClosed(slow) }()

	// Subscribe before the first sync, so nothing committed in between is missed.
	sub := s.hub.Subscribe(a, wsQueue, false)
	defer sub.Close()
	var first *chat.SyncResult
	if since < 0 {
		first, err = s.chat.InitialSync(ctx, a)
	} else {
		first, err = s.chat.Sync(ctx, a, since)
	}
	if err != nil {
		if chatvault.ErrorCode(err) == chatvault.ERESYNC {
			conn.Close(CloseResync, "cursor unusable: reconnect without since")
		} else {
			conn.Close(websocket.StatusInternalError, "sync failed")
		}
		return nil
	}
	cursor, _ := chat.DecodeCursor(first.Cursor)
	if err := s.writeFrame(ctx, conn, WSFrame{Type: "sync", Cursor: first.Cursor, Sync: first}); err != nil {
		return nil
	}

	go s.wsReader(ctx, cancel, conn, a, bearer(r))
	ping := time.NewTicker(wsPingInterval)
	defer ping.Stop()
	for {
		// A dropped subscription wins over queued events: the client is told where to resume.
		select {
		case <-sub.Done():
			slow = sub.Reason() == "slow consumer"
			closeForReason(conn, sub.Reason(), cursor)
			return nil
		default:
		}
		select {
		case ev := <-sub.C:
			if ev.ID <= cursor {
				continue // already covered by a sync frame
			}
			if ev.Kind == chatvault.EventMessage {
				// The same bytes go to every recipient: encoded once, shared by all connections.
				if err := s.writeBytes(ctx, conn, s.frames.message(ev)); err != nil {
					return nil
				}
				cursor = ev.ID
				continue
			}
			res, err := s.chat.Sync(ctx, a, cursor)
			if err != nil {
				conn.Close(websocket.StatusInternalError, "sync failed")
				return nil
			}
			if err := s.writeFrame(ctx, conn, WSFrame{Type: "sync", Cursor: res.Cursor, Sync: res}); err != nil {
				return nil
			}
			cursor, _ = chat.DecodeCursor(res.Cursor)
		case <-sub.Done():
			slow = sub.Reason() == "slow consumer"
			closeForReason(conn, sub.Reason(), cursor)
			return nil
		case <-ping.C:
			pctx, pcancel := context.WithTimeout(ctx, s.cfg.WSWriteTimeout)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil {
				conn.Close(websocket.StatusGoingAway, "ping timeout")
				return nil
			}
		case <-ctx.Done():
			conn.CloseNow()
			return nil
		}
	}
}

// closeForReason ends a connection whose subscription the hub dropped. A client so far behind that
// even the close frame cannot be written within the write timeout is cut off; it resumes from the
// last cursor it received.
func closeForReason(conn *websocket.Conn, reason string, cursor int64) {
	code, text := closeFrameFor(reason, cursor)
	conn.Close(code, text)
}

// closeFrameFor is the close code and reason for a subscription the hub dropped; cursor is the
// last one the client was sent.
func closeFrameFor(reason string, cursor int64) (websocket.StatusCode, string) {
	switch reason {
	case "slow consumer":
		return CloseSlowConsumer, "slow consumer: resume with since=" + chat.EncodeCursor(cursor)
	case "server shutting down":
		return websocket.StatusGoingAway, "server shutting down: resume with since=" + chat.EncodeCursor(cursor)
	default:
		return CloseSignedOut, reason
	}
}

// wsReader handles the frames a client sends. It ends the connection when the client does.
func (s *Server) wsReader(ctx context.Context, cancel context.CancelFunc, conn *websocket.Conn, a chatvault.Actor, token string) {
	defer cancel()
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return
		}
		reply, signedOut := s.wsReceive(ctx, a, token, data)
		s.writeFrame(ctx, conn, reply)
		if signedOut {
			return
		}
	}
}

// wsReceive handles one frame a client sent and returns the answer; signedOut says the token no
// longer authenticates, and the connection should end.
func (s *Server) wsReceive(ctx context.Context, a chatvault.Actor, token string, data []byte) (reply WSFrame, signedOut bool) {
	var req WSSend
	if err := DecodeBody(data, &req); err != nil {
		return errorFrame("", err), false
	}
	if req.Type != "send" {
		return errorFrame(req.ClientMsgID, chatvault.Invalidf("type", "the only frame a client sends is {\"type\": \"send\", ...}")), false
	}
	// The token is checked again for every send, as for every REST request: a device revoked
	// mid-connection cannot send even before the hub closes its socket.
	if _, err := s.accounts.Authenticate(ctx, token); err != nil {
		return errorFrame(req.ClientMsgID, err), true
	}
	m, created, err := s.chat.Send(ctx, a, req.ConversationID, chat.SendRequest{ClientMsgID: req.ClientMsgID, Text: req.Text, ReplyTo: req.ReplyTo})
	if err != nil {
		return errorFrame(req.ClientMsgID, err), false
	}
	if created {
		s.cfg.Observer.MessageStored()
	}
	return WSFrame{Type: "ack", ClientMsgID: req.ClientMsgID, Created: created, Message: m}, false
}

func errorFrame(clientMsgID string, err error) WSFrame {
	return WSFrame{Type: "error", ClientMsgID: clientMsgID, Error: &ErrorDetail{Code: chatvault.ErrorCode(err),
		Message: chatvault.ErrorMessage(err), Field: chatvault.ErrorField(err)}}
}

func (s *Server) writeFrame(ctx context.Context, conn *websocket.Conn, f WSFrame) error {
	data, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return s.writeBytes(ctx, conn, data)
}

func (s *Server) writeBytes(ctx context.Context, conn *websocket.Conn, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WSWriteTimeout)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, data); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// frameCache holds the encoded "message" frames of recent events. A message to a group of 500
// online members is one event delivered to 500 connections; without the cache each would encode it.
type frameCache struct {
	mu    sync.Mutex
	m     map[*chatvault.Event][]byte
	order []*chatvault.Event
}

// frameCacheSize bounds the cache: far more than the events in flight at any moment.
const frameCacheSize = 4096

func (c *frameCache) message(ev *chatvault.Event) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if data, ok := c.m[ev]; ok {
		return data
	}
	data, _ := json.Marshal(WSFrame{Type: "message", Cursor: chat.EncodeCursor(ev.ID), Message: ev.Message})
	if c.m == nil {
		c.m = make(map[*chatvault.Event][]byte, frameCacheSize)
	}
	if len(c.order) >= frameCacheSize {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[ev] = data
	c.order = append(c.order, ev)
	return data
}
