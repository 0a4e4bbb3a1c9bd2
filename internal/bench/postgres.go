package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/audit"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/migrate"
	"github.com/chatvault/chatvault/internal/postgres"
	"github.com/chatvault/chatvault/internal/sqlite"
)

// pageStore is what the history path reads through: either store.
type pageStore interface {
	FindConversation(ctx context.Context, orgID, convID string) (*chatvault.Conversation, error)
	FindMessages(ctx context.Context, orgID, convID string, q chatvault.MessageQuery) ([]*chatvault.Message, error)
	AppendMessage(ctx context.Context, m *chatvault.Message) (bool, error)
}

// Postgres compares the PostgreSQL store with the SQLite store in one run on the same data: the
// data set is opened (sealed) on SQLite, copied into the empty PostgreSQL database at url with
// chatvault migrate's copy (its rate is reported too), and the same history pages and the same
// kind of sends run through chatvault.Store on each, one after the other, with the same readers and
// senders. Both stores are in this process; the PostgreSQL server is whatever url names, so the
// report records its fsync and synchronous_commit settings next to SQLite's.
func Postgres(url string) func(context.Context, Config) (*Report, error) {
	return func(ctx context.Context, cfg Config) (*Report, error) {
		if url == "" {
			return nil, errors.New("name an empty PostgreSQL database with --pg URL (or CHATVAULT_BENCH_POSTGRES)")
		}
		ds, rep, err := cfg.start("postgres")
		if err != nil {
			return nil, err
		}
		rep.Store = "postgres and sqlite"
		rep.Settings["readers"], rep.Settings["senders"], rep.Settings["page_size"] = cfg.Readers, cfg.Senders, cfg.PageSize

		// SQLite: a sealed working copy, measured; then a second, untouched one is the copy's source.
		l, dir, err := cfg.workStore(ctx, ds, "pg-sqlite", rep)
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
		senders, err := newSenders(ds, cfg.Senders, cfg.Seed)
		if err != nil {
			return nil, err
		}
		nsearch := 300
		if cfg.Count > 0 {
			nsearch = min(cfg.Count, 300)
		}
		sqs, err := searchQueries(ctx, ds, l.db, cfg.Seed, nsearch, chat.ScopeMine)
		if err != nil {
			return nil, err
		}
		cfg.measureSearch(ctx, rep, "sqlite", l.chat, sqs)
		cfg.measureStore(ctx, rep, "sqlite", l.db, qs, senders)
		sqliteDurability := rep.Durability
		if err := l.close(); err != nil {
			return nil, err
		}

		src, srcDir, err := cfg.workStore(ctx, ds, "pg-source", &Report{})
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(srcDir)
		if err := src.close(); err != nil {
			return nil, err
		}
		p, err := keyring.OpenFile(filepath.Join(srcDir, sqlite.KeysDir, "kek.json"))
		if err != nil {
			return nil, err
		}
		target, err := postgres.OpenCopyTarget(ctx, url)
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL: %w", err)
		}
		cfg.Logf("postgres: copying the data set in (chatvault migrate)")
		t0 := time.Now()
		mrep, err := migrate.Run(ctx, migrate.Options{From: srcDir, KeysPath: sqlite.KeysPath(srcDir), Target: target})
		target.Close()
		if err != nil {
			return nil, fmt.Errorf("copy the data set into PostgreSQL: %w", err)
		}
		if mrep.Resumed || mrep.Complete || mrep.Copied == 0 {
			return nil, errors.New("the PostgreSQL database already held a copy: give an empty database")
		}
		took := time.Since(t0)
		cfg.Logf("postgres: opening the copy (the store indexes the copied messages for search)")
		t1 := time.Now()
		db, err := postgres.Open(ctx, url, postgres.Options{Keyring: keyring.New(p, 0)})
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL: %w", err)
		}
		defer db.Close()
		openTook := time.Since(t1)
		rep.Figures = map[string]float64{"migrate_rows": float64(mrep.Copied), "migrate_seconds": math.Round(took.Seconds()*10) / 10,
			"migrate_rows_per_second": math.Round(float64(mrep.Copied) / took.Seconds()),
			"first_open_seconds":      math.Round(openTook.Seconds()*10) / 10}
		var fsync, syncCommit string
		if err := db.Pool().QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('synchronous_commit')").Scan(&fsync, &syncCommit); err != nil {
			return nil, fmt.Errorf("read PostgreSQL durability settings: %w", err)
		}
		rep.Durability = fmt.Sprintf("sqlite: %s; postgres: fsync=%s, synchronous_commit=%s (on for chatvault's sessions)", sqliteDurability, fsync, syncCommit)
		if fsync != "on" {
			rep.Notes = append(rep.Notes, "the PostgreSQL server runs with fsync off: its writes are not durable, so the ingest comparison flatters it")
		}
		cfg.measureSearch(ctx, rep, "postgres", chat.NewService(db, chatvault.SystemClock{}, chat.Config{Audit: audit.New(db, db.Keyring(), chatvault.SystemClock{})}), sqs)
		cfg.measureStore(ctx, rep, "postgres", db, qs, senders)
		if err := measureMonthDrop(ctx, rep, db.Pool()); err != nil {
			return nil, err
		}
		for _, path := range []string{"history", "ingest", "search"} {
			s, pg := rep.Results["sqlite_"+path], rep.Results["postgres_"+path]
			if s != nil && pg != nil && s.Rate > 0 {
				rep.Figures["postgres_vs_sqlite_"+path] = math.Round(pg.Rate/s.Rate*1000) / 1000
			}
		}
		return rep, nil
	}
}

// measureSearch runs the same member-scoped searches (first page of 20, one searcher) through a
// chat service over one store.
func (cfg *Config) measureSearch(ctx context.Context, rep *Report, name string, svc *chat.Service, qs []searchQuery) {
	i := 0
	one := *cfg
	one.Count = len(qs)
	cfg.Logf("%s: search, %d member-scoped queries", name, len(qs))
	rep.add(name+"_search", one.inProcess(ctx, name+": chat.Service.Search, scope mine, the same queries on both stores",
		"queries", "one query", 1, func(ctx context.Context, g int, _ *rand.Rand) error {
			q := qs[i%len(qs)]
			i++
			_, err := svc.Search(ctx, q.actor, chat.SearchRequest{Query: q.query})
			return err
		}))
}

// measureMonthDrop compares the two ways to remove a month of messages (the fullest), each inside a
// transaction that is rolled back (the data stays for the other paths): deleting its rows, and
// detaching and dropping its partition. The store destroys row by row today, because a purge
// leaves tombstones in those rows; this is the figure that says what moving tombstones elsewhere
// would buy.
func measureMonthDrop(ctx context.Context, rep *Report, pool *pgxpool.Pool) error {
	var part string
	var lo, hi int64
	err := pool.QueryRow(ctx, `SELECT c.relname, min(m.sent_at), max(m.sent_at) + 1 FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid JOIN messages m ON m.tableoid = c.oid
		WHERE i.inhparent = 'messages'::regclass GROUP BY c.relname ORDER BY count(*) DESC LIMIT 1`).Scan(&part, &lo, &hi)
	if err != nil {
		return fmt.Errorf("find the fullest month: %w", err)
	}
	timed := func(stmts ...string) (time.Duration, int64, error) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return 0, 0, err
		}
		defer tx.Rollback(ctx)
		t0 := time.Now()
		var rows int64
		for _, s := range stmts {
			tag, err := tx.Exec(ctx, s)
			if err != nil {
				return 0, 0, fmt.Errorf("%s: %w", s, err)
			}
			rows += tag.RowsAffected()
		}
		return time.Since(t0), rows, nil
	}
	del, rows, err := timed(fmt.Sprintf(`DELETE FROM messages WHERE sent_at >= %d AND sent_at < %d`, lo, hi))
	if err != nil {
		return err
	}
	drop, _, err := timed(`ALTER TABLE messages DETACH PARTITION `+part, `DROP TABLE `+part)
	if err != nil {
		return err
	}
	rep.Figures["month_rows"] = float64(rows)
	rep.Figures["month_delete_rows_seconds"] = math.Round(del.Seconds()*1000) / 1000
	rep.Figures["month_drop_partition_seconds"] = math.Round(drop.Seconds()*1000) / 1000
	rep.Notes = append(rep.Notes, fmt.Sprintf("a month (%s, %d messages): DELETE row by row %v, DETACH + DROP PARTITION %v (both rolled back)",
		part, rows, del.Round(time.Millisecond), drop.Round(time.Millisecond)))
	return nil
}

// measureStore runs the history pages, then the sends, through one store.
func (cfg *Config) measureStore(ctx context.Context, rep *Report, name string, db pageStore, qs []pageQuery, senders []*sender) {
	limit := cfg.PageSize
	idx := make([]int, cfg.Readers)
	cfg.Logf("%s: history (FindMessages), %d readers", name, cfg.Readers)
	rep.add(name+"_history", cfg.inProcess(ctx, name+": chatvault.Store.FindMessages, pages of the same random depths on both stores",
		"pages", "one page", cfg.Readers, func(ctx context.Context, g int, _ *rand.Rand) error {
			q := qs[(idx[g]*cfg.Readers+g)%len(qs)]
			idx[g]++
			ms, err := db.FindMessages(ctx, q.conv.OrgID, q.conv.ID, chatvault.MessageQuery{Before: q.before, Desc: true, Limit: limit, HiddenFor: q.user.ID})
			if err == nil && len(ms) == 0 {
				err = errors.New("empty page where the store holds messages")
			}
			return err
		}))
	cfg.Logf("%s: ingest (AppendMessage), %d senders", name, cfg.Senders)
	rep.add(name+"_ingest", cfg.inProcess(ctx, name+": chatvault.Store.AppendMessage, one goroutine per sender, every ack durable",
		"messages", "one acknowledged message", cfg.Senders, func(ctx context.Context, g int, r *rand.Rand) error {
			s := senders[g]
			c := s.pick(r)
			m := &chatvault.Message{OrgID: c.OrgID, ID: uuid.Must(uuid.NewV7()).String(), ConversationID: c.ID,
				SenderID: s.user.ID, ClientMsgID: name + "-" + token(r, 20), Kind: chatvault.KindText, Text: Body(r),
				SentAt: chatvault.SystemClock{}.Now()}
			created, err := db.AppendMessage(ctx, m)
			if err == nil && !created {
				err = fmt.Errorf("AppendMessage(%s) created = false, want true", m.ClientMsgID)
			}
			return err
		}))
}
