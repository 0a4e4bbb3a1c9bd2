package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/sqlite"
	"github.com/google/uuid"
)

// sender is one simulated client: a user who sends to the conversations they are in, the busier
// ones more often.
type sender struct {
	user  *chatvault.User
	actor chatvault.Actor
	convs []*Conv
	cum   []float64
}

func (s *sender) pick(r *rand.Rand) *Conv {
	i, _ := slices.BinarySearch(s.cum, r.Float64()*s.cum[len(s.cum)-1])
	return s.convs[min(i, len(s.convs)-1)]
}

// newSenders draws n distinct users (fewer users than senders: some users send from several
// devices) among those in at least one conversation.
func newSenders(ds *dataset, n int, seed uint64) ([]*sender, error) {
	r := rand.New(rand.NewPCG(seed, 0x73656e64))
	var candidates []*chatvault.User
	for _, u := range ds.d.Users {
		if len(ds.d.UserConvs[u.ID]) > 0 {
			candidates = append(candidates, u)
		}
	}
	if len(candidates) == 0 {
		return nil, errors.New("the data set has no conversations")
	}
	r.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
	out := make([]*sender, n)
	for i := range out {
		u := candidates[i%len(candidates)]
		s := &sender{user: u, actor: chatvault.Actor{OrgID: u.OrgID, UserID: u.ID, Roles: u.Roles}}
		var sum float64
		for _, ci := range ds.d.UserConvs[u.ID] {
			c := ds.d.Convs[ci]
			sum += c.weight
			s.convs, s.cum = append(s.convs, c), append(s.cum, sum)
		}
		out[i] = s
	}
	return out, nil
}

// Ingest measures how many messages per second the store and the HTTP API acknowledge (each ack
// durable) with cfg.Senders concurrent senders, and, as its reference, how many rows per second
// the engine takes as plain batched INSERTs with the same durability settings.
func Ingest(ctx context.Context, cfg Config) (*Report, error) {
	ds, rep, err := cfg.start("ingest")
	if err != nil {
		return nil, err
	}
	rep.Settings["senders"] = cfg.Senders
	rep.Settings["raw_batch"] = cfg.RawBatch
	senders, err := newSenders(ds, cfg.Senders, cfg.Seed)
	if err != nil {
		return nil, err
	}
	warm := cfg
	warm.Count = 4 * cfg.Senders

	// Store and service paths, in this process, on one working copy.
	dir, err := cfg.workCopy(ds, "ingest-store")
	if err != nil {
		return nil, err
	}
	l, err := openLocal(dir)
	if err != nil {
		return nil, err
	}
	if rep.Durability, err = durability(ctx, l.db); err != nil {
		l.db.Close()
		return nil, err
	}
	appendOp := func(prefix string) func(ctx context.Context, g int, r *rand.Rand) error {
		return func(ctx context.Context, g int, r *rand.Rand) error {
			s := senders[g]
			c := s.pick(r)
			m := &chatvault.Message{OrgID: c.OrgID, ID: uuid.Must(uuid.NewV7()).String(), ConversationID: c.ID,
				SenderID: s.user.ID, ClientMsgID: prefix + token(r, 20), Kind: chatvault.KindText, Text: Body(r),
				SentAt: chatvault.SystemClock{}.Now()}
			created, err := l.db.AppendMessage(ctx, m)
			if err == nil && !created {
				err = fmt.Errorf("AppendMessage(%s) created = false, want true", m.ClientMsgID)
			}
			return err
		}
	}
	sendOp := func(prefix string) func(ctx context.Context, g int, r *rand.Rand) error {
		return func(ctx context.Context, g int, r *rand.Rand) error {
			s := senders[g]
			_, created, err := l.chat.Send(ctx, s.actor, s.pick(r).ID, chat.SendRequest{ClientMsgID: prefix + token(r, 20), Text: Body(r)})
			if err == nil && !created {
				err = errors.New("send created = false, want true")
			}
			return err
		}
	}
	cfg.Logf("ingest: store path (AppendMessage), %d senders", cfg.Senders)
	warm.run(ctx, cfg.Senders, appendOp("warm-store-"))
	rep.add("store", cfg.inProcess(ctx, "chatvault.Store.AppendMessage in process, one goroutine per sender",
		"messages", "one acknowledged message", cfg.Senders, appendOp("store-")))
	cfg.Logf("ingest: service path (chat.Service.Send), %d senders", cfg.Senders)
	warm.run(ctx, cfg.Senders, sendOp("warm-service-"))
	rep.add("service", cfg.inProcess(ctx, "chat.Service.Send in process (membership read + AppendMessage), one goroutine per sender",
		"messages", "one acknowledged message", cfg.Senders, sendOp("service-")))
	if err := l.db.Close(); err != nil {
		return nil, err
	}
	os.RemoveAll(dir)

	// The reference: plain batched INSERTs of the same kind of rows, same schema and settings.
	cfg.Logf("ingest: raw reference (batched INSERT, %d rows per transaction)", cfg.RawBatch)
	if rep.Reference, err = cfg.rawIngest(ctx, ds, senders); err != nil {
		return nil, err
	}
	cfg.Logf("ingest: the engine's ceiling (a minimal table, %d rows per transaction)", cfg.RawBatch)
	if rep.Ceiling, err = cfg.ceilingIngest(ctx); err != nil {
		return nil, err
	}

	// The HTTP API, against a child `chatvault serve`.
	if dir, err = cfg.workCopy(ds, "ingest-http"); err != nil {
		return nil, err
	}
	err = cfg.withServer(ctx, dir, func(srv *server) error {
		c := newClient(srv.addr, cfg.Senders)
		defer c.close()
		var ids []string
		for _, s := range senders {
			ids = append(ids, s.user.ID)
		}
		tokens, err := logins(ctx, c, ds, ids)
		if err != nil {
			return err
		}
		op := func(prefix string) func(ctx context.Context, g int, r *rand.Rand) error {
			return func(ctx context.Context, g int, r *rand.Rand) error {
				s := senders[g]
				return c.send(ctx, tokens[s.user.ID], s.pick(r).ID, prefix+token(r, 20), Body(r))
			}
		}
		cfg.Logf("ingest: HTTP path (POST .../messages to chatvault serve, pid %d), %d senders", srv.pid(), cfg.Senders)
		warm.run(ctx, cfg.Senders, op("warm-http-"))
		rep.add("http", cfg.againstServer(ctx, srv, "POST /api/v1/conversations/{id}/messages, one keep-alive connection and one user per sender",
			"messages", "one acknowledged message (201)", cfg.Senders, op("http-")))
		return nil
	})
	os.RemoveAll(dir)
	if err != nil {
		return nil, err
	}
	rep.finish()
	return rep, nil
}

// inProcess runs op in this process and measures this process.
func (cfg *Config) inProcess(ctx context.Context, name, unit, latencyOf string, n int, op func(context.Context, int, *rand.Rand) error) *Result {
	m := startMeter(os.Getpid())
	lats, fails, elapsed, firstErr := cfg.run(ctx, n, op)
	peak, cpu := m.stop()
	r := result(name, unit, latencyOf, lats, fails, firstErr, elapsed)
	r.PeakRSSBytes, r.RSSOf, r.BenchCPUSecs = peak, m.rssNote("the bench process"), round1(cpu.Seconds())
	r.PeakAnonRSSBytes = m.peakAnon()
	return r
}

// againstServer runs op (a client of srv) and measures srv, and this process's CPU.
func (cfg *Config) againstServer(ctx context.Context, srv *server, name, unit, latencyOf string, n int, op func(context.Context, int, *rand.Rand) error) *Result {
	sm, bm := startMeter(srv.pid()), startMeter(os.Getpid())
	lats, fails, elapsed, firstErr := cfg.run(ctx, n, op)
	peak, scpu := sm.stop()
	_, bcpu := bm.stop()
	r := result(name, unit, latencyOf, lats, fails, firstErr, elapsed)
	r.PeakRSSBytes, r.RSSOf = peak, sm.rssNote(fmt.Sprintf("the chatvault serve process, pid %d", srv.pid()))
	r.ServerCPUSecs, r.BenchCPUSecs = round1(scpu.Seconds()), round1(bcpu.Seconds())
	return r
}

func round1(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }

// rawIngest inserts rows like the senders' (same conversations, senders, body distribution) in
// batches of cfg.RawBatch, one transaction each, on a fresh working copy. Its rate counts only the
// time spent in the engine (making the rows is not timed), so it is the engine's ceiling.
func (cfg *Config) rawIngest(ctx context.Context, ds *dataset, senders []*sender) (*Result, error) {
	dir, err := cfg.workCopy(ds, "ingest-raw")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	l, err := openLocal(dir)
	if err != nil {
		return nil, err
	}
	defer l.db.Close()
	raw, err := l.db.Raw()
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	lastSeq := map[string]int64{}
	for _, s := range senders {
		for _, c := range s.convs {
			if _, ok := lastSeq[c.ID]; ok {
				continue
			}
			conv, err := l.db.FindConversation(ctx, c.OrgID, c.ID)
			if err != nil {
				return nil, fmt.Errorf("the working copy does not hold the generated conversation %s: %w", c.ID, err)
			}
			lastSeq[c.ID] = conv.LastSeq
		}
	}
	r := rand.New(rand.NewPCG(cfg.Seed, 0x726177))
	batch := func() []*chatvault.Message {
		ms := make([]*chatvault.Message, cfg.RawBatch)
		for i := range ms {
			s := senders[r.IntN(len(senders))]
			c := s.pick(r)
			lastSeq[c.ID]++
			ms[i] = &chatvault.Message{OrgID: c.OrgID, ID: uuid.Must(uuid.NewV7()).String(), ConversationID: c.ID,
				Seq: lastSeq[c.ID], SenderID: s.user.ID, ClientMsgID: "raw-" + token(r, 20), Kind: chatvault.KindText,
				Text: Body(r), SentAt: chatvault.SystemClock{}.Now()}
			ms[i].ID = chatvault.ClientMessageID(c.OrgID, c.ID, s.user.ID, ms[i].ClientMsgID) // as AppendMessage names it
		}
		return ms
	}
	for range 2 { // warm-up
		if err := raw.InsertMessages(ctx, batch()); err != nil {
			return nil, err
		}
	}
	return cfg.engineResult(ctx, fmt.Sprintf("sqlite, plain INSERTs of the same rows into the same schema, %d rows per transaction, synchronous=FULL, no chatvault logic", cfg.RawBatch),
		func() (int, func() error) {
			ms := batch()
			return len(ms), func() error { return raw.InsertMessages(ctx, ms) }
		})
}

// engineBatches writes batches until the duration or count is reached and returns each batch's
// latency, the time spent inside the engine and the rows written. next makes a batch (not timed)
// and returns its size and the write to time.
func (cfg *Config) engineBatches(ctx context.Context, next func() (int, func() error)) ([]time.Duration, time.Duration, int, error) {
	var lats []time.Duration
	var inEngine time.Duration
	rows := 0
	deadline := time.Now().Add(cfg.Duration)
	for ctx.Err() == nil {
		if cfg.Count > 0 && rows >= cfg.Count || cfg.Count <= 0 && time.Now().After(deadline) {
			break
		}
		n, write := next()
		t0 := time.Now()
		if err := write(); err != nil {
			return nil, 0, 0, err
		}
		d := time.Since(t0)
		lats, inEngine, rows = append(lats, d), inEngine+d, rows+n
	}
	return lats, inEngine, rows, nil
}

// ceilingIngest is the engine's ceiling: batches of cfg.RawBatch bodies like the senders' into a
// table of an integer key and a blob, on a fresh database with the store's durability settings.
func (cfg *Config) ceilingIngest(ctx context.Context) (*Result, error) {
	dir := filepath.Join(cfg.Work, "ingest-ceiling")
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	c, err := sqlite.OpenCeiling(dir)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r := rand.New(rand.NewPCG(cfg.Seed, 0x6365696c))
	next := func() (int, func() error) {
		bodies := make([][]byte, cfg.RawBatch)
		for i := range bodies {
			bodies[i] = []byte(Body(r))
		}
		return len(bodies), func() error { return c.Insert(ctx, bodies) }
	}
	for range 2 { // warm-up
		_, write := next()
		if err := write(); err != nil {
			return nil, err
		}
	}
	return cfg.engineResult(ctx, fmt.Sprintf("sqlite, a table of (integer key, blob body), %d rows per transaction, synchronous=FULL: the engine's ceiling", cfg.RawBatch), next)
}

// engineResult measures engineBatches over next as a reference path named name.
func (cfg *Config) engineResult(ctx context.Context, name string, next func() (int, func() error)) (*Result, error) {
	m := startMeter(os.Getpid())
	lats, inEngine, rows, err := cfg.engineBatches(ctx, next)
	if err != nil {
		return nil, err
	}
	peak, cpu := m.stop()
	res := result(name, "messages", fmt.Sprintf("one batch of %d rows", cfg.RawBatch), lats, 0, nil, inEngine)
	res.Ops = rows
	if inEngine > 0 {
		res.Rate = float64(int64(float64(rows) / inEngine.Seconds()))
	}
	res.PeakRSSBytes, res.RSSOf, res.BenchCPUSecs = peak, m.rssNote("the bench process"), round1(cpu.Seconds())
	res.Note = "rate counts time inside the engine only"
	return res, nil
}
