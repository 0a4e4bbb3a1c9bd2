package sqlite

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// privateDatabase makes the database file at path (creating it empty if needed) and its -wal and
// -shm, where they exist, readable by the owner only, before SQLite opens it. SQLite creates the
// main file 0644 less the umask, but gives -wal and -shm the main file's mode whatever the umask
// (os_unix.c: robust_open, unixOpenSharedMemory; modernc.org/sqlite is that code translated), so
// a 0600 main file is what keeps every file of the database private. Files made by an older
// chatvault with wider modes are tightened here too.
func privateDatabase(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	err = tighten(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("make %s private: %w", path, err)
	}
	for _, side := range []string{"-wal", "-shm"} {
		f, err := os.OpenFile(path+side, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("open %s: %w", path+side, err)
		}
		err = tighten(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("make %s private: %w", path+side, err)
		}
	}
	return nil
}

// tighten removes group and other permissions from an open file.
func tighten(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Mode().Perm()&0o077 == 0 {
		return nil
	}
	return f.Chmod(st.Mode().Perm() &^ 0o077)
}
