//go:build unix

package migrate

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// sqliteShmDMS is the byte of a WAL database's -shm file on which every connection that has the
// database open holds a shared lock for as long as it is open (SQLite's unix VFS: the "DMS" slot,
// after the 8 WAL-index locks at offset 120).
const sqliteShmDMS = 128

// inUse reports whether another process has the SQLite database at path open: a running server,
// or a command such as chatvault retention run. Locks of this process do not count (POSIX record
// locks never conflict with their owner's).
func inUse(path string) (bool, error) {
	f, err := os.OpenFile(path+"-shm", os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // no connection has it open in WAL mode
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: sqliteShmDMS, Len: 1}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil {
		return false, err
	}
	return lk.Type != syscall.F_UNLCK, nil
}
