package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"filippo.io/age"

	"github.com/chatvault/chatvault"
)

// VerifyReport is what Verify found.
type VerifyReport struct {
	ID      string                 `json:"id"`
	Stored  map[string]error       `json:"-"`              // each target holding the backup: nil when its copy matches the manifest
	Keys    string                 `json:"keys,omitempty"` // the key backup used (full verify)
	Check   *chatvault.CheckReport `json:"check,omitempty"`
	Full    bool                   `json:"full"` // decrypted and restored, not only compared byte for byte
	Elapsed time.Duration          `json:"-"`
}

// Verify proves a backup: every stored copy of every part (data and its key backup) is compared
// with the manifest (size, SHA-256); with identities, one copy is also decrypted and restored into
// a temporary directory, where the engine's integrity check runs, row counts are compared with the
// manifest, and a sample of messages is decrypted. Any failure is an error that says which copy
// and what is wrong; the report says which copies are good.
func (j *Job) Verify(ctx context.Context, id string, ids []age.Identity) (rep *VerifyReport, err error) {
	t0 := time.Now()
	m := j.metrics()
	m.Verifies.Add(1)
	defer func() {
		if rep != nil {
			rep.Elapsed = time.Since(t0)
		}
		// Counted, not logged: the caller (the command, or the jobs runner) reports the error once.
		if err != nil && ctx.Err() == nil {
			m.VerifyFailures.Add(1)
		}
		if ctx.Err() == nil {
			m.LastVerify.Store(j.now().Unix())
			m.LastVerifyOK.Store(err == nil)
			if j.VerifyState != "" {
				r := VerifyRecord{At: j.now(), ID: id, Full: len(ids) > 0, OK: err == nil}
				if err != nil {
					r.Error = err.Error()
				}
				// A record that cannot be written is logged, not returned: the verification's own
				// outcome is what the caller asked for.
				if werr := writeVerifyRecord(j.VerifyState, r); werr != nil {
					j.logger().Warn("could not record the verification", "file", j.VerifyState, "err", werr)
				}
			}
		}
	}()
	man, holders, err := findBackup(ctx, j.Targets, KindData, id, j.TrustedKeys, j.AllowUnsigned)
	if err != nil {
		return nil, err
	}
	rep = &VerifyReport{ID: id, Stored: map[string]error{}, Full: len(ids) > 0}
	var errs []error
	if len(ids) == 0 {
		for _, t := range holders {
			rep.Stored[t.String()] = checkStored(ctx, t, man)
			errs = append(errs, rep.Stored[t.String()])
		}
		keys, kh, err := findBackup(ctx, j.KeyTargets, KindKeys, id, j.TrustedKeys, j.AllowUnsigned)
		if errors.Is(err, errBadManifest) || errors.Is(err, errUnsigned) {
			errs = append(errs, err)
		}
		if err == nil {
			for _, t := range kh {
				errs = append(errs, checkStored(ctx, t, keys))
			}
		}
		return rep, errors.Join(errs...)
	}
	dir, err := os.MkdirTemp(j.Work, "verify-")
	if err != nil {
		if err := os.MkdirAll(j.Work, 0o700); err != nil {
			return rep, err
		}
		if dir, err = os.MkdirTemp(j.Work, "verify-"); err != nil {
			return rep, err
		}
	}
	defer os.RemoveAll(dir)
	var good Target
	for _, t := range holders {
		err := fetch(ctx, t, man, dir, ids)
		rep.Stored[t.String()] = err
		if err == nil {
			good = t
			break
		}
		errs = append(errs, err)
	}
	// The copies not decrypted are compared byte for byte.
	for _, t := range holders {
		if _, done := rep.Stored[t.String()]; !done {
			rep.Stored[t.String()] = checkStored(ctx, t, man)
			errs = append(errs, rep.Stored[t.String()])
		}
	}
	if good == nil {
		return rep, fmt.Errorf("data backup %s: no good copy on any target: %w", id, errors.Join(errs...))
	}
	keys, err := j.fetchKeys(ctx, man, dir, ids, true)
	if err != nil {
		return rep, errors.Join(append(errs, err)...)
	}
	rep.Keys = keys.ID
	if j.Open == nil {
		return rep, errors.Join(append(errs, errors.New("no store opener: cannot check the restored copy"))...)
	}
	rep.Check, err = j.check(ctx, dir, man)
	if err != nil {
		errs = append(errs, fmt.Errorf("data backup %s restored from %s: %w", id, good, err))
	}
	if err := errors.Join(errs...); err != nil {
		return rep, err
	}
	j.logger().Info("backup verified", "backup", id, "sampled", rep.Check.Sampled, "opened", rep.Check.Opened, "shredded", rep.Check.Shredded)
	return rep, nil
}

// fetchKeys decrypts into dir the key backup that goes with a data backup: the one taken with it
// when sameFirst and it is still kept, else the newest one (it holds every data key the data
// backup uses that has not been destroyed since; destroyed ones must stay destroyed).
func (j *Job) fetchKeys(ctx context.Context, data *Manifest, dir string, ids []age.Identity, sameFirst bool) (*Manifest, error) {
	entries, lerr := listBackups(ctx, j.KeyTargets, KindKeys, j.TrustedKeys)
	var pick *Entry
	for _, e := range entries {
		if e.Manifest.CreatedAt.Before(data.CreatedAt) || (e.Unsigned && !j.AllowUnsigned) {
			continue
		}
		if sameFirst && e.Manifest.ID == data.ID {
			pick = e
			break
		}
		pick = e // entries are oldest first: the last one is the newest
	}
	if pick == nil {
		return nil, fmt.Errorf("no key backup taken at or after data backup %s was found on the key targets (%v): the data cannot be decrypted without one", data.ID, errors.Join(lerr))
	}
	var errs []error
	for _, name := range pick.Targets {
		for _, t := range j.KeyTargets {
			if t.String() != name {
				continue
			}
			if err := fetch(ctx, t, pick.Manifest, dir, ids); err != nil {
				errs = append(errs, err)
				continue
			}
			return pick.Manifest, nil
		}
	}
	return nil, fmt.Errorf("key backup %s: no good copy: %w", pick.Manifest.ID, errors.Join(errs...))
}
