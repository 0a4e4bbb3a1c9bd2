package bench

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"
	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/backup"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/sqlite"
)

// Backup measures a backup of the data set as `chatvault backup create` makes it (snapshot, check,
// encryption with age, a directory target), a full verify (decrypt, restore to a temporary place,
// integrity check, counts, sample bodies) and a restore, each in MB/s of the database and in
// messages/s. The reference, in the same run, is a plain copy of the database file (read, write,
// fsync): the ceiling for anything that has to move every byte once.
func Backup(ctx context.Context, cfg Config) (*Report, error) {
	ds, rep, err := cfg.start("backup")
	if err != nil {
		return nil, err
	}
	l, dir, err := cfg.workStore(ctx, ds, "backup", rep)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	defer l.close()
	st, err := os.Stat(filepath.Join(dir, sqlite.FileName))
	if err != nil {
		return nil, err
	}
	mb, msgs := float64(st.Size())/1e6, float64(ds.info().Messages)
	measure := func(name string, f func() error) (*Result, error) {
		m := startMeter(os.Getpid())
		t0 := time.Now()
		err := f()
		took := time.Since(t0)
		peak, cpu := m.stop()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		ms := float64(took.Microseconds()) / 1000
		return &Result{Name: name, Unit: "MB", Ops: 1, Secs: round1(took.Seconds()), Rate: math.Round(mb/took.Seconds()*10) / 10,
			LatencyOf: "the whole operation", P50Ms: ms, P90Ms: ms, P95Ms: ms, P99Ms: ms, MaxMs: ms, PeakRSSBytes: peak,
			RSSOf: m.rssNote("the bench process"), BenchCPUSecs: round1(cpu.Seconds()),
			Note: fmt.Sprintf("%.0f messages/s; %.1f MB database", msgs/took.Seconds(), mb)}, nil
	}

	cfg.Logf("backup: plain copy of the %.1f MB database (reference)", mb)
	ref, err := measure("plain copy of chatvault.db (read, write, fsync)", func() error {
		return copySync(filepath.Join(dir, sqlite.FileName), filepath.Join(cfg.Work, "backup-plain-copy.db"))
	})
	if err != nil {
		return nil, err
	}
	os.Remove(filepath.Join(cfg.Work, "backup-plain-copy.db"))
	rep.Reference = ref

	identity, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	target, err := backup.NewDirTarget(filepath.Join(cfg.Work, "backup-target"))
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(filepath.Join(cfg.Work, "backup-target"))
	// Signed as a server signs them, so create and verify measure the signature too.
	pub, signing, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	job := &backup.Job{Store: l.db, SigningKey: signing, TrustedKeys: []ed25519.PublicKey{pub}, Open: openRestored, Targets: []backup.Target{target}, KeyTargets: []backup.Target{target},
		Recipients: []age.Recipient{identity.Recipient()}, RecipientKeys: []string{identity.Recipient().String()},
		KEKFile: filepath.Join(dir, filepath.FromSlash(backup.KEKFile)), Work: filepath.Join(dir, "backup", "work"),
		JournalState: filepath.Join(dir, "backup", "journal.json"), Clock: chatvault.SystemClock{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: &backup.Metrics{}}
	ids := []age.Identity{identity}

	var id string
	cfg.Logf("backup: backup create (snapshot, check, encrypt, store)")
	create, err := measure("backup create: snapshot, integrity check, age encryption, directory target", func() error {
		res, err := job.Create(ctx, true)
		if err == nil {
			id = res.ID
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	rep.add("create", create)
	cfg.Logf("backup: verify %s (decrypt, restore to a temporary place, check)", id)
	verify, err := measure("backup verify --identity: decrypt, restore to a temporary place, integrity check, counts, sample bodies", func() error {
		_, err := job.Verify(ctx, id, ids)
		return err
	})
	if err != nil {
		return nil, err
	}
	rep.add("verify", verify)
	restored := filepath.Join(cfg.Work, "backup-restored")
	defer os.RemoveAll(restored)
	cfg.Logf("backup: restore %s", id)
	restore, err := measure("restore: decrypt, keys, deletion journal, integrity check", func() error {
		_, err := job.Restore(ctx, id, restored, ids, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	rep.add("restore", restore)
	rep.finish()
	rep.Notes = append(rep.Notes, "rates are MB of the database per second; each note gives messages per second",
		"the target of the issue: backup and restore at >= 50% of the plain copy, verification included")
	return rep, nil
}

// openRestored opens a restored data directory with the key file the key backup brought back.
func openRestored(ctx context.Context, dir string) (chatvault.RestoredStore, error) {
	p, err := keyring.OpenFile(filepath.Join(dir, filepath.FromSlash(backup.KEKFile)))
	if err != nil {
		return nil, err
	}
	return sqlite.OpenWith(dir, sqlite.Options{Keyring: keyring.New(p, 0)})
}

// copySync copies a file and syncs the copy: what a backup has to do at the very least.
func copySync(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
