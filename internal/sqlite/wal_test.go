package sqlite

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// FuzzCheckWAL: a write-ahead log is read from disk before anything opens it, so it is input:
// whatever its bytes, checkWAL answers without panicking.
func FuzzCheckWAL(f *testing.F) {
	header := make([]byte, 32)
	binary.BigEndian.PutUint32(header[0:], walMagicLE)
	binary.BigEndian.PutUint32(header[8:], 4096)
	f.Add(header)
	f.Add(append(header, make([]byte, 24+4096+100)...))
	f.Add([]byte{0x37, 0x7f, 0x06, 0x83})
	f.Fuzz(func(t *testing.T, wal []byte) {
		path := filepath.Join(t.TempDir(), "chatvault.db")
		if err := os.WriteFile(path+"-wal", wal, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := checkWAL(path); err != nil {
			t.Fatalf("checkWAL() = %v; want problems reported, not an error", err)
		}
	})
}
