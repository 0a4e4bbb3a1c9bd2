package backup

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/chatvault/chatvault"
)

// Kinds of backup. A data backup holds the data (no key material); a key backup holds the keys
// database and, when the key file provider is used, the key file.
const (
	KindData = "data"
	KindKeys = "keys"
)

// Layout of a target:
//
//	data/ID/manifest.json  data/ID/chatvault.db.age
//	keys/ID/manifest.json  keys/ID/keys.db.age  keys/ID/kek.json.age
//	journal/TIME-RANDOM.jsonl.gz.age
//
// A backup's parts are written first and its manifest last: a backup without a manifest is
// incomplete and is never listed (prune removes such leftovers).
const (
	manifestName  = "manifest.json"
	journalPrefix = "journal/"
)

// Manifest describes one backup. It is stored in plain JSON next to its encrypted parts, so
// list and prune work without the identity; it holds counts and checksums, no content.
type Manifest struct {
	Format    int       `json:"format"` // 1
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	CreatedAt time.Time `json:"created_at"`
	Engine    string    `json:"engine"` // sqlite
	Version   string    `json:"chatvault_version"`
	// SchemaVersion, Tables and EventCounter describe the data snapshot (data backups only).
	SchemaVersion int              `json:"schema_version,omitempty"`
	Tables        map[string]int64 `json:"tables,omitempty"`
	EventCounter  int64            `json:"event_counter,omitempty"`
	// EvidenceCheckpoint is the evidence-log checkpoint the snapshot covers, once there is an
	// evidence log (empty until then).
	EvidenceCheckpoint string   `json:"evidence_checkpoint,omitempty"`
	Recipients         []string `json:"recipients"`
	Parts              []Part   `json:"parts"`
}

// Part is one encrypted file of a backup.
type Part struct {
	Name      string `json:"name"`       // e.g. chatvault.db.age
	File      string `json:"file"`       // what it decrypts to, relative to a data directory
	Size      int64  `json:"size"`       // encrypted bytes
	SHA256    string `json:"sha256"`     // of the encrypted bytes: checked without the identity
	PlainSize int64  `json:"plain_size"` // decrypted bytes
}

// Entry is a listed backup.
type Entry struct {
	Manifest *Manifest
	Targets  []string // the targets that hold it complete
}

func (m *Manifest) dir() string { return m.Kind + "/" + m.ID + "/" }

// idFormat is the time part of a backup id: to the millisecond and fixed-width, so ids sort in
// time order even when two backups start within the same second.
const idFormat = "20060102T150405.000Z"

// NewID makes a backup id: its UTC time, sortable, and a random suffix.
func NewID(t time.Time) string { return t.UTC().Format(idFormat) + "-" + randHex(3) }

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// idTime reads the time from a backup id.
func idTime(id string) (time.Time, error) {
	ts, _, _ := strings.Cut(id, "-")
	return time.Parse(idFormat, ts)
}

func validID(id string) error {
	if _, err := idTime(id); err != nil || path.Base(id) != id || strings.ContainsAny(id, "/\\") {
		return chatvault.Invalidf("id", "%q is not a backup id (like 20260121T030000.000Z-a1b2c3; see chatvault backup list)", id)
	}
	return nil
}

func decodeManifest(raw []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	if m.Format != 1 {
		return nil, fmt.Errorf("manifest format %d is not known to this chatvault", m.Format)
	}
	return &m, nil
}
