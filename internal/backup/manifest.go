package backup

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
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
	Format    int       `json:"format"` // 2 (signed); 1: unsigned, written before manifests were signed
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
	EvidenceCheckpoint string `json:"evidence_checkpoint,omitempty"`
	// JournalUpto is the event number the deletion journal had been shipped up to on every target
	// when the backup was taken: a restore of an older backup must find segments covering it.
	JournalUpto int64    `json:"journal_upto,omitempty"`
	Recipients  []string `json:"recipients"`
	Parts       []Part   `json:"parts"`
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
	Manifest *Manifest `json:"manifest"`
	Targets  []string  `json:"targets"` // the targets that hold it complete
	// Unsigned: written before manifests were signed (format 1); nothing vouches for it.
	Unsigned bool `json:"unsigned,omitempty"`
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

// Bounds on what a manifest may say. A target is not trusted, so nothing read from one is used
// unchecked; sizes are checked again while streaming, and nothing is allocated from them.
const (
	maxManifestBytes = 1 << 20
	maxPartBytes     = 1 << 42 // 4 TiB
	maxTables        = 256
	maxRecipients    = 64
	maxText          = 256
)

var (
	idPattern     = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}\.[0-9]{3}Z-[0-9a-f]{6}$`)
	sha256Pattern = regexp.MustCompile(`^[0-9a-f]{64}$`)
	tablePattern  = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,63}$`)
)

// partFiles are the parts a backup of each kind can hold, and the file each decrypts to, relative
// to a data directory. It is the whole set Create writes: nothing else is ever fetched or
// written, whatever a manifest says.
var partFiles = map[string]map[string]string{
	KindData: {"chatvault.db.age": DataFile},
	KindKeys: {"keys.db.age": KeysFile, "kek.json.age": KEKFile},
}

// requiredParts are the parts a backup of each kind must hold.
var requiredParts = map[string]string{KindData: "chatvault.db.age", KindKeys: "keys.db.age"}

func validID(id string) error {
	if !idPattern.MatchString(id) {
		return chatvault.Invalidf("id", "%.80q is not a backup id (like 20260121T030000.000Z-a1b2c3; see chatvault backup list)", id)
	}
	if _, err := idTime(id); err != nil {
		return chatvault.Invalidf("id", "%q is not a backup id (its time is not valid; see chatvault backup list)", id)
	}
	return nil
}

// decodeManifest reads a stored manifest: a signed one (format 2) must verify with one of the
// trusted keys; an unsigned one (format 1, written before manifests were signed) is returned with
// signed false, for the caller to refuse unless told otherwise. Every field is checked.
func decodeManifest(raw []byte, trusted []ed25519.PublicKey) (m *Manifest, signed bool, err error) {
	m, signed, err = decodeManifestBody(raw, trusted)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", errBadManifest, err)
	}
	return m, signed, nil
}

// errBadManifest is a manifest that is malformed, out of bounds, or does not verify.
var errBadManifest = errors.New("manifest refused")

func decodeManifestBody(raw []byte, trusted []ed25519.PublicKey) (m *Manifest, signed bool, err error) {
	if len(raw) > maxManifestBytes {
		return nil, false, fmt.Errorf("manifest is larger than %d bytes", maxManifestBytes)
	}
	var head struct {
		Format int `json:"format"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, false, fmt.Errorf("decode manifest: %w", err)
	}
	body := raw
	switch head.Format {
	case 1:
	case signedFormat:
		var env envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			return nil, false, fmt.Errorf("decode manifest: %w", err)
		}
		if body, err = env.open(manifestContext, trusted); err != nil {
			return nil, false, fmt.Errorf("manifest: %w", err)
		}
		signed = true
	default:
		return nil, false, fmt.Errorf("manifest format %d is not known to this chatvault", head.Format)
	}
	m = &Manifest{}
	if err := json.Unmarshal(body, m); err != nil {
		return nil, false, fmt.Errorf("decode manifest: %w", err)
	}
	if m.Format != head.Format {
		return nil, false, fmt.Errorf("manifest format %d inside a format %d manifest", m.Format, head.Format)
	}
	if err := m.validate(); err != nil {
		return nil, false, fmt.Errorf("manifest: %w", err)
	}
	return m, signed, nil
}

// validate checks every field of a manifest read from a target.
func (m *Manifest) validate() error {
	files, ok := partFiles[m.Kind]
	if !ok {
		return fmt.Errorf("kind %.40q is not data or keys", m.Kind)
	}
	if err := validID(m.ID); err != nil {
		return err
	}
	if ts, _, _ := strings.Cut(m.ID, "-"); m.CreatedAt.UTC().Format(idFormat) != ts {
		return fmt.Errorf("created_at %s does not match id %s", m.CreatedAt.UTC().Format(time.RFC3339Nano), m.ID)
	}
	if m.Engine != "sqlite" {
		return fmt.Errorf("engine %.40q is not sqlite", m.Engine)
	}
	if len(m.Version) > maxText || len(m.EvidenceCheckpoint) > maxText {
		return errors.New("chatvault_version or evidence_checkpoint is too long")
	}
	if m.SchemaVersion < 0 || m.EventCounter < 0 || m.JournalUpto < 0 {
		return fmt.Errorf("negative schema_version, event_counter or journal_upto (%d, %d, %d)", m.SchemaVersion, m.EventCounter, m.JournalUpto)
	}
	if len(m.Tables) > maxTables {
		return fmt.Errorf("%d tables: at most %d", len(m.Tables), maxTables)
	}
	for name, n := range m.Tables {
		if !tablePattern.MatchString(name) || n < 0 {
			return fmt.Errorf("table %.80q with %d rows is not valid", name, n)
		}
	}
	if len(m.Recipients) == 0 || len(m.Recipients) > maxRecipients {
		return fmt.Errorf("%d recipients: want 1 to %d", len(m.Recipients), maxRecipients)
	}
	for _, r := range m.Recipients {
		if len(r) > maxText || !strings.HasPrefix(r, "age1") {
			return fmt.Errorf("recipient %.80q is not an age public key", r)
		}
	}
	if len(m.Parts) > maxRecipients {
		return fmt.Errorf("%d parts: a %s backup has 1 to %d", len(m.Parts), m.Kind, len(files))
	}
	seen := map[string]bool{}
	for _, p := range m.Parts {
		want, known := files[p.Name]
		switch {
		case !known:
			return fmt.Errorf("part %.80q is not a part of a %s backup", p.Name, m.Kind)
		case seen[p.Name]:
			return fmt.Errorf("part %s is listed twice", p.Name)
		case p.File != want:
			return fmt.Errorf("part %s decrypts to %.80q; it can only be %s", p.Name, p.File, want)
		case p.Size < 0 || p.Size > maxPartBytes || p.PlainSize < 0 || p.PlainSize > maxPartBytes:
			return fmt.Errorf("part %s: size %d or plain size %d is out of range (0 to %d)", p.Name, p.Size, p.PlainSize, int64(maxPartBytes))
		case !sha256Pattern.MatchString(p.SHA256):
			return fmt.Errorf("part %s: sha256 %.80q is not 64 lowercase hex digits", p.Name, p.SHA256)
		}
		seen[p.Name] = true
	}
	if !seen[requiredParts[m.Kind]] {
		return fmt.Errorf("a %s backup must hold %s", m.Kind, requiredParts[m.Kind])
	}
	return nil
}
