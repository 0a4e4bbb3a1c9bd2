package backup

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// List returns the complete backups of a kind (KindData or KindKeys) found on the targets, oldest
// first, each with the targets that hold it. A target that cannot be listed is reported in the
// error; the backups of the others are still returned.
func (j *Job) List(ctx context.Context, kind string) ([]*Entry, error) {
	targets := j.Targets
	if kind == KindKeys {
		targets = j.KeyTargets
	}
	return listBackups(ctx, targets, kind, j.TrustedKeys)
}

// listBackups lists the backups whose manifests verify with the trusted keys, and the unsigned
// ones (marked so); a manifest that does not verify is reported in the error, never listed.
func listBackups(ctx context.Context, targets []Target, kind string, trusted []ed25519.PublicKey) ([]*Entry, error) {
	byID := map[string]*Entry{}
	var errs []error
	for _, t := range targets {
		names, err := t.List(ctx, kind+"/")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, n := range names {
			id, rest, ok := strings.Cut(strings.TrimPrefix(n, kind+"/"), "/")
			if !ok || rest != manifestName {
				continue
			}
			if err := validID(id); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: %w", t, n, err))
				continue
			}
			m, signed, err := readManifest(ctx, t, kind, id, trusted)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			e := byID[id]
			if e == nil {
				e = &Entry{Manifest: m, Unsigned: !signed}
				byID[id] = e
			}
			e.Targets = append(e.Targets, t.String())
		}
	}
	out := make([]*Entry, 0, len(byID))
	for _, e := range byID {
		out = append(out, e)
	}
	// Oldest first, by the time the backup was made (ids agree; the id breaks exact ties).
	slices.SortFunc(out, func(a, b *Entry) int {
		if c := a.Manifest.CreatedAt.Compare(b.Manifest.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Manifest.ID, b.Manifest.ID)
	})
	return out, errors.Join(errs...)
}

func readManifest(ctx context.Context, t Target, kind, id string, trusted []ed25519.PublicKey) (*Manifest, bool, error) {
	rc, err := t.Get(ctx, kind+"/"+id+"/"+manifestName)
	if err != nil {
		return nil, false, err
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, maxManifestBytes+1))
	if err != nil {
		return nil, false, fmt.Errorf("read manifest of %s backup %s on %s: %w", kind, id, t, err)
	}
	m, signed, err := decodeManifest(raw, trusted)
	if err != nil {
		return nil, false, fmt.Errorf("%s backup %s on %s: %w", kind, id, t, err)
	}
	if m.ID != id || m.Kind != kind {
		return nil, false, fmt.Errorf("%s backup %s on %s: the manifest is for %s backup %s", kind, id, t, m.Kind, m.ID)
	}
	return m, signed, nil
}

// errUnsigned is a backup written before manifests were signed, refused unless allowed.
var errUnsigned = errors.New("its manifest is unsigned (written before chatvault signed backups), so nothing proves it was not altered: " +
	"if you trust everyone who could write to that target, add --allow-unsigned")

// find returns the manifest of a backup and the targets that hold it, in configuration order.
// A manifest that does not verify, or an unsigned one unless allowUnsigned, is an error: there is
// no fallback to an unverified copy.
func findBackup(ctx context.Context, targets []Target, kind, id string, trusted []ed25519.PublicKey, allowUnsigned bool) (*Manifest, []Target, error) {
	if err := validID(id); err != nil {
		return nil, nil, err
	}
	var m *Manifest
	var holders []Target
	var errs, bad []error
	for _, t := range targets {
		tm, signed, err := readManifest(ctx, t, kind, id, trusted)
		if errors.Is(err, ErrNotExist) {
			continue
		}
		if err == nil && !signed && !allowUnsigned {
			err = fmt.Errorf("%s backup %s on %s: %w", kind, id, t, errUnsigned)
		}
		if errors.Is(err, errBadManifest) || errors.Is(err, errUnsigned) {
			bad = append(bad, err)
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if m == nil {
			m = tm
		}
		holders = append(holders, t)
	}
	if len(bad) > 0 {
		// A copy that does not verify means a target was altered: refuse and say where, rather
		// than quietly use another copy (an unreachable target is only skipped).
		return nil, nil, fmt.Errorf("%s backup %s refused: %w", kind, id, errors.Join(bad...))
	}
	if m == nil {
		if len(errs) > 0 {
			return nil, nil, fmt.Errorf("%s backup %s: %w", kind, id, errors.Join(errs...))
		}
		return nil, nil, fmt.Errorf("%s backup %s is on none of the targets (see chatvault backup list)", kind, id)
	}
	return m, holders, nil
}
