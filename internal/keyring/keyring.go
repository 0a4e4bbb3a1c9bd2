// Package keyring is chatvault's envelope encryption: key-encryption keys (KEKs) from a provider,
// data keys wrapped by them, and the sealing of bodies under data keys with AES-256-GCM. It holds
// no SQL and no HTTP: a store keeps the wrapped data keys and the sealed bodies; this package makes
// and opens them.
//
// Every primitive is the standard library's (crypto/aes, crypto/cipher, crypto/rand). Nonces are
// random 96-bit values; a data key covers one conversation for one month, far below the 2^32
// messages after which random GCM nonces would need a new key.
package keyring

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
)

// KeySize is the size of every key here: AES-256.
const KeySize = 32

// Envelope format, version 1:
//
//	0xFF | 0x01 | data key number (uvarint) | nonce (12 bytes) | AES-256-GCM ciphertext and tag (16 bytes)
//
// 0xFF never starts valid UTF-8, so a sealed body cannot be mistaken for the plain text that
// earlier versions stored in the same column.
const (
	envelopeMarker = 0xFF
	envelopeV1     = 0x01
	nonceSize      = 12
	tagSize        = 16
)

// ErrIntegrity is returned when a sealed value does not open: it was altered, truncated, or moved
// from another row (the associated data binds it to its place).
var ErrIntegrity = errors.New("integrity check failed")

// DataKeyID names a data key: the conversation it protects and its number within that
// conversation. Numbers are never reused, so a destroyed key is never replaced under its name.
type DataKeyID struct {
	Org          string
	Conversation string
	N            int64
}

func (id DataKeyID) String() string {
	return fmt.Sprintf("%s/%s/%d", id.Org, id.Conversation, id.N)
}

// wrapAAD binds a wrapped data key to its identity, so a wrapped key copied to another
// conversation's row does not unwrap.
func (id DataKeyID) wrapAAD() []byte {
	return AAD("data-key", id.Org, id.Conversation, strconv.FormatInt(id.N, 10))
}

// AAD builds associated data from a purpose and the parts that name a sealed value's place: each
// part is length-prefixed, so no two different lists encode alike.
func AAD(purpose string, parts ...string) []byte {
	n := 16 + len(purpose)
	for _, p := range parts {
		n += binary.MaxVarintLen64 + len(p)
	}
	b := make([]byte, 0, n)
	b = append(b, "chatvault/v1/"...)
	b = binary.AppendUvarint(b, uint64(len(purpose)))
	b = append(b, purpose...)
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

// BodyAAD is the associated data of one version of a message body: a body copied to another
// message, another conversation, another org or another version of the same message fails to open.
func BodyAAD(org, conv, msgID string, version int) []byte {
	return AAD("body", org, conv, msgID, strconv.Itoa(version))
}

// DataKey is an unwrapped data key, ready to seal and open. It never prints its key material:
// String, GoString and LogValue show only its id.
type DataKey struct {
	ID   DataKeyID
	aead cipher.AEAD
}

func newDataKey(id DataKeyID, key []byte) (*DataKey, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("data key %s: %d bytes, want %d", id, len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &DataKey{ID: id, aead: aead}, nil
}

func (k *DataKey) String() string             { return "data key " + k.ID.String() }
func (k *DataKey) GoString() string           { return k.String() }
func (k *DataKey) LogValue() slog.Value       { return slog.StringValue(k.String()) }
func (k *DataKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// Seal encrypts plaintext into a version-1 envelope bound to aad.
func (k *DataKey) Seal(plaintext, aad []byte) []byte {
	out := make([]byte, 0, 2+binary.MaxVarintLen64+nonceSize+len(plaintext)+tagSize)
	out = append(out, envelopeMarker, envelopeV1)
	out = binary.AppendUvarint(out, uint64(k.ID.N))
	nonce := out[len(out) : len(out)+nonceSize]
	if _, err := rand.Read(nonce); err != nil {
		panic("keyring: crypto/rand failed: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	out = out[:len(out)+nonceSize]
	return k.aead.Seal(out, nonce, plaintext, aad)
}

// Open decrypts an envelope sealed by Seal with the same aad. A value that was altered or moved
// returns an error wrapping ErrIntegrity.
func (k *DataKey) Open(envelope, aad []byte) ([]byte, error) {
	n, rest, err := parseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	if n != k.ID.N {
		return nil, fmt.Errorf("%w: sealed under data key %d, not %d", ErrIntegrity, n, k.ID.N)
	}
	if len(rest) < nonceSize+tagSize {
		return nil, fmt.Errorf("%w: envelope truncated", ErrIntegrity)
	}
	plain, err := k.aead.Open(nil, rest[:nonceSize], rest[nonceSize:], aad)
	if err != nil {
		return nil, fmt.Errorf("%w: the ciphertext was altered or does not belong here", ErrIntegrity)
	}
	return plain, nil
}

// IsSealed reports whether b is an envelope (as opposed to plain text written without encryption).
func IsSealed(b []byte) bool { return len(b) > 0 && b[0] == envelopeMarker }

// EnvelopeKey returns the number of the data key b was sealed under.
func EnvelopeKey(b []byte) (int64, error) {
	n, _, err := parseEnvelope(b)
	return n, err
}

func parseEnvelope(b []byte) (int64, []byte, error) {
	if len(b) < 2 || b[0] != envelopeMarker {
		return 0, nil, fmt.Errorf("%w: not a sealed envelope", ErrIntegrity)
	}
	if b[1] != envelopeV1 {
		return 0, nil, fmt.Errorf("envelope format %d is newer than this chatvault knows: run a newer chatvault", b[1])
	}
	n, m := binary.Uvarint(b[2:])
	if m <= 0 || n > 1<<62 {
		return 0, nil, fmt.Errorf("%w: bad data key number", ErrIntegrity)
	}
	return int64(n), b[2+m:], nil
}

// Keyring makes, wraps, unwraps and caches data keys. It is safe for concurrent use.
type Keyring struct {
	provider Provider
	cache    *cache
}

// DefaultCacheSize bounds how many unwrapped data keys stay in memory.
const DefaultCacheSize = 4096

// New returns a keyring whose KEKs come from p, caching at most cacheSize unwrapped data keys
// (DefaultCacheSize when cacheSize <= 0).
func New(p Provider, cacheSize int) *Keyring {
	if cacheSize <= 0 {
		cacheSize = DefaultCacheSize
	}
	return &Keyring{provider: p, cache: newCache(cacheSize)}
}

// Provider returns where the keyring's KEKs come from.
func (k *Keyring) Provider() Provider { return k.provider }

// NewDataKey makes a fresh random data key for id and wraps it with the provider's primary KEK.
// The caller stores kekID and wrapped; the unwrapped key is cached.
func (k *Keyring) NewDataKey(ctx context.Context, id DataKeyID) (dk *DataKey, kekID string, wrapped []byte, err error) {
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, "", nil, fmt.Errorf("generate data key: %w", err)
	}
	defer clear(raw)
	kekID, wrapped, err = k.provider.Wrap(ctx, raw, id.wrapAAD())
	if err != nil {
		return nil, "", nil, fmt.Errorf("wrap data key %s: %w", id, err)
	}
	dk, err = newDataKey(id, raw)
	if err != nil {
		return nil, "", nil, err
	}
	k.cache.put(id, dk)
	return dk, kekID, wrapped, nil
}

// Cached returns the unwrapped data key id when it is in the cache.
func (k *Keyring) Cached(id DataKeyID) (*DataKey, bool) { return k.cache.get(id) }

// Unwrap opens a wrapped data key (or takes it from the cache).
func (k *Keyring) Unwrap(ctx context.Context, id DataKeyID, kekID string, wrapped []byte) (*DataKey, error) {
	if dk, ok := k.cache.get(id); ok {
		return dk, nil
	}
	raw, err := k.provider.Unwrap(ctx, kekID, wrapped, id.wrapAAD())
	if err != nil {
		return nil, fmt.Errorf("unwrap data key %s: %w", id, err)
	}
	defer clear(raw)
	dk, err := newDataKey(id, raw)
	if err != nil {
		return nil, err
	}
	k.cache.put(id, dk)
	return dk, nil
}

// Rewrap re-wraps a data key under the provider's primary KEK without changing the data key.
// It returns the new KEK id and wrapped key.
func (k *Keyring) Rewrap(ctx context.Context, id DataKeyID, kekID string, wrapped []byte) (string, []byte, error) {
	raw, err := k.provider.Unwrap(ctx, kekID, wrapped, id.wrapAAD())
	if err != nil {
		return "", nil, fmt.Errorf("unwrap data key %s: %w", id, err)
	}
	defer clear(raw)
	newID, newWrapped, err := k.provider.Wrap(ctx, raw, id.wrapAAD())
	if err != nil {
		return "", nil, fmt.Errorf("wrap data key %s: %w", id, err)
	}
	return newID, newWrapped, nil
}

// Forget drops a data key from the cache (it was destroyed).
func (k *Keyring) Forget(id DataKeyID) { k.cache.remove(id) }

// CacheLen reports how many unwrapped data keys are cached.
func (k *Keyring) CacheLen() int { return k.cache.len() }

// ErrDataKeyDestroyed: the data key a value was sealed under no longer exists (it was
// crypto-shredded, or the keys database is not the one the data was written with).
var ErrDataKeyDestroyed = errors.New("data key destroyed")
