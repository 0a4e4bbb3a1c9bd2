package backup_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/google/uuid"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/backup"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/sqlite"
)

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// openStore opens (creating) an encrypted store in dir with the key file dir/keys/kek.json.
func openStore(t testing.TB, dir string) *sqlite.DB {
	t.Helper()
	db, err := openDir(dir)
	if err != nil {
		t.Fatalf("OpenWith(%s) = %v", dir, err)
	}
	return db
}

func openDir(dir string) (*sqlite.DB, error) {
	p, err := keyring.OpenFile(filepath.Join(dir, filepath.FromSlash(backup.KEKFile)))
	if err != nil {
		return nil, err
	}
	return sqlite.OpenWith(dir, sqlite.Options{Keyring: keyring.New(p, 0)})
}

func opener(ctx context.Context, dir string) (chatvault.RestoredStore, error) { return openDir(dir) }

// s3Server starts a real S3 protocol server (gofakes3, in memory) and returns a target config for
// bucket, with credentials in the environment.
func s3Server(t testing.TB, bucket string) backup.TargetConfig {
	t.Helper()
	be := s3mem.New()
	if err := be.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(be).Server())
	t.Cleanup(srv.Close)
	t.Setenv("TEST_S3_ACCESS", "access")
	t.Setenv("TEST_S3_SECRET", "secret")
	return backup.TargetConfig{Type: "s3", Endpoint: srv.URL, Bucket: bucket, Prefix: "chatvault", Region: "us-east-1",
		AccessKeyEnv: "TEST_S3_ACCESS", SecretKeyEnv: "TEST_S3_SECRET"}
}

type env struct {
	dir      string
	db       *sqlite.DB
	job      *backup.Job
	identity *age.X25519Identity
	idFile   string
	org      *chatvault.Org
	users    []*chatvault.User
}

// newEnv makes a store with an org and two users, and a backup job over the given targets.
func newEnv(t *testing.T, targets ...backup.TargetConfig) *env {
	t.Helper()
	e := &env{dir: t.TempDir()}
	e.db = openStore(t, e.dir)
	t.Cleanup(func() { e.db.Close() })
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	e.identity = id
	e.idFile = filepath.Join(t.TempDir(), "identity.txt")
	if err := os.WriteFile(e.idFile, []byte("# test identity\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := backup.DefaultConfig()
	cfg.Recipients = []string{id.Recipient().String()}
	cfg.Targets = targets
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	ts, err := backup.OpenTargets(cfg.Targets, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := backup.ParseRecipients(cfg.Recipients)
	signer, _, err := backup.LoadOrCreateSigningKey(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	e.job = &backup.Job{SigningKey: signer, TrustedKeys: []ed25519.PublicKey{signer.Public().(ed25519.PublicKey)}, Store: e.db, Open: opener, Targets: ts, KeyTargets: ts, Recipients: rs, RecipientKeys: cfg.Recipients,
		KEKFile: filepath.Join(e.dir, filepath.FromSlash(backup.KEKFile)), Work: filepath.Join(e.dir, "backup-work"),
		JournalState: filepath.Join(e.dir, "backup", "journal.json"), Keep: cfg.Keep, KeysKeepDays: cfg.KeysKeepDays,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)), Retries: []time.Duration{10 * time.Millisecond}, Version: "test"}

	ctx := context.Background()
	e.org = &chatvault.Org{ID: newID(), Slug: "acme", Name: "Acme", CreatedAt: time.Now().UTC()}
	for i, name := range []string{"alice", "bob"} {
		u := &chatvault.User{OrgID: e.org.ID, ID: newID(), Username: name, DisplayName: name,
			Roles: []chatvault.Role{chatvault.RoleMember}, PasswordHash: "$argon2id$fake", CreatedAt: e.org.CreatedAt}
		if i == 0 {
			err = e.db.CreateOrg(ctx, e.org, u)
		} else {
			err = e.db.CreateUser(ctx, u)
		}
		if err != nil {
			t.Fatal(err)
		}
		e.users = append(e.users, u)
	}
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (e *env) conv(t testing.TB) *chatvault.Conversation {
	t.Helper()
	c := &chatvault.Conversation{OrgID: e.org.ID, ID: newID(), Kind: chatvault.Group, Title: "g", CreatedBy: e.users[0].ID, CreatedAt: e.org.CreatedAt}
	if _, err := e.db.CreateConversation(context.Background(), c, []string{e.users[1].ID}); err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) send(c *chatvault.Conversation, text string, at time.Time) (*chatvault.Message, error) {
	m := &chatvault.Message{OrgID: e.org.ID, ID: newID(), ConversationID: c.ID, SenderID: e.users[0].ID,
		ClientMsgID: newID(), Kind: chatvault.KindText, Text: text, SentAt: at}
	_, err := e.db.AppendMessage(context.Background(), m)
	return m, err
}

func identities(e *env) []age.Identity { return []age.Identity{e.identity} }

// messages reads every message of a conversation from a store.
func messages(t testing.TB, db *sqlite.DB, orgID, convID string) map[int64]*chatvault.Message {
	t.Helper()
	out := map[int64]*chatvault.Message{}
	after := int64(0)
	for {
		ms, err := db.FindMessages(context.Background(), orgID, convID, chatvault.MessageQuery{After: after, Limit: 500})
		if err != nil {
			t.Fatalf("FindMessages() = %v", err)
		}
		for _, m := range ms {
			out[m.Seq] = m
			after = m.Seq
		}
		if len(ms) < 500 {
			return out
		}
	}
}

// TestBackupUnderConcurrentSendsRestores takes a backup while senders keep sending, to a directory
// and to an S3 server, and restores it from each: every message acknowledged before the backup
// began is there with the same id, seq, time and text, and everything in the copy matches the
// original.
func TestBackupUnderConcurrentSendsRestores(t *testing.T) {
	e := newEnv(t, backup.TargetConfig{Type: "dir", Path: t.TempDir()}, s3Server(t, "backups"))
	ctx := context.Background()
	convs := []*chatvault.Conversation{e.conv(t), e.conv(t), e.conv(t)}
	at := time.Now().UTC().Truncate(time.Millisecond)
	for i := range 300 {
		if _, err := e.send(convs[i%3], fmt.Sprintf("before %d: 你好 backup", i), at); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.db.EditMessage(ctx, e.org.ID, convs[0].ID, 1, 1, "edited before", at); err != nil {
		t.Fatal(err)
	}
	// Acknowledged before the backup starts: all of these must be in it.
	acked := map[string]map[int64]*chatvault.Message{}
	for _, c := range convs {
		acked[c.ID] = messages(t, e.db, e.org.ID, c.ID)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent sync.Map
	for s := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m, err := e.send(convs[(s+i)%3], fmt.Sprintf("during %d-%d", s, i), at)
				if err != nil {
					t.Errorf("send during backup: %v", err)
					return
				}
				sent.Store(m.ID, m.Text)
			}
		}()
	}
	res, err := e.job.Create(ctx, true)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Create() = %v", err)
	}
	if len(res.Failed) > 0 || len(res.Stored) != 2 {
		t.Fatalf("Create() stored on %v, failed %v; want both targets", res.Stored, res.Failed)
	}
	if res.Check == nil || res.Check.Integrity != "ok" || res.Check.Opened == 0 {
		t.Fatalf("Create() check = %+v; want integrity ok and bodies opened", res.Check)
	}
	n := 0
	sent.Range(func(_, _ any) bool { n++; return true })
	t.Logf("backup %s: %d messages sent during it, %d bytes", res.ID, n, res.Data.Parts[0].Size)
	if n == 0 {
		t.Fatal("no message was sent while the backup ran")
	}

	list, err := e.job.List(ctx, backup.KindData)
	if err != nil || len(list) != 1 || len(list[0].Targets) != 2 {
		t.Fatalf("List() = %v, %v; want one backup on two targets", list, err)
	}
	if rep, err := e.job.Verify(ctx, res.ID, identities(e)); err != nil {
		t.Fatalf("Verify() = %v", err)
	} else if rep.Check.Opened == 0 {
		t.Fatalf("Verify() opened no body: %+v", rep.Check)
	}

	// Restore from each target in turn (the job reads the first target that holds a good copy).
	for i, target := range e.job.Targets {
		job := *e.job
		job.Targets, job.KeyTargets = e.job.Targets[i:i+1], e.job.Targets[i:i+1]
		dir := filepath.Join(t.TempDir(), "restored")
		rep, err := job.Restore(ctx, res.ID, dir, identities(e), false)
		if err != nil {
			t.Fatalf("Restore() from %s = %v", target, err)
		}
		r := openStore(t, dir)
		for _, c := range convs {
			got := messages(t, r, e.org.ID, c.ID)
			for seq, want := range acked[c.ID] {
				g := got[seq]
				if g == nil || g.ID != want.ID || g.Text != want.Text || !g.SentAt.Equal(want.SentAt) || g.Version != want.Version {
					t.Fatalf("restored from %s: message %d = %+v; want %+v", target, seq, g, want)
				}
			}
			for seq, g := range got {
				if w, ok := acked[c.ID][seq]; ok {
					_ = w
					continue
				}
				if text, ok := sent.Load(g.ID); !ok || text != g.Text {
					t.Fatalf("restored from %s: message %d %q was never sent", target, seq, g.Text)
				}
			}
		}
		if vs, err := r.FindMessageVersions(ctx, e.org.ID, convs[0].ID, 1); err != nil || len(vs) != 1 {
			t.Fatalf("restored versions = %v, %v; want the original text kept", vs, err)
		}
		r.Close()
		t.Logf("restored from %s: %+v", target, rep)
	}

	// Into a directory that holds a database: refused without force.
	if _, err := e.job.Restore(ctx, res.ID, e.dir, identities(e), false); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("Restore() over a live directory = %v; want a refusal naming --force", err)
	}
}
