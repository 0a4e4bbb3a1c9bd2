package sqlite_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/chatvault/chatvault/internal/sqlite"
)

// SQLite gives -wal and -shm the mode of their database file (os_unix.c, robust_open and
// unixOpenSharedMemory), so the databases must be made 0600 before SQLite creates them: under
// umask 022 it would create them 0644, readable by every local user. Not parallel: it sets the
// process umask.
func TestFilesArePrivateWhateverTheUmask(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
	}{
		{"new directory", func(*testing.T, string) {}},
		// A store made by an older chatvault (0644 files) is tightened when it is opened.
		{"files from before", func(t *testing.T, dir string) {
			db := openEncrypted(t, dir)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{filepath.Join(dir, sqlite.FileName), sqlite.KeysPath(dir)} {
				if err := os.Chmod(p, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.prepare(t, dir)
			db := openEncrypted(t, dir)
			defer db.Close()
			w := newWorld(t, db) // writes: both databases now have their -wal and -shm
			w.send(t, w.conv(t), "秘密 secret", jan)

			var seen []string
			err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				st, err := d.Info()
				if err != nil {
					return err
				}
				want := fs.FileMode(0o600)
				if d.IsDir() {
					want = 0o700
					if path == dir {
						return nil // made by the test
					}
				}
				rel, _ := filepath.Rel(dir, path)
				seen = append(seen, rel)
				if st.Mode().Perm() != want {
					t.Errorf("mode of %s = %v; want %v", rel, st.Mode().Perm(), want)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{sqlite.FileName + "-wal", sqlite.FileName + "-shm", "keys/keys.db-wal", "keys/keys.db-shm"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("%s was not made (files seen: %q): %v", f, seen, err)
				}
			}
		})
	}
}
