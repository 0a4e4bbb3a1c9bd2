package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// statusKB returns a "kB" field of /proc/PID/status in bytes, or 0 when it cannot be read.
func statusKB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// peakRSS returns VmHWM (the peak resident set size) of process pid, in bytes, or 0 when it
// cannot be read (not Linux).
func peakRSS(pid int) int64 { return statusKB(pid, "VmHWM") }

// resetPeakRSS resets VmHWM of process pid to its current RSS (Linux: write 5 to clear_refs), so
// the next peakRSS covers only what happens in between.
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// cpuTime returns the user+system CPU time process pid has used so far (0 when unknown).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name is in parentheses and may hold spaces: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const userHZ = 100 // USER_HZ is 100 on every Linux architecture Go supports
	return time.Duration(ut+st) * time.Second / userHZ
}

// procMeter measures one process over one measurement: peak RSS (reset at the start), the peak
// of its anonymous RSS (sampled), and CPU.
type procMeter struct {
	pid      int
	cpu0     time.Duration
	resetErr error

	// RSS counts the pages of a memory-mapped database file that a scan touched (SQLite reads
	// through mmap), which the kernel drops when memory is short; the anonymous part (heap,
	// stacks, SQLite's page caches) is what the process itself holds. No counter keeps its peak,
	// so it is sampled.
	anonPeak atomic.Int64
	quit     chan struct{}
	sampled  chan struct{}
}

func startMeter(pid int) *procMeter {
	m := &procMeter{pid: pid, cpu0: cpuTime(pid), resetErr: resetPeakRSS(pid), quit: make(chan struct{}), sampled: make(chan struct{})}
	go func() {
		defer close(m.sampled)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if v := statusKB(pid, "RssAnon"); v > m.anonPeak.Load() {
				m.anonPeak.Store(v)
			}
			select {
			case <-m.quit:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *procMeter) stop() (peak int64, cpu time.Duration) {
	close(m.quit)
	<-m.sampled
	return peakRSS(m.pid), cpuTime(m.pid) - m.cpu0
}

// peakAnon is the highest anonymous RSS sampled; call it after stop.
func (m *procMeter) peakAnon() int64 { return m.anonPeak.Load() }

// rssNote says what a peak RSS figure covers.
func (m *procMeter) rssNote(what string) string {
	if m.resetErr != nil {
		return what + " (VmHWM since process start: could not reset it)"
	}
	return what + " (VmHWM during this measurement)"
}

// server is a child `chatvault serve` process.
type server struct {
	cmd  *exec.Cmd
	addr string
	done chan error

	mu   sync.Mutex
	tail []string // its last log lines, for error messages
}

// startServer starts the command cmd (a `chatvault serve --listen 127.0.0.1:0 --log-format json`)
// and waits for its "listening" log line.
func startServer(ctx context.Context, cmd *exec.Cmd) (*server, error) {
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	s := &server{cmd: cmd, done: make(chan error, 1)}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.tail = append(s.tail, line)
			if len(s.tail) > 20 {
				s.tail = s.tail[1:]
			}
			s.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" && rec.Addr != "" {
				select {
				case addrc <- rec.Addr:
				default:
				}
			}
		}
		s.done <- cmd.Wait()
	}()
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	select {
	case s.addr = <-addrc:
		return s, nil
	case err := <-s.done:
		return nil, fmt.Errorf("server exited before listening (%v):\n%s", err, s.logTail())
	case <-timeout.C:
		s.kill()
		return nil, fmt.Errorf("server did not log \"listening\" within 60s:\n%s", s.logTail())
	case <-ctx.Done():
		s.kill()
		return nil, ctx.Err()
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func (s *server) logTail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.tail, "\n")
}

// stop asks the server to shut down (SIGINT) and waits for it.
func (s *server) stop() error {
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		return s.kill()
	}
	select {
	case err := <-s.done:
		if err != nil {
			return fmt.Errorf("server exited with %v:\n%s", err, s.logTail())
		}
		return nil
	case <-time.After(60 * time.Second):
		s.kill()
		return errors.New("server did not stop within 60s of SIGINT; killed it")
	}
}

func (s *server) kill() error {
	err := s.cmd.Process.Kill()
	<-s.done
	return err
}

// fsyncProbe writes 4 KiB and fsyncs it n times in dir and returns the p50 and p99 latency: the
// floor under every durable commit on this disk, reported so results can be read against it.
func fsyncProbe(dir string, n int) (p50, p99 time.Duration, err error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	lats := make([]time.Duration, 0, n)
	for i := range n {
		t0 := time.Now()
		if _, err := f.WriteAt(buf, int64(i)*4096); err != nil {
			return 0, 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, 0, err
		}
		lats = append(lats, time.Since(t0))
	}
	s := Summarize(lats)
	return s.P50, s.P99, nil
}
