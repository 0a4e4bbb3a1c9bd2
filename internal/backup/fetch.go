package backup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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
		_, err = io.Copy(c, ctxReader{ctx, rc})
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
// decrypts it into dir (at the part's File path), in one pass per part.
func fetch(ctx context.Context, t Target, m *Manifest, dir string, ids []age.Identity) error {
	for _, p := range m.Parts {
		if err := fetchPart(ctx, t, m, p, dir, ids); err != nil {
			return err
		}
	}
	return nil
}

func fetchPart(ctx context.Context, t Target, m *Manifest, p Part, dir string, ids []age.Identity) error {
	rc, err := t.Get(ctx, m.dir()+p.Name)
	if err != nil {
		return err
	}
	defer rc.Close()
	dst := filepath.Join(dir, filepath.FromSlash(p.File))
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	cc, pc := newCounter(), &sizeCounter{}
	src := io.TeeReader(bufio.NewReaderSize(ctxReader{ctx, rc}, 1<<20), cc)
	plain, err := age.Decrypt(src, ids...)
	if err == nil {
		bw := bufio.NewWriterSize(io.MultiWriter(out, pc), 1<<20)
		_, err = io.Copy(bw, plain)
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
	if err := compare(t, m, p, cc); err != nil {
		return err
	}
	if pc.n != p.PlainSize {
		return fmt.Errorf("%s backup %s on %s: %s decrypts to %d bytes, the manifest says %d", m.Kind, m.ID, t, p.Name, pc.n, p.PlainSize)
	}
	return errors.Join(out.Sync(), out.Close())
}
