package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/account"
	"github.com/chatvault/chatvault/internal/sqlite"
)

// ManifestFile describes a generated data set inside its data directory.
const ManifestFile = "bench-dataset.json"

// PasswordFile holds the password every generated user shares. It has the name `chatvault serve`
// gives the first admin's one-time password, so the usual way in works on a generated directory.
const PasswordFile = "initial-admin-password"

// Manifest is what gen records about the data set it wrote. The structure (orgs, users,
// conversations) is rebuilt from Seed and Messages by NewDataset, so it is not stored twice.
type Manifest struct {
	Seed          uint64    `json:"seed"`
	Messages      int       `json:"messages"`
	Conversations int       `json:"conversations"`
	Users         int       `json:"users"`
	Orgs          int       `json:"orgs"`
	AvgBodyBytes  float64   `json:"avg_body_bytes"`
	GeneratedAt   time.Time `json:"generated_at"`
	GenSeconds    float64   `json:"gen_seconds"`
	SchemaVersion int       `json:"schema_version"`
}

// Generate writes a data set of p.Messages messages into dir, which must be empty or absent: a
// normal chatvault data directory (`chatvault serve --data dir` opens it) plus the manifest and
// the shared password file. Generate makes one password, hashes it once and gives it to every user.
func Generate(ctx context.Context, dir string, seed uint64, messages int, logf func(string, ...any)) (*Manifest, error) {
	if messages < 1 {
		return nil, errors.New("--messages must be at least 1")
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%s is not empty: gen writes only into a new or empty directory", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	started := time.Now()
	password := account.GeneratePassword()
	hash, err := account.HashPassword(password)
	if err != nil {
		return nil, err
	}
	d := NewDataset(Params{Seed: seed, Messages: messages, PasswordHash: hash})
	logf("gen: %d orgs, %d users, %d conversations; writing %d messages to %s", len(d.Orgs), len(d.Users), len(d.Convs), messages, dir)

	db, err := sqlite.Open(dir)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	data := sqlite.BulkData{Users: d.Users}
	for _, o := range d.Orgs {
		data.Orgs = append(data.Orgs, o.Org)
	}
	for _, c := range d.Convs {
		data.Conversations = append(data.Conversations, sqlite.BulkConversation{Conversation: c.Conversation, Members: c.Members[1:]})
	}
	var n, bodyBytes int
	next := time.Now().Add(10 * time.Second)
	data.Messages = func(yield func(*chatvault.Message) bool) {
		for m := range d.Messages() {
			n++
			bodyBytes += len(m.Text)
			if time.Now().After(next) {
				logf("gen: %d of %d messages (%.0fs)", n, messages, time.Since(started).Seconds())
				next = time.Now().Add(10 * time.Second)
			}
			if !yield(m) {
				return
			}
		}
	}
	if err := db.BulkLoad(ctx, data); err != nil {
		return nil, fmt.Errorf("load data set: %w", err)
	}
	if err := db.Close(); err != nil {
		return nil, err
	}
	// `chatvault serve` keeps bodies encrypted; sealing the loaded bodies once here (what serve would
	// do on its first start) keeps that work out of every benchmark that starts a server on a copy.
	sealStarted := time.Now()
	sealed, err := openSealed(dir, logf)
	if err != nil {
		return nil, fmt.Errorf("seal data set: %w", err)
	}
	if err := sealed.db.Close(); err != nil {
		return nil, err
	}
	logf("gen: sealed every body with encryption at rest in %.1fs", time.Since(sealStarted).Seconds())
	if err := writeFileSync(filepath.Join(dir, PasswordFile), []byte(password+"\n"), 0o600); err != nil {
		return nil, err
	}
	m := &Manifest{Seed: seed, Messages: n, Conversations: len(d.Convs), Users: len(d.Users), Orgs: len(d.Orgs),
		AvgBodyBytes: math.Round(float64(bodyBytes)/float64(max(n, 1))*10) / 10, GeneratedAt: started.UTC().Truncate(time.Second),
		GenSeconds: math.Round(time.Since(started).Seconds()*10) / 10, SchemaVersion: sqlite.SchemaVersion()}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := writeFileSync(filepath.Join(dir, ManifestFile), append(b, '\n'), 0o600); err != nil {
		return nil, err
	}
	return m, nil
}

func writeFileSync(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// dataset is an opened generated data set.
type dataset struct {
	dir      string
	manifest Manifest
	password string
	d        *Dataset
	orgSlug  map[string]string // org id -> slug
	users    map[string]*chatvault.User
}

func openDataset(dir string) (*dataset, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("%s is not a generated data set (run `chatvault bench gen --out DIR` first): %w", dir, err)
	}
	ds := &dataset{dir: dir, orgSlug: map[string]string{}, users: map[string]*chatvault.User{}}
	if err := json.Unmarshal(b, &ds.manifest); err != nil {
		return nil, fmt.Errorf("read %s: %w", ManifestFile, err)
	}
	pw, err := os.ReadFile(filepath.Join(dir, PasswordFile))
	if err != nil {
		return nil, fmt.Errorf("read the generated users' password: %w", err)
	}
	ds.password = strings.TrimSpace(string(pw))
	ds.d = NewDataset(Params{Seed: ds.manifest.Seed, Messages: ds.manifest.Messages})
	if len(ds.d.Convs) != ds.manifest.Conversations || len(ds.d.Users) != ds.manifest.Users {
		return nil, fmt.Errorf("%s: the generator rebuilds %d conversations and %d users from seed %d, but the manifest says %d and %d: it was made by a different chatvault version; generate it again",
			dir, len(ds.d.Convs), len(ds.d.Users), ds.manifest.Seed, ds.manifest.Conversations, ds.manifest.Users)
	}
	for _, o := range ds.d.Orgs {
		ds.orgSlug[o.Org.ID] = o.Org.Slug
	}
	for _, u := range ds.d.Users {
		ds.users[u.ID] = u
	}
	return ds, nil
}

func (ds *dataset) info() DatasetInfo {
	m := ds.manifest
	info := DatasetInfo{Messages: m.Messages, Conversations: m.Conversations, Users: m.Users, Orgs: m.Orgs,
		AvgBodyBytes: m.AvgBodyBytes, Seed: m.Seed}
	if st, err := os.Stat(filepath.Join(ds.dir, sqlite.FileName)); err == nil {
		info.DBBytes = st.Size()
	}
	return info
}

// copyTo makes a working copy of the data set in dst, so a run never changes the data set and
// every path of a run starts from the same state.
func (ds *dataset) copyTo(dst string) error {
	if err := os.MkdirAll(filepath.Join(dst, sqlite.KeysDir), 0o700); err != nil {
		return err
	}
	// The keys travel with the data: the data database names its data keys, the keys database
	// holds them, and the key file unwraps them.
	keys := func(name string) string { return filepath.Join(sqlite.KeysDir, name) }
	for _, name := range []string{sqlite.FileName, sqlite.FileName + "-wal", PasswordFile, ManifestFile,
		keys("kek.json"), keys(sqlite.KeysFileName), keys(sqlite.KeysFileName + "-wal")} {
		err := copyFile(filepath.Join(ds.dir, name), filepath.Join(dst, name))
		if errors.Is(err, os.ErrNotExist) && strings.HasSuffix(name, "-wal") {
			continue
		}
		if err != nil {
			return fmt.Errorf("copy data set: %w", err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
