package sqlite_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/search"
	"github.com/chatvault/chatvault/internal/sqlite"
)

// findSeqs searches one org for a term and returns the seqs of the candidates, newest first.
func findSeqs(t *testing.T, db *sqlite.DB, orgID, term string) []int64 {
	t.Helper()
	q, err := search.Parse(term)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := db.SearchMessages(context.Background(), chatvault.SearchQuery{OrgID: orgID, Tokens: q.Tokens(), Limit: 100})
	if err != nil {
		t.Fatalf("SearchMessages(%q) = %v", term, err)
	}
	var seqs []int64
	for _, c := range cs {
		seqs = append(seqs, c.Message.Seq)
	}
	return seqs
}

// A store that indexed under a plain key (no encryption) rebuilds its index under a wrapped key
// the first time it opens with a keyring: the plain key leaves the data file, and search still
// finds everything.
func TestPlainIndexIsRebuiltUnderAWrappedKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, db)
	c := w.conv(t)
	w.send(t, c, "我家在上海东边", jan)
	w.send(t, c, "上海的合同", jan)
	if got := findSeqs(t, db, w.org.ID, "上海"); !slices.Equal(got, []int64{2, 1}) {
		t.Fatalf("plain store: 上海 finds %v, want [2 1]", got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openEncrypted(t, dir)
	defer db.Close()
	if got := findSeqs(t, db, w.org.ID, "上海"); !slices.Equal(got, []int64{2, 1}) {
		t.Errorf("after opening with keys: 上海 finds %v, want [2 1]", got)
	}
	ks, err := sqlite.OpenKeyStore(sqlite.KeysPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	uses, err := ks.Uses(context.Background())
	if err != nil || len(uses) != 1 || uses[0].DataKeys != 2 {
		t.Errorf("keys database uses = %+v, %v; want one KEK wrapping the data key and the index key", uses, err)
	}
	db.Close()
	raw, err := os.ReadFile(filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	wal, _ := os.ReadFile(filepath.Join(dir, sqlite.FileName+"-wal"))
	if bytes.Contains(append(raw, wal...), []byte("上海")) {
		t.Error("the data file still holds 上海 in plain text")
	}
}

// Messages stored with the index off are indexed at the next open without NoSearchIndex.
func TestNoSearchIndexIsCaughtUpAtNextOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kr := fileKeyring(t, dir)
	// A first ordinary open leaves a store whose index is complete.
	if err := openEncrypted(t, dir).Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.OpenWith(dir, sqlite.Options{Keyring: kr, NoSearchIndex: true})
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, db)
	c := w.conv(t)
	w.send(t, c, "北京meeting", jan)
	if got := findSeqs(t, db, w.org.ID, "meeting"); len(got) != 0 {
		t.Fatalf("with the index off: meeting finds %v, want nothing", got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = sqlite.OpenWith(dir, sqlite.Options{Keyring: keyring.New(kr.Provider(), 0)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := findSeqs(t, db, w.org.ID, "meeting"); !slices.Equal(got, []int64{1}) {
		t.Errorf("after reopening with the index on: meeting finds %v, want [1]", got)
	}
}

// A data directory indexed under an older tokenizer is indexed again the first time a newer one
// opens it, with no step by hand: the old index lacks tokens the new rules ask for. The old index
// is stood for by one that holds nothing and says it was built by tokenizer 1, with the messages'
// document numbers still set, as an old index's are.
func TestIndexOfAnOlderTokenizerIsRebuiltAtOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := openEncrypted(t, dir)
	w := newWorld(t, db)
	c := w.conv(t)
	w.send(t, c, "iPhone15价格多少", jan)
	w.send(t, c, "HT2024合同已签", jan.Add(time.Minute))
	w.send(t, c, "会议改到三楼", jan.Add(2*time.Minute))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw := rawDB(t, filepath.Join(dir, sqlite.FileName))
	for _, q := range []string{
		`INSERT INTO search_index (search_index) VALUES ('delete-all')`,
		`UPDATE store_encryption SET search_tokenizer = 1`,
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()

	db = openEncrypted(t, dir)
	defer db.Close()
	for term, want := range map[string][]int64{"iphone15": {1}, "15": {1}, "ht2024": {2}, "合同": {2}, "會議": {3}} {
		if got := findSeqs(t, db, w.org.ID, term); !slices.Equal(got, want) {
			t.Errorf("after the upgrade: %s finds %v, want %v", term, got, want)
		}
	}
	var version int
	if err := rawDB(t, filepath.Join(dir, sqlite.FileName)).QueryRow(`SELECT search_tokenizer FROM store_encryption`).Scan(&version); err != nil || version != search.TokenizerVersion {
		t.Errorf("recorded tokenizer version = %d (%v), want %d", version, err, search.TokenizerVersion)
	}
}
