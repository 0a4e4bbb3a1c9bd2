package datadir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// NodeFile names the file that holds a data directory's node id.
const NodeFile = "node-id"

// NodeID returns the id of the server that uses the data directory held by l, making it on
// first use. Servers that share a PostgreSQL store tell their own work (an export job, whose
// files are in this directory) from the others' by it. It belongs to the directory, not the
// machine: a restored or moved directory keeps it, a copy started beside the original needs
// its file removed first.
func (l *Lock) NodeID() (string, error) {
	path := filepath.Join(l.dir, NodeFile)
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
			return "", fmt.Errorf("%s holds %q, not a node id: remove the file and chatvault makes a new one", path, id)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read node id: %w", err)
	}
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	id := hex.EncodeToString(raw)
	// Written whole before it is visible, so a crash never leaves half an id.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write node id: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("write node id: %w", err)
	}
	return id, nil
}
