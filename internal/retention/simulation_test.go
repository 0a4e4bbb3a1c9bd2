package retention_test

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
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

var (
	simSeed = flag.Uint64("sim.seed", 20261121, "seed of the retention simulation")
	simDays = flag.Int("sim.days", 0, "days the retention simulation runs on every store; 0: each store's own length")
)

const day = 24 * time.Hour

// simMsg is the test's own record of a message.
type simMsg struct {
	conv, id, sender, text string
	seq                    int64
	sentAt                 time.Time
	rule, admin            bool
	stars                  map[string]bool
	recalledAt             *time.Time
	hiddenBy               map[string]bool
	destroyed              bool
	expiredSeen            *time.Time // the check that first saw it expired (gone from readers)
	batchOK                *time.Time // a confirmed batch delete may take it from this time
}

func (m *simMsg) important() bool { return m.rule || m.admin || len(m.stars) > 0 }

type simHold struct {
	id            string
	custodians    []string
	conversations []string
	from, to      *time.Time
}

// simulation drives the real services over a real store with a simulated clock, and keeps an
// independent model of what policy allows, to check the store against after every day.
type simulation struct {
	t     *testing.T
	rng   *rand.Rand
	ctx   context.Context
	clk   *clocktest.Clock
	db    chatvault.Store
	ret   *retention.Service
	chat  *chat.Service
	org   string
	admin chatvault.Actor
	co    chatvault.Actor
	users []chatvault.Actor
	convs []string
	msgs  map[string][]*simMsg // by conversation, in seq order

	policy     chatvault.Policy
	overrides  map[string]*int
	prefs      map[string]*int
	holds      []*simHold
	lastRelax  time.Time // the last change that could make something purgeable sooner
	lastRecall map[string]time.Time
}

// opener opens a fresh, empty store, sealing bodies if sealed, whose key dates follow clk; closed
// when t ends. It returns the store's crypto-shredding too (nil when bodies are not sealed).
type opener func(t *testing.T, clk chatvault.Clock, sealed bool) (chatvault.Store, retention.Shredder)

// engines are the stores the retention tests run on. The simulation runs SQLite plain for three
// years (as it always did) and PostgreSQL sealed, so between them it covers both, and
// crypto-shredding through the service. PostgreSQL runs one year: each simulated day costs it
// about six times what it costs SQLite (a round trip per statement), and one year already holds
// every kind of change but the policy lock (which comes after two); -sim.days runs any length on
// both.
var engines = []struct {
	name      string
	open      opener
	simSealed bool
	simDays   int
}{
	{"sqlite", func(t *testing.T, clk chatvault.Clock, sealed bool) (chatvault.Store, retention.Shredder) {
		dir := t.TempDir()
		opts := sqlite.Options{Now: clk.Now}
		if sealed {
			opts.Keyring = testKeyring(t)
		}
		db, err := sqlite.OpenWith(dir, opts)
		if err != nil {
			t.Fatalf("OpenWith() = %v", err)
		}
		t.Cleanup(func() { db.Close() })
		if !sealed {
			return db, nil
		}
		return db, db
	}, false, 3 * 365},
	{"postgres", func(t *testing.T, clk chatvault.Clock, sealed bool) (chatvault.Store, retention.Shredder) {
		opts := postgres.Options{Now: clk.Now}
		if sealed {
			opts.Keyring = testKeyring(t)
		}
		db, err := postgres.Open(context.Background(), pgtest.Server(t).NewDatabase(t), opts)
		if err != nil {
			t.Fatalf("Open() = %v", err)
		}
		t.Cleanup(func() { db.Close() })
		if !sealed {
			return db, nil
		}
		return db, db
	}, true, 365},
}

// testKeyring is a keyring over a key file of its own.
func testKeyring(t *testing.T) *keyring.Keyring {
	p, err := keyring.OpenFile(filepath.Join(t.TempDir(), "keys", "kek.json"))
	if err != nil {
		t.Fatalf("OpenFile() = %v", err)
	}
	return keyring.New(p, 0)
}

func TestMain(m *testing.M) { pgtest.Main(m) }

// auditOf is the audit log over db, sealing under db's keyring when it has one.
func auditOf(db chatvault.Store, clk chatvault.Clock) *audit.Service {
	var kr *keyring.Keyring
	if k, ok := db.(interface{ Keyring() *keyring.Keyring }); ok {
		kr = k.Keyring()
	}
	return audit.New(db, kr, clk)
}

// TestRetentionSimulation runs three simulated years of a busy org on each store: overrides, user
// choices in user_choice mode, stars, keyword rules, admin flags, holds placed and released,
// policy changes, recalls, batch deletes, joins and leaves; the job runs daily. After every day it
// checks that nothing purgeable survives past one interval plus grace, that nothing held,
// important within its window or younger than min_days was ever destroyed, and that every user
// sees exactly what the visibility rules allow. Rerun a failure with -sim.seed=N.
func TestRetentionSimulation(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			days := cmp.Or(*simDays, e.simDays)
			simulate(t, func(t *testing.T, clk chatvault.Clock) (chatvault.Store, retention.Shredder) {
				return e.open(t, clk, e.simSealed)
			}, *simSeed, days)
		})
	}
}

func simulate(t *testing.T, open func(*testing.T, chatvault.Clock) (chatvault.Store, retention.Shredder), seed uint64, days int) {
	t.Logf("seed %d", seed)
	s := newSimulation(t, open, seed)
	start := s.clk.Now()
	for d := 0; d < days; d++ {
		s.clk.Set(start.Add(time.Duration(d)*day + 9*time.Hour))
		s.day(d)
		s.clk.Set(start.Add(time.Duration(d)*day + 23*time.Hour))
		if _, err := s.ret.RunAll(s.ctx, false); err != nil {
			t.Fatalf("seed %d day %d: run: %v", seed, d, err)
		}
		s.check(d)
	}
	total, destroyed := 0, 0
	for _, ms := range s.msgs {
		for _, m := range ms {
			total++
			if m.destroyed {
				destroyed++
			}
		}
	}
	t.Logf("%d messages, %d destroyed", total, destroyed)
	if destroyed == 0 || destroyed == total {
		t.Fatalf("seed %d: %d of %d destroyed: the simulation exercised nothing", seed, destroyed, total)
	}
}

func newSimulation(t *testing.T, open func(*testing.T, chatvault.Clock) (chatvault.Store, retention.Shredder), seed uint64) *simulation {
	clk := clocktest.New(time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC))
	db, shredder := open(t, clk)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	aud := auditOf(db, clk)
	ret := retention.New(db, aud, clk, logger, shredder)
	s := &simulation{t: t, rng: rand.New(rand.NewPCG(seed, 7)), ctx: context.Background(), clk: clk, db: db, ret: ret,
		chat: chat.NewService(db, clk, chat.Config{RecallWindow: 2 * time.Minute, Classifier: ret, Audit: aud}),
		msgs: map[string][]*simMsg{}, overrides: map[string]*int{}, prefs: map[string]*int{}, lastRecall: map[string]time.Time{},
		policy: chatvault.DefaultPolicy()}
	org := &chatvault.Org{ID: uuid.NewString(), Slug: "sim", Name: "Sim", CreatedAt: clk.Now()}
	mk := func(name string, roles ...chatvault.Role) chatvault.Actor {
		u := &chatvault.User{OrgID: org.ID, ID: uuid.NewString(), Username: name, DisplayName: name, PasswordHash: "x",
			Roles: append([]chatvault.Role{chatvault.RoleMember}, roles...), CreatedAt: clk.Now()}
		return chatvault.Actor{OrgID: org.ID, UserID: u.ID, Roles: u.Roles}
	}
	s.org = org.ID
	s.admin = mk("admin", chatvault.RoleOrgAdmin)
	adminUser := &chatvault.User{OrgID: org.ID, ID: s.admin.UserID, Username: "admin", DisplayName: "admin", PasswordHash: "x", Roles: s.admin.Roles, CreatedAt: clk.Now()}
	if err := db.CreateOrg(s.ctx, org, adminUser); err != nil {
		t.Fatal(err)
	}
	s.co = s.createUser(mk("officer", chatvault.RoleComplianceOfficer))
	for i := range 5 {
		s.users = append(s.users, s.createUser(mk(fmt.Sprintf("u%d", i))))
	}
	if _, err := ret.CreateRule(s.ctx, s.admin, "合同", false); err != nil {
		t.Fatal(err)
	}
	if _, err := ret.CreateRule(s.ctx, s.admin, `HT-\d{4}`, true); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		members := []string{}
		for _, u := range s.users[1:] {
			if s.rng.IntN(2) == 0 {
				members = append(members, u.UserID)
			}
		}
		kind := chatvault.Group
		if i >= 4 {
			kind, members = chatvault.Direct, []string{s.users[i-3].UserID}
		}
		d, _, err := s.chat.CreateConversation(s.ctx, s.users[0], chat.NewConversation{Kind: kind, Members: members, HistoryVisible: i == 1})
		if err != nil {
			t.Fatal(err)
		}
		s.convs = append(s.convs, d.ID)
	}
	s.setPolicy(chatvault.Policy{DefaultDays: 60, Mode: chatvault.ModeOrg, GraceDays: 3, ImportantDays: 200})
	return s
}

func (s *simulation) createUser(a chatvault.Actor) chatvault.Actor {
	u := &chatvault.User{OrgID: s.org, ID: a.UserID, Username: "n" + a.UserID[:8], DisplayName: "x", PasswordHash: "x", Roles: a.Roles, CreatedAt: s.clk.Now()}
	if err := s.db.CreateUser(s.ctx, u); err != nil {
		s.t.Fatal(err)
	}
	return a
}

func (s *simulation) relax() { s.lastRelax = s.clk.Now() }

func (s *simulation) setPolicy(p chatvault.Policy) {
	got, err := s.ret.SetPolicy(s.ctx, s.admin, p, "simulation")
	if s.policy.Locked {
		return // the caller checks what a locked policy allows
	}
	if err != nil {
		s.t.Fatalf("set policy %+v: %v", p, err)
	}
	s.policy = *got
	s.relax()
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func ptr(v int) *int { return &v }

// day performs one day of activity.
func (s *simulation) day(d int) {
	for range 1 + s.rng.IntN(8) {
		s.send()
	}
	switch op := s.rng.IntN(100); {
	case op < 5: // a policy change
		p := s.policy
		p.DefaultDays = pick(s.rng, []int{20, 45, 60, 90, 180, 0})
		p.MinDays = pick(s.rng, []int{0, 0, 10, 15})
		p.MaxDays = pick(s.rng, []int{0, 0, 400})
		p.ImportantDays = pick(s.rng, []int{0, 100, 200, 365})
		p.GraceDays = pick(s.rng, []int{0, 1, 3, 7})
		p.Mode = pick(s.rng, []chatvault.RetentionMode{chatvault.ModeOrg, chatvault.ModeUserChoice})
		p.PreserveRecall = s.rng.IntN(2) == 0
		if p.MaxDays > 0 && p.DefaultDays == 0 {
			p.DefaultDays = 180
		}
		if p.DefaultDays > 0 && p.DefaultDays < p.MinDays {
			p.DefaultDays = p.MinDays
		}
		if s.policy.Locked {
			_, err := s.ret.SetPolicy(s.ctx, s.admin, p, "simulation")
			shorter := !(p.DefaultDays == 0 || s.policy.DefaultDays != 0 && p.DefaultDays >= s.policy.DefaultDays) ||
				p.GraceDays < s.policy.GraceDays || p.MinDays < s.policy.MinDays || p.Mode != s.policy.Mode ||
				s.policy.PreserveRecall && !p.PreserveRecall || !(p.ImportantDays == 0 || s.policy.ImportantDays != 0 && p.ImportantDays >= s.policy.ImportantDays) ||
				(p.MaxDays != 0 && (s.policy.MaxDays == 0 || p.MaxDays < s.policy.MaxDays))
			if shorter != (chatvault.ErrorCode(err) == chatvault.EFORBIDDEN) {
				s.t.Fatalf("day %d: locked policy %+v -> %+v: err %v; shortening=%v", d, s.policy, p, err, shorter)
			}
			if err == nil {
				p.Locked, p.LockedAt = true, s.policy.LockedAt
				s.policy = p
				s.relax()
			}
			return
		}
		s.setPolicy(p)
	case op < 9: // an override on one conversation
		c := pick(s.rng, s.convs)
		var days *int
		if s.rng.IntN(3) > 0 {
			days = ptr(pick(s.rng, []int{15, 30, 120, 0}))
		}
		err := s.ret.SetConversationRetention(s.ctx, s.admin, c, days, "simulation")
		if err == nil {
			s.overrides[c] = days
			s.relax()
		} else if chatvault.ErrorCode(err) != chatvault.EINVALID && chatvault.ErrorCode(err) != chatvault.EFORBIDDEN {
			s.t.Fatalf("override: %v", err)
		}
	case op < 13: // a user's own choice
		u := pick(s.rng, s.users)
		var days *int
		if s.rng.IntN(4) > 0 {
			days = ptr(pick(s.rng, []int{0, 365, 90, 30}))
		}
		if err := s.ret.SetMyRetention(s.ctx, u, days); err != nil {
			s.t.Fatal(err)
		}
		s.prefs[u.UserID] = days
		s.relax()
	case op < 18: // a star, or taking one back
		s.star()
	case op < 20: // an admin flag
		if m := s.anyMessage(func(m *simMsg) bool { return !m.destroyed }); m != nil {
			on := s.rng.IntN(2) == 0
			if _, err := s.ret.Flag(s.ctx, s.admin, m.conv, m.id, on); err != nil && chatvault.ErrorCode(err) != chatvault.ECONFLICT {
				s.t.Fatal(err)
			} else if err == nil {
				m.admin = on
				if !on {
					s.relax()
				}
			}
		}
	case op < 24: // a hold
		s.placeHold()
	case op < 28 && len(s.holds) > 0:
		i := s.rng.IntN(len(s.holds))
		if _, err := s.ret.ReleaseHold(s.ctx, s.co, s.holds[i].id, "case closed"); err != nil {
			s.t.Fatal(err)
		}
		s.holds = slices.Delete(s.holds, i, i+1)
		s.relax()
	case op < 31: // a batch delete
		s.batchDelete()
	case op < 34: // hide or clear
		s.hideOrClear()
	case op < 37: // someone leaves or joins a group
		s.membership()
	case op < 38 && d > 2*365 && !s.policy.Locked:
		p, err := s.ret.Lock(s.ctx, s.admin, "regulator asked")
		if err != nil {
			s.t.Fatal(err)
		}
		s.policy = *p
	}
}

func (s *simulation) send() {
	c := pick(s.rng, s.convs)
	var from chatvault.Actor
	for range 10 {
		u := pick(s.rng, s.users)
		if p, err := s.db.FindParticipant(s.ctx, s.org, c, u.UserID); err == nil && p.Active {
			from = u
			break
		}
	}
	if from.UserID == "" {
		return
	}
	words := []string{"你好", "明天开会", "ok", "报价", "合同", "HT-2031", "meeting", "👍", "上海"}
	text := fmt.Sprintf("%s %s %d", pick(s.rng, words), pick(s.rng, words), s.rng.IntN(1000))
	m, _, err := s.chat.Send(s.ctx, from, c, chat.SendRequest{ClientMsgID: uuid.NewString(), Text: text})
	if err != nil {
		s.t.Fatalf("send: %v", err)
	}
	sm := &simMsg{conv: c, id: m.ID, sender: from.UserID, text: text, seq: m.Seq, sentAt: m.SentAt,
		rule: strings.Contains(text, "合同") || strings.Contains(text, "HT-2031"), stars: map[string]bool{}, hiddenBy: map[string]bool{}}
	s.msgs[c] = append(s.msgs[c], sm)
	if sm.important() != m.Important {
		s.t.Fatalf("message %q important=%v; rules say %v", text, m.Important, sm.important())
	}
	if s.rng.IntN(25) == 0 { // sent to the wrong chat: recalled at once
		if _, err := s.chat.Recall(s.ctx, from, c, m.ID); err != nil {
			s.t.Fatalf("recall: %v", err)
		}
		now := s.clk.Now()
		sm.recalledAt = &now
	}
}

func (s *simulation) anyMessage(ok func(*simMsg) bool) *simMsg {
	c := pick(s.rng, s.convs)
	ms := s.msgs[c]
	for range 20 {
		if len(ms) == 0 {
			return nil
		}
		if m := ms[len(ms)-1-s.rng.IntN(min(len(ms), 300))]; ok(m) {
			return m
		}
	}
	return nil
}

func (s *simulation) star() {
	m := s.anyMessage(func(m *simMsg) bool { return !m.destroyed && m.recalledAt == nil })
	if m == nil {
		return
	}
	u := pick(s.rng, s.users)
	on := !m.stars[u.UserID]
	_, err := s.chat.Star(s.ctx, u, m.conv, m.id, on)
	switch chatvault.ErrorCode(err) {
	case "":
		if on {
			m.stars[u.UserID] = true
		} else {
			delete(m.stars, u.UserID)
			s.relax()
		}
	case chatvault.ENOTFOUND, chatvault.ECONFLICT: // not visible to that user, or expired
	default:
		s.t.Fatalf("star: %v", err)
	}
}

func (s *simulation) placeHold() {
	req := retention.HoldRequest{Name: "case", Reason: "litigation"}
	switch s.rng.IntN(4) {
	case 0:
		req.Custodians = []string{pick(s.rng, s.users).UserID}
	case 1:
		req.Conversations = []string{pick(s.rng, s.convs)}
	case 2:
		from, to := s.clk.Now().Add(-time.Duration(30+s.rng.IntN(300))*day), s.clk.Now().Add(-time.Duration(s.rng.IntN(30))*day)
		req.From, req.To = &from, &to
	case 3:
		if s.rng.IntN(4) > 0 {
			return // org-wide holds are rare
		}
	}
	h, err := s.ret.CreateHold(s.ctx, s.co, req)
	if err != nil {
		s.t.Fatal(err)
	}
	s.holds = append(s.holds, &simHold{id: h.ID, custodians: req.Custodians, conversations: req.Conversations, from: req.From, to: req.To})
}

func (s *simulation) batchDelete() {
	c := pick(s.rng, s.convs)
	from := s.clk.Now().Add(-time.Duration(20+s.rng.IntN(200)) * day)
	to := from.Add(time.Duration(1+s.rng.IntN(20)) * day)
	prev, err := s.ret.PreviewDeletion(s.ctx, s.admin, chatvault.BatchFilter{ConversationID: c, From: &from, To: &to}, "cleanup")
	if s.policy.Locked {
		if chatvault.ErrorCode(err) != chatvault.EFORBIDDEN {
			s.t.Fatalf("batch delete under a locked policy: %v; want forbidden", err)
		}
		return
	}
	if err != nil {
		s.t.Fatal(err)
	}
	now := s.clk.Now()
	for _, m := range s.msgs[c] {
		if !m.sentAt.Before(from) && m.sentAt.Before(to) {
			m.batchOK = &now
		}
	}
	if _, err := s.ret.ConfirmDeletion(s.ctx, s.admin, prev.Token); err != nil {
		s.t.Fatal(err)
	}
}

func (s *simulation) hideOrClear() {
	u := pick(s.rng, s.users)
	if s.rng.IntN(4) == 0 {
		c := pick(s.rng, s.convs)
		if _, err := s.chat.ClearHistory(s.ctx, u, c); err != nil && chatvault.ErrorCode(err) != chatvault.ENOTFOUND {
			s.t.Fatal(err)
		}
		return
	}
	if m := s.anyMessage(func(m *simMsg) bool { return !m.destroyed }); m != nil {
		err := s.chat.Hide(s.ctx, u, m.conv, m.id)
		switch chatvault.ErrorCode(err) {
		case "":
			m.hiddenBy[u.UserID] = true
		case chatvault.ENOTFOUND: // not visible to that user
		default:
			s.t.Fatal(err)
		}
	}
}

func (s *simulation) membership() {
	c := pick(s.rng, s.convs[:4])
	u := pick(s.rng, s.users[1:])
	p, err := s.db.FindParticipant(s.ctx, s.org, c, u.UserID)
	if err == nil && p.Active {
		if err := s.chat.RemoveMember(s.ctx, u, c, u.UserID); err != nil {
			s.t.Fatal(err)
		}
		s.relax() // the longest choice among members may have left with them
		return
	}
	if _, err := s.chat.AddMembers(s.ctx, s.users[0], c, []string{u.UserID}); err != nil {
		s.t.Fatal(err)
	}
}

// effective is the oracle for a conversation's retention: override; else in user_choice mode the
// longest choice among current members (unset counts as the default); else the default; clamped.
func (s *simulation) effective(conv string) int {
	p := s.policy
	longer := func(a, b int) bool { return a == 0 || (b != 0 && a >= b) }
	d := p.DefaultDays
	if o, ok := s.overrides[conv]; ok && o != nil {
		d = *o
	} else if p.Mode == chatvault.ModeUserChoice {
		parts, _ := s.db.FindParticipants(s.ctx, s.org, conv)
		best := -1
		for _, pt := range parts {
			if !pt.Active {
				continue
			}
			v := p.DefaultDays
			if pref := s.prefs[pt.UserID]; pref != nil {
				v = *pref
			}
			if best == -1 || longer(v, best) {
				best = v
			}
		}
		if best != -1 {
			d = best
		}
	}
	return clampDays(d, p)
}

func clampDays(d int, p chatvault.Policy) int {
	if p.MinDays > 0 && d != 0 && d < p.MinDays {
		d = p.MinDays
	}
	if p.MaxDays > 0 && (d == 0 || d > p.MaxDays) {
		d = p.MaxDays
	}
	return d
}

// keepUntil is when policy lets m go (ok=false: never).
func (s *simulation) keepUntil(m *simMsg) (time.Time, bool) {
	d := s.effective(m.conv)
	if m.important() {
		if d == 0 || s.policy.ImportantDays == 0 {
			d = 0
		} else {
			d = max(d, s.policy.ImportantDays)
		}
		d = clampDays(d, s.policy)
	}
	if d == 0 {
		return time.Time{}, false
	}
	return m.sentAt.Add(time.Duration(d) * day), true
}

func (s *simulation) held(m *simMsg, parts []*chatvault.Participant) bool {
	for _, h := range s.holds {
		if len(h.conversations) > 0 && !slices.Contains(h.conversations, m.conv) {
			continue
		}
		if len(h.custodians) > 0 && !slices.ContainsFunc(parts, func(p *chatvault.Participant) bool { return slices.Contains(h.custodians, p.UserID) }) {
			continue
		}
		if (h.from == nil || !m.sentAt.Before(*h.from)) && (h.to == nil || m.sentAt.Before(*h.to)) {
			return true
		}
	}
	return false
}

// check compares the store with the model after a day's run.
func (s *simulation) check(d int) {
	now := s.clk.Now()
	grace := time.Duration(s.policy.GraceDays) * day
	fail := func(format string, args ...any) {
		s.t.Helper()
		s.t.Fatalf("seed %d day %d (%s): %s", *simSeed, d, now.Format(time.DateOnly), fmt.Sprintf(format, args...))
	}
	// Daily checks start after the prefix already destroyed (it cannot change: that is checked
	// weekly, over everything), so the test stays linear in the days simulated.
	floors := map[string]int64{}
	stored := map[string][]*chatvault.Message{}
	for _, c := range s.convs {
		floor := int64(0)
		if d%7 != 0 {
			for _, m := range s.msgs[c] {
				if !m.destroyed {
					break
				}
				floor = m.seq
			}
		}
		floors[c] = floor
		ms, err := s.db.FindMessages(s.ctx, s.org, c, chatvault.MessageQuery{After: floor, Limit: 1 << 30})
		if err != nil {
			s.t.Fatal(err)
		}
		stored[c] = ms
		parts, err := s.db.FindParticipants(s.ctx, s.org, c)
		if err != nil {
			s.t.Fatal(err)
		}
		if int64(len(ms)) != int64(len(s.msgs[c]))-floor {
			fail("conversation %s holds %d messages after seq %d; the model has %d", c, len(ms), floor, int64(len(s.msgs[c]))-floor)
		}
		for i, st := range ms {
			m := s.msgs[c][int64(i)+floor]
			purged := st.State == chatvault.StatePurged
			if purged && !m.destroyed {
				m.destroyed = true
				// Newly destroyed: was it allowed to go?
				if s.held(m, parts) {
					fail("destroyed message %d of %s is under a hold", m.seq, c)
				}
				// Policy destroys what it lets go today and what has been gone from readers for the
				// whole grace window (the window starts when the message expired); with no grace
				// window, the run that expires a message destroys it too.
				until, ok := s.keepUntil(m)
				graceOver := m.expiredSeen != nil && !now.Before(m.expiredSeen.Add(grace)) || m.expiredSeen == nil && grace == 0
				byPolicy := ok && !now.Before(until) && graceOver
				byRecall := m.recalledAt != nil && !s.policy.PreserveRecall
				byBatch := m.batchOK != nil && m.sentAt.Before(m.batchOK.Add(-time.Duration(s.policy.MinDays)*day))
				if !byPolicy && !byRecall && !byBatch {
					fail("message %d of %s (sent %s, important %v, expired %v) destroyed; policy keeps it until %v + %v grace (ok=%v); policy %+v override %v",
						m.seq, c, m.sentAt.Format(time.DateTime), m.important(), st.ExpiredAt, until.Format(time.DateTime), grace, ok, s.policy, s.overrides[c])
				}
				if st.Text != "" {
					fail("destroyed message %d still has its body", m.seq)
				}
			}
			if m.destroyed && !purged {
				fail("message %d of %s came back after destruction", m.seq, c)
			}
			switch {
			case st.ExpiredAt != nil && m.expiredSeen == nil:
				m.expiredSeen = &now
			case st.ExpiredAt == nil:
				m.expiredSeen = nil // restored
			}
			if m.destroyed || s.held(m, parts) {
				continue
			}
			// Still here: it must not be overdue.
			slack := day + 2*time.Hour // one run interval
			if m.recalledAt != nil && !s.policy.PreserveRecall && now.After(later(*m.recalledAt, s.lastRelax).Add(slack)) {
				fail("recalled message %d of %s survives a run after its recall", m.seq, c)
			}
			if until, ok := s.keepUntil(m); ok && now.After(later(until, s.lastRelax).Add(grace+slack)) {
				fail("message %d of %s (sent %s, keep until %s, important %v) survives past interval plus grace",
					m.seq, c, m.sentAt.Format(time.DateOnly), until.Format(time.DateOnly), m.important())
			}
		}
	}
	s.checkVisibility(fail, stored, floors)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// checkVisibility reads every conversation as every user through the chat read path and compares
// it with what the rules allow: membership windows, cleared history, hides, the user's own window;
// recalled and expired messages only as placeholders.
func (s *simulation) checkVisibility(fail func(string, ...any), stored map[string][]*chatvault.Message, floors map[string]int64) {
	now := s.clk.Now()
	for _, u := range s.users {
		pref := s.prefs[u.UserID]
		u.RetentionDays = pref
		for _, c := range s.convs {
			part, err := s.db.FindParticipant(s.ctx, s.org, c, u.UserID)
			if chatvault.ErrorCode(err) == chatvault.ENOTFOUND {
				continue
			}
			floor := floors[c]
			got := map[int64]chatvault.Message{}
			after := floor
			for {
				page, err := s.chat.Messages(s.ctx, u, c, chat.Page{After: &after, Limit: 200})
				if err != nil {
					s.t.Fatal(err)
				}
				for _, m := range page.Messages {
					got[m.Seq] = *m
					after = m.Seq
				}
				if !page.HasMore {
					break
				}
			}
			for _, m := range s.msgs[c][floor:] {
				// A hide is a per-user row destruction removes with the rest: afterwards the
				// hider sees the tombstone like everyone else.
				want := part.Sees(m.seq) && (!m.hiddenBy[u.UserID] || m.destroyed) && (pref == nil || *pref == 0 || !m.sentAt.Before(now.Add(-time.Duration(*pref)*day)))
				g, have := got[m.seq]
				if want != have {
					fail("user %s, %s seq %d: shown=%v, rules say %v", u.UserID[:8], c[:8], m.seq, have, want)
				}
				if !have {
					continue
				}
				switch {
				case m.destroyed || stored[c][m.seq-1-floor].ExpiredAt != nil:
					if g.State != chatvault.StatePurged || g.Text != "" {
						fail("seq %d is gone but shows as %s %q", m.seq, g.State, g.Text)
					}
				case m.recalledAt != nil:
					if g.State != chatvault.StateRecalled || g.Text != "" {
						fail("recalled seq %d shows as %s %q", m.seq, g.State, g.Text)
					}
				default:
					if g.State != chatvault.StateLive || g.Text != m.text {
						fail("seq %d shows %s %q; want live %q", m.seq, g.State, g.Text, m.text)
					}
				}
			}
		}
	}
}
