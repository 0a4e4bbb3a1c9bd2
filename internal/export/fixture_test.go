package export_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/audit"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/export"
	"github.com/chatvault/chatvault/internal/export/xlsx"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/sqlite"
	"github.com/google/uuid"
)

// clock moves forward a minute each time it is read, so every message has its own time.
type clock struct {
	mu  sync.Mutex // export jobs read it from their own goroutines
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.now
	c.now = c.now.Add(time.Minute)
	return t
}

// peek returns the time without moving it.
func (c *clock) peek() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// add moves the clock by d.
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// world is the fixed data set: an org with 张三, Alice, Bob, a compliance officer and an admin; a
// direct chat between Alice and 张三 and a group of the three, holding Chinese, emoji, commas,
// quotes, newlines, text Excel would take for formulas, a reply, an edit and a recall.
type world struct {
	db                   *sqlite.DB
	dir                  string
	clk                  *clock
	org                  *chatvault.Org
	audit                *audit.Service
	chat                 *chat.Service
	zhang, alice, bob    chatvault.Actor
	officer, admin       chatvault.Actor
	direct, group        string
	users                map[string]*chatvault.User
	recalledID, editedID string
	aliceUser, zhangUser *chatvault.User
}

func newStore(t *testing.T, dir string) *sqlite.DB {
	t.Helper()
	p, err := keyring.OpenFile(filepath.Join(dir, sqlite.KeysDir, "kek.json"))
	if err != nil {
		t.Fatalf("keyring.OpenFile() = %v", err)
	}
	db, err := sqlite.OpenWith(dir, sqlite.Options{Keyring: keyring.New(p, 0)})
	if err != nil {
		t.Fatalf("sqlite.OpenWith() = %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	w := &world{db: newStore(t, dir), dir: dir, clk: &clock{now: time.Date(2026, 3, 4, 1, 30, 0, 0, time.UTC)}, users: map[string]*chatvault.User{}}
	w.org = &chatvault.Org{ID: uuid.NewString(), Slug: "acme", Name: "Acme", CreatedAt: w.clk.peek()}
	user := func(name, display string, roles ...chatvault.Role) *chatvault.User {
		u := &chatvault.User{OrgID: w.org.ID, ID: uuid.NewString(), Username: name, DisplayName: display, PasswordHash: "x",
			Roles: append([]chatvault.Role{chatvault.RoleMember}, roles...), CreatedAt: w.clk.peek()}
		w.users[u.ID] = u
		return u
	}
	admin := user("admin", "Admin", chatvault.RoleOrgAdmin)
	if err := w.db.CreateOrg(ctx, w.org, admin); err != nil {
		t.Fatal(err)
	}
	zhang, alice, bob, officer := user("zhangsan", "张三"), user("alice", "Alice"), user("bob", "=Bob"),
		user("officer", "Officer", chatvault.RoleComplianceOfficer)
	for _, u := range []*chatvault.User{zhang, alice, bob, officer} {
		if err := w.db.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	act := func(u *chatvault.User) chatvault.Actor {
		return chatvault.Actor{OrgID: w.org.ID, UserID: u.ID, Roles: u.Roles}
	}
	w.zhang, w.alice, w.bob, w.officer, w.admin = act(zhang), act(alice), act(bob), act(officer), act(admin)
	w.aliceUser, w.zhangUser = alice, zhang
	w.audit = audit.New(w.db, w.db.Keyring(), w.clk)
	w.chat = chat.NewService(w.db, w.clk, chat.Config{Audit: w.audit})

	direct, _, err := w.chat.CreateConversation(ctx, w.alice, chat.NewConversation{Kind: chatvault.Direct, Members: []string{zhang.ID}})
	if err != nil {
		t.Fatal(err)
	}
	group, _, err := w.chat.CreateConversation(ctx, w.alice, chat.NewConversation{Kind: chatvault.Group,
		Title: `项目 "Q3", 计划`, Members: []string{zhang.ID, bob.ID}})
	if err != nil {
		t.Fatal(err)
	}
	w.direct, w.group = direct.Conversation.ID, group.Conversation.ID

	first := w.send(t, w.zhang, w.direct, "你好，Alice！今天开会吗？🙂", "")
	w.send(t, w.alice, w.direct, `=cmd|' /C calc'!A0`, "")
	third := w.send(t, w.alice, w.direct, "Yes, at 3pm, room \"B\", bring: laptop, notes\nsecond line, 第二行", "")
	w.send(t, w.zhang, w.direct, "+1 好的", third.ID)
	edited := w.send(t, w.alice, w.direct, "@all 会议改到4点", first.ID)
	if _, err := w.chat.Edit(ctx, w.alice, w.direct, edited.ID, "@all 会议改到 4 点 👍", 0); err != nil {
		t.Fatal(err)
	}
	recalled := w.send(t, w.zhang, w.direct, "oops, wrong chat", "")
	if _, err := w.chat.Recall(ctx, w.zhang, w.direct, recalled.ID); err != nil {
		t.Fatal(err)
	}
	w.recalledID, w.editedID = recalled.ID, edited.ID
	w.send(t, w.bob, w.group, "-5% budget? 😅\r\nplease check", "")
	w.send(t, w.zhang, w.group, "收到 \u202eevil.exe", "") // a right-to-left override, kept as sent and isolated on display
	w.send(t, w.alice, w.group, "\tTabbed, \"quoted\", and a comma", "")
	return w
}

func (w *world) send(t *testing.T, a chatvault.Actor, conv, text, replyTo string) *chatvault.Message {
	t.Helper()
	m, _, err := w.chat.Send(context.Background(), a, conv, chat.SendRequest{ClientMsgID: uuid.NewString(), Text: text, ReplyTo: replyTo})
	if err != nil {
		t.Fatalf("Send(%q) = %v", text, err)
	}
	return m
}

// memFiles keeps an export's files in memory, in the order they were created.
type memFiles struct {
	names []string
	data  map[string]*bytes.Buffer
}

func (m *memFiles) Create(name string) (io.Writer, error) {
	if m.data == nil {
		m.data = map[string]*bytes.Buffer{}
	}
	if _, ok := m.data[name]; ok {
		return nil, fmt.Errorf("file %s created twice", name)
	}
	m.names = append(m.names, name)
	m.data[name] = &bytes.Buffer{}
	return m.data[name], nil
}

// run exports as actor a and returns the files.
func (w *world) run(t *testing.T, a chatvault.Actor, req export.Request) (*memFiles, export.Stats, error) {
	t.Helper()
	ctx := context.Background()
	if err := req.Validate(); err != nil {
		return nil, export.Stats{}, err
	}
	src, err := w.chat.OpenExport(ctx, a, req.Scope, chatvault.AuditEntry{Details: map[string]any{"format": string(req.Format)}})
	if err != nil {
		return nil, export.Stats{}, err
	}
	files := &memFiles{}
	wr, err := xlsx.NewWriter(files, &req, "messages")
	if err != nil {
		return nil, export.Stats{}, err
	}
	ex := &export.Exporter{Users: w.db}
	st, err := ex.Run(ctx, a.OrgID, src, &req, wr)
	return files, st, err
}

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// normaliser replaces the generated ids by names that do not change between runs: the fixed
// users and conversations by their role in the data set, messages by the order they first appear.
type normaliser struct {
	names map[string]string
	n     int
}

func (w *world) normaliser() *normaliser {
	nm := &normaliser{names: map[string]string{w.direct: "<direct>", w.group: "<group>", w.org.ID: "<org>"}}
	for id, u := range w.users {
		nm.names[id] = "<" + u.Username + ">"
	}
	return nm
}

func (nm *normaliser) apply(s string) string {
	return uuidRE.ReplaceAllStringFunc(s, func(id string) string {
		if n, ok := nm.names[id]; ok {
			return n
		}
		nm.n++
		nm.names[id] = fmt.Sprintf("<msg-%d>", nm.n)
		return nm.names[id]
	})
}

// dump is every file of an export, in creation order, ids normalised.
func (w *world) dump(files *memFiles) string {
	nm := w.normaliser()
	var b strings.Builder
	names := slices.Clone(files.names)
	for _, name := range names {
		fmt.Fprintf(&b, "=== %s ===\n%s", nm.apply(name), nm.apply(files.data[name].String()))
	}
	return b.String()
}
