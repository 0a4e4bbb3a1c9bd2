//go:build !linux

package wsloop

import (
	"errors"
	"net"
	"time"
)

// Supported reports whether this build has the event loop (Linux) or callers must fall back to a
// goroutine per connection.
const Supported = false

// Loop is not available on this system.
type Loop struct{}

// Conn is not available on this system.
type Conn struct{}

var errUnsupported = errors.New("the WebSocket event loop needs Linux")

// New fails on this system: callers keep a goroutine per connection.
func New(Config) (*Loop, error) { return nil, errUnsupported }

func (l *Loop) Add(net.Conn, []byte, Handler) (*Conn, error) { return nil, errUnsupported }
func (l *Loop) Shutdown(time.Duration)                       {}
func (l *Loop) Len() int                                     { return 0 }
func (c *Conn) Wake()                                        {}
func (c *Conn) Close(int, string)                            {}
func (c *Conn) ShuttingDown() bool                           { return false }
