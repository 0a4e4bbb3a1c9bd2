package export_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/export"
	"github.com/chatvault/chatvault/internal/sqlite"
	"github.com/google/uuid"
)

// Every org-wide export writes its audit entry before anything is read; with the audit log
// unwritable the export fails and no file is written. An org admin without the compliance role
// cannot export the org, and a member's export is not a non-participant read, so it needs no
// entry.
func TestComplianceExportIsAudited(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	count := func() int {
		es, err := w.db.FindAudit(ctx, w.org.ID, 1000)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range es {
			if e.Action == chat.AuditExportOrg && e.ActorID == w.officer.UserID {
				n++
			}
		}
		return n
	}
	req := export.Request{Scope: chat.ScopeOrg, Format: export.CSV}
	for i := 1; i <= 2; i++ {
		if _, _, err := w.run(t, w.officer, req); err != nil {
			t.Fatalf("compliance export = %v", err)
		}
		if n := count(); n != i {
			t.Fatalf("after %d compliance exports the audit log has %d export entries; want %d", i, n, i)
		}
	}

	if _, _, err := w.run(t, w.admin, req); chatvault.ErrorCode(err) != chatvault.EFORBIDDEN {
		t.Errorf("org export by an org admin = %v; want %s", err, chatvault.EFORBIDDEN)
	}

	raw, err := sql.Open("sqlite", filepath.Join(w.dir, sqlite.FileName)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`CREATE TRIGGER audit_log_unwritable BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log unwritable'); END`); err != nil {
		t.Fatal(err)
	}
	files, _, err := w.run(t, w.officer, req)
	if err == nil {
		t.Fatalf("compliance export with the audit log unwritable succeeded; want an error")
	}
	if files != nil {
		t.Errorf("compliance export with the audit log unwritable wrote %d files; want none", len(files.names))
	}
	if _, _, err := w.run(t, w.alice, export.Request{Format: export.CSV}); err != nil {
		t.Errorf("member export with the audit log unwritable = %v; want it to work (no audit needed)", err)
	}
}

// Bad input is refused before anything is read, with the field named: 400s (EINVALID) for what
// is malformed, 404s (ENOTFOUND) for a conversation that does not exist or that the caller
// was never in.
func TestBadInput(t *testing.T) {
	w := newWorld(t)
	cases := []struct {
		name  string
		as    chatvault.Actor
		req   export.Request
		code  string
		field string
	}{
		{"format", w.alice, export.Request{Format: "pdf"}, chatvault.EINVALID, "format"},
		{"time zone", w.alice, export.Request{Format: export.CSV, TimeZone: "Mars/Olympus"}, chatvault.EINVALID, "time_zone"},
		{"lang", w.alice, export.Request{Format: export.CSV, Lang: "fr"}, chatvault.EINVALID, "lang"},
		{"scope", w.alice, export.Request{Format: export.CSV, Scope: "everything"}, chatvault.EINVALID, "scope"},
		{"to before from", w.alice, export.Request{Format: export.CSV, Filter: export.Filter{From: w.clk.peek(), To: w.clk.peek().Add(-1)}}, chatvault.EINVALID, "to"},
		{"query", w.alice, export.Request{Format: export.CSV, Filter: export.Filter{Query: "-alpha"}}, chatvault.EINVALID, "query"},
		{"unknown conversation", w.alice, export.Request{Format: export.CSV, Filter: export.Filter{Conversations: []string{uuid.NewString()}}}, chatvault.ENOTFOUND, "conversation"},
		{"malformed conversation", w.alice, export.Request{Format: export.CSV, Filter: export.Filter{Conversations: []string{"x"}}}, chatvault.ENOTFOUND, "conversation"},
		{"conversation not visible", w.bob, export.Request{Format: export.CSV, Filter: export.Filter{Conversations: []string{w.direct}}}, chatvault.ENOTFOUND, "conversation"},
		{"unknown conversation, org", w.officer, export.Request{Scope: chat.ScopeOrg, Format: export.CSV, Filter: export.Filter{Conversations: []string{uuid.NewString()}}}, chatvault.ENOTFOUND, "conversation"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := w.run(t, c.as, c.req)
			if code, field := chatvault.ErrorCode(err), chatvault.ErrorField(err); code != c.code || field != c.field {
				t.Errorf("export(%s) = %v (code %q, field %q); want code %q, field %q", c.name, err, code, field, c.code, c.field)
			}
		})
	}
	if _, err := export.ParseTime("from", "yesterday", nil); chatvault.ErrorField(err) != "from" {
		t.Errorf("ParseTime(%q) = %v; want an error naming from", "yesterday", err)
	}
}
