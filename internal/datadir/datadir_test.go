package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// flock locks belong to the open file, so two Acquire calls in one process conflict exactly as
// two processes do; the binary's tests in cmd/chatvault cover separate processes.
func TestLockModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		first, second Mode
		wantHeld      bool
	}{
		{Shared, Shared, false},
		{Shared, Exclusive, true},
		{Exclusive, Shared, true},
		{Exclusive, Exclusive, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v then %v", tt.first, tt.second), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			first, err := Acquire(dir, tt.first, "serve")
			if err != nil {
				t.Fatalf("Acquire(%v) = %v", tt.first, err)
			}
			second, err := Acquire(dir, tt.second, "keys rotate")
			var held *HeldError
			if got := errors.As(err, &held); got != tt.wantHeld {
				t.Fatalf("Acquire(%v) after %v = %v; want held %v", tt.second, tt.first, err, tt.wantHeld)
			}
			if held != nil && (held.PID != os.Getpid() || held.Command != "serve") {
				t.Fatalf("HeldError = %+v; want pid %d, command serve", held, os.Getpid())
			}
			second.Release()
			if err := first.Release(); err != nil {
				t.Fatalf("Release() = %v", err)
			}
			// Released: the lock file stays, and the next command takes the lock.
			again, err := Acquire(dir, Exclusive, "restore")
			if err != nil {
				t.Fatalf("Acquire after Release = %v", err)
			}
			again.Release()
		})
	}
}

func TestHeldErrorSaysWhatToDo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  HeldError
		want string
	}{
		{HeldError{Dir: "./chatvault-data", PID: 1234, Command: "serve"}, "chatvault serve (pid 1234) is using ./chatvault-data; stop it or use the API"},
		{HeldError{Dir: "d", PID: 7, Command: "keys rotate"}, "chatvault keys rotate (pid 7) is using d; wait for it to finish, or stop it"},
		{HeldError{Dir: "d"}, "another chatvault process is using d; wait for it to finish, or stop it"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q; want %q", got, tt.want)
		}
	}
}

func TestAcquireCreatesAPrivateDirectory(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "new", "data")
	l, err := Acquire(dir, Exclusive, "serve")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	for path, want := range map[string]os.FileMode{dir: DirMode, filepath.Join(dir, LockFile): FileMode} {
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != want {
			t.Fatalf("Stat(%q) = %v, %v; want mode %v", path, st.Mode().Perm(), err, want)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(dir, LockFile))
	if want := fmt.Sprintf("%d serve\n", os.Getpid()); string(raw) != want {
		t.Fatalf("lock file = %q; want %q", raw, want)
	}
}

func TestCheckPrivate(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	tests := []struct {
		name    string
		mode    os.FileMode
		dir     bool
		wantFix string // "" when the path passes
	}{
		{"private dir", 0o700, true, ""},
		{"group dir", 0o750, true, "chmod 700 "},
		{"world dir", 0o755, true, "chmod 700 "},
		{"private file", 0o600, false, ""},
		{"readable file", 0o644, false, "chmod 600 "},
		{"owner read-only file", 0o400, false, ""},
	}
	for _, tt := range tests {
		path := filepath.Join(base, strings.ReplaceAll(tt.name, " ", "_"))
		if tt.dir {
			os.Mkdir(path, 0o700)
		} else {
			os.WriteFile(path, nil, 0o600)
		}
		if err := os.Chmod(path, tt.mode); err != nil {
			t.Fatal(err)
		}
		err := CheckPrivate("data directory", path)
		if tt.wantFix == "" {
			if err != nil {
				t.Errorf("CheckPrivate(%s) = %v; want nil", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantFix+path) || !strings.Contains(err.Error(), "allow_shared_data_dir") {
			t.Errorf("CheckPrivate(%s) = %v; want the fix %q and the option", tt.name, err, tt.wantFix+path)
		}
	}
	if err := CheckPrivate("key file", filepath.Join(base, "missing")); err != nil {
		t.Errorf("CheckPrivate(missing) = %v; want nil", err)
	}
	if got := shellQuote("/srv/my data/it's"); got != `'/srv/my data/it'\''s'` {
		t.Errorf("shellQuote() = %q", got)
	}
}
