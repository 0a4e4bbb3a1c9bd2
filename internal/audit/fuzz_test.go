package audit

import (
	"encoding/base64"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
)

// FuzzUnseal feeds unseal stored text as a database could hold it after tampering or corruption:
// it must never panic, and whatever opens must be exactly what was sealed.
func FuzzUnseal(f *testing.F) {
	key, err := keyring.PlainDataKey(keyring.AuditKeyID("org-1", 1), make([]byte, keyring.KeySize))
	if err != nil {
		f.Fatal(err)
	}
	keyOf := func(n int64) (*keyring.DataKey, error) {
		if n != 1 {
			return nil, errors.New("no such key")
		}
		return key, nil
	}
	entry := func() chatvault.AuditEntry {
		return chatvault.AuditEntry{OrgID: "org-1", At: time.UnixMilli(1_790_000_000_000), ActorID: "officer",
			Action: "search_org", Outcome: "ok"}
	}
	orig := entry()
	orig.Reason, orig.Details = "why", map[string]any{"query": "密码 hunter2", "hits": float64(3)}
	valid, err := seal(key, &orig)
	if err != nil {
		f.Fatal(err)
	}
	env, _ := base64.StdEncoding.DecodeString(valid)
	for _, seed := range []string{
		valid,
		"",
		"not base64!",
		base64.StdEncoding.EncodeToString(env[:len(env)-1]),                             // truncated
		base64.StdEncoding.EncodeToString(append([]byte{0xFF, 0x01, 0x02}, env[3:]...)), // another key number
		base64.StdEncoding.EncodeToString([]byte{0xFF, 0x02}),                           // a newer envelope format
		base64.StdEncoding.EncodeToString([]byte{0xFF, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, stored string) {
		e := entry()
		e.Details = map[string]any{SealedKey: stored}
		if err := unseal(&e, keyOf); err != nil {
			return
		}
		if e.Reason != orig.Reason || !reflect.DeepEqual(e.Details, orig.Details) {
			t.Fatalf("unseal(%q) opened to %q, %v; want only what was sealed (%q, %v) to open", stored, e.Reason, e.Details, orig.Reason, orig.Details)
		}
	})
}
