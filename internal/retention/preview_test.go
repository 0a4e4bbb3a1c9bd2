package retention_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/audit"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/clocktest"
	"github.com/chatvault/chatvault/internal/retention"
	"github.com/chatvault/chatvault/internal/sqlite"
	"github.com/google/uuid"
)

// A hold on a whole conversation shows in previews and dry runs as held, not as going: the run
// itself skips such a conversation, and the preview must say what the run will do. (Found by the
// PostgreSQL retention tests; the SQLite count ignored the whole-conversation flag.)
func TestPreviewCountsWholeConversationHoldAsHeld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := clocktest.New(time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC))
	ret := retention.New(db, audit.New(db, db.Keyring(), clk), clk, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	svc := chat.NewService(db, clk, chat.Config{Audit: audit.New(db, db.Keyring(), clk)})
	org := &chatvault.Org{ID: uuid.NewString(), Slug: "p", Name: "P", CreatedAt: clk.Now()}
	user := func(name string, roles ...chatvault.Role) *chatvault.User {
		return &chatvault.User{OrgID: org.ID, ID: uuid.NewString(), Username: name, DisplayName: name, PasswordHash: "x",
			Roles: append([]chatvault.Role{chatvault.RoleMember}, roles...), CreatedAt: clk.Now()}
	}
	admin, officer, bob := user("admin", chatvault.RoleOrgAdmin), user("officer", chatvault.RoleComplianceOfficer), user("bob")
	if err := db.CreateOrg(ctx, org, admin); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*chatvault.User{officer, bob} {
		if err := db.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	act := func(u *chatvault.User) chatvault.Actor {
		return chatvault.Actor{OrgID: org.ID, UserID: u.ID, Roles: u.Roles}
	}
	d, _, err := svc.CreateConversation(ctx, act(admin), chat.NewConversation{Kind: chatvault.Direct, Members: []string{bob.ID}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, _, err := svc.Send(ctx, act(bob), d.ID, chat.SendRequest{ClientMsgID: uuid.NewString(), Text: "旧消息"}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if _, err := ret.CreateHold(ctx, act(officer), retention.HoldRequest{Name: "case", Reason: "litigation", Conversations: []string{d.ID}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(400 * 24 * time.Hour) // far past the default 180 days
	p, err := ret.Preview(ctx, act(admin), time.Time{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Totals["expire"] != 0 || p.Totals["held"] != 4 {
		t.Errorf("preview totals = %v; want nothing to expire and 4 held", p.Totals)
	}
	run, err := ret.Run(ctx, org.ID, admin.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if run.Totals["expired"] != 0 || run.Totals["held"] != 4 {
		t.Errorf("dry run totals = %v; want nothing expired and 4 held", run.Totals)
	}
}
