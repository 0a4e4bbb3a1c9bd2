package keyring

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"time"
)

// Provider supplies key-encryption keys. A KEK never leaves its provider through this interface:
// a KMS or Vault transit provider implements Wrap and Unwrap as remote calls (see docs/keys-kms.md).
type Provider interface {
	// String says where the KEKs come from, in words an operator can act on
	// (`key file "/var/lib/chatvault/keys/kek.json"`, `environment variable CHATVAULT_KEK`).
	String() string
	// KEKs lists the KEKs the provider knows, retired ones included.
	KEKs(ctx context.Context) ([]KEKInfo, error)
	// Wrap encrypts a data key with the primary KEK, binding aad, and returns that KEK's id.
	// ErrNoKEK when the provider holds no KEK yet.
	Wrap(ctx context.Context, dataKey, aad []byte) (kekID string, wrapped []byte, err error)
	// Unwrap decrypts a data key wrapped by KEK kekID. ErrKEKMissing when the provider does not hold
	// that KEK; an error wrapping ErrIntegrity when it holds a KEK of that id that does not open it.
	Unwrap(ctx context.Context, kekID string, wrapped, aad []byte) ([]byte, error)
}

// Initializer is a provider that can make its first KEK (the local key file is generated on first
// start). Init never replaces an existing KEK; it reports whether it created one.
type Initializer interface {
	Init(ctx context.Context) (created bool, err error)
}

// Rotator is a provider that can add a new primary KEK and retire old ones.
type Rotator interface {
	// Rotate makes a new KEK and makes it primary. Older KEKs still unwrap.
	Rotate(ctx context.Context) (KEKInfo, error)
	// Retire destroys a KEK's material, keeping its id and dates on record. The caller first makes
	// sure no data key is still wrapped by it.
	Retire(ctx context.Context, kekID string) error
}

// KEKInfo describes one KEK, never its material.
type KEKInfo struct {
	ID        string
	CreatedAt time.Time
	Primary   bool
	Retired   bool
	RetiredAt *time.Time
}

var (
	// ErrNoKEK: the provider has no KEK to wrap with.
	ErrNoKEK = errors.New("no key-encryption key")
	// ErrKEKMissing: a data key is wrapped by a KEK the provider does not hold.
	ErrKEKMissing = errors.New("key-encryption key missing")
)

// kek is one KEK in memory.
type kek struct {
	info KEKInfo
	aead cipher.AEAD // nil once retired
}

func newKEK(info KEKInfo, key []byte) (*kek, error) {
	if info.Retired {
		return &kek{info: info}, nil
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("key-encryption key %s is %d bytes, want %d (base64 of 32 random bytes)", info.ID, len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &kek{info: info, aead: aead}, nil
}

// wrap seals a data key: nonce | ciphertext | tag.
func (k *kek) wrap(dataKey, aad []byte) []byte {
	out := make([]byte, nonceSize, nonceSize+len(dataKey)+tagSize)
	if _, err := rand.Read(out); err != nil {
		panic("keyring: crypto/rand failed: " + err.Error())
	}
	return k.aead.Seal(out, out[:nonceSize], dataKey, aad)
}

func (k *kek) unwrap(wrapped, aad []byte) ([]byte, error) {
	if k.aead == nil {
		return nil, fmt.Errorf("%w: KEK %s is retired", ErrKEKMissing, k.info.ID)
	}
	if len(wrapped) < nonceSize+tagSize {
		return nil, fmt.Errorf("%w: wrapped data key truncated", ErrIntegrity)
	}
	raw, err := k.aead.Open(nil, wrapped[:nonceSize], wrapped[nonceSize:], aad)
	if err != nil {
		return nil, fmt.Errorf("%w: KEK %s does not open this data key (a different key under the same id, or an altered row)", ErrIntegrity, k.info.ID)
	}
	return raw, nil
}

// Generate returns 32 random bytes for a new KEK.
func Generate() []byte {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		panic("keyring: crypto/rand failed: " + err.Error())
	}
	return b
}
