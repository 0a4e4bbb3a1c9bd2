// Package datadir guards a chatvault data directory: one advisory lock that every command takes
// before it opens anything in the directory, and the check that the directory and the key file
// are private to their owner.
package datadir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the name of the lock file in a data directory. It is a file of its own rather than
// the databases: SQLite holds POSIX record locks on chatvault.db and keys.db, and those are per
// process (closing any descriptor of the file drops them), so a second lock on the same files
// would be released by SQLite's own closes.
const LockFile = "chatvault.lock"

// Mode is how a command holds the directory.
type Mode int

const (
	// Shared lets other shared holders in: commands that only read, and whose reads stay correct
	// while another reader runs.
	Shared Mode = iota
	// Exclusive keeps every other command out: serve, and commands that write.
	Exclusive
)

func (m Mode) String() string {
	if m == Exclusive {
		return "exclusive"
	}
	return "shared"
}

// Lock is a held lock on a data directory. flock(2) ties it to the open file, so the kernel
// drops it when the process ends, however it ends: a lock file left by a killed process blocks
// nothing.
type Lock struct {
	f   *os.File
	dir string
}

// HeldError is the refusal when another process holds the lock.
type HeldError struct {
	Dir     string
	PID     int    // 0 when the holder had not written its pid yet
	Command string // the holder's command, e.g. "serve"
}

func (e *HeldError) Error() string {
	who := "another chatvault process"
	if e.PID != 0 {
		who = fmt.Sprintf("chatvault %s (pid %d)", e.Command, e.PID)
	}
	what := "wait for it to finish, or stop it"
	if e.Command == "serve" {
		what = "stop it or use the API"
	}
	return fmt.Sprintf("%s is using %s; %s", who, e.Dir, what)
}

// Acquire creates dir (0700) if needed and takes its lock for command ("serve", "keys rotate")
// without waiting: if another process holds it in a conflicting mode, it returns a *HeldError
// naming that process.
func Acquire(dir string, mode Mode, command string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	how := syscall.LOCK_SH
	if mode == Exclusive {
		how = syscall.LOCK_EX
	}
	if err := flock(f, how|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid, cmd := readHolder(f)
			return nil, &HeldError{Dir: dir, PID: pid, Command: cmd}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// Shared holders overwrite each other's line: the file names the latest holder, which is
	// enough for the message an exclusive command gives when it is refused.
	if err := writeHolder(f, command); err != nil {
		f.Close()
		return nil, fmt.Errorf("write lock file %s: %w", path, err)
	}
	return &Lock{f: f, dir: dir}, nil
}

// Dir is the directory the lock guards.
func (l *Lock) Dir() string { return l.dir }

// Release gives the lock up. The file stays: removing it would let a process that opened the
// old file and a process that creates a new one both think they hold the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor releases the flock
	l.f = nil
	return err
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func writeHolder(f *os.File, command string) error {
	line := strconv.Itoa(os.Getpid()) + " " + command + "\n"
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(line), 0); err != nil {
		return err
	}
	return nil
}

// readHolder reads "PID COMMAND" from the lock file; zero and "" when it holds nothing readable
// (the holder may be between taking the lock and writing its line).
func readHolder(f *os.File) (pid int, command string) {
	buf := make([]byte, 256)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, ""
	}
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	p, cmd, ok := strings.Cut(line, " ")
	if !ok {
		return 0, ""
	}
	pid, err = strconv.Atoi(p)
	if err != nil || pid <= 0 {
		return 0, ""
	}
	return pid, cmd
}
