package sqlite

import (
	"errors"
	"fmt"
	"syscall"

	msqlite "modernc.org/sqlite"

	"github.com/chatvault/chatvault"
)

// A full disk is a state the operator fixes, not a bug: writes fail with chatvault.EFULL (507 on
// the API) and nothing of the failed transaction is kept, so nothing acknowledged is lost; the
// writer keeps running, and writes succeed again once space is freed.

// SQLite's primary result codes for a full disk (SQLITE_FULL) and a failed write (SQLITE_IOERR,
// which is how a failed write(2) or fsync(2) of the WAL surfaces).
const (
	sqliteFull  = 13
	sqliteIOErr = 10
)

// errStorageFull is what clients are told.
var errStorageFull = chatvault.Errorf(chatvault.EFULL, "the server's storage is full: nothing was stored; retry once space is freed")

// minFree is the free space below which Ping reports the store full: a few group commits' worth,
// so readiness turns before sends start failing rather than after.
const minFree = 8 << 20

// storageFull turns a write's error into chatvault.EFULL when the disk is full, keeping the
// original for the log.
func storageFull(err error, dir string) error {
	if err == nil || chatvault.ErrorCode(err) != chatvault.EINTERNAL {
		return err
	}
	var se *msqlite.Error
	full := errors.Is(err, syscall.ENOSPC)
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqliteFull:
			full = true
		case sqliteIOErr:
			// The I/O error does not say why: the file system does.
			free := freeBytes(dir)
			full = free >= 0 && free < minFree
		}
	}
	if !full {
		return err
	}
	return fmt.Errorf("%w: %w", errStorageFull, err)
}

// freeBytes is the space unprivileged writers may still use on dir's file system; -1 when unknown.
func freeBytes(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * st.Bsize
}
