package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"

	"github.com/chatvault/chatvault"
)

// RestoreReport is what Restore did.
type RestoreReport struct {
	ID       string
	Keys     string // the key backup used
	From     string // the target the data came from
	Segments int    // journal segments read
	Entries  int    // journal entries read
	Applied  int    // journal entries that changed the restored copy
	Check    *chatvault.CheckReport
	Elapsed  time.Duration
}

// Restore makes dir a data directory holding backup id: the data, the newest key backup (destroyed
// keys stay destroyed), and every deletion recorded in the journal since the backup was taken,
// applied again, so nothing purged, erased or recalled after the backup comes back. It then runs
// the integrity check. It refuses a dir that already holds a database unless force is set (never
// force over a running server's directory). The files are moved into dir only once everything
// succeeded.
func (j *Job) Restore(ctx context.Context, id, dir string, ids []age.Identity, force bool) (*RestoreReport, error) {
	t0 := time.Now()
	if len(ids) == 0 {
		return nil, errors.New("restore needs the identity (--identity FILE) of one of the backup's recipients")
	}
	var existing []string
	for _, f := range []string{DataFile, DataFile + "-wal", KeysFile, KEKFile} {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f))); err == nil {
			existing = append(existing, f)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if len(existing) > 0 && !force {
		return nil, fmt.Errorf("%s already holds %v: restore into a new directory, or stop the server that uses it and add --force to replace them", dir, existing)
	}
	man, holders, err := findBackup(ctx, j.Targets, KindData, id, j.TrustedKeys, j.AllowUnsigned)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	stage, err := os.MkdirTemp(dir, ".restore-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	rep := &RestoreReport{ID: id}
	var errs []error
	for _, t := range holders {
		if err := fetch(ctx, t, man, stage, ids); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.From = t.String()
		break
	}
	if rep.From == "" {
		return nil, fmt.Errorf("data backup %s: no good copy: %w", id, errors.Join(errs...))
	}
	keys, err := j.fetchKeys(ctx, man, stage, ids, false)
	if err != nil {
		return nil, err
	}
	rep.Keys = keys.ID
	// Later backups say how far the journal had been shipped: it must reach that far. Manifests
	// that do not verify are left out (they can only lower what is asked for, as deleting them would).
	var need int64
	later, _ := listBackups(ctx, j.Targets, KindData, j.TrustedKeys)
	for _, e := range later {
		if !e.Unsigned {
			need = max(need, e.Manifest.JournalUpto)
		}
	}
	jr, err := j.readJournal(ctx, man, ids, need)
	if err != nil {
		return nil, err
	}
	ds := jr.deletions
	rep.Segments, rep.Entries = jr.segments, len(ds)
	st, err := j.Open(ctx, stage)
	if err != nil {
		return nil, fmt.Errorf("open the restored copy: %w", err)
	}
	rep.Applied, err = st.ApplyDeletions(ctx, ds)
	if err == nil {
		rep.Check, err = st.Check(ctx, j.sample())
	}
	if err := errors.Join(err, st.Close()); err != nil {
		return nil, fmt.Errorf("restore %s: %w", id, err)
	}
	// Move into place: keys first, the database last, so a directory with a database is complete.
	for _, f := range []string{KEKFile, KeysFile, DataFile} {
		src := filepath.Join(stage, filepath.FromSlash(f))
		if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return nil, err
		}
		for _, side := range []string{"-wal", "-shm"} {
			os.Remove(dst + side)
		}
		if err := os.Rename(src, dst); err != nil {
			return nil, fmt.Errorf("move restored %s into place: %w", f, err)
		}
	}
	rep.Elapsed = time.Since(t0)
	return rep, nil
}
