package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age"
	"gopkg.in/yaml.v3"

	"github.com/chatvault/chatvault/internal/backup"
	"github.com/chatvault/chatvault/internal/datadir"
)

// TestRestoreRefusesTamperedManifest: through the real binary. Someone who can write to both
// targets (a directory and an S3 bucket) but holds neither the signing key nor an identity adds a
// part that decrypts to ../../../x, encrypted to the public recipient as anyone can, and rewrites
// the manifest the old, unsigned way, or signs it with a key of their own. `backup verify` and
// `restore` refuse it, naming the backup, the target and the way out, and no file outside the
// restore directory changes; --allow-unsigned does not let the part through. Without a pinned key
// a restore on another machine is refused too, with the setting to pin.
func TestRestoreRefusesTamperedManifest(t *testing.T) {
	bin := chatvaultBinary(t)
	dir, cfgFile, idFile, _ := backupSetup(t, "")
	out, err := runCmd(t, "backup", "create", "--config", cfgFile, "--data", dir)
	if err != nil {
		t.Fatalf("backup create = %v\n%s", err, out)
	}
	id := regexp.MustCompile(`backup (\S+):`).FindStringSubmatch(out)[1]

	raw, _ := os.ReadFile(cfgFile)
	var c struct {
		Backup backup.Config `yaml:"backup"`
	}
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	targets, err := backup.OpenTargets(c.Backup.Targets, os.Getenv)
	if err != nil || len(targets) != 2 {
		t.Fatalf("OpenTargets() = %d, %v", len(targets), err)
	}
	ids, err := backup.ReadIdentities(idFile)
	if err != nil {
		t.Fatal(err)
	}
	var evil bytes.Buffer
	w, _ := age.Encrypt(&evil, ids[0].(*age.X25519Identity).Recipient())
	io.WriteString(w, "pwned")
	w.Close()
	sum := sha256.Sum256(evil.Bytes())
	ctx := context.Background()
	name := "data/" + id + "/manifest.json"
	orig := map[string][]byte{}
	var body map[string]any
	for _, tg := range targets {
		rc, err := tg.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		orig[tg.String()], _ = io.ReadAll(rc)
		rc.Close()
		var env struct{ Signed json.RawMessage }
		json.Unmarshal(orig[tg.String()], &env)
		json.Unmarshal(env.Signed, &body)
	}
	plain, _ := json.Marshal(body)
	body["parts"] = append(body["parts"].([]any), map[string]any{"name": "x.age", "file": "../../../x",
		"size": evil.Len(), "sha256": hex.EncodeToString(sum[:]), "plain_size": 5})
	put := func(name string, b []byte) {
		for _, tg := range targets {
			if err := tg.Put(ctx, name, bytes.NewReader(b), int64(len(b))); err != nil {
				t.Fatal(err)
			}
		}
	}
	put("data/"+id+"/x.age", evil.Bytes())
	unsigned := func() []byte {
		body["format"] = 1
		b, _ := json.Marshal(body)
		return b
	}
	// The untouched manifest rewritten the old way: only the missing signature tells.
	var untouched map[string]any
	json.Unmarshal(plain, &untouched)
	untouched["format"] = 1
	unsignedUntouched, _ := json.Marshal(untouched)
	otherKey := func() []byte {
		body["format"] = 2
		b, _ := json.Marshal(body)
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		sig := ed25519.Sign(key, append([]byte("chatvault backup manifest v2\n"), b...))
		env, _ := json.Marshal(map[string]any{"format": 2, "signed": json.RawMessage(b),
			"key": backup.FormatPublicKey(key.Public().(ed25519.PublicKey)), "signature": base64.StdEncoding.EncodeToString(sig)})
		return env
	}

	base := t.TempDir()
	restoreDir := filepath.Join(base, "a", "restore")
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = withoutChatvaultEnv(os.Environ())
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, tc := range []struct {
		name     string
		manifest []byte
		extra    []string
		want     string
	}{
		{"unsigned", unsigned(), nil, "refused"},
		{"unsigned, part unchanged", unsignedUntouched, nil, "--allow-unsigned"},
		{"unsigned, --allow-unsigned", unsigned(), []string{"--allow-unsigned"}, `part "x.age" is not a part of a data backup`},
		{"signed by another key", otherKey(), nil, "signature does not verify"},
	} {
		put(name, tc.manifest)
		before, beforeData := tree(t, base), tree(t, dir)
		for _, args := range [][]string{
			{"backup", "verify", id, "--config", cfgFile, "--data", dir},
			{"backup", "verify", id, "--config", cfgFile, "--data", dir, "--identity", idFile},
			{"restore", id, "--config", cfgFile, "--data", restoreDir, "--identity", idFile},
		} {
			if tc.name == "unsigned, --allow-unsigned" || args[0] == "restore" {
				args = append(args, tc.extra...)
			}
			out, err := run(args...)
			if err == nil || !strings.Contains(out, tc.want) || !strings.Contains(out, id) || !strings.Contains(out, "s3://chatvault-backups/prod/") {
				t.Errorf("%s: chatvault %s = %v\n%s\nwant a refusal naming the backup, the target and %q", tc.name, strings.Join(args[:2], " "), err, out, tc.want)
			}
		}
		if d := diffTree(before, tree(t, base)); len(d) > 0 {
			t.Errorf("%s: files changed outside the restore directory: %v", tc.name, d)
		}
		// The one file a refused verification writes is its record, which says it failed (what
		// chatvault doctor reports); nothing else in the data directory changes.
		record := filepath.Join(dir, "backup", "verify.json")
		if d := diffTree(beforeData, tree(t, dir)); len(d) > 1 || (len(d) == 1 && d[0] != record) {
			t.Errorf("%s: files of the data directory changed: %v", tc.name, d)
		}
		if rec, err := backup.ReadVerifyRecord(record); err != nil || rec == nil || rec.OK || rec.ID != id {
			t.Errorf("%s: verification record = %+v, %v; want the failure of %s", tc.name, rec, err, id)
		}
		if _, err := os.Stat(filepath.Join(restoreDir, "chatvault.db")); err == nil {
			t.Errorf("%s: the refused restore left a database", tc.name)
		}
	}

	// The untouched backup: refused where no key is pinned (a fresh machine), restored with the pin.
	for _, tg := range targets {
		tg.Put(ctx, name, bytes.NewReader(orig[tg.String()]), int64(len(orig[tg.String()])))
	}
	unpinned := filepath.Join(t.TempDir(), "unpinned.yaml")
	os.WriteFile(unpinned, regexp.MustCompile(`(?m)^  manifest_public_key: .*\n`).ReplaceAll(raw, nil), 0o600)
	if out, err := run("restore", id, "--config", unpinned, "--data", filepath.Join(t.TempDir(), "r"), "--identity", idFile); err == nil || !strings.Contains(out, "backup.manifest_public_key") {
		t.Errorf("restore without a pinned key = %v\n%s\nwant a refusal naming backup.manifest_public_key", err, out)
	}
	if out, err := run("restore", id, "--config", cfgFile, "--data", restoreDir, "--identity", idFile); err != nil || !strings.Contains(out, "integrity ok") {
		t.Fatalf("restore of the untouched backup = %v\n%s", err, out)
	}
}

// tree maps every file under root to its mode and content hash.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		// The lock file names the last process that held the directory: not data.
		if err != nil || d.IsDir() || d.Name() == datadir.LockFile {
			return nil
		}
		fi, _ := os.Lstat(p)
		b, _ := os.ReadFile(p)
		sum := sha256.Sum256(b)
		out[p] = fi.Mode().String() + " " + hex.EncodeToString(sum[:8])
		return nil
	})
	return out
}

func diffTree(before, after map[string]string) []string {
	var d []string
	for p, v := range after {
		if before[p] != v {
			d = append(d, p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			d = append(d, p+" (removed)")
		}
	}
	return d
}
