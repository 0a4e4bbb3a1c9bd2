package backup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"filippo.io/age"
)

// checkStored reads every part of a backup from a target and compares its size and SHA-256 with
// the manifest: it needs no identity, and catches a corrupted or truncated copy.
func checkStored(ctx context.Context, t Target, m *Manifest) error {
	for _, p := range m.Parts {
		rc, err := t.Get(ctx, m.dir()+p.Name)
		if err != nil {
			return err
		}
		c := newCounter()
		// One byte past the manifest's size is enough to tell it was changed.
		_, err = io.Copy(c, io.LimitReader(ctxReader{ctx, rc}, p.Size+1))
		rc.Close()
		if err != nil {
			return fmt.Errorf("read %s of %s backup %s from %s: %w", p.Name, m.Kind, m.ID, t, err)
		}
		if err := compare(t, m, p, c); err != nil {
			return err
		}
	}
	return nil
}

// compare checks what was read of a part against the manifest.
func compare(t Target, m *Manifest, p Part, c *counter) error {
	switch {
	case c.n < p.Size:
		return fmt.Errorf("%s backup %s on %s: %s is truncated: %d bytes, the manifest says %d", m.Kind, m.ID, t, p.Name, c.n, p.Size)
	case c.n > p.Size:
		return fmt.Errorf("%s backup %s on %s: %s is %d bytes, the manifest says %d: it was changed", m.Kind, m.ID, t, p.Name, c.n, p.Size)
	case c.sum() != p.SHA256:
		return fmt.Errorf("%s backup %s on %s: %s is corrupted: its SHA-256 is %s, the manifest says %s", m.Kind, m.ID, t, p.Name, c.sum(), p.SHA256)
	}
	return nil
}

// fetch downloads every part of a backup from a target, checks it against the manifest, and
// decrypts it into dir, in one pass per part. dir must be a private directory made for this
// restore or verify: each part goes to the file its name stands for in partFiles (never a path
// read from the target), created there new, and not through a link. On error the files it made
// are removed, so another copy can be fetched into the same dir.
func fetch(ctx context.Context, t Target, m *Manifest, dir string, ids []age.Identity) error {
	var made []string
	for _, p := range m.Parts {
		dst, err := partPath(dir, m.Kind, p.Name)
		if err == nil {
			made = append(made, dst)
			err = fetchPart(ctx, t, m, p, dst, ids)
		}
		if err != nil {
			for _, f := range made {
				os.Remove(f)
			}
			return err
		}
	}
	return nil
}

// partPath is where a part is decrypted to inside dir, its directory made if needed.
func partPath(dir, kind, name string) (string, error) {
	rel, ok := partFiles[kind][name]
	if !ok {
		return "", fmt.Errorf("%s backup: %.80q is not one of its parts", kind, name)
	}
	dst := filepath.Join(dir, filepath.FromSlash(rel))
	sub := filepath.Dir(dst)
	if sub == filepath.Clean(dir) {
		return dst, nil
	}
	if err := os.Mkdir(sub, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	if fi, err := os.Lstat(sub); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("restore directory %s: %s is not a directory", dir, sub)
	}
	return dst, nil
}

func fetchPart(ctx context.Context, t Target, m *Manifest, p Part, dst string, ids []age.Identity) error {
	rc, err := t.Get(ctx, m.dir()+p.Name)
	if err != nil {
		return err
	}
	defer rc.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
	if err != nil {
		return fmt.Errorf("%s backup %s: write %s: %w", m.Kind, m.ID, p.Name, err)
	}
	defer out.Close()
	cc, pc := newCounter(), &sizeCounter{}
	// Reading stops one byte past the sizes the manifest gives: enough to see that it lied.
	src := io.TeeReader(bufio.NewReaderSize(io.LimitReader(ctxReader{ctx, rc}, p.Size+1), 1<<20), cc)
	plain, err := age.Decrypt(src, ids...)
	if err == nil {
		bw := bufio.NewWriterSize(io.MultiWriter(out, pc), 1<<20)
		_, err = io.CopyN(bw, plain, p.PlainSize+1)
		if errors.Is(err, io.EOF) {
			err = nil
		}
		if err == nil {
			err = bw.Flush()
		}
	}
	if err != nil {
		// Tell a damaged copy from a wrong identity: read the rest and compare with the manifest.
		io.Copy(io.Discard, src)
		if cerr := compare(t, m, p, cc); cerr != nil {
			return cerr
		}
		var nomatch *age.NoIdentityMatchError
		if errors.As(err, &nomatch) {
			return fmt.Errorf("%s backup %s: %s: none of the given identities can decrypt it (it is encrypted to %v)", m.Kind, m.ID, p.Name, m.Recipients)
		}
		return fmt.Errorf("%s backup %s on %s: decrypt %s: %w", m.Kind, m.ID, t, p.Name, err)
	}
	if pc.n != p.PlainSize {
		return fmt.Errorf("%s backup %s on %s: %s decrypts to %d bytes or more, the manifest says %d", m.Kind, m.ID, t, p.Name, pc.n, p.PlainSize)
	}
	// age has read to the end of its stream; what is left must be nothing.
	io.Copy(io.Discard, src)
	if err := compare(t, m, p, cc); err != nil {
		return err
	}
	return errors.Join(out.Sync(), out.Close())
}
