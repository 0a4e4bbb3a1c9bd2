package backup

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Manifests and journal segments are signed with an Ed25519 key that only the server holds, so
// that whoever can write to a target (a bucket with broad write access, a shared mount) cannot
// forge or alter a backup: the parts are encrypted to public age recipients, which anyone can do,
// so encryption alone proves nothing about who wrote them (docs/decisions.md).

// SigningKeyFile is where the signing key is kept, relative to a data directory: with the
// server's other keys, and never in a backup.
const SigningKeyFile = "keys/backup-signing.key"

// publicKeyPrefix marks a manifest public key in text (configuration, command output).
const publicKeyPrefix = "chatvault-ed25519:"

const signingKeyHeader = "# chatvault backup signing key: keep it private (mode 0600); its public key is "

// Contexts keep a signature over one kind of object from being valid for another.
const (
	manifestContext = "chatvault backup manifest v2\n"
	segmentContext  = "chatvault journal segment v2\n"
)

// FormatPublicKey writes a manifest public key as configuration takes it.
func FormatPublicKey(pub ed25519.PublicKey) string {
	return publicKeyPrefix + base64.RawStdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads a key written by FormatPublicKey.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), publicKeyPrefix)
	raw, err := base64.RawStdEncoding.DecodeString(b64)
	if !ok || err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%q is not a manifest public key (%s followed by 43 base64 characters; see chatvault backup key)", s, publicKeyPrefix)
	}
	return ed25519.PublicKey(raw), nil
}

// LoadSigningKey reads the signing key of a data directory; fs.ErrNotExist (wrapped) when there
// is none yet.
func LoadSigningKey(dataDir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dataDir, filepath.FromSlash(SigningKeyFile))
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("backup signing key: %w", err)
	}
	var seed []byte
	for _, line := range strings.Split(string(raw), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			seed, err = base64.StdEncoding.DecodeString(line)
			break
		}
	}
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("backup signing key %s is damaged: restore it from your copy, or move it away to make a new one (then pin the new public key)", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// LoadOrCreateSigningKey reads the signing key of a data directory, making one (mode 0600) the
// first time. created reports that it was made now.
func LoadOrCreateSigningKey(dataDir string) (key ed25519.PrivateKey, created bool, err error) {
	key, err = LoadSigningKey(dataDir)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, err
	}
	path := filepath.Join(dataDir, filepath.FromSlash(SigningKeyFile))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("backup signing key: %w", err)
	}
	text := signingKeyHeader + FormatPublicKey(pub) + "\n" + base64.StdEncoding.EncodeToString(key.Seed()) + "\n"
	// O_EXCL: two processes making the key at once must not end up with different keys.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
	if errors.Is(err, fs.ErrExist) {
		key, err = LoadSigningKey(dataDir)
		return key, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("backup signing key: %w", err)
	}
	_, err = f.WriteString(text)
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("backup signing key: %w", err)
	}
	return key, true, nil
}

// envelope is a signed object as stored: the signed JSON, the signer's public key (to name it in
// errors) and the signature over the context and the compacted JSON.
type envelope struct {
	Format    int             `json:"format"` // 2
	Signed    json.RawMessage `json:"signed"`
	Key       string          `json:"key"`
	Signature string          `json:"signature"`
}

const signedFormat = 2

// seal marshals v and signs it.
func seal(context string, v any, key ed25519.PrivateKey) ([]byte, error) {
	if key == nil {
		return nil, errors.New("no backup signing key (backups are signed; see chatvault backup key)")
	}
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	sig := ed25519.Sign(key, append([]byte(context), body...))
	return json.MarshalIndent(envelope{Format: signedFormat, Signed: body, Key: FormatPublicKey(key.Public().(ed25519.PublicKey)),
		Signature: base64.StdEncoding.EncodeToString(sig)}, "", "  ")
}

// errUntrusted is a signature that does not verify with any trusted key.
var errUntrusted = errors.New("signature does not verify")

// open checks an envelope's signature against the trusted keys and returns the signed JSON.
func (e *envelope) open(context string, trusted []ed25519.PublicKey) ([]byte, error) {
	if len(trusted) == 0 {
		return nil, fmt.Errorf("it is signed by %.80s, and no manifest public key is trusted here: set backup.manifest_public_key to the key `chatvault backup key` prints on the server that made the backups", e.Key)
	}
	sig, err := base64.StdEncoding.DecodeString(e.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: the signature is malformed", errUntrusted)
	}
	var body bytes.Buffer
	if err := json.Compact(&body, e.Signed); err != nil {
		return nil, fmt.Errorf("signed content: %w", err)
	}
	msg := append([]byte(context), body.Bytes()...)
	for _, pub := range trusted {
		if ed25519.Verify(pub, msg, sig) {
			return body.Bytes(), nil
		}
	}
	names := make([]string, len(trusted))
	for i, pub := range trusted {
		names[i] = FormatPublicKey(pub)
	}
	return nil, fmt.Errorf("%w with the trusted key %s (it claims to be signed by %.80q): it was altered or forged by someone who can write to the target", errUntrusted, strings.Join(names, ", "), e.Key)
}
