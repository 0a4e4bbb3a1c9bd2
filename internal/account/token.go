package account

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// tokenPrefix makes a chatvault token recognisable to secret scanners and to people.
const tokenPrefix = "cvt_"

// newToken returns a random bearer token (256 bits) and the hash that is stored in its place.
func newToken() (token string, hash []byte, err error) {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", nil, fmt.Errorf("generate token: %w", err)
	}
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(buf)
	return token, hashToken(token), nil
}

// hashToken is a plain SHA-256: tokens carry 256 random bits, so a slow hash would add nothing but
// latency to every request.
func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
