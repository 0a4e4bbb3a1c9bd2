package postgres_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/postgres"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

var jan = time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// fileKeyring returns a keyring over a key file in a temporary directory.
func fileKeyring(t testing.TB) *keyring.Keyring {
	t.Helper()
	p, err := keyring.OpenFile(filepath.Join(t.TempDir(), "keys", "kek.json"))
	if err != nil {
		t.Fatalf("OpenFile() = %v", err)
	}
	return keyring.New(p, 0)
}

// world is an org with two users.
type world struct {
	db    *postgres.DB
	org   *chatvault.Org
	users []*chatvault.User
}

func newWorld(t testing.TB, db *postgres.DB) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{db: db}
	w.org = &chatvault.Org{ID: newID(), Slug: "acme", Name: "Acme", CreatedAt: jan}
	for i, name := range []string{"alice", "bob"} {
		u := &chatvault.User{OrgID: w.org.ID, ID: newID(), Username: name, DisplayName: name,
			Roles: []chatvault.Role{chatvault.RoleMember}, PasswordHash: "$argon2id$fake", CreatedAt: jan}
		var err error
		if i == 0 {
			err = db.CreateOrg(ctx, w.org, u)
		} else {
			err = db.CreateUser(ctx, u)
		}
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		w.users = append(w.users, u)
	}
	return w
}

func (w *world) conv(t testing.TB) *chatvault.Conversation {
	t.Helper()
	c := &chatvault.Conversation{OrgID: w.org.ID, ID: newID(), Kind: chatvault.Group, Title: "g", CreatedBy: w.users[0].ID, CreatedAt: jan}
	if _, err := w.db.CreateConversation(context.Background(), c, []string{w.users[1].ID}); err != nil {
		t.Fatalf("CreateConversation() = %v", err)
	}
	return c
}

func (w *world) send(t testing.TB, db *postgres.DB, c *chatvault.Conversation, text string, at time.Time) *chatvault.Message {
	t.Helper()
	m := &chatvault.Message{OrgID: w.org.ID, ID: newID(), ConversationID: c.ID, SenderID: w.users[0].ID,
		ClientMsgID: newID(), Kind: chatvault.KindText, Text: text, SentAt: at}
	if _, err := db.AppendMessage(context.Background(), m); err != nil {
		t.Fatalf("AppendMessage() = %v", err)
	}
	return m
}

// raw connects to the database directly, as an operator with psql (or an attacker with a dump)
// would.
func raw(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("Connect() = %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
