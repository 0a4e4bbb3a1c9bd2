package keyring

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// Environment variables of the Env provider.
const (
	EnvKEK             = "CHATVAULT_KEK"               // base64 of 32 bytes: the primary KEK
	EnvKEKFile         = "CHATVAULT_KEK_FILE"          // a file (a mounted secret) holding that base64
	EnvKEKPrevious     = "CHATVAULT_KEK_PREVIOUS"      // comma-separated older KEKs, unwrap only
	EnvKEKPreviousFile = "CHATVAULT_KEK_PREVIOUS_FILE" // a file holding that list
	envKEKIDDerivation = "chatvault kek id v1"
)

// Env is the provider for containers: the KEK comes from an environment variable or a mounted
// secret file. A KEK's id is derived from its material (a hash, which reveals nothing of it), so
// the same key always has the same id and a wrong key is recognised as such.
//
// Rotation: generate a key (`chatvault keys generate`), move the old one to CHATVAULT_KEK_PREVIOUS,
// set the new one as CHATVAULT_KEK, restart, and run `chatvault keys rotate` to re-wrap the data
// keys; then drop the old one from CHATVAULT_KEK_PREVIOUS.
type Env struct {
	source  string
	keks    []*kek
	primary *kek
}

// EnvConfigured reports whether the environment names a KEK (so Env, not File, is the provider).
func EnvConfigured(getenv func(string) string) bool {
	return getenv(EnvKEK) != "" || getenv(EnvKEKFile) != ""
}

// OpenEnv reads the KEKs from the environment through getenv (os.Getenv in production).
func OpenEnv(getenv func(string) string) (*Env, error) {
	primary, source, err := envValue(getenv, EnvKEK, EnvKEKFile)
	if err != nil {
		return nil, err
	}
	if primary == "" {
		return nil, fmt.Errorf("set %s (base64 of 32 random bytes; make one with chatvault keys generate) or %s", EnvKEK, EnvKEKFile)
	}
	e := &Env{source: source}
	k, err := envKEK(primary, source)
	if err != nil {
		return nil, err
	}
	e.keks, e.primary = append(e.keks, k), k
	prev, prevSource, err := envValue(getenv, EnvKEKPrevious, EnvKEKPreviousFile)
	if err != nil {
		return nil, err
	}
	for _, p := range strings.Split(prev, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		k, err := envKEK(p, prevSource)
		if err != nil {
			return nil, err
		}
		e.keks = append(e.keks, k)
	}
	return e, nil
}

func envValue(getenv func(string) string, name, fileName string) (value, source string, err error) {
	if v := getenv(name); v != "" {
		return v, "environment variable " + name, nil
	}
	if path := getenv(fileName); path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return "", "", fmt.Errorf("%s: %w", fileName, err)
		}
		return strings.TrimSpace(string(raw)), fmt.Sprintf("file %q (%s)", path, fileName), nil
	}
	return "", "", nil
}

func envKEK(b64, source string) (*kek, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil || len(key) != KeySize {
		return nil, fmt.Errorf("%s: want base64 of exactly %d bytes (make one with chatvault keys generate)", source, KeySize)
	}
	defer clear(key)
	sum := sha256.Sum256(append([]byte(envKEKIDDerivation), key...))
	return newKEK(KEKInfo{ID: "env-" + hex.EncodeToString(sum[:6])}, key)
}

func (e *Env) String() string { return e.source }

// KEKs lists the primary KEK, then the previous ones.
func (e *Env) KEKs(ctx context.Context) ([]KEKInfo, error) {
	out := make([]KEKInfo, 0, len(e.keks))
	for _, k := range e.keks {
		info := k.info
		info.Primary = k == e.primary
		out = append(out, info)
	}
	return out, nil
}

// Wrap wraps with the primary KEK.
func (e *Env) Wrap(ctx context.Context, dataKey, aad []byte) (string, []byte, error) {
	return e.primary.info.ID, e.primary.wrap(dataKey, aad), nil
}

// Unwrap unwraps with the named KEK.
func (e *Env) Unwrap(ctx context.Context, kekID string, wrapped, aad []byte) ([]byte, error) {
	for _, k := range e.keks {
		if k.info.ID == kekID {
			return k.unwrap(wrapped, aad)
		}
	}
	return nil, fmt.Errorf("%w: data keys are wrapped by KEK %s, which is neither %s nor in %s: set the key they were made with", ErrKEKMissing, kekID, EnvKEK, EnvKEKPrevious)
}
