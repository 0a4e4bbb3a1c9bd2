package audit_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/audit"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/clocktest"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/postgres"
	"github.com/chatvault/chatvault/internal/postgres/pgtest"
	"github.com/chatvault/chatvault/internal/retention"
	"github.com/chatvault/chatvault/internal/sqlite"
	"github.com/google/uuid"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// store is what these tests use of either engine.
type store interface {
	chatvault.Store
	Keyring() *keyring.Keyring
}

// opened is a store, and a way around it to the database itself, as an operator (or an
// attacker with the files) has.
type opened struct {
	db   store
	exec func(t *testing.T, stmt string)
	// reopen closes the store and opens it again, with or without encryption at rest.
	reopen func(t *testing.T, keys bool) store
}

// engines open a fresh store on SQLite and on PostgreSQL; keys turns encryption at rest on.
var engines = []struct {
	name string
	open func(t *testing.T, keys bool) *opened
	// unwritable makes the audit log refuse every insert, as a full disk, a revoked grant or a
	// corrupted table would.
	unwritable string
}{
	{
		name: "sqlite",
		open: func(t *testing.T, keys bool) *opened {
			dir := t.TempDir()
			open := func(keys bool) store {
				var opts sqlite.Options
				if keys {
					opts.Keyring = fileKeyring(t, filepath.Join(dir, sqlite.KeysDir))
				}
				db, err := sqlite.OpenWith(dir, opts)
				if err != nil {
					t.Fatalf("sqlite.OpenWith() = %v", err)
				}
				return db
			}
			o := &opened{db: open(keys)}
			t.Cleanup(func() { o.db.Close() })
			o.reopen = func(t *testing.T, keys bool) store {
				o.db.Close()
				o.db = open(keys)
				return o.db
			}
			o.exec = func(t *testing.T, stmt string) {
				raw, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName)+"?_pragma=busy_timeout(10000)")
				if err != nil {
					t.Fatal(err)
				}
				defer raw.Close()
				if _, err := raw.Exec(stmt); err != nil {
					t.Fatalf("exec %q: %v", stmt, err)
				}
			}
			return o
		},
		unwritable: `CREATE TRIGGER audit_log_unwritable BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log unwritable'); END`,
	},
	{
		name: "postgres",
		open: func(t *testing.T, keys bool) *opened {
			ctx := context.Background()
			url := pgtest.Server(t).NewDatabase(t)
			kr := fileKeyring(t, t.TempDir())
			open := func(keys bool) store {
				var opts postgres.Options
				if keys {
					opts.Keyring = kr
				}
				db, err := postgres.Open(ctx, url, opts)
				if err != nil {
					t.Fatalf("postgres.Open() = %v", err)
				}
				return db
			}
			o := &opened{db: open(keys)}
			t.Cleanup(func() { o.db.Close() })
			o.reopen = func(t *testing.T, keys bool) store {
				o.db.Close()
				o.db = open(keys)
				return o.db
			}
			o.exec = func(t *testing.T, stmt string) {
				if _, err := o.db.(*postgres.DB).Pool().Exec(ctx, stmt); err != nil {
					t.Fatalf("exec %q: %v", stmt, err)
				}
			}
			return o
		},
		unwritable: `CREATE FUNCTION audit_log_unwritable() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'audit log unwritable'; END $$;
			CREATE TRIGGER audit_log_unwritable BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_unwritable()`,
	},
}

func fileKeyring(t *testing.T, dir string) *keyring.Keyring {
	t.Helper()
	p, err := keyring.OpenFile(filepath.Join(dir, "kek.json"))
	if err != nil {
		t.Fatalf("keyring.OpenFile() = %v", err)
	}
	return keyring.New(p, 0)
}

// world is an org with an admin, a compliance officer, a member, and one conversation between the
// admin and the member holding one message.
type world struct {
	org                 *chatvault.Org
	admin, officer, bob chatvault.Actor
	convID, msgID       string
	audit               *audit.Service
	chat                *chat.Service
	retention           *retention.Service
	clk                 *clocktest.Clock
}

func newWorld(t *testing.T, db store) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{clk: clocktest.New(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))}
	w.org = &chatvault.Org{ID: uuid.NewString(), Slug: "acme", Name: "Acme", CreatedAt: w.clk.Now()}
	user := func(name string, roles ...chatvault.Role) *chatvault.User {
		return &chatvault.User{OrgID: w.org.ID, ID: uuid.NewString(), Username: name, DisplayName: name, PasswordHash: "x",
			Roles: append([]chatvault.Role{chatvault.RoleMember}, roles...), CreatedAt: w.clk.Now()}
	}
	admin, officer, bob := user("admin", chatvault.RoleOrgAdmin), user("officer", chatvault.RoleComplianceOfficer), user("bob")
	if err := db.CreateOrg(ctx, w.org, admin); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*chatvault.User{officer, bob} {
		if err := db.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	act := func(u *chatvault.User) chatvault.Actor {
		return chatvault.Actor{OrgID: w.org.ID, UserID: u.ID, Roles: u.Roles}
	}
	w.admin, w.officer, w.bob = act(admin), act(officer), act(bob)
	w.wire(db)
	conv, _, err := w.chat.CreateConversation(ctx, w.admin, chat.NewConversation{Kind: chatvault.Direct, Members: []string{bob.ID}})
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := w.chat.Send(ctx, w.bob, conv.ID, chat.SendRequest{ClientMsgID: uuid.NewString(), Text: "the contract is signed 合同"})
	if err != nil {
		t.Fatal(err)
	}
	w.convID, w.msgID = conv.ID, m.ID
	return w
}

// wire builds the services over db, as serve does.
func (w *world) wire(db store) {
	w.audit = audit.New(db, db.Keyring(), w.clk)
	w.retention = retention.New(db, w.audit, w.clk, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	w.chat = chat.NewService(db, w.clk, chat.Config{Audit: w.audit})
}

func (w *world) searchOrg(ctx context.Context, q string) (*chat.SearchPage, error) {
	return w.chat.Search(ctx, w.officer, chat.SearchRequest{Query: q, Scope: chat.ScopeOrg})
}

// When the audit log cannot be written, an org-wide search returns no hits, only an error, and
// no admin action takes effect: each answers with an error and leaves the store as it was. (The
// retention actions used to log the failure and carry on.)
func TestRecordFailsClosed(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			o := e.open(t, true)
			w := newWorld(t, o.db)
			page, err := w.searchOrg(ctx, "contract")
			if err != nil || len(page.Hits) != 1 {
				t.Fatalf("org-wide search before = %v, %v; want 1 hit", page, err)
			}

			o.exec(t, e.unwritable)
			page, err = w.searchOrg(ctx, "contract")
			if err == nil || page != nil {
				t.Errorf("org-wide search with the audit log unwritable = %+v, %v; want no page and an error", page, err)
			}
			if code := chatvault.ErrorCode(err); code != chatvault.EINTERNAL {
				t.Errorf("org-wide search error code = %q; want %q", code, chatvault.EINTERNAL)
			}

			policy := chatvault.DefaultPolicy()
			policy.DefaultDays = 30
			actions := []struct {
				name      string
				act       func() error
				unchanged func() error
			}{
				{"create hold", func() error {
					_, err := w.retention.CreateHold(ctx, w.officer, retention.HoldRequest{Name: "case 7", Reason: "litigation"})
					return err
				}, func() error {
					if hs, err := w.retention.Holds(ctx, w.officer); err != nil || len(hs) != 0 {
						return fmt.Errorf("holds = %d, %v; want none", len(hs), err)
					}
					return nil
				}},
				{"set policy", func() error {
					_, err := w.retention.SetPolicy(ctx, w.admin, policy, "shorter")
					return err
				}, func() error {
					if p, err := w.retention.Policy(ctx, w.admin); err != nil || p.DefaultDays != 180 {
						return fmt.Errorf("policy = %+v, %v; want default_days 180", p, err)
					}
					return nil
				}},
				{"create rule", func() error {
					_, err := w.retention.CreateRule(ctx, w.admin, "合同", false)
					return err
				}, func() error {
					if rs, err := w.retention.Rules(ctx, w.admin); err != nil || len(rs) != 0 {
						return fmt.Errorf("rules = %d, %v; want none", len(rs), err)
					}
					return nil
				}},
				{"flag message", func() error {
					_, err := w.retention.Flag(ctx, w.admin, w.convID, w.msgID, true)
					return err
				}, func() error {
					mp, err := w.chat.Messages(ctx, w.bob, w.convID, chat.Page{Limit: 10})
					if err != nil || len(mp.Messages) != 1 || mp.Messages[0].Important {
						return fmt.Errorf("messages = %+v, %v; want the one message, not important", mp, err)
					}
					return nil
				}},
				{"lock policy", func() error {
					_, err := w.retention.Lock(ctx, w.admin, "regulator")
					return err
				}, func() error {
					if p, err := w.retention.Policy(ctx, w.admin); err != nil || p.Locked {
						return fmt.Errorf("policy = %+v, %v; want it unlocked", p, err)
					}
					return nil
				}},
			}
			for _, a := range actions {
				if err := a.act(); err == nil {
					t.Errorf("%s with the audit log unwritable = nil; want an error", a.name)
				}
				if err := a.unchanged(); err != nil {
					t.Errorf("after %s with the audit log unwritable: %v", a.name, err)
				}
			}

			o.exec(t, `DROP TRIGGER audit_log_unwritable`+map[string]string{"postgres": " ON audit_log"}[e.name])
			if page, err := w.searchOrg(ctx, "contract"); err != nil || len(page.Hits) != 1 {
				t.Errorf("org-wide search once the log takes writes again = %v, %v; want 1 hit", page, err)
			}
		})
	}
}

// The free text of an entry reaches the store sealed and comes back through Entries as written;
// an entry whose clear fields were altered in the database no longer opens.
func TestEntriesOpenWhatRecordSealed(t *testing.T) {
	for _, e := range engines {
		for _, keys := range []bool{true, false} {
			name := e.name + map[bool]string{true: " encrypted", false: " plain"}[keys]
			t.Run(name, func(t *testing.T) {
				ctx := context.Background()
				o := e.open(t, keys)
				w := newWorld(t, o.db)
				const secret = "correct-horse-battery-staple-91"
				if _, err := w.searchOrg(ctx, secret); err != nil {
					t.Fatal(err)
				}
				if _, err := w.retention.CreateHold(ctx, w.officer, retention.HoldRequest{Name: "case " + secret, Reason: "why " + secret}); err != nil {
					t.Fatal(err)
				}

				stored, err := o.db.FindAudit(ctx, w.org.ID, 10)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := json.Marshal(stored)
				if strings.Contains(string(raw), secret) {
					t.Errorf("FindAudit() = %s; want %q nowhere in what the store keeps", raw, secret)
				}

				es, err := w.audit.Entries(ctx, w.officer, 10)
				if err != nil {
					t.Fatalf("Entries() = %v", err)
				}
				got := map[string]*chatvault.AuditEntry{}
				for _, e := range es {
					got[e.Action] = e
				}
				if s := got["search_org"]; s == nil || s.Details["query"] != secret || s.Details["hits"] != float64(0) {
					t.Errorf("Entries() search_org = %+v; want query %q with 0 hits", s, secret)
				}
				if h := got["hold.create"]; h == nil || h.Reason != "why "+secret || !strings.Contains(mustJSON(h.Details), "case "+secret) {
					t.Errorf("Entries() hold.create = %+v; want reason and hold name as written", h)
				}

				o.exec(t, `UPDATE audit_log SET actor_id = '`+w.admin.UserID+`' WHERE action = 'search_org'`)
				if es, err := w.audit.Entries(ctx, w.officer, 10); err == nil {
					t.Errorf("Entries() after the search's actor was rewritten = %d entries, nil; want an integrity error", len(es))
				}
			})
		}
	}
}

// Entries written by a store without encryption at rest stay readable once it is given its keys,
// and from then on new ones are sealed under a wrapped key, not the plain one kept in the data.
func TestEntriesSurviveTurningEncryptionOn(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			o := e.open(t, false)
			w := newWorld(t, o.db)
			if _, err := w.searchOrg(ctx, "before"); err != nil {
				t.Fatal(err)
			}
			db := o.reopen(t, true)
			w.wire(db)
			if _, err := w.searchOrg(ctx, "after"); err != nil {
				t.Fatal(err)
			}
			es, err := w.audit.Entries(ctx, w.officer, 10)
			if err != nil {
				t.Fatalf("Entries() = %v", err)
			}
			var queries []string
			for _, e := range es {
				queries = append(queries, e.Details["query"].(string))
			}
			if strings.Join(queries, ",") != "after,before" {
				t.Errorf("Entries() queries = %v; want [after before]", queries)
			}
			ks, err := db.FindAuditKeys(ctx, w.org.ID)
			if err != nil {
				t.Fatal(err)
			}
			wrapped := 0
			for _, k := range ks {
				if k.KEKID != "" {
					wrapped++
				}
			}
			if len(ks) != 2 || wrapped != 1 {
				t.Errorf("FindAuditKeys() = %d keys, %d wrapped; want the plain one and one wrapped", len(ks), wrapped)
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
