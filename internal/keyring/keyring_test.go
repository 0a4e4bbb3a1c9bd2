package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatvault/chatvault/internal/keyring"
)

func newRing(t *testing.T) (*keyring.Keyring, *keyring.File) {
	t.Helper()
	p, err := keyring.OpenFile(filepath.Join(t.TempDir(), "keys", "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	if created, err := p.Init(context.Background()); err != nil || !created {
		t.Fatalf("Init() = %v, %v; want true, nil", created, err)
	}
	return keyring.New(p, 2), p
}

func TestSealOpen(t *testing.T) {
	ctx := context.Background()
	kr, _ := newRing(t)
	id := keyring.DataKeyID{Org: "o", Conversation: "c", N: 7}
	dk, kekID, wrapped, err := kr.NewDataKey(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	aad := keyring.BodyAAD("o", "c", "m1", 1)
	text := []byte("你好, world")
	env := dk.Seal(text, aad)
	if bytes.Contains(env, text) || !keyring.IsSealed(env) {
		t.Fatalf("Seal() = %x; want an envelope without the plain text", env)
	}
	if n, err := keyring.EnvelopeKey(env); err != nil || n != 7 {
		t.Fatalf("EnvelopeKey() = %d, %v; want 7", n, err)
	}
	if got, err := dk.Open(env, aad); err != nil || !bytes.Equal(got, text) {
		t.Fatalf("Open() = %q, %v", got, err)
	}
	if bytes.Equal(dk.Seal(text, aad), env) {
		t.Fatal("two seals of the same text are equal: nonces repeat")
	}
	for name, other := range map[string][]byte{
		"other message": keyring.BodyAAD("o", "c", "m2", 1),
		"other version": keyring.BodyAAD("o", "c", "m1", 2),
		"other conv":    keyring.BodyAAD("o", "c2", "m1", 1),
		"shifted parts": keyring.BodyAAD("o", "cm", "1", 1),
	} {
		if _, err := dk.Open(env, other); !errors.Is(err, keyring.ErrIntegrity) {
			t.Errorf("Open(%s) = %v; want ErrIntegrity", name, err)
		}
	}
	tampered := bytes.Clone(env)
	tampered[len(tampered)-1] ^= 1
	if _, err := dk.Open(tampered, aad); !errors.Is(err, keyring.ErrIntegrity) {
		t.Fatalf("Open(tampered) = %v; want ErrIntegrity", err)
	}
	// Unwrapping through a fresh keyring gives the same key; under another id it fails.
	fresh := keyring.New(kr.Provider(), 0)
	dk2, err := fresh.Unwrap(ctx, id, kekID, wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dk2.Open(env, aad); err != nil {
		t.Fatalf("Open() with the unwrapped key = %v", err)
	}
	if _, err := fresh.Unwrap(ctx, keyring.DataKeyID{Org: "o", Conversation: "c", N: 8}, kekID, wrapped); !errors.Is(err, keyring.ErrIntegrity) {
		t.Fatalf("Unwrap(other id) = %v; want ErrIntegrity", err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	ctx := context.Background()
	kr, _ := newRing(t) // cache of 2
	for n := range int64(5) {
		if _, _, _, err := kr.NewDataKey(ctx, keyring.DataKeyID{Org: "o", Conversation: "c", N: n}); err != nil {
			t.Fatal(err)
		}
	}
	if kr.CacheLen() != 2 {
		t.Fatalf("CacheLen() = %d; want 2", kr.CacheLen())
	}
	if _, ok := kr.Cached(keyring.DataKeyID{Org: "o", Conversation: "c", N: 0}); ok {
		t.Fatal("the oldest key is still cached")
	}
	kr.Forget(keyring.DataKeyID{Org: "o", Conversation: "c", N: 4})
	if kr.CacheLen() != 1 {
		t.Fatalf("CacheLen() after Forget = %d; want 1", kr.CacheLen())
	}
}

func TestDataKeyNeverPrints(t *testing.T) {
	kr, _ := newRing(t)
	dk, _, _, err := kr.NewDataKey(context.Background(), keyring.DataKeyID{Org: "o", Conversation: "c", N: 1})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "key", dk)
	out := fmt.Sprintf("%v %+v %#v %s", dk, dk, dk, dk) + logs.String()
	if strings.Count(out, "data key o/c/1") < 5 || strings.Contains(out, "aead") || strings.Contains(out, "{") && !strings.Contains(out, `"msg"`) {
		t.Fatalf("printing a data key shows %q; want only its id", out)
	}
}

func TestFileProvider(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys", "kek.json")
	p, err := keyring.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Wrap(ctx, make([]byte, 32), nil); !errors.Is(err, keyring.ErrNoKEK) {
		t.Fatalf("Wrap() before Init = %v; want ErrNoKEK", err)
	}
	if created, err := p.Init(ctx); err != nil || !created {
		t.Fatalf("Init() = %v, %v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", st.Mode().Perm(), err)
	}
	first, _ := os.ReadFile(path)
	if created, err := p.Init(ctx); err != nil || created {
		t.Fatalf("second Init() = %v, %v; want false, nil", created, err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(first, again) {
		t.Fatal("Init replaced an existing key file")
	}
	kekA, wrapped, err := p.Wrap(ctx, bytes.Repeat([]byte{7}, 32), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	// Another process rotates: this instance picks up the new primary from the file.
	other, err := keyring.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := other.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kekB, _, err := p.Wrap(ctx, make([]byte, 32), nil)
	if err != nil || kekB != info.ID || kekB == kekA {
		t.Fatalf("Wrap() after rotation uses %s, %v; want the new KEK %s", kekB, err, info.ID)
	}
	if err := other.Retire(ctx, kekB); err == nil {
		t.Fatal("Retire(primary) = nil; want an error")
	}
	if err := other.Retire(ctx, kekA); err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(path); bytes.Count(raw, []byte(`"key"`)) != 1 {
		t.Fatalf("after retiring, the file holds %d keys; want 1:\n%s", bytes.Count(raw, []byte(`"key"`)), raw)
	}
	if _, err := p.Unwrap(ctx, kekA, wrapped, []byte("aad")); !errors.Is(err, keyring.ErrKEKMissing) {
		t.Fatalf("Unwrap(retired KEK) = %v; want ErrKEKMissing", err)
	}
	keks, err := p.KEKs(ctx)
	if err != nil || len(keks) != 2 || !keks[0].Retired || !keks[1].Primary {
		t.Fatalf("KEKs() = %+v, %v", keks, err)
	}
	// A key file others can read is refused.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := keyring.OpenFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("OpenFile(0644) = %v; want a chmod hint", err)
	}
}

func TestEnvProvider(t *testing.T) {
	ctx := context.Background()
	keyA := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	keyB := "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
	env := func(vals map[string]string) func(string) string { return func(k string) string { return vals[k] } }
	a, err := keyring.OpenEnv(env(map[string]string{keyring.EnvKEK: keyA}))
	if err != nil {
		t.Fatal(err)
	}
	id, wrapped, err := a.Wrap(ctx, make([]byte, 32), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	// Rotated: B is primary, A is previous; A's data keys still unwrap.
	b, err := keyring.OpenEnv(env(map[string]string{keyring.EnvKEK: keyB, keyring.EnvKEKPrevious: keyA}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unwrap(ctx, id, wrapped, []byte("x")); err != nil {
		t.Fatalf("Unwrap() with the previous key = %v", err)
	}
	idB, _, _ := b.Wrap(ctx, make([]byte, 32), nil)
	if idB == id {
		t.Fatal("two keys have one id")
	}
	c, _ := keyring.OpenEnv(env(map[string]string{keyring.EnvKEK: keyB}))
	if _, err := c.Unwrap(ctx, id, wrapped, []byte("x")); !errors.Is(err, keyring.ErrKEKMissing) || !strings.Contains(err.Error(), keyring.EnvKEK) {
		t.Fatalf("Unwrap() without the key = %v; want ErrKEKMissing naming %s", err, keyring.EnvKEK)
	}
	secret := filepath.Join(t.TempDir(), "kek")
	os.WriteFile(secret, []byte(keyA+"\n"), 0o400)
	f, err := keyring.OpenEnv(env(map[string]string{keyring.EnvKEKFile: secret}))
	if err != nil {
		t.Fatal(err)
	}
	if idF, _, _ := f.Wrap(ctx, make([]byte, 32), nil); idF != id {
		t.Fatalf("the same key from a file has id %s; want %s", idF, id)
	}
	if _, err := keyring.OpenEnv(env(map[string]string{keyring.EnvKEK: "c2hvcnQ="})); err == nil || !strings.Contains(err.Error(), keyring.EnvKEK) {
		t.Fatalf("OpenEnv(short key) = %v; want an error naming %s", err, keyring.EnvKEK)
	}
}
