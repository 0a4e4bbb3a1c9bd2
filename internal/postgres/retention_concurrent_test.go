package postgres_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
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
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Two processes (two stores on one database) running retention at the same moment: every message
// ends in exactly one state, and no certificate line repeats a seq another line already covers.
func TestRetentionConcurrentRuns(t *testing.T) {
	t.Parallel()
	clk := clocktest.New(storeTime(t0))
	keyFile := filepath.Join(t.TempDir(), "keys", "kek.json")
	openKeyring := func() *keyring.Keyring {
		p, err := keyring.OpenFile(keyFile)
		if err != nil {
			t.Fatalf("OpenFile() = %v", err)
		}
		return keyring.New(p, 0)
	}
	url := pgtest.Server(t).NewDatabase(t)
	var dbs []*postgres.DB
	for range 2 {
		db, err := postgres.Open(context.Background(), url, postgres.Options{Keyring: openKeyring(), Now: clk.Now})
		if err != nil {
			t.Fatalf("Open() = %v", err)
		}
		t.Cleanup(func() { db.Close() })
		dbs = append(dbs, db)
	}
	f := &retFixture{t: t, ctx: context.Background(), clk: clk, db: dbs[0], conn: raw(t, url)}
	// Important messages are kept forever: three end states (destroyed, kept old, kept new).
	f.setup(chatvault.Policy{DefaultDays: 30, GraceDays: 1, Mode: chatvault.ModeOrg})
	const convs, perConv, oldPerConv = 2, 1200, 1080 // more than one step (1,000 rows) per conversation
	type msg struct {
		conv      string
		seq       int64
		old, keep bool
	}
	var all []msg
	var convIDs []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range convs {
		conv := f.group()
		convIDs = append(convIDs, conv)
		wg.Go(func() {
			for i := range perConv {
				old := i < oldPerConv
				at := t0.Add(time.Duration(i) * time.Minute)
				if !old {
					at = t0.Add(50 * day)
				}
				text := fmt.Sprintf("message %d", i)
				if i%97 == 0 {
					text += " keep"
				}
				m := &chatvault.Message{OrgID: f.org, ID: uuid.NewString(), ConversationID: conv, SenderID: f.alice.UserID,
					ClientMsgID: uuid.NewString(), Kind: chatvault.KindText, Text: text, SentAt: at}
				if i%97 == 0 {
					m.Importance, m.Important = chatvault.ImportantByRule, true
				}
				if _, err := dbs[i%2].AppendMessage(f.ctx, m); err != nil {
					t.Errorf("AppendMessage() = %v", err)
					return
				}
				mu.Lock()
				all = append(all, msg{conv: conv, seq: m.Seq, old: old, keep: i%97 == 0})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	rets := []*retention.Service{
		retention.New(dbs[0], audit.New(dbs[0], dbs[0].Keyring(), clk), clk, quietLogger(), dbs[0]),
		retention.New(dbs[1], audit.New(dbs[1], dbs[1].Keyring(), clk), clk, quietLogger(), dbs[1]),
	}
	// Round 1 expires, round 2 (past the grace day) destroys; each round both processes at once.
	for _, at := range []time.Time{t0.Add(60 * day), t0.Add(62 * day)} {
		clk.Set(storeTime(at))
		var runs sync.WaitGroup
		for _, r := range rets {
			runs.Go(func() {
				if _, err := r.Run(f.ctx, f.org, "system", false); err != nil {
					t.Errorf("Run(%s) = %v", at.Format(time.DateOnly), err)
				}
			})
		}
		runs.Wait()
	}
	if t.Failed() {
		t.FailNow()
	}

	destroyed := map[string]int{}
	for _, c := range convIDs {
		rows := f.rows(c)
		for _, m := range all {
			if m.conv != c {
				continue
			}
			s := rows[m.seq]
			gone := m.old && !m.keep
			switch {
			case gone && (s.state != "purged" || s.body || s.doc || s.docs != 0):
				t.Errorf("%s seq %d: state %s body %v doc %v; want destroyed", c[:8], m.seq, s.state, s.body, s.doc)
			case !gone && (s.state != "live" || !s.body || s.expired || s.docs != 1):
				t.Errorf("%s seq %d: state %s body %v expired %v docs %d; want live", c[:8], m.seq, s.state, s.body, s.expired, s.docs)
			}
			if gone {
				destroyed[c]++
			}
		}
	}
	// Certificate lines: per conversation and action, no two lines overlap, and the counts add up
	// to what was done (each message expired once and destroyed once).
	rs, err := f.conn.Query(f.ctx, `SELECT conversation_id, action, count, first_seq, last_seq FROM purge_run_items
		WHERE org_id = $1 AND action IN ('expired', 'destroyed') ORDER BY conversation_id, action, first_seq`, f.org)
	if err != nil {
		t.Fatal(err)
	}
	items, err := pgx.CollectRows(rs, pgx.RowToStructByPos[chatvault.PurgeRunItem])
	if err != nil {
		t.Fatal(err)
	}
	sums := map[[2]string]int{}
	for i, it := range items {
		sums[[2]string{it.ConversationID, it.Action}] += it.Count
		if i > 0 && items[i-1].ConversationID == it.ConversationID && items[i-1].Action == it.Action && items[i-1].LastSeq >= it.FirstSeq {
			t.Errorf("certificate lines overlap: %+v and %+v", items[i-1], it)
		}
	}
	for c, n := range destroyed {
		if e, d := sums[[2]string{c, "expired"}], sums[[2]string{c, "destroyed"}]; e != n || d != n {
			t.Errorf("%s: certificates say expired %d, destroyed %d; %d were destroyed", c[:8], e, d, n)
		}
	}
	// Each stored certificate is what its steps recorded, and every run finished.
	stored, err := f.db.FindPurgeRuns(f.ctx, f.org, 100)
	if err != nil || len(stored) == 0 {
		t.Fatalf("FindPurgeRuns() = %d runs, %v", len(stored), err)
	}
	for _, r := range stored {
		items, err := f.db.FindPurgeRunItems(f.ctx, f.org, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		items = slices.DeleteFunc(items, func(it chatvault.PurgeRunItem) bool { return it.Action == "data_keys_destroyed" })
		if r.FinishedAt == nil || !slices.Equal(r.Items, items) {
			t.Errorf("run %s: finished %v, certificate %+v; want finished, with its recorded steps %+v", r.ID, r.FinishedAt, r.Items, items)
		}
	}
	var unfinished int
	if err := f.conn.QueryRow(f.ctx, `SELECT count(*) FROM purge_runs WHERE org_id = $1 AND finished_at IS NULL`, f.org).Scan(&unfinished); err != nil || unfinished != 0 {
		t.Errorf("%d purge runs left unfinished (%v); want 0", unfinished, err)
	}
}

const day = 24 * time.Hour

// storeTime is t as the stores keep it (UTC, milliseconds), for the clock the services and the
// store share.
func storeTime(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// retFixture is one org on an encrypted database, with the real chat and retention services.
type retFixture struct {
	t    *testing.T
	ctx  context.Context
	clk  *clocktest.Clock
	db   *postgres.DB
	conn *pgx.Conn
	ret  *retention.Service
	chat *chat.Service
	org  string

	admin, officer, alice, bob chatvault.Actor
}

var t0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// setup creates the org and its people, and the services over f.db.
func (f *retFixture) setup(p chatvault.Policy) {
	f.t.Helper()
	aud := audit.New(f.db, f.db.Keyring(), f.clk)
	f.ret = retention.New(f.db, aud, f.clk, quietLogger(), f.db)
	f.chat = chat.NewService(f.db, f.clk, chat.Config{Classifier: f.ret, Audit: aud})
	org := &chatvault.Org{ID: uuid.NewString(), Slug: "acme", Name: "Acme", CreatedAt: t0}
	f.org = org.ID
	mk := func(name string, roles ...chatvault.Role) chatvault.Actor {
		u := &chatvault.User{OrgID: org.ID, ID: uuid.NewString(), Username: name, DisplayName: name, PasswordHash: "$argon2id$fake",
			Roles: append([]chatvault.Role{chatvault.RoleMember}, roles...), CreatedAt: t0}
		var err error
		if name == "admin" {
			err = f.db.CreateOrg(f.ctx, org, u)
		} else {
			err = f.db.CreateUser(f.ctx, u)
		}
		if err != nil {
			f.t.Fatalf("create %s: %v", name, err)
		}
		return chatvault.Actor{OrgID: org.ID, UserID: u.ID, Roles: u.Roles}
	}
	f.admin = mk("admin", chatvault.RoleOrgAdmin)
	f.officer = mk("officer", chatvault.RoleComplianceOfficer)
	f.alice, f.bob = mk("alice"), mk("bob")
	if _, err := f.ret.SetPolicy(f.ctx, f.admin, p, "test"); err != nil {
		f.t.Fatalf("SetPolicy() = %v", err)
	}
}

func (f *retFixture) group() string {
	f.t.Helper()
	d, _, err := f.chat.CreateConversation(f.ctx, f.alice, chat.NewConversation{Kind: chatvault.Group, Title: "g", Members: []string{f.bob.UserID}})
	if err != nil {
		f.t.Fatalf("CreateConversation() = %v", err)
	}
	return d.ID
}

// stored is one message row as the table holds it.
type stored struct {
	id, state string
	body      bool // body IS NOT NULL
	expired   bool
	doc       bool // messages.doc IS NOT NULL
	docs      int  // its search_docs rows
	versions  int  // its message_versions rows
}

// rows reads conv's messages straight from the tables, by seq.
func (f *retFixture) rows(conv string) map[int64]stored {
	f.t.Helper()
	rs, err := f.conn.Query(f.ctx, `SELECT m.seq, m.id, m.state, m.body IS NOT NULL, m.expired_at IS NOT NULL, m.doc IS NOT NULL,
			coalesce(d.n, 0), coalesce(v.n, 0)
		FROM messages m
		LEFT JOIN (SELECT seq, count(*) AS n FROM search_docs WHERE org_id = $1 AND conversation_id = $2 GROUP BY seq) d ON d.seq = m.seq
		LEFT JOIN (SELECT seq, count(*) AS n FROM message_versions WHERE org_id = $1 AND conversation_id = $2 GROUP BY seq) v ON v.seq = m.seq
		WHERE m.org_id = $1 AND m.conversation_id = $2`, f.org, conv)
	if err != nil {
		f.t.Fatalf("read messages: %v", err)
	}
	out := map[int64]stored{}
	for rs.Next() {
		var seq int64
		var s stored
		if err := rs.Scan(&seq, &s.id, &s.state, &s.body, &s.expired, &s.doc, &s.docs, &s.versions); err != nil {
			f.t.Fatalf("scan message: %v", err)
		}
		out[seq] = s
	}
	if err := rs.Err(); err != nil {
		f.t.Fatalf("read messages: %v", err)
	}
	return out
}
