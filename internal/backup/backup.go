// Package backup makes, lists, verifies, prunes and restores chatvault backups: consistent online
// snapshots of a store, encrypted with age to the operator's recipients, written with a manifest to
// every configured target (directories, S3-compatible buckets). Key material is backed up apart
// from the data, with its own short retention, and every destructive change is shipped to the
// targets as a deletion journal that a restore replays, so nothing deleted after a backup comes
// back. It imports no database driver: the store provides snapshots (chatvault.BackupStore) and
// opens restored copies (Opener).
package backup

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/chatvault/chatvault"
)

// Files of a data directory that backups hold, relative to it.
const (
	DataFile = "chatvault.db"
	KeysFile = "keys/keys.db"
	KEKFile  = "keys/kek.json"
)

// Opener opens a data directory laid out by a restore (DataFile, KeysFile and, if the backup had
// one, KEKFile) as a store with its keys.
type Opener func(ctx context.Context, dir string) (chatvault.RestoredStore, error)

// Job does the backup work for one data directory. Set the fields, then call its methods.
type Job struct {
	Store         chatvault.BackupStore // the live store (Create, ShipJournal)
	Open          Opener                // opens restored copies (Create's check, Verify, Restore)
	Targets       []Target              // data backups and the journal
	KeyTargets    []Target              // key backups
	Recipients    []age.Recipient
	RecipientKeys []string // the same, as text, for manifests
	// KEKFile is the key file copied into key backups; "" when the KEK comes from the environment.
	KEKFile string
	// Work is a scratch directory for snapshots (made if missing; holds only encrypted bodies and
	// metadata, and is emptied after each run). It should be on the data directory's file system.
	Work string
	// JournalState is the file that remembers, per target, how far the journal has been shipped.
	JournalState string
	// VerifyState is the file that records the last verification (VerifyRecord); "" keeps none.
	VerifyState  string
	Keep         Keep
	KeysKeepDays int
	// Sample is how many message bodies a check decrypts (default 200).
	Sample  int
	Clock   chatvault.Clock
	Logger  *slog.Logger
	Metrics *Metrics
	// Retries are the waits between attempts on a failing target (default 2s, 10s, 30s).
	Retries []time.Duration
	Version string
	// SigningKey signs the manifests and journal segments Create and ShipJournal write.
	SigningKey ed25519.PrivateKey
	// TrustedKeys are the public keys a manifest or journal segment read from a target must be
	// signed with (Verify, Restore, List, Prune).
	TrustedKeys []ed25519.PublicKey
	// AllowUnsigned accepts backups and journal segments written before they were signed.
	AllowUnsigned bool
}

func (j *Job) now() time.Time {
	if j.Clock == nil {
		return time.Now().UTC()
	}
	return j.Clock.Now().UTC()
}

func (j *Job) logger() *slog.Logger {
	if j.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return j.Logger
}

func (j *Job) metrics() *Metrics {
	if j.Metrics == nil {
		j.Metrics = &Metrics{}
	}
	return j.Metrics
}

func (j *Job) sample() int {
	if j.Sample == 0 {
		return 200
	}
	return j.Sample
}

func (j *Job) retries() []time.Duration {
	if j.Retries == nil {
		return []time.Duration{2 * time.Second, 10 * time.Second, 30 * time.Second}
	}
	return j.Retries
}

// TargetError is a target that did not get (all of) a backup.
type TargetError struct {
	Target string
	Kind   string
	Err    error
}

func (e TargetError) Error() string {
	return fmt.Sprintf("%s backup to %s: %v", e.Kind, e.Target, e.Err)
}

// CreateResult is what Create did.
type CreateResult struct {
	ID      string                 `json:"id"`
	Data    *Manifest              `json:"data"`
	Keys    *Manifest              `json:"keys,omitempty"` // nil when the store has no keys database
	Check   *chatvault.CheckReport `json:"check,omitempty"`
	Stored  []string               `json:"stored"`  // targets that got the data backup
	Failed  []TargetError          `json:"failed"`  // targets that did not, after retries
	Journal int                    `json:"journal"` // journal entries shipped before the snapshot
	// Duration and Phases are written as seconds in JSON (see MarshalJSON).
	Duration time.Duration `json:"-"`
	// Phases is how long each step took: journal, snapshot, keys, seal, check, upload.
	Phases map[string]time.Duration `json:"-"`
}

// Create takes a backup now: it ships the deletion journal, snapshots the data and then the keys
// (so the key backup holds every key the data snapshot needs), encrypts both, checks the snapshot
// (integrity, counts, a sample of bodies decrypted) unless check is false, and writes them to every
// target. A target that fails is retried, then reported; the others still get the backup. It
// fails only when the snapshot fails or no target got the data backup.
func (j *Job) Create(ctx context.Context, check bool) (res *CreateResult, err error) {
	t0 := time.Now()
	m := j.metrics()
	// Counted, not logged: the caller (the command, or the jobs runner) reports the error once.
	defer func() {
		if err != nil && ctx.Err() == nil {
			m.BackupFailures.Add(1)
		}
	}()
	if len(j.Targets) == 0 {
		return nil, errors.New("no backup targets are configured (backup.targets)")
	}
	if j.SigningKey == nil {
		return nil, errors.New("no backup signing key: backups are signed (see chatvault backup key)")
	}
	res = &CreateResult{Phases: map[string]time.Duration{}}
	lap := time.Now()
	phase := func(name string) {
		res.Phases[name] += time.Since(lap)
		lap = time.Now()
	}
	// Forced: a segment even without deletions, so the journal's signed ranges reach this backup.
	if n, err := j.shipJournal(ctx, true); err != nil {
		j.logger().Warn("deletion journal not shipped to every target; the next run retries", "error", err)
	} else {
		res.Journal = n
	}
	phase("journal")
	now := j.now()
	res.ID = NewID(now)
	if err := os.MkdirAll(j.Work, 0o700); err != nil {
		return nil, fmt.Errorf("backup work directory: %w", err)
	}
	work, err := os.MkdirTemp(j.Work, "create-")
	if err != nil {
		return nil, fmt.Errorf("backup work directory: %w", err)
	}
	defer os.RemoveAll(work)
	plain := filepath.Join(work, "plain")
	sealed := filepath.Join(work, "sealed")
	for _, d := range []string{filepath.Join(plain, "keys"), sealed} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	info, err := j.Store.Snapshot(ctx, filepath.Join(plain, DataFile))
	if err != nil {
		return nil, err
	}
	phase("snapshot")
	hasKeys := true
	if err := j.Store.SnapshotKeys(ctx, filepath.Join(plain, filepath.FromSlash(KeysFile))); err != nil {
		if j.Open != nil || j.KEKFile != "" {
			return nil, err
		}
		hasKeys = false
	}
	if hasKeys && j.KEKFile != "" {
		if err := copyFile(j.KEKFile, filepath.Join(plain, filepath.FromSlash(KEKFile))); err != nil {
			return nil, fmt.Errorf("copy key file: %w", err)
		}
	}
	phase("keys")
	res.Data = &Manifest{Format: signedFormat, JournalUpto: j.shippedEverywhere(), ID: res.ID, Kind: KindData, CreatedAt: now, Engine: "sqlite", Version: j.Version,
		SchemaVersion: info.SchemaVersion, Tables: info.Tables, EventCounter: info.EventCounter, Recipients: j.RecipientKeys}
	if err := j.seal(res.Data, plain, sealed, DataFile); err != nil {
		return nil, err
	}
	if hasKeys {
		res.Keys = &Manifest{Format: signedFormat, ID: res.ID, Kind: KindKeys, CreatedAt: now, Engine: "sqlite", Version: j.Version, Recipients: j.RecipientKeys}
		files := []string{KeysFile}
		if j.KEKFile != "" {
			files = append(files, KEKFile)
		}
		if err := j.seal(res.Keys, plain, sealed, files...); err != nil {
			return nil, err
		}
	}
	phase("seal")
	if check && hasKeys && j.Open != nil {
		// The plain snapshot is checked after it was hashed: opening it may touch its header.
		if res.Check, err = j.check(ctx, plain, res.Data); err != nil {
			m.VerifyFailures.Add(1)
			return nil, fmt.Errorf("backup %s: check of the snapshot before upload: %w", res.ID, err)
		}
	}
	os.RemoveAll(plain)
	phase("check")
	var wg sync.WaitGroup
	var mu sync.Mutex
	upload := func(t Target, man *Manifest) {
		defer wg.Done()
		t0 := time.Now()
		err := j.store(ctx, t, man, sealed)
		if err == nil && man.Kind == KindData {
			m.RecordUpload(t.String(), time.Since(t0))
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			m.TargetFailures.Add(1)
			res.Failed = append(res.Failed, TargetError{Target: t.String(), Kind: man.Kind, Err: err})
			j.logger().Error("backup target failed after retries", "backup", res.ID, "kind", man.Kind, "target", t.String(), "error", err)
		} else if man.Kind == KindData {
			res.Stored = append(res.Stored, t.String())
		}
	}
	for _, t := range j.Targets {
		wg.Add(1)
		go upload(t, res.Data)
	}
	if res.Keys != nil {
		for _, t := range j.KeyTargets {
			wg.Add(1)
			go upload(t, res.Keys)
		}
	}
	wg.Wait()
	phase("upload")
	res.Duration = time.Since(t0)
	if len(res.Stored) == 0 {
		return res, fmt.Errorf("backup %s reached no target: %w", res.ID, errors.Join(targetErrs(res.Failed)...))
	}
	m.Backups.Add(1)
	m.LastSuccess.Store(now.Unix())
	m.LastBytes.Store(res.Data.Parts[0].Size)
	j.logger().Info("backup created", "backup", res.ID, "targets", len(res.Stored), "failed_targets", len(res.Failed),
		"bytes", res.Data.Parts[0].Size, "duration", res.Duration.Round(time.Millisecond), "phases", phaseLog(res.Phases))
	return res, nil
}

func targetErrs(fs []TargetError) []error {
	out := make([]error, len(fs))
	for i, f := range fs {
		out[i] = f
	}
	return out
}

// seal encrypts files (relative to plain) into sealed and records them as parts of man.
func (j *Job) seal(man *Manifest, plain, sealed string, files ...string) error {
	for _, f := range files {
		name := filepath.Base(f) + ".age"
		p, err := sealFile(filepath.Join(plain, filepath.FromSlash(f)), filepath.Join(sealed, man.Kind+"-"+name), j.Recipients)
		if err != nil {
			return fmt.Errorf("backup %s: %w", man.ID, err)
		}
		p.Name, p.File = name, f
		man.Parts = append(man.Parts, p)
	}
	return nil
}

// check opens a plain copy laid out in dir and compares it with the manifest.
func (j *Job) check(ctx context.Context, dir string, man *Manifest) (*chatvault.CheckReport, error) {
	st, err := j.Open(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("open the copy: %w", err)
	}
	defer st.Close()
	rep, err := st.Check(ctx, j.sample())
	if err != nil {
		return rep, err
	}
	for table, want := range man.Tables {
		if got := rep.Tables[table]; got != want {
			return rep, fmt.Errorf("table %s has %d rows, the manifest says %d", table, got, want)
		}
	}
	return rep, nil
}

// store writes a backup's parts, then its manifest, to one target, retrying.
func (j *Job) store(ctx context.Context, t Target, man *Manifest, sealed string) error {
	raw, err := seal(manifestContext, man, j.SigningKey)
	if err != nil {
		return err
	}
	for _, p := range man.Parts {
		path := filepath.Join(sealed, man.Kind+"-"+p.Name)
		err := j.retry(ctx, t, func() error {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			return t.Put(ctx, man.dir()+p.Name, f, p.Size)
		})
		if err != nil {
			return err
		}
	}
	return j.retry(ctx, t, func() error { return t.Put(ctx, man.dir()+manifestName, bytesReader(raw), int64(len(raw))) })
}

// retry runs put, and again after each wait of j.Retries while it fails.
func (j *Job) retry(ctx context.Context, t Target, put func() error) error {
	err := put()
	for _, wait := range j.retries() {
		if err == nil || ctx.Err() != nil {
			break
		}
		j.logger().Warn("backup target failed; retrying", "target", t.String(), "in", wait, "error", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		}
		err = put()
	}
	return err
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}

// Scheduled is one scheduled backup: create (checked before upload), verify when verify is set (in
// full when ids are given, else every stored copy byte for byte), prune. A backup that did not
// verify prunes nothing, so the older good ones stay. It returns the first failure; the jobs
// runner logs it.
func (j *Job) Scheduled(ctx context.Context, verify bool, ids []age.Identity) error {
	res, err := j.Create(ctx, true)
	if err != nil {
		return fmt.Errorf("create backup: %w", err)
	}
	if verify {
		if _, err := j.Verify(ctx, res.ID, ids); err != nil {
			return fmt.Errorf("verify backup %s (nothing pruned): %w", res.ID, err)
		}
	}
	if _, err := j.Prune(ctx); err != nil {
		return fmt.Errorf("prune backups: %w", err)
	}
	return nil
}
