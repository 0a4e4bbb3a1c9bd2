package backup

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzManifest: whatever a target holds in place of a manifest, decodeManifest either refuses it
// or returns a manifest whose every part decrypts to a file of the fixed set, with sizes, hashes
// and id in range, and an unsigned one is never reported as signed.
func FuzzManifest(f *testing.F) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	trusted := []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}
	good := &Manifest{Format: signedFormat, ID: "20260121T030000.000Z-a1b2c3", Kind: KindData, CreatedAt: time.Date(2026, 1, 21, 3, 0, 0, 0, time.UTC),
		Engine: "sqlite", Version: "test", Tables: map[string]int64{"messages": 3}, EventCounter: 9, JournalUpto: 7,
		Recipients: []string{"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"},
		Parts:      []Part{{Name: "chatvault.db.age", File: DataFile, Size: 10, SHA256: strings.Repeat("a", 64), PlainSize: 5}}}
	signed, err := seal(manifestContext, good, key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signed)
	legacy := *good
	legacy.Format = 1
	raw, _ := json.Marshal(legacy)
	f.Add(raw)
	legacy.Parts = append(legacy.Parts, Part{Name: "x.age", File: "../../x", Size: 1, SHA256: strings.Repeat("b", 64)})
	raw, _ = json.Marshal(legacy)
	f.Add(raw)
	keys := *good
	keys.Kind, keys.Parts = KindKeys, []Part{{Name: "keys.db.age", File: KeysFile, SHA256: strings.Repeat("c", 64)}, {Name: "kek.json.age", File: KEKFile, SHA256: strings.Repeat("d", 64)}}
	raw, _ = seal(manifestContext, &keys, key)
	f.Add(raw)
	f.Add([]byte(`{"format":2,"signed":{"format":2},"key":"","signature":""}`))
	f.Add([]byte(`{"format":1,"parts":[{"name":"chatvault.db.age","file":"/etc/passwd"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, isSigned, err := decodeManifest(raw, trusted)
		if err != nil {
			return
		}
		if isSigned != (m.Format == signedFormat) {
			t.Fatalf("decodeManifest() signed = %v for format %d", isSigned, m.Format)
		}
		if err := validID(m.ID); err != nil {
			t.Fatalf("decodeManifest() accepted id %q: %v", m.ID, err)
		}
		for _, p := range m.Parts {
			want, ok := partFiles[m.Kind][p.Name]
			if !ok || p.File != want || p.Size < 0 || p.PlainSize < 0 || p.Size > maxPartBytes || !sha256Pattern.MatchString(p.SHA256) {
				t.Fatalf("decodeManifest() accepted part %+v of a %s backup", p, m.Kind)
			}
		}
	})
}
