package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/sqlite"
	"github.com/chatvault/chatvault/internal/storetest"
	"github.com/google/uuid"
)

func TestConformanceEncrypted(t *testing.T) {
	storetest.RunSealed(t, func(t *testing.T) (chatvault.Store, storetest.Tables) {
		dir := t.TempDir()
		db, err := sqlite.OpenWith(dir, sqlite.Options{Keyring: fileKeyring(t, dir)})
		if err != nil {
			t.Fatalf("OpenWith() = %v", err)
		}
		t.Cleanup(func() { db.Close() })
		return db, tables{rawDB(t, db.Path())}
	})
}

// tables reads and writes the data file directly.
type tables struct{ raw *sql.DB }

func (b tables) Row(t *testing.T, orgID, convID string, seq int64) storetest.Row {
	t.Helper()
	var r storetest.Row
	err := b.raw.QueryRow(`SELECT body, doc IS NOT NULL, (SELECT count(*) FROM message_versions v
		WHERE v.org_id = m.org_id AND v.conversation_id = m.conversation_id AND v.seq = m.seq)
		FROM messages m WHERE org_id = ? AND conversation_id = ? AND seq = ?`, orgID, convID, seq).Scan(&r.Body, &r.Indexed, &r.Versions)
	if err != nil {
		t.Fatalf("read message row: %v", err)
	}
	return r
}

func (b tables) PutBack(t *testing.T, orgID, convID string, seq int64, body []byte) {
	t.Helper()
	if _, err := b.raw.Exec(`UPDATE messages SET body = ?, state = 'live' WHERE org_id = ? AND conversation_id = ? AND seq = ?`, body, orgID, convID, seq); err != nil {
		t.Fatalf("put body back: %v", err)
	}
}

// fileKeyring returns a keyring over the default key file of dir.
func fileKeyring(t testing.TB, dir string) *keyring.Keyring {
	t.Helper()
	p, err := keyring.OpenFile(filepath.Join(dir, sqlite.KeysDir, "kek.json"))
	if err != nil {
		t.Fatalf("OpenFile() = %v", err)
	}
	return keyring.New(p, 0)
}

func openEncrypted(t testing.TB, dir string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.OpenWith(dir, sqlite.Options{Keyring: fileKeyring(t, dir)})
	if err != nil {
		t.Fatalf("OpenWith(%s) = %v", dir, err)
	}
	return db
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

var jan = time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)

// world is an org with two users and conversations between them.
type world struct {
	db    *sqlite.DB
	org   *chatvault.Org
	users []*chatvault.User
}

func newWorld(t testing.TB, db *sqlite.DB) *world {
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

func (w *world) send(t testing.TB, c *chatvault.Conversation, text string, at time.Time) *chatvault.Message {
	t.Helper()
	m, err := w.trySend(c, text, at)
	if err != nil {
		t.Fatalf("AppendMessage() = %v", err)
	}
	return m
}

func (w *world) trySend(c *chatvault.Conversation, text string, at time.Time) (*chatvault.Message, error) {
	m := &chatvault.Message{OrgID: w.org.ID, ID: newID(), ConversationID: c.ID, SenderID: w.users[0].ID,
		ClientMsgID: newID(), Kind: chatvault.KindText, Text: text, SentAt: at}
	_, err := w.db.AppendMessage(context.Background(), m)
	return m, err
}

// rawDB opens the database file directly, as an attacker with the disk (or a test) would.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

// findInFiles returns "file: phrase" for every phrase found in any file under dir.
func findInFiles(t testing.TB, dir string, phrases [][]byte) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, p := range phrases {
			if bytes.Contains(raw, p) {
				found = append(found, fmt.Sprintf("%s: %q", path, p))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestPlaintextNeverReachesDisk(t *testing.T) {
	dir := t.TempDir()
	db := openEncrypted(t, dir)
	defer db.Close()
	w := newWorld(t, db)
	ctx := context.Background()
	phrases := []string{
		"zebra-quartz-7781 confidential merger",
		"机密并购代号青龙七七八一",
		"passphrase: correct horse battery staple 4412",
		"董事会决议草案第九九二号",
		"edited secret albatross-5530",
		"修改后的秘密白鹭五五三零",
	}
	var checks [][]byte
	for _, p := range phrases {
		checks = append(checks, []byte(p))
	}
	// Distinctive fragments too: a CJK phrase must not leak even in part.
	checks = append(checks, []byte("青龙七七"), []byte("zebra-quartz"), []byte("albatross-5530"), []byte("白鹭五五"))
	var sent []*chatvault.Message
	for i := range 3 {
		c := w.conv(t)
		for j, p := range phrases[:4] {
			sent = append(sent, w.send(t, c, fmt.Sprintf("%s #%d.%d", p, i, j), jan.AddDate(0, j%2, 0)))
		}
		// Edits: the old versions are kept too, and must be sealed as well.
		m := sent[len(sent)-1]
		if _, err := db.EditMessage(ctx, w.org.ID, c.ID, m.Seq, 1, phrases[4], jan.AddDate(0, 1, 1)); err != nil {
			t.Fatalf("EditMessage() = %v", err)
		}
		if _, err := db.EditMessage(ctx, w.org.ID, c.ID, m.Seq, 2, phrases[5], jan.AddDate(0, 1, 2)); err != nil {
			t.Fatalf("EditMessage() = %v", err)
		}
		vs, err := db.FindMessageVersions(ctx, w.org.ID, c.ID, m.Seq)
		if err != nil || len(vs) != 2 || vs[0].Text != m.Text || vs[1].Text != phrases[4] {
			t.Fatalf("FindMessageVersions() = %v, %v; want the original and the first edit", vs, err)
		}
	}
	// Everything reads back.
	for _, m := range sent[:len(sent)-1] {
		got, err := db.FindMessageByID(ctx, w.org.ID, m.ConversationID, m.ID)
		if err != nil {
			t.Fatalf("FindMessageByID() = %v", err)
		}
		if got.Text != m.Text && !strings.Contains(got.Text, "白鹭") {
			t.Fatalf("FindMessageByID().Text = %q; want %q", got.Text, m.Text)
		}
	}
	// While open: the database file, its WAL and every other file in the data directory.
	if found := findInFiles(t, dir, checks); len(found) > 0 {
		t.Fatalf("plain text found on disk while running:\n%s", strings.Join(found, "\n"))
	}
	if _, err := os.Stat(db.Path() + "-wal"); err != nil {
		t.Fatalf("expected a WAL to scan: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if found := findInFiles(t, dir, checks); len(found) > 0 {
		t.Fatalf("plain text found on disk after close:\n%s", strings.Join(found, "\n"))
	}
	// The control: without encryption the same scan does find them, so the scan works.
	plainDir := t.TempDir()
	plain, err := sqlite.Open(plainDir)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	pw := newWorld(t, plain)
	pw.send(t, pw.conv(t), phrases[1], jan)
	if found := findInFiles(t, plainDir, checks[1:2]); len(found) == 0 {
		t.Fatalf("control: a plain store's files do not contain %q; the scan is broken", phrases[1])
	}
}

func TestMovedCiphertextFailsIntegrity(t *testing.T) {
	dir := t.TempDir()
	db := openEncrypted(t, dir)
	defer db.Close()
	w := newWorld(t, db)
	ctx := context.Background()
	c1, c2 := w.conv(t), w.conv(t)
	a := w.send(t, c1, "message A", jan)
	b := w.send(t, c1, "message B", jan)
	other := w.send(t, c2, "message in another conversation", jan)
	if _, err := db.EditMessage(ctx, w.org.ID, c1.ID, a.Seq, 1, "message A, edited", jan.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	raw := rawDB(t, db.Path())
	copyBody := func(fromConv string, fromSeq int64, toConv string, toSeq int64) {
		t.Helper()
		if _, err := raw.Exec(`UPDATE messages SET body = (SELECT body FROM messages WHERE conversation_id = ? AND seq = ?)
			WHERE conversation_id = ? AND seq = ?`, fromConv, fromSeq, toConv, toSeq); err != nil {
			t.Fatal(err)
		}
	}
	wantIntegrity := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, keyring.ErrIntegrity) || !strings.Contains(err.Error(), "integrity check failed") {
			t.Fatalf("%s: err = %v; want an integrity error", what, err)
		}
	}
	// Same conversation, same data key: the associated data (message id) still tells them apart.
	copyBody(c1.ID, a.Seq, c1.ID, b.Seq)
	_, err := db.FindMessageByID(ctx, w.org.ID, c1.ID, b.ID)
	wantIntegrity("A's body in B's row", err)
	_, err = db.FindMessages(ctx, w.org.ID, c1.ID, chatvault.MessageQuery{Limit: 10})
	wantIntegrity("a page holding B", err)
	// Another conversation's body: another data key and other associated data.
	copyBody(c2.ID, other.Seq, c1.ID, b.Seq)
	_, err = db.FindMessageByID(ctx, w.org.ID, c1.ID, b.ID)
	wantIntegrity("another conversation's body in B's row", err)
	// An old version put back as the current body (a rollback of an edit).
	if _, err := raw.Exec(`UPDATE messages SET body = (SELECT body FROM message_versions WHERE conversation_id = ? AND seq = ? AND version = 1)
		WHERE conversation_id = ? AND seq = ?`, c1.ID, a.Seq, c1.ID, a.Seq); err != nil {
		t.Fatal(err)
	}
	_, err = db.FindMessageByID(ctx, w.org.ID, c1.ID, a.ID)
	wantIntegrity("version 1 as version 2", err)
	// A single flipped bit.
	if _, err := raw.Exec(`UPDATE messages SET body = substr(body, 1, 20) || x'00' || substr(body, 22) WHERE conversation_id = ? AND seq = ?`, c2.ID, other.Seq); err != nil {
		t.Fatal(err)
	}
	_, err = db.FindMessageByID(ctx, w.org.ID, c2.ID, other.ID)
	wantIntegrity("altered body", err)
	// A plain body slipped into an encrypted store is refused, not shown.
	if _, err := raw.Exec(`UPDATE messages SET body = CAST('forged' AS BLOB) WHERE conversation_id = ? AND seq = ?`, c2.ID, other.Seq); err != nil {
		t.Fatal(err)
	}
	_, err = db.FindMessageByID(ctx, w.org.ID, c2.ID, other.ID)
	wantIntegrity("forged plain body", err)
}

func TestCryptoShredding(t *testing.T) {
	dir := t.TempDir()
	db := openEncrypted(t, dir)
	defer db.Close()
	w := newWorld(t, db)
	ctx := context.Background()
	c := w.conv(t)
	feb := jan.AddDate(0, 1, 0)
	var janMsgs, febMsgs []*chatvault.Message
	for i := range 5 {
		janMsgs = append(janMsgs, w.send(t, c, fmt.Sprintf("january %d", i), jan.Add(time.Duration(i)*time.Hour)))
	}
	if _, err := db.EditMessage(ctx, w.org.ID, c.ID, janMsgs[0].Seq, 1, "january 0, edited", jan.AddDate(0, 0, 1)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		febMsgs = append(febMsgs, w.send(t, c, fmt.Sprintf("february %d", i), feb.Add(time.Duration(i)*time.Hour)))
	}
	if n, err := db.DestroyEmptyDataKeys(ctx, w.org.ID, c.ID); err != nil || n != 0 {
		t.Fatalf("DestroyEmptyDataKeys() before the purge = %d, %v; want 0, nil", n, err)
	}
	// The January key's wrapped bytes, to look for on disk afterwards.
	keysRaw := rawDB(t, sqlite.KeysPath(dir))
	var janWrapped []byte
	if err := keysRaw.QueryRow(`SELECT wrapped FROM data_keys WHERE conversation_id = ? AND id = 1`, c.ID).Scan(&janWrapped); err != nil {
		t.Fatalf("read January's wrapped key: %v", err)
	}

	// A backup of the data taken before the purge.
	backupDir := t.TempDir()
	raw := rawDB(t, db.Path())
	if _, err := raw.Exec(`VACUUM INTO ?`, filepath.Join(backupDir, sqlite.FileName)); err != nil {
		t.Fatalf("VACUUM INTO: %v", err)
	}

	// Purge January as retention does: bodies gone, versions gone, tombstones stay.
	if _, err := raw.Exec(`UPDATE messages SET body = NULL, state = 'purged' WHERE conversation_id = ? AND seq <= ?`, c.ID, janMsgs[4].Seq); err != nil {
		t.Fatal(err)
	}
	if n, err := db.DestroyEmptyDataKeys(ctx, w.org.ID, c.ID); err != nil || n != 0 {
		t.Fatalf("DestroyEmptyDataKeys() with a version left = %d, %v; want 0, nil", n, err)
	}
	if _, err := raw.Exec(`DELETE FROM message_versions WHERE conversation_id = ?`, c.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := db.DestroyEmptyDataKeys(ctx, w.org.ID, c.ID); err != nil || n != 1 {
		t.Fatalf("DestroyEmptyDataKeys() after the purge = %d, %v; want 1, nil", n, err)
	}
	if n, err := db.DestroyEmptyDataKeys(ctx, w.org.ID, c.ID); err != nil || n != 0 {
		t.Fatalf("DestroyEmptyDataKeys() again = %d, %v; want 0, nil", n, err)
	}
	// February is untouched, and new messages keep flowing (under February's key).
	ms, err := db.FindMessages(ctx, w.org.ID, c.ID, chatvault.MessageQuery{After: janMsgs[4].Seq, Limit: 10})
	if err != nil || len(ms) != 3 || ms[0].Text != "february 0" {
		t.Fatalf("FindMessages(February) = %d messages, %v; want 3", len(ms), err)
	}
	w.send(t, c, "february 3", feb.Add(10*time.Hour))
	// The key is gone from the keys database, and its bytes from its files.
	var n int
	if err := keysRaw.QueryRow(`SELECT count(*) FROM data_keys WHERE conversation_id = ? AND id = 1`, c.ID).Scan(&n); err != nil || n != 0 {
		t.Fatalf("January's key rows = %d, %v; want 0", n, err)
	}
	if found := findInFiles(t, filepath.Join(dir, sqlite.KeysDir), [][]byte{janWrapped}); len(found) > 0 {
		t.Fatalf("the destroyed key's wrapped bytes are still on disk: %v", found)
	}

	// The backup plus today's key file and keys database cannot open January.
	restored, err := sqlite.OpenWith(backupDir, sqlite.Options{Keyring: fileKeyring(t, dir), KeysPath: sqlite.KeysPath(dir)})
	if err != nil {
		t.Fatalf("OpenWith(backup) = %v", err)
	}
	defer restored.Close()
	_, err = restored.FindMessageByID(ctx, w.org.ID, c.ID, janMsgs[1].ID)
	if !errors.Is(err, keyring.ErrDataKeyDestroyed) {
		t.Fatalf("backup: FindMessageByID(January) = %v; want ErrDataKeyDestroyed", err)
	}
	got, err := restored.FindMessageByID(ctx, w.org.ID, c.ID, febMsgs[1].ID)
	if err != nil || got.Text != "february 1" {
		t.Fatalf("backup: FindMessageByID(February) = %v, %v; want February readable", got, err)
	}
	// Not by any other key either: every data key that exists, tried on every January body in the
	// backup, opens nothing. The backup itself holds no key material at all.
	kr := fileKeyring(t, dir)
	rows, err := keysRaw.Query(`SELECT org_id, conversation_id, id, kek_id, wrapped FROM data_keys`)
	if err != nil {
		t.Fatal(err)
	}
	var keys []*keyring.DataKey
	for rows.Next() {
		var id keyring.DataKeyID
		var kek string
		var wrapped []byte
		if err := rows.Scan(&id.Org, &id.Conversation, &id.N, &kek, &wrapped); err != nil {
			t.Fatal(err)
		}
		dk, err := kr.Unwrap(ctx, id, kek, wrapped)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, dk)
	}
	rows.Close()
	backupRaw := rawDB(t, filepath.Join(backupDir, sqlite.FileName))
	rows, err = backupRaw.Query(`SELECT id, version, body FROM messages WHERE conversation_id = ? AND seq <= ?`, c.ID, janMsgs[4].Seq)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	tried := 0
	for rows.Next() {
		var id string
		var version int
		var body []byte
		if err := rows.Scan(&id, &version, &body); err != nil {
			t.Fatal(err)
		}
		for _, dk := range keys {
			forged := append([]byte{body[0], body[1], byte(dk.ID.N)}, body[3:]...) // claim the key's number
			if _, err := dk.Open(forged, keyring.BodyAAD(w.org.ID, c.ID, id, version)); err == nil {
				t.Fatalf("data key %d opened a shredded January body", dk.ID.N)
			}
			tried++
		}
	}
	if tried == 0 {
		t.Fatal("no January bodies in the backup to try")
	}
	if found := findInFiles(t, backupDir, [][]byte{janWrapped}); len(found) > 0 {
		t.Fatalf("the data backup holds a wrapped key: %v", found)
	}
}

func TestKeyRotationUnderConcurrentSends(t *testing.T) {
	dir := t.TempDir()
	db := openEncrypted(t, dir)
	w := newWorld(t, db)
	ctx := context.Background()
	var convs []*chatvault.Conversation
	for range 4 {
		convs = append(convs, w.conv(t))
	}
	// The operator's `chatvault keys rotate`: another provider instance on the same key file, and
	// another handle on the keys database, as a second process would have.
	opKeys, err := sqlite.OpenKeyStore(sqlite.KeysPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer opKeys.Close()
	opProvider, err := keyring.OpenFile(filepath.Join(dir, sqlite.KeysDir, "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	opRing := keyring.New(opProvider, 0)
	before, _ := opProvider.KEKs(ctx)

	const senders, each = 8, 60
	type sentMsg struct {
		conv *chatvault.Conversation
		m    *chatvault.Message
	}
	var mu sync.Mutex
	var sent []sentMsg
	var wg sync.WaitGroup
	errc := make(chan error, senders+1)
	start := make(chan struct{})
	// The rotation starts once writes are flowing (a first round from every sender is stored),
	// not after a guessed delay: most of the sending still happens during it.
	flowing, flowingOnce := make(chan struct{}), sync.Once{}
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range each {
				c := convs[(s+i)%len(convs)]
				// Months move on while sending, so new data keys are made during the rotation.
				at := jan.AddDate(0, i/10, 0)
				m, err := w.trySend(c, fmt.Sprintf("sender %d message %d 消息", s, i), at)
				if err != nil {
					errc <- err
					return
				}
				mu.Lock()
				sent = append(sent, sentMsg{c, m})
				if len(sent) >= senders {
					flowingOnce.Do(func() { close(flowing) })
				}
				mu.Unlock()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-flowing:
		case err := <-errc: // a sender failed before writes flowed: hand its error on
			errc <- err
			return
		}
		if _, err := opProvider.Rotate(ctx); err != nil {
			errc <- err
			return
		}
		for range 3 {
			if _, err := opKeys.Rewrap(ctx, opRing); err != nil {
				errc <- err
				return
			}
		}
	}()
	close(start)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("during rotation: %v", err)
	}
	// A last pass catches keys the server made with the old KEK before it saw the new file.
	if _, err := opKeys.Rewrap(ctx, opRing); err != nil {
		t.Fatal(err)
	}
	old := before[0].ID
	if n, err := opKeys.WrappedBy(ctx, old); err != nil || n != 0 {
		t.Fatalf("WrappedBy(old KEK) = %d, %v; want 0", n, err)
	}
	if err := opProvider.Retire(ctx, old); err != nil {
		t.Fatalf("Retire() = %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if len(sent) != senders*each {
		t.Fatalf("sent %d messages; want %d", len(sent), senders*each)
	}
	// A fresh start: nothing cached, the old KEK's material gone. Every message still opens.
	db = openEncrypted(t, dir)
	defer db.Close()
	for _, s := range sent {
		got, err := db.FindMessageByID(ctx, w.org.ID, s.conv.ID, s.m.ID)
		if err != nil || got.Text != s.m.Text {
			t.Fatalf("FindMessageByID(%s) = %v, %v; want %q", s.m.ID, got, err, s.m.Text)
		}
	}
	uses, err := opKeys.Uses(ctx)
	if err != nil || len(uses) != 1 || uses[0].KEKID == old {
		t.Fatalf("Uses() = %+v, %v; want every data key under the new KEK", uses, err)
	}
}

func TestStartupKeyChecks(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) string {
		dir := t.TempDir()
		db := openEncrypted(t, dir)
		w := newWorld(t, db)
		w.send(t, w.conv(t), "hello", jan)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	keyFile := func(dir string) string { return filepath.Join(dir, sqlite.KeysDir, "kek.json") }
	wantErr := func(t *testing.T, err error, parts ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("OpenWith() = nil; want an error naming %q", parts)
		}
		for _, p := range parts {
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("OpenWith() = %v; want it to name %q", err, p)
			}
		}
	}
	t.Run("KeyFileMissing", func(t *testing.T) {
		dir := setup(t)
		if err := os.Remove(keyFile(dir)); err != nil {
			t.Fatal(err)
		}
		_, err := sqlite.OpenWith(dir, sqlite.Options{Keyring: fileKeyring(t, dir)})
		wantErr(t, err, keyFile(dir), "does not exist", "restore")
		if _, err := os.Stat(keyFile(dir)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("a key file was created over existing data: %v", err)
		}
	})
	t.Run("WrongKeyFile", func(t *testing.T) {
		dir := setup(t)
		other := setup(t)
		raw, _ := os.ReadFile(keyFile(other))
		if err := os.WriteFile(keyFile(dir), raw, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := sqlite.OpenWith(dir, sqlite.Options{Keyring: fileKeyring(t, dir)})
		wantErr(t, err, keyFile(dir), "is not in key file")
		after, _ := os.ReadFile(keyFile(dir))
		if !bytes.Equal(after, raw) {
			t.Fatal("the key file was changed")
		}
	})
	t.Run("SameIDWrongMaterial", func(t *testing.T) {
		dir := setup(t)
		raw, _ := os.ReadFile(keyFile(dir))
		s := string(raw)
		i := strings.Index(s, `"key": "`) + len(`"key": "`)
		forged := s[:i] + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" + s[i+44:]
		if err := os.WriteFile(keyFile(dir), []byte(forged), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := sqlite.OpenWith(dir, sqlite.Options{Keyring: fileKeyring(t, dir)})
		wantErr(t, err, keyFile(dir), "does not open")
	})
	t.Run("KeysDatabaseMissing", func(t *testing.T) {
		dir := setup(t)
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(sqlite.KeysPath(dir) + suffix)
		}
		_, err := sqlite.OpenWith(dir, sqlite.Options{Keyring: fileKeyring(t, dir)})
		wantErr(t, err, sqlite.KeysPath(dir), "is missing", "restore")
		if _, err := os.Stat(sqlite.KeysPath(dir)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("a keys database was created over existing data: %v", err)
		}
	})
	t.Run("NoKeyring", func(t *testing.T) {
		dir := setup(t)
		_, err := sqlite.Open(dir)
		wantErr(t, err, "holds encrypted messages")
	})
	t.Run("EnvKEKWrong", func(t *testing.T) {
		dir := setup(t)
		p, err := keyring.OpenEnv(func(name string) string {
			if name == keyring.EnvKEK {
				return "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
			}
			return ""
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = sqlite.OpenWith(dir, sqlite.Options{Keyring: keyring.New(p, 0)})
		wantErr(t, err, "CHATVAULT_KEK")
	})
	_ = ctx
}

func TestSealsPlainStore(t *testing.T) {
	dir := t.TempDir()
	db, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, db)
	ctx := context.Background()
	c := w.conv(t)
	var sent []*chatvault.Message
	for i := range 1200 { // more than one sealing step
		sent = append(sent, w.send(t, c, fmt.Sprintf("plain phrase kestrel-%04d 旧明文", i), jan.AddDate(0, i/500, 0)))
	}
	if _, err := db.EditMessage(ctx, w.org.ID, c.ID, sent[3].Seq, 1, "kestrel edited", jan.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openEncrypted(t, dir)
	defer db.Close()
	got, err := db.FindMessages(ctx, w.org.ID, c.ID, chatvault.MessageQuery{Limit: 2000})
	if err != nil || len(got) != len(sent) {
		t.Fatalf("FindMessages() = %d, %v; want %d", len(got), err, len(sent))
	}
	for i, m := range got {
		want := sent[i].Text
		if i == 3 {
			want = "kestrel edited"
		}
		if m.Text != want {
			t.Fatalf("message %d = %q; want %q", i, m.Text, want)
		}
	}
	vs, err := db.FindMessageVersions(ctx, w.org.ID, c.ID, sent[3].Seq)
	if err != nil || len(vs) != 1 || vs[0].Text != sent[3].Text {
		t.Fatalf("FindMessageVersions() = %v, %v", vs, err)
	}
	var plain int
	if err := rawDB(t, db.Path()).QueryRow(`SELECT count(*) FROM messages WHERE substr(body, 1, 1) != x'FF'`).Scan(&plain); err != nil || plain != 0 {
		t.Fatalf("plain bodies left = %d, %v; want 0", plain, err)
	}
	if found := findInFiles(t, dir, [][]byte{[]byte("kestrel-0"), []byte("旧明文")}); len(found) > 0 {
		t.Fatalf("plain text left on disk after sealing: %d hits, first %s", len(found), found[0])
	}
}

// A page that crosses several data keys (a conversation read in order after a restart, with
// nothing in the key cache) opens every body under its own key, and a destroyed key among them
// fails the read rather than passing a body off under another key.
func TestPageAcrossDataKeysAfterRestart(t *testing.T) {
	dir := t.TempDir()
	db := openEncrypted(t, dir)
	w := newWorld(t, db)
	ctx := context.Background()
	c := w.conv(t)
	var want []string
	for month := range 4 {
		for i := range 3 {
			text := fmt.Sprintf("month %d, message %d: 第%d个月", month, i, month+1)
			w.send(t, c, text, jan.AddDate(0, month, i))
			want = append(want, text)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openEncrypted(t, dir)
	ms, err := db.FindMessages(ctx, w.org.ID, c.ID, chatvault.MessageQuery{Limit: 100})
	if err != nil {
		t.Fatalf("FindMessages() after a restart = %v", err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Text)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("FindMessages() after a restart = %q; want %q", got, want)
	}
	db.Close()

	// February's key destroyed behind the store's back (its bodies still there): a fresh start
	// cannot read the page, and says which key is missing.
	keysRaw := rawDB(t, sqlite.KeysPath(dir))
	if _, err := keysRaw.Exec(`DELETE FROM data_keys WHERE conversation_id = ? AND id = 2`, c.ID); err != nil {
		t.Fatal(err)
	}
	db = openEncrypted(t, dir)
	defer db.Close()
	if _, err := db.FindMessages(ctx, w.org.ID, c.ID, chatvault.MessageQuery{Limit: 100}); !errors.Is(err, keyring.ErrDataKeyDestroyed) {
		t.Fatalf("FindMessages() over a destroyed key = %v; want ErrDataKeyDestroyed", err)
	}
}
