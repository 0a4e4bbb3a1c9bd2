package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/sqlite"
)

// A data directory made by every earlier schema version opens, migrates, and reads back what was
// written at that version. Each old directory is made here from the first K migrations (the files
// a release at schema K shipped, which are never edited once released), not from committed
// binaries or databases.

// oldSchemaFixture is written with the columns of 0001_core.sql only: every later migration adds
// columns with defaults, so the same rows are what a server at any earlier version wrote.
const oldSchemaFixture = `
INSERT INTO orgs (id, slug, name, created_at) VALUES ('org-1', 'acme', 'Acme 公司', 1700000000000);
INSERT INTO users (org_id, id, username, display_name, roles, password_hash, created_at)
	VALUES ('org-1', 'u-1', 'alice', 'Alice 爱丽丝', 'admin', 'x', 1700000000000);
INSERT INTO conversations (org_id, id, kind, title, created_by, created_at, last_seq)
	VALUES ('org-1', 'c-1', 'group', 'Upgrade 升级', 'u-1', 1700000000000, 2);
INSERT INTO participants (org_id, conversation_id, user_id, role, active) VALUES ('org-1', 'c-1', 'u-1', 'owner', 1);
INSERT INTO member_spans (org_id, conversation_id, user_id, from_seq, joined_at) VALUES ('org-1', 'c-1', 'u-1', 0, 1700000000000);
INSERT INTO messages (org_id, conversation_id, seq, id, sender_id, client_msg_id, kind, body, sent_at)
	VALUES ('org-1', 'c-1', 1, 'm-1', 'u-1', 'k-1', 'text', CAST('first 第一条 🚀' AS BLOB), 1700000001000),
	       ('org-1', 'c-1', 2, 'm-2', 'u-1', 'k-2', 'text', CAST('second 第二条' AS BLOB), 1700000002000);
`

func TestUpgradeFromEveryEarlierSchema(t *testing.T) {
	entries, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	if len(names) != sqlite.SchemaVersion() {
		t.Fatalf("%d migration files; the binary embeds %d", len(names), sqlite.SchemaVersion())
	}
	for k := 1; k < len(names); k++ {
		t.Run(fmt.Sprintf("from schema %d", k), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeOldDataDir(t, dir, names[:k])

			db := openEncrypted(t, dir) // migrates, makes the first key, seals the old plain bodies
			defer db.Close()
			ctx := context.Background()
			var version int
			raw := rawDB(t, filepath.Join(dir, sqlite.FileName))
			if err := raw.QueryRow("PRAGMA user_version").Scan(&version); err != nil || version != len(names) {
				t.Fatalf("schema after open = %d, %v; want %d", version, err, len(names))
			}
			orgs, err := db.FindOrgs(ctx)
			if err != nil || len(orgs) != 1 || orgs[0].Slug != "acme" || orgs[0].Name != "Acme 公司" {
				t.Fatalf("FindOrgs() = %+v, %v; want the org written at schema %d", orgs, err, k)
			}
			if u, err := db.FindUserByUsername(ctx, "org-1", "alice"); err != nil || u.DisplayName != "Alice 爱丽丝" {
				t.Fatalf("FindUserByUsername() = %+v, %v", u, err)
			}
			msgs, err := db.FindMessages(ctx, "org-1", "c-1", chatvault.MessageQuery{Limit: 10})
			if err != nil || len(msgs) != 2 || msgs[0].Text != "first 第一条 🚀" || msgs[1].Text != "second 第二条" {
				t.Fatalf("FindMessages() = %v; want the two messages written at schema %d", err, k)
			}
			var plain int
			if err := raw.QueryRow(`SELECT count(*) FROM messages WHERE body = CAST('second 第二条' AS BLOB)`).Scan(&plain); err != nil || plain != 0 {
				t.Errorf("%d bodies still in plain text after the upgrade (%v); want them sealed", plain, err)
			}
			// A client retrying a send the old version stored (and maybe never acknowledged) gets
			// that message back, not a second copy.
			retry := &chatvault.Message{OrgID: "org-1", ID: uuid.NewString(), ConversationID: "c-1", SenderID: "u-1", ClientMsgID: "k-2",
				Kind: chatvault.KindText, Text: "second 第二条", SentAt: time.Now()}
			if created, err := db.AppendMessage(ctx, retry); err != nil || created || retry.ID != "m-2" || retry.Seq != 2 {
				t.Fatalf("AppendMessage(retry of k-2) = created %v, id %s, seq %d, %v; want the message stored before the upgrade (m-2, seq 2)",
					created, retry.ID, retry.Seq, err)
			}
			// The upgraded store takes new writes after the old ones, and a retry of a new send is
			// found through its derived id.
			m := &chatvault.Message{OrgID: "org-1", ID: uuid.NewString(), ConversationID: "c-1", SenderID: "u-1", ClientMsgID: "k-3",
				Kind: chatvault.KindText, Text: "after the upgrade", SentAt: time.Now()}
			if _, err := db.AppendMessage(ctx, m); err != nil || m.Seq != 3 {
				t.Fatalf("AppendMessage() after the upgrade = seq %d, %v; want seq 3", m.Seq, err)
			}
			again := &chatvault.Message{OrgID: "org-1", ID: uuid.NewString(), ConversationID: "c-1", SenderID: "u-1", ClientMsgID: "k-3",
				Kind: chatvault.KindText, Text: "after the upgrade", SentAt: time.Now()}
			if created, err := db.AppendMessage(ctx, again); err != nil || created || again.ID != m.ID || again.Seq != 3 {
				t.Fatalf("AppendMessage(retry of k-3) = created %v, id %s, seq %d, %v; want message %s, seq 3", created, again.ID, again.Seq, err, m.ID)
			}
		})
	}
}

// writeOldDataDir makes the database a server at the schema of the given migrations left.
func writeOldDataDir(t *testing.T, dir string, migrations []string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i, name := range migrations {
		body, err := os.ReadFile(filepath.Join("migrations", name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(string(body)); err != nil {
			t.Fatalf("migration %s: %v", name, err)
		}
		if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(oldSchemaFixture); err != nil {
		t.Fatalf("write at schema %d: %v", len(migrations), err)
	}
}
