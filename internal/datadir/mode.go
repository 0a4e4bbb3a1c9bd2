package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Private file modes: every file chatvault writes under a data directory is readable by its owner
// only, and every directory is reachable by its owner only.
const (
	FileMode fs.FileMode = 0o600
	DirMode  fs.FileMode = 0o700
)

// CheckPrivate refuses a directory or file that group or others can reach, with the chmod that
// fixes it; what names it in the message ("data directory", "key file"). A path that does not
// exist yet passes: chatvault creates it private.
func CheckPrivate(what, path string) error {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check %s %s: %w", what, path, err)
	}
	want := FileMode
	if st.IsDir() {
		want = DirMode
	}
	if st.Mode().Perm()&0o077 == 0 {
		return nil
	}
	return &SharedError{What: what, Path: path, Mode: st.Mode().Perm(), Want: want}
}

// SharedError is the refusal of a path that other users can reach.
type SharedError struct {
	What string
	Path string
	Mode fs.FileMode
	Want fs.FileMode
}

func (e *SharedError) Error() string {
	return fmt.Sprintf("%s %s has mode %#o: other users on this machine can reach it. Fix it with: chmod %o %s "+
		"(or, if sharing it is intended, set allow_shared_data_dir: true or CHATVAULT_ALLOW_SHARED_DATA_DIR=true)",
		e.What, e.Path, e.Mode, e.Want, shellQuote(e.Path))
}

// shellQuote quotes a path for the chmod command in the message when it needs it.
func shellQuote(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+,:@", r)) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}
