package backup

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"

	"filippo.io/age"
)

// ParseRecipients parses age X25519 public keys (age1...).
func ParseRecipients(keys []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for i, k := range keys {
		r, err := age.ParseX25519Recipient(strings.TrimSpace(k))
		if err != nil {
			return nil, fmt.Errorf("[%d] %q is not an age public key (age1...): %v", i, k, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// ReadIdentities reads age identities (AGE-SECRET-KEY-1...) from a file as age-keygen writes it.
func ReadIdentities(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read identity file: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %w", path, err)
	}
	return ids, nil
}

// sealFile encrypts the file src to the recipients into the new file dst and returns the plain
// size and the size and SHA-256 of the encrypted bytes. The hash runs in a goroutine of its own
// beside the encryption: SHA-256 (about 300 MB/s a core without SHA extensions) is slower than
// age's ChaCha20-Poly1305 (750 MB/s). The plain bytes are not hashed: age's STREAM construction
// authenticates every chunk and the end, so a ciphertext whose SHA-256 matches the manifest
// decrypts to exactly the bytes that were encrypted, and a second SHA-256 pass cost half the time
// of a backup (docs/decisions.md).
func sealFile(src, dst string, rs []age.Recipient) (Part, error) {
	in, err := os.Open(src)
	if err != nil {
		return Part{}, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Part{}, err
	}
	defer out.Close()
	ch, ph := newAsyncCounter(), &sizeCounter{}
	bw := bufio.NewWriterSize(io.MultiWriter(out, ch), 1<<20)
	w, err := age.Encrypt(bw, rs...)
	if err != nil {
		return Part{}, fmt.Errorf("encrypt: %w", err)
	}
	_, err = io.CopyBuffer(w, io.TeeReader(in, ph), make([]byte, 1<<20))
	if err != nil {
		ch.wait()
		return Part{}, fmt.Errorf("encrypt %s: %w", src, err)
	}
	err = errors.Join(w.Close(), bw.Flush(), out.Sync())
	c := ch.wait()
	if err != nil {
		return Part{}, fmt.Errorf("encrypt %s: %w", src, err)
	}
	return Part{Size: c.n, SHA256: c.sum(), PlainSize: ph.n}, out.Close()
}

// asyncCounter is a counter fed by a goroutine: Write copies and queues.
type asyncCounter struct {
	c    *counter
	ch   chan []byte
	done chan struct{}
}

func newAsyncCounter() *asyncCounter {
	a := &asyncCounter{c: newCounter(), ch: make(chan []byte, 8), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for b := range a.ch {
			a.c.Write(b)
		}
	}()
	return a
}

func (a *asyncCounter) Write(p []byte) (int, error) {
	a.ch <- append([]byte(nil), p...)
	return len(p), nil
}

// wait ends the feed and returns the counter once everything queued is hashed.
func (a *asyncCounter) wait() *counter {
	close(a.ch)
	<-a.done
	return a.c
}

// sizeCounter counts what is written to it.
type sizeCounter struct{ n int64 }

func (c *sizeCounter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// counter hashes and counts what is written to it.
type counter struct {
	h hash.Hash
	n int64
}

func newCounter() *counter { return &counter{h: sha256.New()} }

func (c *counter) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += int64(len(p))
	return len(p), nil
}

func (c *counter) sum() string { return hex.EncodeToString(c.h.Sum(nil)) }
