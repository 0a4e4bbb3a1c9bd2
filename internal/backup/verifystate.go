package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// VerifyRecord is the outcome of the last verification, kept in the data directory
// (Job.VerifyState) so that chatvault doctor sees verifications made by the server or by another
// command, not only those of its own process.
type VerifyRecord struct {
	At    time.Time `json:"at"`
	ID    string    `json:"id"`
	Full  bool      `json:"full"`
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
}

// ReadVerifyRecord reads the record at path; nil when no verification has been recorded.
func ReadVerifyRecord(path string) (*VerifyRecord, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var r VerifyRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &r, nil
}

// writeVerifyRecord replaces the record at path whole (write, then rename).
func writeVerifyRecord(path string, r VerifyRecord) error {
	raw, _ := json.Marshal(r)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
