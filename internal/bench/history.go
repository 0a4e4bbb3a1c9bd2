package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
)

// historyTargets is how many (conversation, member) pairs the history scenario reads from. Each
// member is signed in over HTTP once, so it is bounded.
const historyTargets = 128

// pageQuery is one history read: a member of a conversation pages back from before.
type pageQuery struct {
	conv   *Conv
	user   *chatvault.User
	actor  chatvault.Actor
	before int64
}

// weightedConvs is the data set's conversations with messages and their running message counts,
// so that a uniform draw from [1, sum] picks a conversation in proportion to its size.
func weightedConvs(ds *dataset) (cum []int, convs []*Conv, sum int, err error) {
	for _, c := range ds.d.Convs {
		if c.Messages > 0 {
			sum += c.Messages
			cum, convs = append(cum, sum), append(convs, c)
		}
	}
	if sum == 0 {
		return nil, nil, 0, errors.New("the data set has no messages")
	}
	return cum, convs, sum, nil
}

// pageQueries draws the reads: conversations in proportion to their size (a random message of the
// store picks its conversation), a random member of each, and a uniformly random depth.
func pageQueries(ctx context.Context, ds *dataset, db interface {
	FindConversation(ctx context.Context, orgID, convID string) (*chatvault.Conversation, error)
}, seed uint64, n int) ([]pageQuery, error) {
	r := rand.New(rand.NewPCG(seed, 0x68697374))
	cum, convs, sum, err := weightedConvs(ds)
	if err != nil {
		return nil, err
	}
	type target struct {
		conv    *Conv
		user    *chatvault.User
		lastSeq int64
	}
	targets := make([]target, historyTargets)
	for i := range targets {
		j, _ := slices.BinarySearch(cum, r.IntN(sum)+1)
		c := convs[j]
		conv, err := db.FindConversation(ctx, c.OrgID, c.ID)
		if err != nil {
			return nil, fmt.Errorf("the working copy does not hold the generated conversation %s: %w", c.ID, err)
		}
		targets[i] = target{conv: c, user: ds.users[c.Members[r.IntN(len(c.Members))]], lastSeq: conv.LastSeq}
	}
	qs := make([]pageQuery, n)
	for i := range qs {
		t := targets[r.IntN(len(targets))]
		// before in [2, last+1]: at least one message lies below it.
		qs[i] = pageQuery{conv: t.conv, user: t.user, before: 2 + r.Int64N(t.lastSeq),
			actor: chatvault.Actor{OrgID: t.user.OrgID, UserID: t.user.ID, Roles: t.user.Roles}}
	}
	return qs, nil
}

// History measures reading random pages of history at random depths: through the store's
// FindMessages, through chat.Service.Messages (the API's read path) and over HTTP, with
// cfg.Readers concurrent readers; its reference is the raw indexed range query.
func History(ctx context.Context, cfg Config) (*Report, error) {
	ds, rep, err := cfg.start("history")
	if err != nil {
		return nil, err
	}
	rep.Settings["readers"] = cfg.Readers
	rep.Settings["page_size"] = cfg.PageSize
	l, dir, err := cfg.workStore(ctx, ds, "history", rep)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	defer l.close()
	nq := 100_000
	if cfg.Count > 0 {
		nq = cfg.Count
	}
	qs, err := pageQueries(ctx, ds, l.db, cfg.Seed, nq)
	if err != nil {
		return nil, err
	}
	raw, err := l.db.Raw()
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	limit := cfg.PageSize
	// Each reader walks its own stride of the same query list, so every path reads the same pages.
	next := func(g int, i *[]int) pageQuery {
		q := qs[((*i)[g]*cfg.Readers+g)%len(qs)]
		(*i)[g]++
		return q
	}
	empty := errors.New("empty page where the store holds messages")
	check := func(n int, err error) error {
		if err == nil && n == 0 {
			return empty
		}
		return err
	}
	paths := []struct {
		key, name string
		op        func(ctx context.Context, q pageQuery) (int, error)
	}{
		{"store", "chatvault.Store.FindMessages in process (prepared range query + hidden-message filter, domain types)",
			func(ctx context.Context, q pageQuery) (int, error) {
				ms, err := l.db.FindMessages(ctx, q.conv.OrgID, q.conv.ID, chatvault.MessageQuery{Before: q.before, Desc: true, Limit: limit, HiddenFor: q.user.ID})
				return len(ms), err
			}},
		{"service", "chat.Service.Messages in process (membership and visibility + FindMessages): the API's read path",
			func(ctx context.Context, q pageQuery) (int, error) {
				b := q.before
				p, err := l.chat.Messages(ctx, q.actor, q.conv.ID, chat.Page{Before: &b, Limit: limit})
				if err != nil {
					return 0, err
				}
				return len(p.Messages), nil
			}},
	}
	// Warm the caches the same way for every path, then measure the reference first.
	warmIdx := make([]int, cfg.Readers)
	warm := cfg
	warm.Count = min(len(qs), 2000)
	warm.run(ctx, cfg.Readers, func(ctx context.Context, g int, _ *rand.Rand) error {
		q := next(g, &warmIdx)
		_, err := raw.Page(ctx, q.conv.OrgID, q.conv.ID, q.before, limit)
		return err
	})
	cfg.Logf("history: raw reference (indexed range query), %d readers", cfg.Readers)
	idx := make([]int, cfg.Readers)
	rep.Reference = cfg.inProcess(ctx, fmt.Sprintf("sqlite, prepared SELECT ... WHERE org_id = ? AND conversation_id = ? AND seq < ? ORDER BY seq DESC LIMIT %d on the primary key, rows scanned as raw bytes", limit),
		"pages", "one page", cfg.Readers, func(ctx context.Context, g int, _ *rand.Rand) error {
			q := next(g, &idx)
			return check(raw.Page(ctx, q.conv.OrgID, q.conv.ID, q.before, limit))
		})
	for _, p := range paths {
		cfg.Logf("history: %s path, %d readers", p.key, cfg.Readers)
		idx := make([]int, cfg.Readers)
		rep.add(p.key, cfg.inProcess(ctx, p.name, "pages", "one page", cfg.Readers, func(ctx context.Context, g int, _ *rand.Rand) error {
			return check(p.op(ctx, next(g, &idx)))
		}))
	}
	raw.Close()
	if err := l.close(); err != nil {
		return nil, err
	}

	err = cfg.withServer(ctx, dir, func(srv *server) error {
		c := newClient(srv.addr, cfg.Readers)
		defer c.close()
		var ids []string
		for _, q := range qs {
			ids = append(ids, q.user.ID)
		}
		tokens, err := logins(ctx, c, ds, ids)
		if err != nil {
			return err
		}
		cfg.Logf("history: HTTP path (GET .../messages?before_seq= to chatvault serve, pid %d), %d readers", srv.pid(), cfg.Readers)
		idx := make([]int, cfg.Readers)
		rep.add("http", cfg.againstServer(ctx, srv, "GET /api/v1/conversations/{id}/messages?before_seq=N&limit=50 against chatvault serve",
			"pages", "one page (200, JSON)", cfg.Readers, func(ctx context.Context, g int, _ *rand.Rand) error {
				q := next(g, &idx)
				return check(c.page(ctx, tokens[q.user.ID], q.conv.ID, q.before, limit))
			}))
		return nil
	})
	if err != nil {
		return nil, err
	}
	rep.finish()
	return rep, nil
}
