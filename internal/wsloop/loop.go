// Package wsloop serves WebSocket connections (RFC 6455, server side) without a goroutine or a
// buffer per idle connection. On Linux one goroutine waits on epoll for every socket; a complete
// message read is handed to a short-lived goroutine, output is written by a few shared workers from
// pooled buffers, and one timer sends keepalive pings and cuts off stalled writers. An idle
// connection costs its Conn struct and the kernel's socket. Other systems have no loop
// (Supported is false) and callers keep a goroutine per connection.
//
// It speaks what github.com/coder/websocket speaks with default options: no extensions, no
// subprotocol, server frames unmasked and unfragmented.
package wsloop

import (
	"log/slog"
	"runtime"
	"time"
)

// Handler is the application side of one connection.
type Handler interface {
	// Message handles one complete data message (text or binary). Calls for one connection never
	// overlap and come in order; reading that connection waits meanwhile, so it may block.
	Message(c *Conn, data []byte)
	// Fill appends to out the frames to send now (AppendText) and returns it; a non-zero code
	// closes the connection with that code and reason after out is sent. A write worker calls it
	// after Wake, never twice at once for one connection.
	Fill(c *Conn, out []byte) (_ []byte, code int, reason string)
	// Closed is called once, on its own goroutine, when the socket is closed.
	Closed(c *Conn)
}

// Config tunes a loop; zero values take the defaults.
type Config struct {
	ReadLimit    int64         // largest message a client may send; larger ones close with 1009
	WriteTimeout time.Duration // how long output may stay stuck, and a pong may take, before the client is cut off
	PingInterval time.Duration
	Workers      int // write workers
	Logger       *slog.Logger
}

func (c *Config) defaults() {
	if c.ReadLimit <= 0 {
		c.ReadLimit = 32 << 10
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 30 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}
