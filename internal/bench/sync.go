package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/account"
	"github.com/chatvault/chatvault/internal/audit"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/sqlite"
	"github.com/google/uuid"
)

// SyncSizes sizes the sync scenario.
type SyncSizes struct {
	// Conversations is how many conversations the incremental-sync user is in; Changed how many of
	// them change (one new message each, from the other member) before each incremental sync.
	Conversations int
	Changed       int
	// InitialConversations is how many conversations the initial-sync user (a new device) is in.
	InitialConversations int
	// Messages is how many messages each of those conversations holds before measuring.
	Messages int
}

// DefaultSyncSizes are the sizes of the targets.
func DefaultSyncSizes() SyncSizes {
	return SyncSizes{Conversations: 5000, Changed: 3, InitialConversations: 1000, Messages: 3}
}

func (s SyncSizes) validate() error {
	if s.Conversations < 1 || s.InitialConversations < 1 || s.Messages < 1 || s.Changed < 1 || s.Changed > s.Conversations ||
		s.Changed > chat.MaxSyncConversations {
		return fmt.Errorf("sync sizes: conversations, initial conversations and messages must be at least 1, and changed 1-%d and at most conversations", chat.MaxSyncConversations)
	}
	return nil
}

// syncUser is a user the sync scenario adds to the data set, with their conversations.
type syncUser struct {
	user  *chatvault.User
	actor chatvault.Actor
	convs []syncConv
}

type syncConv struct {
	id      string
	partner *chatvault.User
}

// Sync measures what a device waits for when it catches up: (a) an incremental sync of a user in
// Sync.Conversations conversations of which Sync.Changed changed since the device's cursor (a fresh
// change set before every repetition, made through chat.Service.Send or the API), and (b) the
// initial sync of a new device of a user in Sync.InitialConversations conversations. Each is
// measured in process (chat.Service.Sync / InitialSync: the server-side time) and over HTTP (GET
// /api/v1/sync against chatvault serve). The reference is the engine's floor for reading every
// membership of the 5,000-conversation user (one prepared indexed query, raw bytes): what an
// incremental sync exists to avoid, and what no sync that reads all memberships can beat.
func Sync(ctx context.Context, cfg Config) (*Report, error) {
	sz := cfg.Sync
	if err := sz.validate(); err != nil {
		return nil, err
	}
	ds, rep, err := cfg.start("sync")
	if err != nil {
		return nil, err
	}
	rep.Settings["conversations"] = sz.Conversations
	rep.Settings["changed"] = sz.Changed
	rep.Settings["initial_conversations"] = sz.InitialConversations
	rep.Settings["messages_per_conversation"] = sz.Messages

	l, dir, err := cfg.workStore(ctx, ds, "sync", rep)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	defer l.close()
	org := ds.d.Orgs[0]
	hash, err := account.HashPassword(ds.password)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	inc, err := addSyncUser(ctx, l, org, "sync-bench-incremental", hash, sz.Conversations, sz.Messages, cfg.Seed)
	if err != nil {
		return nil, err
	}
	ini, err := addSyncUser(ctx, l, org, "sync-bench-initial", hash, sz.InitialConversations, sz.Messages, cfg.Seed+1)
	if err != nil {
		return nil, err
	}
	cfg.Logf("sync: %d + %d conversations with %d messages each made through the store in %.1fs",
		sz.Conversations, sz.InitialConversations, sz.Messages, time.Since(t0).Seconds())
	rep.Notes = append(rep.Notes, fmt.Sprintf("two users added to org %s of the data set: one in %d conversations, one in %d; each conversation made "+
		"with CreateConversation (the user and one other member of the org; direct while partners last, then two-member groups) and given %d messages "+
		"with AppendMessage, so the change feed numbered them as it numbers any write", org.Org.Slug, sz.Conversations, sz.InitialConversations, sz.Messages))

	// Devices for everyone the HTTP paths act as, made directly in the store (see SignIn).
	who := []*chatvault.User{inc.user, ini.user}
	partnerIdx := map[string]int{}
	for _, c := range inc.convs {
		if _, ok := partnerIdx[c.partner.ID]; !ok {
			partnerIdx[c.partner.ID] = len(who)
			who = append(who, c.partner)
		}
	}
	toks, err := SignIn(ctx, l.db, who, "chatvault bench sync")
	if err != nil {
		return nil, err
	}
	tokenOf := func(u *chatvault.User) string {
		if u == inc.user {
			return toks[0]
		}
		return toks[partnerIdx[u.ID]]
	}

	raw, err := l.db.RawMemberships()
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	r := rand.New(rand.NewPCG(cfg.Seed, 0x73796e63))
	pick := func() []syncConv {
		idx := r.Perm(len(inc.convs))[:sz.Changed]
		out := make([]syncConv, len(idx))
		for i, j := range idx {
			out[i] = inc.convs[j]
		}
		return out
	}
	// change sends one message to each conversation, from the other member, concurrently (as
	// other people would), through send.
	change := func(ctx context.Context, convs []syncConv, send func(ctx context.Context, c syncConv, clientMsgID, text string) error) error {
		errs := make([]error, len(convs))
		var wg sync.WaitGroup
		for i, c := range convs {
			id, text := "sync-"+token(r, 20), Body(r)
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = send(ctx, c, id, text)
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	serviceSend := func(ctx context.Context, c syncConv, id, text string) error {
		a := chatvault.Actor{OrgID: c.partner.OrgID, UserID: c.partner.ID, Roles: c.partner.Roles}
		_, _, err := l.chat.Send(ctx, a, c.id, chat.SendRequest{ClientMsgID: id, Text: text})
		return err
	}
	wantConvs := func(got, want int, what string) error {
		if got != want {
			return fmt.Errorf("%s returned %d conversations, want %d", what, got, want)
		}
		return nil
	}
	warm := max(5, min(50, cfg.Count))

	// Reference first, then the in-process paths, each after a warm-up.
	rawOp := func(u *syncUser, want int) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			n, err := raw.List(ctx, u.user.OrgID, u.user.ID)
			if err == nil {
				err = wantConvs(n, want, "the raw membership listing")
			}
			return err
		}
	}
	cfg.Logf("sync: raw reference (list the %d memberships)", sz.Conversations)
	rep.Reference = cfg.repeated(ctx, fmt.Sprintf("sqlite, one prepared SELECT of the user's %d memberships (participants_user) joined with their conversations' last_event_id, rows as raw bytes", sz.Conversations),
		"one listing", warm, nil, rawOp(inc, sz.Conversations))
	rep.Reference.Note = "the floor of any sync that reads every membership; an incremental sync should cost less"

	cursor, err := l.db.LastEventID(ctx)
	if err != nil {
		return nil, err
	}
	incService := func(ctx context.Context) error {
		res, err := l.chat.Sync(ctx, inc.actor, cursor)
		if err != nil {
			return err
		}
		if cursor, err = chat.DecodeCursor(res.Cursor); err != nil {
			return err
		}
		return wantConvs(len(res.Conversations), sz.Changed, "Sync")
	}
	prepService := func(ctx context.Context) error { return change(ctx, pick(), serviceSend) }
	cfg.Logf("sync: incremental, chat.Service.Sync in process (%d of %d conversations changed)", sz.Changed, sz.Conversations)
	rep.add("incremental_service", cfg.repeated(ctx, fmt.Sprintf("chat.Service.Sync in process: %d of the user's %d conversations changed since the cursor (a fresh change set each time, not timed)", sz.Changed, sz.Conversations),
		"one sync", warm, prepService, incService))

	iniService := func(ctx context.Context) error {
		res, err := l.chat.InitialSync(ctx, ini.actor)
		if err == nil {
			err = wantConvs(len(res.Conversations), sz.InitialConversations, "InitialSync")
		}
		return err
	}
	cfg.Logf("sync: initial, chat.Service.InitialSync in process (%d conversations)", sz.InitialConversations)
	rep.add("initial_service", cfg.repeated(ctx, fmt.Sprintf("chat.Service.InitialSync in process: a new device of a user in %d conversations (summaries with last message and unread count)", sz.InitialConversations),
		"one sync", warm, nil, iniService))
	cfg.Logf("sync: raw listing of the %d memberships of the initial-sync user", sz.InitialConversations)
	rep.add("raw_initial_listing", cfg.repeated(ctx, fmt.Sprintf("sqlite, the same raw membership listing for the user in %d conversations: the initial sync's engine floor", sz.InitialConversations),
		"one listing", warm, nil, rawOp(ini, sz.InitialConversations)))

	raw.Close()
	if err := l.close(); err != nil {
		return nil, err
	}

	err = cfg.withServer(ctx, dir, func(srv *server) error {
		c := newClient(srv.addr, sz.Changed+2)
		defer c.close()
		httpSend := func(ctx context.Context, sc syncConv, id, text string) error {
			return c.send(ctx, tokenOf(sc.partner), sc.id, id, text)
		}
		cur := chat.EncodeCursor(cursor)
		incHTTP := func(ctx context.Context) error {
			out, err := c.do(ctx, http.MethodGet, "/api/v1/sync?since="+cur, tokenOf(inc.user), nil, http.StatusOK)
			if err != nil {
				return err
			}
			var res struct {
				Cursor        string            `json:"cursor"`
				Conversations []json.RawMessage `json:"conversations"`
			}
			if err := json.Unmarshal(out, &res); err != nil {
				return fmt.Errorf("decode sync: %w", err)
			}
			cur = res.Cursor
			return wantConvs(len(res.Conversations), sz.Changed, "GET /api/v1/sync?since=")
		}
		prepHTTP := func(ctx context.Context) error { return change(ctx, pick(), httpSend) }
		cfg.Logf("sync: incremental over HTTP (GET /api/v1/sync?since= to chatvault serve, pid %d)", srv.pid())
		rep.add("incremental_http", cfg.repeatedAgainst(ctx, srv, fmt.Sprintf("GET /api/v1/sync?since=CURSOR against chatvault serve: %d of %d conversations changed (by POSTs from the other members, not timed)", sz.Changed, sz.Conversations),
			"one sync (200, JSON)", warm, prepHTTP, incHTTP))
		unread := []byte(`"unread_count":`)
		iniHTTP := func(ctx context.Context) error {
			out, err := c.do(ctx, http.MethodGet, "/api/v1/sync", toks[1], nil, http.StatusOK)
			if err != nil {
				return err
			}
			// Counting keys rather than decoding keeps the client's CPU off the server's cores.
			return wantConvs(bytes.Count(out, unread), sz.InitialConversations, "GET /api/v1/sync")
		}
		cfg.Logf("sync: initial over HTTP (GET /api/v1/sync), %d conversations", sz.InitialConversations)
		rep.add("initial_http", cfg.repeatedAgainst(ctx, srv, fmt.Sprintf("GET /api/v1/sync (no since) against chatvault serve: a new device of a user in %d conversations", sz.InitialConversations),
			"one sync (200, JSON)", warm, nil, iniHTTP))
		return nil
	})
	if err != nil {
		return nil, err
	}
	rep.finish()
	rep.Notes = append(rep.Notes, "latencies are one client syncing again and again; rate = 1 / mean latency (the untimed change set between syncs is not counted)")
	return rep, nil
}

// openSealed opens a working copy in process the way `chatvault serve` opens its data directory:
// with encryption at rest, keyed by the key file DIR/keys/kek.json. A generated data set is
// loaded in plain text, so the first keyed open seals every body (the migration serve would run
// before it listens); doing it here means the in-process and HTTP paths measure the same store.
func openSealed(dir string, logf func(string, ...any)) (*local, error) {
	p, err := keyring.OpenFile(filepath.Join(dir, sqlite.KeysDir, "kek.json"))
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	db, err := sqlite.OpenWith(dir, sqlite.Options{Keyring: keyring.New(p, 0)})
	if err != nil {
		return nil, err
	}
	logf("opened the working copy with encryption at rest (sealing its plain bodies) in %.1fs", time.Since(t0).Seconds())
	clock := chatvault.SystemClock{}
	return &local{db: db, chat: chat.NewService(db, clock, chat.Config{Audit: audit.New(db, db.Keyring(), clock)}), accts: account.NewService(db, clock, account.Config{Audit: audit.New(db, db.Keyring(), clock)})}, nil
}

// addSyncUser adds a user to org with n conversations (each with the user and one other member of
// the org) holding messages messages each, through the store's own write paths.
func addSyncUser(ctx context.Context, l *local, org *Org, username, hash string, n, messages int, seed uint64) (*syncUser, error) {
	now := chatvault.SystemClock{}.Now()
	u := &chatvault.User{OrgID: org.Org.ID, ID: uuid.Must(uuid.NewV7()).String(), Username: username, DisplayName: username,
		Roles: []chatvault.Role{chatvault.RoleMember}, CreatedAt: now, PasswordHash: hash}
	if err := l.db.CreateUser(ctx, u); err != nil {
		return nil, fmt.Errorf("create %s: %w", username, err)
	}
	su := &syncUser{user: u, actor: chatvault.Actor{OrgID: u.OrgID, UserID: u.ID, Roles: u.Roles}}
	partners := org.Users
	su.convs = make([]syncConv, n)
	err := parallel(ctx, n, func(i int) error {
		p := partners[i%len(partners)]
		c := &chatvault.Conversation{OrgID: u.OrgID, ID: uuid.Must(uuid.NewV7()).String(), CreatedBy: u.ID, CreatedAt: now}
		if i < len(partners) {
			pair := []string{u.ID, p.ID}
			slices.Sort(pair)
			c.Kind, c.DirectKey = chatvault.Direct, strings.Join(pair, ":")
		} else {
			c.Kind, c.Title = chatvault.Group, fmt.Sprintf("%s %d", groupNames[i%len(groupNames)], i)
		}
		if _, err := l.db.CreateConversation(ctx, c, []string{p.ID}); err != nil {
			return fmt.Errorf("create conversation %d of %s: %w", i, username, err)
		}
		su.convs[i] = syncConv{id: c.ID, partner: p}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = parallel(ctx, n*messages, func(i int) error {
		c := su.convs[i%n]
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		sender := c.partner.ID
		if i/n%2 == 1 {
			sender = u.ID
		}
		m := &chatvault.Message{OrgID: u.OrgID, ID: uuid.Must(uuid.NewV7()).String(), ConversationID: c.id, SenderID: sender,
			ClientMsgID: "setup-" + token(r, 20), Kind: chatvault.KindText, Text: Body(r), SentAt: chatvault.SystemClock{}.Now()}
		_, err := l.db.AppendMessage(ctx, m)
		return err
	})
	return su, err
}

// parallel calls fn(0..n-1) from 64 goroutines (the store's writer shares their transactions) and
// returns the first error.
func parallel(ctx context.Context, n int, fn func(i int) error) error {
	work := make(chan int)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for range min(64, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := fn(i); err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
		if len(errc) > 0 {
			break
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return ctx.Err()
	}
}

// repeated times op, one call after another, each after an untimed prepare (when not nil), for
// Count calls or Duration of wall time, after warm untimed calls; it measures this process.
func (cfg *Config) repeated(ctx context.Context, name, latencyOf string, warm int, prepare, op func(context.Context) error) *Result {
	m := startMeter(os.Getpid())
	lats, fails, busy, firstErr := cfg.loop(ctx, warm, prepare, op)
	peak, cpu := m.stop()
	r := result(name, "syncs", latencyOf, lats, fails, firstErr, busy)
	r.PeakRSSBytes, r.RSSOf, r.BenchCPUSecs = peak, m.rssNote("the bench process"), round1(cpu.Seconds())
	return r
}

// repeatedAgainst is repeated for a client of srv: it measures srv, and this process's CPU.
func (cfg *Config) repeatedAgainst(ctx context.Context, srv *server, name, latencyOf string, warm int, prepare, op func(context.Context) error) *Result {
	sm, bm := startMeter(srv.pid()), startMeter(os.Getpid())
	lats, fails, busy, firstErr := cfg.loop(ctx, warm, prepare, op)
	peak, scpu := sm.stop()
	_, bcpu := bm.stop()
	r := result(name, "syncs", latencyOf, lats, fails, firstErr, busy)
	r.PeakRSSBytes, r.RSSOf = peak, sm.rssNote(fmt.Sprintf("the chatvault serve process, pid %d", srv.pid()))
	r.ServerCPUSecs, r.BenchCPUSecs = round1(scpu.Seconds()), round1(bcpu.Seconds())
	return r
}

// loop returns the latencies of the successful timed calls, the failures with the first one, and
// the time spent inside op (so a rate excludes prepare).
func (cfg *Config) loop(ctx context.Context, warm int, prepare, op func(context.Context) error) ([]time.Duration, int, time.Duration, error) {
	var lats []time.Duration
	var fails int
	var firstErr error
	var busy time.Duration
	deadline := time.Now().Add(cfg.Duration)
	for i := 0; ctx.Err() == nil; i++ {
		measured := i - warm
		if cfg.Count > 0 && measured >= cfg.Count || cfg.Count <= 0 && measured >= 0 && time.Now().After(deadline) {
			break
		}
		if measured == 0 {
			deadline = time.Now().Add(cfg.Duration)
		}
		if prepare != nil {
			if err := prepare(ctx); err != nil {
				fails++
				firstErr = cmpErr(firstErr, fmt.Errorf("prepare: %w", err))
				if fails > 100 && fails > len(lats) {
					break
				}
				continue
			}
		}
		t0 := time.Now()
		err := op(ctx)
		d := time.Since(t0)
		if measured < 0 {
			continue
		}
		if err != nil {
			fails++
			firstErr = cmpErr(firstErr, err)
			if fails > 100 && fails > len(lats) {
				break
			}
			continue
		}
		lats, busy = append(lats, d), busy+d
	}
	return lats, fails, busy, firstErr
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}
