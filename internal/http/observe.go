package http

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Observer receives what the transport measures, for metrics. Labels carry route patterns and
// statuses only: never paths with ids, user names or content.
type Observer interface {
	// Request is one answered request: its route pattern ("POST /api/v1/conversations/{conversation_id}/messages",
	// or "unmatched"), status and time to answer (for a WebSocket, the handshake and the session).
	Request(route string, status int, took time.Duration)
	// MessageStored is one message stored by a send (REST or WebSocket); a retry that returns the
	// first result is not counted again.
	MessageStored()
	// WebSocketOpened and WebSocketClosed bracket a live connection; slow says the hub dropped
	// it because its queue was full (the client resumes from its cursor).
	WebSocketOpened()
	WebSocketClosed(slow bool)
}

type noObserver struct{}

func (noObserver) Request(string, int, time.Duration) {}
func (noObserver) MessageStored()                     {}
func (noObserver) WebSocketOpened()                   {}
func (noObserver) WebSocketClosed(bool)               {}

// responseRecorder notes the status and size a handler wrote, for the access log and metrics. It
// unwraps to the real writer, so the WebSocket handshake can still take the connection over.
type responseRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *responseRecorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *responseRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *responseRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *responseRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack hands the connection to the WebSocket library; the exchange then counts as 101.
func (w *responseRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the response writer cannot be hijacked")
	}
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return hj.Hijack()
}

// requestIDHandler adds the request id to every line logged with a request's context, so all of
// a request's lines can be found from the id a client quotes.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := requestID(ctx); id != "" {
		r = r.Clone()
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
