package keyring

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// File is the default provider: KEKs in a local JSON file, mode 0600, generated on first start.
// The file lists every KEK with its id and dates; the newest one not retired is primary. A retired
// KEK keeps its record but loses its material.
//
// The server only ever creates the file (never replaces it); `chatvault keys rotate` and
// `chatvault keys retire` rewrite it atomically (temp file, fsync, rename). A running server
// notices a rotated file: Wrap and Unwrap re-read it when its size or time changed, and Unwrap
// re-reads it when asked for a KEK it does not know.
type File struct {
	path string
	now  func() time.Time

	mu      sync.Mutex
	loaded  bool // the file existed when last read
	stamp   fileStamp
	keks    []*kek
	primary *kek
}

type fileStamp struct {
	size int64
	mod  time.Time
}

// keyFile is the file's JSON form.
type keyFile struct {
	Format int          `json:"format"`
	Note   string       `json:"note,omitempty"`
	KEKs   []keyFileKEK `json:"keks"`
}

type keyFileKEK struct {
	ID        string     `json:"id"`
	CreatedAt time.Time  `json:"created_at"`
	RetiredAt *time.Time `json:"retired_at,omitempty"`
	Key       string     `json:"key,omitempty"` // base64 of 32 bytes; empty once retired
}

const keyFileNote = "chatvault key-encryption keys. Back this file up apart from the data; losing it loses every message. Never edit or replace it by hand while data exists."

// OpenFile returns the provider for the key file at path and reads it if it exists. A missing file
// is not an error here: Init creates it on a new server, and Unwrap reports it missing by name.
func OpenFile(path string) (*File, error) {
	f := &File{path: path, now: time.Now}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Path is the key file's path.
func (f *File) Path() string { return f.path }

func (f *File) String() string { return fmt.Sprintf("key file %q", f.path) }

// reload reads the file again; f.mu is held.
func (f *File) reload() error {
	st, err := os.Stat(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		f.loaded, f.keks, f.primary, f.stamp = false, nil, nil, fileStamp{}
		return nil
	} else if err != nil {
		return fmt.Errorf("stat key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("key file %s has mode %#o and can be read by other users: run chmod 600 %s", f.path, st.Mode().Perm(), f.path)
	}
	raw, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("read key file: %w", err)
	}
	var kf keyFile
	if err := json.Unmarshal(raw, &kf); err != nil {
		return fmt.Errorf("key file %s: %w", f.path, err)
	}
	if kf.Format != 1 {
		return fmt.Errorf("key file %s: format %d is not one this chatvault reads", f.path, kf.Format)
	}
	var keks []*kek
	var primary *kek
	seen := map[string]bool{}
	for _, e := range kf.KEKs {
		if e.ID == "" || seen[e.ID] {
			return fmt.Errorf("key file %s: every KEK needs a distinct id", f.path)
		}
		seen[e.ID] = true
		info := KEKInfo{ID: e.ID, CreatedAt: e.CreatedAt, Retired: e.RetiredAt != nil, RetiredAt: e.RetiredAt}
		var key []byte
		if !info.Retired {
			key, err = base64.StdEncoding.DecodeString(e.Key)
			if err != nil {
				return fmt.Errorf("key file %s: KEK %s: key is not base64", f.path, e.ID)
			}
		}
		k, err := newKEK(info, key)
		clear(key)
		if err != nil {
			return fmt.Errorf("key file %s: %w", f.path, err)
		}
		keks = append(keks, k)
		if !info.Retired && (primary == nil || !info.CreatedAt.Before(primary.info.CreatedAt)) {
			primary = k
		}
	}
	f.loaded, f.keks, f.primary = true, keks, primary
	f.stamp = fileStamp{size: st.Size(), mod: st.ModTime()}
	return nil
}

// reloadIfChanged re-reads the file when its size or modification time moved; f.mu is held.
func (f *File) reloadIfChanged() error {
	st, err := os.Stat(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		if f.loaded {
			return fmt.Errorf("key file %s has disappeared: restore it from your key backup", f.path)
		}
		return nil
	} else if err != nil {
		return fmt.Errorf("stat key file: %w", err)
	}
	if !f.loaded || st.Size() != f.stamp.size || !st.ModTime().Equal(f.stamp.mod) {
		return f.reload()
	}
	return nil
}

// KEKs lists the file's KEKs, oldest first.
func (f *File) KEKs(ctx context.Context) ([]KEKInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reloadIfChanged(); err != nil {
		return nil, err
	}
	out := make([]KEKInfo, 0, len(f.keks))
	for _, k := range f.keks {
		info := k.info
		info.Primary = k == f.primary
		out = append(out, info)
	}
	return out, nil
}

// Wrap wraps with the newest KEK that is not retired.
func (f *File) Wrap(ctx context.Context, dataKey, aad []byte) (string, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reloadIfChanged(); err != nil {
		return "", nil, err
	}
	if f.primary == nil {
		if !f.loaded {
			return "", nil, fmt.Errorf("%w: key file %s does not exist", ErrNoKEK, f.path)
		}
		return "", nil, fmt.Errorf("%w: every KEK in key file %s is retired: run chatvault keys rotate", ErrNoKEK, f.path)
	}
	return f.primary.info.ID, f.primary.wrap(dataKey, aad), nil
}

// Unwrap unwraps with KEK kekID, re-reading the file once if it does not know that id.
func (f *File) Unwrap(ctx context.Context, kekID string, wrapped, aad []byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// A stat per unwrap (only on a cache miss) lets a retired KEK leave memory too.
	if err := f.reloadIfChanged(); err != nil {
		return nil, err
	}
	k := f.find(kekID)
	if k == nil {
		if err := f.reload(); err != nil {
			return nil, err
		}
		if k = f.find(kekID); k == nil {
			if !f.loaded {
				return nil, fmt.Errorf("%w: key file %s does not exist, and data keys are wrapped by KEK %s: restore the key file from your key backup (do not create a new one)", ErrKEKMissing, f.path, kekID)
			}
			return nil, fmt.Errorf("%w: KEK %s is not in key file %s: this is not the key file these data keys were wrapped with; restore the right one", ErrKEKMissing, kekID, f.path)
		}
	}
	raw, err := k.unwrap(wrapped, aad)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", f.path, err)
	}
	return raw, nil
}

func (f *File) find(id string) *kek {
	for _, k := range f.keks {
		if k.info.ID == id {
			return k
		}
	}
	return nil
}

// Init creates the key file with one new KEK when it does not exist. It never replaces a file.
func (f *File) Init(ctx context.Context) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reloadIfChanged(); err != nil {
		return false, err
	}
	if f.loaded {
		return false, nil
	}
	k := keyFileKEK{ID: newKEKID(f.now()), CreatedAt: f.now().UTC().Truncate(time.Second), Key: base64.StdEncoding.EncodeToString(Generate())}
	if err := f.write(keyFile{Format: 1, Note: keyFileNote, KEKs: []keyFileKEK{k}}, true); err != nil {
		return false, err
	}
	return true, f.reload()
}

// Rotate adds a new KEK and makes it primary.
func (f *File) Rotate(ctx context.Context) (KEKInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	kf, err := f.readRaw()
	if err != nil {
		return KEKInfo{}, err
	}
	now := f.now().UTC().Truncate(time.Second)
	for _, e := range kf.KEKs {
		if !e.CreatedAt.Before(now) { // keep "newest is primary" unambiguous
			now = e.CreatedAt.Add(time.Second)
		}
	}
	k := keyFileKEK{ID: newKEKID(now), CreatedAt: now, Key: base64.StdEncoding.EncodeToString(Generate())}
	kf.KEKs = append(kf.KEKs, k)
	if err := f.write(kf, false); err != nil {
		return KEKInfo{}, err
	}
	if err := f.reload(); err != nil {
		return KEKInfo{}, err
	}
	return KEKInfo{ID: k.ID, CreatedAt: k.CreatedAt, Primary: true}, nil
}

// Retire erases the material of KEK kekID. The primary KEK cannot be retired: rotate first.
func (f *File) Retire(ctx context.Context, kekID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reload(); err != nil {
		return err
	}
	if f.primary != nil && f.primary.info.ID == kekID {
		return fmt.Errorf("KEK %s is the primary key: run chatvault keys rotate first, then retire it", kekID)
	}
	kf, err := f.readRaw()
	if err != nil {
		return err
	}
	found := false
	for i := range kf.KEKs {
		if kf.KEKs[i].ID == kekID {
			if kf.KEKs[i].RetiredAt != nil {
				return nil
			}
			now := f.now().UTC().Truncate(time.Second)
			kf.KEKs[i].RetiredAt, kf.KEKs[i].Key, found = &now, "", true
		}
	}
	if !found {
		return fmt.Errorf("KEK %s is not in key file %s", kekID, f.path)
	}
	if err := f.write(kf, false); err != nil {
		return err
	}
	return f.reload()
}

func (f *File) readRaw() (keyFile, error) {
	var kf keyFile
	raw, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return kf, fmt.Errorf("key file %s does not exist", f.path)
	} else if err != nil {
		return kf, fmt.Errorf("read key file: %w", err)
	}
	if err := json.Unmarshal(raw, &kf); err != nil {
		return kf, fmt.Errorf("key file %s: %w", f.path, err)
	}
	return kf, nil
}

// write replaces (or, with create, creates without ever replacing) the key file atomically.
func (f *File) write(kf keyFile, create bool) error {
	raw, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return err
	}
	raw = append(raw, '\n')
	dir := filepath.Dir(f.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".kek-*.tmp")
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write key file: %w", err)
	}
	_, werr := tmp.Write(raw)
	if err := errors.Join(werr, tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	if create {
		// A hard link fails if the target exists: a KEK file is never replaced by a new one.
		if err := os.Link(tmp.Name(), f.path); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("key file %s appeared while creating it; not replacing it", f.path)
			}
			return fmt.Errorf("create key file: %w", err)
		}
	} else if err := os.Rename(tmp.Name(), f.path); err != nil {
		return fmt.Errorf("replace key file: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

func newKEKID(t time.Time) string {
	var b [4]byte
	copy(b[:], Generate())
	return "kek-" + t.UTC().Format("20060102") + "-" + hex.EncodeToString(b[:])
}
