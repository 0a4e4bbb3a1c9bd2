package backup_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/backup"
)

// The stored forms a writer of a target can produce: the signed envelope (format 2, the signature
// over this context and the compact JSON of the manifest) and the old unsigned manifest (format 1).
const manifestContext = "chatvault backup manifest v2\n"

func getObject(t *testing.T, tg backup.Target, name string) []byte {
	t.Helper()
	rc, err := tg.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get(%q) = %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func putObject(t *testing.T, tg backup.Target, name string, b []byte) {
	t.Helper()
	if err := tg.Put(context.Background(), name, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatalf("Put(%q) = %v", name, err)
	}
}

// signedBody returns the manifest inside a stored envelope, as a map to edit.
func signedBody(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var env struct {
		Format int             `json:"format"`
		Signed json.RawMessage `json:"signed"`
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &env); err != nil || env.Format != 2 {
		t.Fatalf("stored manifest is not a signed envelope (format %d, %v):\n%s", env.Format, err, raw)
	}
	if err := json.Unmarshal(env.Signed, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// encodeManifest writes m as a target writer would: signed by key, or unsigned (format 1) if nil.
func encodeManifest(t *testing.T, m map[string]any, key ed25519.PrivateKey) []byte {
	t.Helper()
	m = clone(t, m)
	if key == nil {
		m["format"] = 1
		b, _ := json.Marshal(m)
		return b
	}
	body, _ := json.Marshal(m)
	sig := ed25519.Sign(key, append([]byte(manifestContext), body...))
	b, _ := json.MarshalIndent(map[string]any{"format": 2, "signed": json.RawMessage(body),
		"key": backup.FormatPublicKey(key.Public().(ed25519.PublicKey)), "signature": base64.StdEncoding.EncodeToString(sig)}, "", "  ")
	return b
}

func clone(t *testing.T, m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	json.Unmarshal(b, &out)
	return out
}

// sealed is an age file encrypted to the backup's recipient, as anyone can make one.
func sealed(t *testing.T, e *env, plain string) (data []byte, part map[string]any) {
	t.Helper()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, e.identity.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, plain)
	w.Close()
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), map[string]any{"size": buf.Len(), "sha256": hex.EncodeToString(sum[:]), "plain_size": len(plain)}
}

// snapshotTree records every file under root (path, mode, content) except under skip.
func snapshotTree(t *testing.T, root string, skip ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		for _, s := range skip {
			if p == s {
				return filepath.SkipDir
			}
		}
		if d.IsDir() {
			return nil
		}
		fi, _ := os.Lstat(p)
		b, _ := os.ReadFile(p)
		sum := sha256.Sum256(b)
		out[p] = fmt.Sprintf("%v %x", fi.Mode(), sum[:8])
		return nil
	})
	return out
}

func diffTrees(before, after map[string]string) []string {
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

// TestTamperedManifestRefused: someone who can write to a target (but holds neither the signing
// key nor an identity) rewrites a backup's manifest to write outside the restore directory, to
// redirect or swap parts, or re-signs it with their own key. Verify (stored copies, and in full)
// and Restore refuse every one, naming the backup and the target, and no file outside the restore
// directory changes. Rewritten manifests are tried in every form the attacker can write: unsigned
// (the old format), signed with another key, and, to show the part checks stand on their own,
// unsigned but accepted with AllowUnsigned, and signed with the trusted key itself.
func TestTamperedManifestRefused(t *testing.T) {
	for _, kind := range []string{"dir", "s3"} {
		t.Run(kind, func(t *testing.T) {
			tc := backup.TargetConfig{Type: "dir", Path: t.TempDir()}
			if kind == "s3" {
				tc = s3Server(t, "tamper")
			}
			e := newEnv(t, tc)
			ctx := context.Background()
			c := e.conv(t)
			for i := range 5 {
				if _, err := e.send(c, fmt.Sprintf("message %d", i), time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			res, err := e.job.Create(ctx, true)
			if err != nil {
				t.Fatalf("Create() = %v", err)
			}
			tg := e.job.Targets[0]
			id := res.ID
			manifestName := "data/" + id + "/manifest.json"
			origManifest := getObject(t, tg, manifestName)
			origPart := getObject(t, tg, "data/"+id+"/chatvault.db.age")
			good := signedBody(t, origManifest)
			_, attacker, _ := ed25519.GenerateKey(rand.Reader)

			base := t.TempDir()
			victim := filepath.Join(base, "victim")
			if err := os.WriteFile(victim, []byte("original"), 0o600); err != nil {
				t.Fatal(err)
			}
			evil, evilPart := sealed(t, e, "pwned")
			withPart := func(m map[string]any, name, file string) {
				p := clone(t, evilPart)
				p["name"], p["file"] = name, file
				m["parts"] = append(m["parts"].([]any), p)
				putObject(t, tg, "data/"+id+"/"+name, evil)
			}
			part0 := func(m map[string]any) map[string]any { return m["parts"].([]any)[0].(map[string]any) }

			for _, a := range []struct {
				name   string
				tamper func(m map[string]any)
				// checked: what the part checks say when the signature is not what stops it ("": the
				// change is one only the signature can catch).
				checked string
			}{
				{"extra part with a traversal path", func(m map[string]any) { withPart(m, "x.age", "../../x") }, `part "x.age" is not a part of a data backup`},
				{"extra part with an absolute path", func(m map[string]any) { withPart(m, "victim.age", victim) }, `part "victim.age" is not a part of a data backup`},
				{"known part name with a traversal path", func(m map[string]any) { part0(m)["file"] = "../../x" }, `it can only be chatvault.db`},
				{"renamed part", func(m map[string]any) {
					part0(m)["name"] = "keys.db.age"
					putObject(t, tg, "data/"+id+"/keys.db.age", origPart)
				}, `part "keys.db.age" is not a part of a data backup`},
				{"part listed twice", func(m map[string]any) { m["parts"] = append(m["parts"].([]any), part0(m)) }, "listed twice"},
				{"negative size", func(m map[string]any) { part0(m)["size"] = -1 }, "out of range"},
				{"hash not hex", func(m map[string]any) { part0(m)["sha256"] = "../" + strings.Repeat("a", 61) }, "not 64 lowercase hex"},
				{"changed hash with a matching altered part", func(m map[string]any) {
					p := part0(m)
					for k, v := range evilPart {
						p[k] = v
					}
					putObject(t, tg, "data/"+id+"/chatvault.db.age", evil)
				}, ""},
			} {
				t.Run(a.name, func(t *testing.T) {
					defer func() {
						putObject(t, tg, manifestName, origManifest)
						putObject(t, tg, "data/"+id+"/chatvault.db.age", origPart)
					}()
					m := clone(t, good)
					a.tamper(m)
					for _, mode := range []struct {
						name          string
						key           ed25519.PrivateKey
						allowUnsigned bool
						want          string
					}{
						// Refused as unsigned, or by the part checks first when they catch it.
						{"unsigned", nil, false, "refused"},
						{"signed by another key", attacker, false, "signature does not verify"},
						{"unsigned, allowed", nil, true, a.checked},
						{"signed by the trusted key", e.job.SigningKey, false, a.checked},
					} {
						if mode.want == "" {
							continue
						}
						putObject(t, tg, manifestName, encodeManifest(t, m, mode.key))
						job := *e.job
						job.AllowUnsigned = mode.allowUnsigned
						restoreDir := filepath.Join(base, "restore")
						before := snapshotTree(t, base, restoreDir)
						beforeData := snapshotTree(t, e.dir, job.Work)
						check := func(op string, err error) {
							t.Helper()
							if err == nil || !strings.Contains(err.Error(), mode.want) || !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), tg.String()) {
								t.Errorf("%s: %s = %v; want an error naming the backup, the target and %q", mode.name, op, err, mode.want)
							}
						}
						_, err := job.Verify(ctx, id, nil)
						check("Verify()", err)
						_, err = job.Verify(ctx, id, identities(e))
						check("Verify(identity)", err)
						_, err = job.Restore(ctx, id, restoreDir, identities(e), false)
						check("Restore()", err)
						if d := diffTrees(before, snapshotTree(t, base, restoreDir)); len(d) > 0 {
							t.Errorf("%s: files outside the restore directory changed: %v", mode.name, d)
						}
						if d := diffTrees(beforeData, snapshotTree(t, e.dir, job.Work)); len(d) > 0 {
							t.Errorf("%s: files of the data directory changed: %v", mode.name, d)
						}
						if _, err := os.Stat(filepath.Join(restoreDir, backup.DataFile)); err == nil {
							t.Errorf("%s: a refused restore left %s", mode.name, backup.DataFile)
						}
						os.RemoveAll(restoreDir)
					}
				})
			}

			// The untouched backup still verifies and restores.
			if _, err := e.job.Verify(ctx, id, identities(e)); err != nil {
				t.Fatalf("Verify() of the untouched backup = %v", err)
			}
			if _, err := e.job.Restore(ctx, id, filepath.Join(t.TempDir(), "r"), identities(e), false); err != nil {
				t.Fatalf("Restore() of the untouched backup = %v", err)
			}
		})
	}
}

// TestUnsignedBackupNeedsOverride: a backup whose manifest is unsigned (as before manifests were
// signed) is refused by default with an error naming --allow-unsigned, and restores with it.
func TestUnsignedBackupNeedsOverride(t *testing.T) {
	root := t.TempDir()
	e := newEnv(t, backup.TargetConfig{Type: "dir", Path: root})
	ctx := context.Background()
	c := e.conv(t)
	if _, err := e.send(c, "hello", time.Now()); err != nil {
		t.Fatal(err)
	}
	res, err := e.job.Create(ctx, true)
	if err != nil {
		t.Fatalf("Create() = %v", err)
	}
	tg := e.job.Targets[0]
	for _, kind := range []string{backup.KindData, backup.KindKeys} {
		name := kind + "/" + res.ID + "/manifest.json"
		putObject(t, tg, name, encodeManifest(t, signedBody(t, getObject(t, tg, name)), nil))
	}
	if _, err := e.job.Restore(ctx, res.ID, filepath.Join(t.TempDir(), "r"), identities(e), false); err == nil || !strings.Contains(err.Error(), "--allow-unsigned") {
		t.Fatalf("Restore(unsigned) = %v; want a refusal naming --allow-unsigned", err)
	}
	entries, err := e.job.List(ctx, backup.KindData)
	if err != nil || len(entries) != 1 || !entries[0].Unsigned {
		t.Fatalf("List() = %v, %v; want the backup, marked unsigned", entries, err)
	}
	job := *e.job
	job.AllowUnsigned = true
	if _, err := job.Restore(ctx, res.ID, filepath.Join(t.TempDir(), "r"), identities(e), false); err != nil {
		t.Fatalf("Restore(unsigned, AllowUnsigned) = %v", err)
	}
}

// TestNoTrustedKeyRefuses: with no key to verify against (a fresh machine, nothing pinned),
// nothing is restored, and the error says what to pin; Prune deletes nothing it cannot verify.
func TestNoTrustedKeyRefuses(t *testing.T) {
	root := t.TempDir()
	e := newEnv(t, backup.TargetConfig{Type: "dir", Path: root})
	ctx := context.Background()
	res, err := e.job.Create(ctx, true)
	if err != nil {
		t.Fatalf("Create() = %v", err)
	}
	job := *e.job
	job.TrustedKeys = nil
	if _, err := job.Restore(ctx, res.ID, filepath.Join(t.TempDir(), "r"), identities(e), false); err == nil || !strings.Contains(err.Error(), "backup.manifest_public_key") {
		t.Fatalf("Restore() without a trusted key = %v; want a refusal naming backup.manifest_public_key", err)
	}
	job.Keep = backup.Keep{Daily: 1}
	if _, err := job.Prune(ctx); err == nil {
		t.Fatalf("Prune() without a trusted key = nil; want a refusal")
	}
	if _, err := os.Stat(filepath.Join(root, "data", res.ID, "chatvault.db.age")); err != nil {
		t.Fatalf("Prune() without a trusted key deleted the backup: %v", err)
	}
}

// TestTamperedJournalRefused: after a backup, three messages are purged, each shipped in a
// segment of its own. Someone who can write to the targets replaces the last segment with an
// earlier one, or removes the middle one (with its signature), or swaps two segments' signatures:
// each would bring a purged message back, and Restore refuses each; the untouched journal
// restores with all three applied.
func TestTamperedJournalRefused(t *testing.T) {
	for _, kind := range []string{"dir", "s3"} {
		t.Run(kind, func(t *testing.T) {
			tc := backup.TargetConfig{Type: "dir", Path: t.TempDir()}
			if kind == "s3" {
				tc = s3Server(t, "journal")
			}
			e := newEnv(t, tc)
			ctx := context.Background()
			c := e.conv(t)
			var msgs []*chatvault.Message
			at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
			for i := range 3 {
				m, err := e.send(c, fmt.Sprintf("message %d", i), at.Add(time.Duration(i)*time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, m)
			}
			res, err := e.job.Create(ctx, true)
			if err != nil {
				t.Fatalf("Create() = %v", err)
			}
			tg := e.job.Targets[0]
			before, _ := tg.List(ctx, "journal/")
			var segs []string
			for _, m := range msgs {
				now := time.Now().UTC()
				from, to := m.SentAt, m.SentAt.Add(time.Second)
				if _, err := e.db.DestroyMessages(ctx, chatvault.DestroyStep{Selection: chatvault.Selection{OrgID: e.org.ID, ConversationID: c.ID,
					Limit: 10, At: now}, Batch: &chatvault.BatchFilter{ConversationID: c.ID, From: &from, To: &to, SentBefore: now}}); err != nil {
					t.Fatal(err)
				}
				if n, err := e.job.ShipJournal(ctx); err != nil || n == 0 {
					t.Fatalf("ShipJournal() = %d, %v", n, err)
				}
				after, _ := tg.List(ctx, "journal/")
				for _, n := range after {
					if !strings.HasSuffix(n, ".sig") && !contains(before, n) && !contains(segs, n) {
						segs = append(segs, n)
					}
				}
			}
			if len(segs) != 3 {
				t.Fatalf("segments shipped after the backup = %v; want 3", segs)
			}
			for _, a := range []struct {
				name   string
				tamper func()
				want   string
			}{
				{"last segment replaced by an earlier one", func() { putObject(t, tg, segs[2], getObject(t, tg, segs[0])) }, "altered or swapped"},
				{"middle segment removed", func() { tg.Delete(ctx, segs[1]); tg.Delete(ctx, segs[1]+".sig") }, "the deletion journal has a gap"},
				{"signatures swapped", func() {
					a, b := getObject(t, tg, segs[0]+".sig"), getObject(t, tg, segs[1]+".sig")
					putObject(t, tg, segs[0]+".sig", b)
					putObject(t, tg, segs[1]+".sig", a)
				}, "renamed or swapped"},
				{"forged segment", func() {
					// Encrypted to the public recipient, as anyone can, and signed with another key.
					data, _ := sealed(t, e, "")
					name := "20990101T000000.000000000Z-deadbeef.jsonl.gz.age"
					sum := sha256.Sum256(data)
					body, _ := json.Marshal(map[string]any{"name": name, "size": len(data), "sha256": hex.EncodeToString(sum[:]), "after": 0, "upto": 1 << 40})
					_, attacker, _ := ed25519.GenerateKey(rand.Reader)
					sig, _ := json.Marshal(map[string]any{"format": 2, "signed": json.RawMessage(body), "key": "x",
						"signature": base64.StdEncoding.EncodeToString(ed25519.Sign(attacker, append([]byte("chatvault journal segment v2\n"), body...)))})
					putObject(t, tg, "journal/"+name, data)
					putObject(t, tg, "journal/"+name+".sig", sig)
				}, "signature does not verify"},
			} {
				t.Run(a.name, func(t *testing.T) {
					saved := map[string][]byte{}
					all, _ := tg.List(ctx, "journal/")
					for _, n := range all {
						saved[n] = getObject(t, tg, n)
					}
					defer func() {
						now, _ := tg.List(ctx, "journal/")
						for _, n := range now {
							if saved[n] == nil {
								tg.Delete(ctx, n)
							}
						}
						for n, b := range saved {
							putObject(t, tg, n, b)
						}
					}()
					a.tamper()
					dir := filepath.Join(t.TempDir(), "r")
					if _, err := e.job.Restore(ctx, res.ID, dir, identities(e), false); err == nil || !strings.Contains(err.Error(), a.want) {
						t.Fatalf("Restore() = %v; want %q", err, a.want)
					}
					if _, err := os.Stat(filepath.Join(dir, backup.DataFile)); err == nil {
						t.Fatalf("a refused restore left %s", backup.DataFile)
					}
				})
			}
			rep, err := e.job.Restore(ctx, res.ID, filepath.Join(t.TempDir(), "r"), identities(e), false)
			if err != nil || rep.Applied != 3 {
				t.Fatalf("Restore() of the untouched journal = %+v, %v; want 3 deletions applied", rep, err)
			}
		})
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
