package keyring

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
)

// IndexKeyConversation is the reserved conversation name under which an org's search index key
// is wrapped and stored with the data keys. It is not a UUID, so no conversation has it; it is
// wrapped like a data key, so KEK rotation re-wraps it with the rest.
const IndexKeyConversation = "~search-index"

// IndexKeyID names an org's search index key.
func IndexKeyID(org string) DataKeyID {
	return DataKeyID{Org: org, Conversation: IndexKeyConversation, N: 1}
}

// IndexKey turns search tokens into blind tokens: HMAC-SHA-256 under a per-org key, cut to 64
// bits. The index then holds no plaintext and no token that means anything without the key; 64
// bits make a collision between two of an org's tokens rare, and a collision only adds a
// candidate, which the exact check after decryption removes.
type IndexKey struct {
	org string
	key []byte
}

// NewIndexKey makes a fresh index key for org and wraps it with the provider's primary KEK. The
// caller stores kekID and wrapped under IndexKeyID(org).
func (k *Keyring) NewIndexKey(ctx context.Context, org string) (ik *IndexKey, kekID string, wrapped []byte, err error) {
	raw, err := RandomKey()
	if err != nil {
		return nil, "", nil, err
	}
	id := IndexKeyID(org)
	kekID, wrapped, err = k.provider.Wrap(ctx, raw, id.wrapAAD())
	if err != nil {
		return nil, "", nil, fmt.Errorf("wrap index key of org %s: %w", org, err)
	}
	return &IndexKey{org: org, key: raw}, kekID, wrapped, nil
}

// UnwrapIndexKey opens an org's wrapped index key.
func (k *Keyring) UnwrapIndexKey(ctx context.Context, org, kekID string, wrapped []byte) (*IndexKey, error) {
	raw, err := k.provider.Unwrap(ctx, kekID, wrapped, IndexKeyID(org).wrapAAD())
	if err != nil {
		return nil, fmt.Errorf("unwrap index key of org %s: %w", org, err)
	}
	return PlainIndexKey(org, raw)
}

// PlainIndexKey is an index key from raw bytes, for a store that runs without encryption (its
// bodies are plain text anyway, so the key is kept beside them).
func PlainIndexKey(org string, raw []byte) (*IndexKey, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("index key of org %s: %d bytes, want %d", org, len(raw), KeySize)
	}
	return &IndexKey{org: org, key: raw}, nil
}

// RandomKey returns KeySize random bytes.
func RandomKey() ([]byte, error) {
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return raw, nil
}

// Token is the blind token of one search token: 16 lowercase hex digits.
func (ik *IndexKey) Token(token string) string {
	return string(ik.AppendTokens(nil, []string{token}, 0))
}

// AppendTokens appends the blind tokens of tokens to b, each followed by sep (none when sep is
// 0). One HMAC state serves them all: a message has dozens of tokens.
func (ik *IndexKey) AppendTokens(b []byte, tokens []string, sep byte) []byte {
	mac := hmac.New(sha256.New, ik.key)
	var sum [sha256.Size]byte
	var hexed [16]byte
	for _, t := range tokens {
		mac.Reset()
		mac.Write([]byte(t))
		hex.Encode(hexed[:], mac.Sum(sum[:0])[:8])
		b = append(b, hexed[:]...)
		if sep != 0 {
			b = append(b, sep)
		}
	}
	return b
}

func (ik *IndexKey) String() string       { return "index key of org " + ik.org }
func (ik *IndexKey) GoString() string     { return ik.String() }
func (ik *IndexKey) LogValue() slog.Value { return slog.StringValue(ik.String()) }
