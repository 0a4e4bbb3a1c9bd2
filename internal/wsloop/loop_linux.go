//go:build linux

package wsloop

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Loop owns the live connections handed to it: one epoll instance watched by one goroutine, a
// few shared write workers, and one timer goroutine for keepalive and stalled writes.
type Loop struct {
	cfg    Config
	epfd   int
	wakefd int // an eventfd that tells the poller to stop

	mu      sync.Mutex
	conns   map[int32]*Conn
	closing bool

	qmu   sync.Mutex
	qcond *sync.Cond
	queue []*Conn
	stop  bool

	readBuf []byte // the poller's; every read lands here first
	bufs    sync.Pool
	done    sync.WaitGroup
	nextID  atomic.Uint64
}

// Supported reports whether this build has the event loop (Linux) or callers must fall back to a
// goroutine per connection.
const Supported = true

// New starts a loop.
func New(cfg Config) (*Loop, error) {
	cfg.defaults()
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	l := &Loop{cfg: cfg, epfd: epfd, wakefd: wakefd, conns: map[int32]*Conn{}, readBuf: make([]byte, 64<<10)}
	l.qcond = sync.NewCond(&l.qmu)
	l.bufs.New = func() any { b := make([]byte, 0, 16<<10); return &b }
	l.done.Add(2 + cfg.Workers)
	go l.poll()
	go l.tick()
	for range cfg.Workers {
		go l.work()
	}
	return l, nil
}

// Conn is one WebSocket connection in the loop. Its Handler is called for what it reads and asked
// for what to write; everything else about it is the loop's.
type Conn struct {
	loop     *Loop
	h        Handler
	id       uint64
	shutdown atomic.Bool

	mu     sync.Mutex
	fd     int32
	closed bool

	// Reading. rbuf holds input not parsed yet and msg a fragmented message: both nil when idle.
	rbuf     []byte
	msg      []byte
	inMsg    bool
	busy     bool // Handler.Message runs; reading waits for it
	readDone bool // the peer's close frame came: nothing more is read but EOF

	// Writing. pending is output the socket did not take (nil unless blocked); ctrl holds
	// control frames (pong, ping) for the next write.
	running, dirty bool
	pending        []byte
	ctrl           []byte
	blockedSince   time.Time

	// Closing: a close frame the loop decided on waits in closeCode until a worker writes it;
	// after it is written (closeSent) only the peer's EOF or the timer ends the connection.
	closeCode   int
	closeReason string
	closeSent   bool
	closeSentAt time.Time

	nextPing time.Time
	pingSent time.Time // zero while no pong is awaited
}

// gen tells this connection's epoll events from those of an earlier socket with the same number.
func (c *Conn) gen() int32 { return int32(c.id) }

// ShuttingDown reports whether the loop is closing every connection: Fill should answer with a
// close frame.
func (c *Conn) ShuttingDown() bool { return c.shutdown.Load() }

// Wake asks a write worker to call the handler's Fill soon. Wakes while one is pending coalesce.
func (c *Conn) Wake() {
	c.mu.Lock()
	c.wakeLocked()
	c.mu.Unlock()
}

// Close sends a close frame after what is already queued, then ends the connection.
func (c *Conn) Close(code int, reason string) {
	c.mu.Lock()
	c.failLocked(code, reason)
	c.mu.Unlock()
}

func (c *Conn) wakeLocked() {
	c.dirty = true
	if c.running || c.closed || c.pending != nil {
		return // the worker running it, or the socket turning writable, will see dirty
	}
	c.running = true
	c.loop.enqueue(c)
}

func (c *Conn) failLocked(code int, reason string) {
	if c.closeCode != 0 || c.closeSent || c.closed {
		return
	}
	c.closeCode, c.closeReason = code, reason
	c.readDone = true
	c.rbuf, c.msg = nil, nil
	c.wakeLocked()
}

// Add takes over a hijacked TCP connection whose handshake is done. early holds bytes the client
// sent after the handshake that were already read. The Conn is live when Add returns: Fill may be
// called at once.
func (l *Loop) Add(nc net.Conn, early []byte, h Handler) (*Conn, error) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil, fmt.Errorf("the event loop takes plain TCP connections, not %T", nc)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(raw uintptr) { fd, dupErr = unix.FcntlInt(raw, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, fmt.Errorf("dup: %w", dupErr)
	}
	// The duplicate keeps the socket; closing the original takes it out of Go's own poller.
	nc.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set non-blocking: %w", err)
	}
	c := &Conn{loop: l, h: h, fd: int32(fd), id: l.nextID.Add(1)}
	// Spread the keepalive pings over the interval, so 100,000 connections opened together do not
	// all ping in the same second.
	c.nextPing = time.Now().Add(l.cfg.PingInterval/2 + time.Duration(c.id%64)*l.cfg.PingInterval/128)
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		unix.Close(fd)
		return nil, errors.New("the server is shutting down")
	}
	l.conns[c.fd] = c
	l.mu.Unlock()

	c.mu.Lock()
	defer c.mu.Unlock()
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLONESHOT, Fd: c.fd, Pad: c.gen()}); err != nil {
		l.mu.Lock()
		delete(l.conns, c.fd)
		l.mu.Unlock()
		unix.Close(fd)
		return nil, fmt.Errorf("epoll_ctl add: %w", err)
	}
	if len(early) > 0 {
		c.rbuf = append([]byte(nil), early...)
		if data, ok := c.consumeLocked(); ok {
			go l.dispatch(c, data)
		}
	}
	c.armLocked()
	return c, nil
}

// armLocked re-arms the one-shot registration with what the connection waits for now. Reading
// pauses while a message is being handled or output is stuck, so a client that sends without
// reading cannot make the server buffer its answers without bound.
func (c *Conn) armLocked() {
	if c.closed {
		return
	}
	var ev uint32 = unix.EPOLLONESHOT
	if !c.busy && c.pending == nil {
		ev |= unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if c.pending != nil {
		ev |= unix.EPOLLOUT
	}
	if err := unix.EpollCtl(c.loop.epfd, unix.EPOLL_CTL_MOD, int(c.fd), &unix.EpollEvent{Events: ev, Fd: c.fd, Pad: c.gen()}); err != nil {
		c.closeLocked()
	}
}

// closeLocked ends the connection at once.
func (c *Conn) closeLocked() {
	if c.closed {
		return
	}
	c.closed = true
	l := c.loop
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, int(c.fd), nil)
	l.mu.Lock()
	delete(l.conns, c.fd)
	l.mu.Unlock()
	unix.Close(int(c.fd))
	c.rbuf, c.msg, c.pending, c.ctrl = nil, nil, nil, nil
	go c.h.Closed(c)
}

func (l *Loop) poll() {
	defer l.done.Done()
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(l.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			l.cfg.Logger.Error("epoll_wait failed; live connections stop", "error", err)
			return
		}
		for _, ev := range events[:n] {
			if int(ev.Fd) == l.wakefd {
				return
			}
			l.mu.Lock()
			c := l.conns[ev.Fd]
			l.mu.Unlock()
			// An event still queued for a closed socket must not reach a new connection that
			// got the same descriptor number: registrations carry the connection's generation.
			if c != nil && c.gen() == ev.Pad {
				l.ready(c, ev.Events)
			}
		}
	}
}

// ready handles one readiness event: the registration is disarmed until armLocked.
func (l *Loop) ready(c *Conn, events uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.closeLocked()
		return
	}
	if events&unix.EPOLLOUT != 0 && c.pending != nil {
		if !c.flushLocked(true) {
			c.armLocked()
			return
		}
		if c.dirty || c.ctrl != nil {
			c.wakeLocked()
		}
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP) != 0 && !c.busy && c.pending == nil {
		n, err := unix.Read(int(c.fd), l.readBuf)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
		case err != nil || n == 0:
			c.closeLocked()
			return
		case c.readDone:
			// After a close frame either way, input is discarded until the peer hangs up.
		default:
			c.rbuf = append(c.rbuf, l.readBuf[:n]...)
			if data, ok := c.consumeLocked(); ok {
				go l.dispatch(c, data)
			}
		}
	}
	c.armLocked()
}

// consumeLocked parses what rbuf holds: control frames are answered here, and the first complete
// data message is returned (busy is then set until dispatch has handled it).
func (c *Conn) consumeLocked() ([]byte, bool) {
	defer func() {
		if len(c.rbuf) == 0 {
			c.rbuf = nil
		}
	}()
	limit := c.loop.cfg.ReadLimit
	for !c.readDone && len(c.rbuf) > 0 {
		h, err := parseHeader(c.rbuf)
		if err == errShort {
			return nil, false
		}
		if err != nil {
			c.failLocked(StatusProtocolError, err.Error())
			return nil, false
		}
		if h.op <= opBinary {
			if (h.op == opContinuation) != c.inMsg {
				c.failLocked(StatusProtocolError, "continuation frame out of place")
				return nil, false
			}
			if int64(len(c.msg))+h.length > limit {
				c.failLocked(StatusMessageTooBig, fmt.Sprintf("read limited at %d bytes", limit+1))
				return nil, false
			}
		}
		if int64(len(c.rbuf)) < int64(h.size)+h.length {
			return nil, false
		}
		payload := c.rbuf[h.size : h.size+int(h.length)]
		unmask(payload, h.mask)
		c.rbuf = c.rbuf[h.size+int(h.length):]
		switch h.op {
		case opPing:
			c.ctrl = appendFrame(c.ctrl, opPong, payload)
			c.wakeLocked()
		case opPong:
			c.pingSent = time.Time{}
		case opClose:
			code, reason, err := parseClose(payload)
			if err != nil {
				c.failLocked(StatusProtocolError, err.Error())
				return nil, false
			}
			if c.closeSent {
				c.closeLocked()
				return nil, false
			}
			c.failLocked(code, reason) // echo the peer's close, as RFC 6455 asks
			return nil, false
		default:
			c.msg = append(c.msg, payload...)
			c.inMsg = !h.fin
			if h.fin {
				data := c.msg
				c.msg = nil
				c.busy = true
				return data, true
			}
		}
	}
	return nil, false
}

// dispatch hands messages to the handler off the poller, one at a time and in order.
func (l *Loop) dispatch(c *Conn, data []byte) {
	for {
		c.h.Message(c, data)
		c.mu.Lock()
		c.busy = false
		if c.closed {
			c.mu.Unlock()
			return
		}
		next, ok := c.consumeLocked()
		if !ok {
			c.armLocked()
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		data = next
	}
}

func (l *Loop) enqueue(c *Conn) {
	l.qmu.Lock()
	l.queue = append(l.queue, c)
	l.qmu.Unlock()
	l.qcond.Signal()
}

func (l *Loop) work() {
	defer l.done.Done()
	for {
		l.qmu.Lock()
		for len(l.queue) == 0 && !l.stop {
			l.qcond.Wait()
		}
		if l.stop {
			l.qmu.Unlock()
			return
		}
		c := l.queue[0]
		l.queue[0] = nil
		l.queue = l.queue[1:]
		if len(l.queue) == 0 {
			l.queue = nil
		}
		l.qmu.Unlock()
		l.service(c)
	}
}

// service writes what a connection has to send until it has nothing more or the socket is full.
// Output is built in a pooled buffer that goes back to the pool once the socket has taken it.
func (l *Loop) service(c *Conn) {
	bp := l.bufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 1<<20 {
			l.bufs.Put(bp)
		}
	}()
	for {
		c.mu.Lock()
		if c.closed || c.pending != nil || c.closeSent {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.dirty = false
		out := append((*bp)[:0], c.ctrl...)
		c.ctrl = nil
		code, reason := c.closeCode, c.closeReason
		c.mu.Unlock()

		if code == 0 {
			out, code, reason = c.h.Fill(c, out)
		}
		if code != 0 {
			out = AppendClose(out, code, reason)
		}
		*bp = out

		c.mu.Lock()
		if c.closed {
			c.running = false
			c.mu.Unlock()
			return
		}
		if code != 0 {
			c.closeSent, c.closeSentAt, c.readDone = true, time.Now(), true
			c.rbuf, c.msg = nil, nil
		}
		c.pending = out
		if !c.flushLocked(false) {
			c.running = false
			c.armLocked()
			c.mu.Unlock()
			return
		}
		if !c.dirty || c.closeSent {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
}

// flushLocked writes pending; false when the socket took only part of it (the rest waits for
// EPOLLOUT) or the connection died. owned says whether pending is the connection's own copy or a
// worker's pooled buffer, which must not be kept.
func (c *Conn) flushLocked(owned bool) bool {
	p := c.pending
	for len(p) > 0 {
		n, err := unix.Write(int(c.fd), p)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			if owned {
				c.pending = p
			} else {
				c.pending = append([]byte(nil), p...)
			}
			if c.blockedSince.IsZero() {
				c.blockedSince = time.Now()
			}
			return false
		}
		if err != nil {
			c.closeLocked()
			return false
		}
		p = p[n:]
	}
	c.pending = nil
	c.blockedSince = time.Time{}
	return true
}

// tick drives keepalive pings, pong deadlines, stalled writes and unanswered close frames for
// every connection from one timer.
func (l *Loop) tick() {
	defer l.done.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var all []*Conn
	for {
		l.qmu.Lock()
		stop := l.stop
		l.qmu.Unlock()
		if stop {
			return
		}
		now := <-t.C
		all = l.snapshot(all[:0])
		for i, c := range all {
			c.mu.Lock()
			switch {
			case c.closed:
			case c.pending != nil && now.Sub(c.blockedSince) > l.cfg.WriteTimeout:
				c.closeLocked() // stuck: cut off; the client resumes from its last cursor
			case c.closeSent && now.Sub(c.closeSentAt) > closeWait:
				c.closeLocked()
			case !c.pingSent.IsZero() && now.Sub(c.pingSent) > l.cfg.WriteTimeout:
				c.failLocked(StatusGoingAway, "ping timeout")
			case c.pingSent.IsZero() && !c.closeSent && c.closeCode == 0 && now.After(c.nextPing):
				c.ctrl = appendFrame(c.ctrl, opPing, nil)
				c.pingSent = now
				c.nextPing = now.Add(l.cfg.PingInterval)
				c.wakeLocked()
			}
			c.mu.Unlock()
			all[i] = nil
		}
	}
}

// closeWait is how long a close frame waits for the peer's answer before the socket is closed.
const closeWait = 5 * time.Second

func (l *Loop) snapshot(dst []*Conn) []*Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		dst = append(dst, c)
	}
	return dst
}

// Len is the number of open connections.
func (l *Loop) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// Shutdown asks every connection's handler for its close frame (Fill sees ShuttingDown), waits
// until the peers have hung up or wait has passed, then closes what is left and stops the loop.
func (l *Loop) Shutdown(wait time.Duration) {
	l.mu.Lock()
	again := l.closing
	l.closing = true
	l.mu.Unlock()
	if again {
		return
	}
	for _, c := range l.snapshot(nil) {
		c.shutdown.Store(true)
		c.Wake()
	}
	deadline := time.Now().Add(wait)
	for l.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range l.snapshot(nil) {
		c.mu.Lock()
		c.closeLocked()
		c.mu.Unlock()
	}
	l.qmu.Lock()
	l.stop = true
	l.qmu.Unlock()
	l.qcond.Broadcast()
	var one [8]byte
	one[0] = 1
	unix.Write(l.wakefd, one[:])
	l.done.Wait()
	unix.Close(l.epfd)
	unix.Close(l.wakefd)
}
