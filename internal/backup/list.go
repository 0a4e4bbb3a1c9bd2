package backup

import (
	"bytes"
	"context"
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
	return listBackups(ctx, targets, kind)
}

func listBackups(ctx context.Context, targets []Target, kind string) ([]*Entry, error) {
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
			m, err := readManifest(ctx, t, kind, id)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			e := byID[id]
			if e == nil {
				e = &Entry{Manifest: m}
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

func readManifest(ctx context.Context, t Target, kind, id string) (*Manifest, error) {
	rc, err := t.Get(ctx, kind+"/"+id+"/"+manifestName)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read manifest of %s backup %s on %s: %w", kind, id, t, err)
	}
	m, err := decodeManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("%s backup %s on %s: %w", kind, id, t, err)
	}
	if m.ID != id || m.Kind != kind {
		return nil, fmt.Errorf("%s backup %s on %s: the manifest is for %s backup %s", kind, id, t, m.Kind, m.ID)
	}
	return m, nil
}

// find returns the manifest of a backup and the targets that hold it, in configuration order.
func findBackup(ctx context.Context, targets []Target, kind, id string) (*Manifest, []Target, error) {
	if err := validID(id); err != nil {
		return nil, nil, err
	}
	var m *Manifest
	var holders []Target
	var errs []error
	for _, t := range targets {
		tm, err := readManifest(ctx, t, kind, id)
		if errors.Is(err, ErrNotExist) {
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
	if m == nil {
		if len(errs) > 0 {
			return nil, nil, fmt.Errorf("%s backup %s: %w", kind, id, errors.Join(errs...))
		}
		return nil, nil, fmt.Errorf("%s backup %s is on none of the targets (see chatvault backup list)", kind, id)
	}
	return m, holders, nil
}
