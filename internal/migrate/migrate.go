// Package migrate copies an SQLite data directory (internal/sqlite: the database and its keys
// database) into a PostgreSQL store (internal/postgres), table by table, in primary-key order and
// in batches, recording in the target after each batch how far it got, so an interrupted copy
// resumes where it stopped. It ends by comparing, per table, the row count and a checksum over
// every column of every row on both sides.
//
// Rows are copied as they are: sealed bodies stay sealed under the same data keys, whose wrapped
// material moves from keys/keys.db to the target's chatvault_keys schema; nothing is decrypted.
package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatvault/chatvault/internal/postgres"
)

// DefaultBatch is how many rows one COPY transaction holds: large enough that per-transaction costs
// vanish, small enough that an interrupted copy redoes little.
const DefaultBatch = 5000

// progressEvery is how many batches go between two progress lines of one table.
const progressEvery = 20

// seeded are the target tables its schema fills with their one row (the event counter, the
// encryption state, the search index's tokenizer version): copied by replacing those rows, not by
// appending.
var seeded = []string{"counters", "store_encryption", "search_state"}

// rebuilt are source tables and columns the target store derives again from the data and so does
// not need (by table or as table.column): the SQLite search index, its progress flag and its
// tokenizer version (PostgreSQL keeps its own in search_state). The
// PostgreSQL store indexes the copied messages when it is next opened (their copied document
// numbers have no index entries behind them, and it notices), under the orgs' index keys, which
// are copied with the data keys.
var rebuilt = []string{"search_index", "store_encryption.search_indexed", "store_encryption.search_tokenizer"}

// firstTables are copied before the others, in this order: the wrapped keys before any data that
// needs them (a copy stopped half-way must still open with its keys), the seeded rows (the store
// learns from store_encryption that its bodies are sealed), and the tables that foreign keys
// point to before those that point.
var firstTables = []string{postgres.KeysSchema + ".data_keys", "store_encryption", "counters", "orgs", "users", "devices"}

// Options are Run's settings.
type Options struct {
	From     string // the SQLite data directory
	KeysPath string // its keys database; default keys/keys.db in From
	Target   *postgres.CopyTarget
	Batch    int // rows per transaction; default DefaultBatch
	// Logf reports progress (one line per table, and every so often within a large one).
	Logf func(format string, args ...any)
}

// Report is what a run copied and what the final comparison found.
type Report struct {
	Source  string // the source's fingerprint, recorded in the target
	Resumed bool   // an earlier run had copied part of it
	// Complete: an earlier run finished and verified this copy; nothing was done.
	Complete bool
	// Verified is set once both sides were counted and checksummed (Tables then has the figures).
	Verified bool
	Tables   []TableReport
	Copied   int64 // rows copied by this run
	Elapsed  time.Duration
}

// TableReport compares one table on both sides.
type TableReport struct {
	Table      string
	SourceRows int64
	TargetRows int64
	SourceSum  string // hex checksum over every row's columns
	TargetSum  string
	CopiedNow  int64  // rows this run copied
	Skipped    string // why the table was not copied (rebuilt by the target)
}

// Match reports whether both sides hold the same rows.
func (t TableReport) Match() bool {
	return t.Skipped != "" || (t.SourceRows == t.TargetRows && t.SourceSum == t.TargetSum)
}

// OK reports whether every table matches.
func (r *Report) OK() bool {
	for _, t := range r.Tables {
		if !t.Match() {
			return false
		}
	}
	return true
}

// plan is one table's copy.
type plan struct {
	src     *sourceTable
	dst     *postgres.TargetTable
	cols    []string // copied columns, in the source's order
	types   []string // their target types
	report  *TableReport
	upsert  bool
	skipped bool
}

// Run copies opts.From into opts.Target, or resumes a copy an earlier run started, then compares
// both sides. It returns an error when the copy could not finish or the sides differ.
func Run(ctx context.Context, opts Options) (*Report, error) {
	t0 := time.Now()
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.KeysPath == "" {
		opts.KeysPath = opts.From + "/keys/keys.db"
	}
	src, err := openSource(ctx, opts.From, opts.KeysPath)
	if err != nil {
		return nil, err
	}
	defer src.close()

	plans, err := makePlans(ctx, src, opts.Target)
	if err != nil {
		return nil, err
	}
	rep := &Report{}
	if rep.Source, err = fingerprint(ctx, plans); err != nil {
		return nil, err
	}
	progress, err := opts.Target.StartCopy(ctx, rep.Source, seeded)
	if err != nil {
		return nil, err
	}
	if postgres.Complete(progress) {
		rep.Complete, rep.Elapsed = true, time.Since(t0)
		return rep, nil
	}
	rep.Resumed = len(progress) > 0
	rep.Tables = make([]TableReport, len(plans))
	for i, p := range plans {
		p.report = &rep.Tables[i]
		p.report.Table = p.dst.Name
		if p.skipped {
			p.report.Table = p.src.name
			p.report.Skipped = "rebuilt by the target store"
			continue
		}
		n, err := copyTable(ctx, opts, rep.Source, p, progress[p.dst.Name])
		rep.Copied += n
		if err != nil {
			return rep, err
		}
	}
	tables, err := opts.Target.Tables(ctx)
	if err != nil {
		return rep, err
	}
	if err := opts.Target.FinishSequences(ctx, tables); err != nil {
		return rep, err
	}
	opts.Logf("verifying: counting and checksumming every table on both sides")
	for _, p := range plans {
		if p.skipped {
			continue
		}
		if err := verify(ctx, opts.Target, p); err != nil {
			return rep, err
		}
	}
	rep.Verified = true
	rep.Elapsed = time.Since(t0)
	if !rep.OK() {
		var bad []string
		for _, t := range rep.Tables {
			if !t.Match() {
				bad = append(bad, t.Table)
			}
		}
		return rep, fmt.Errorf("the copy differs from the source in %s: was the source changed during or between runs? "+
			"Drop the target database, create it again, and migrate from a stopped server", strings.Join(bad, ", "))
	}
	if err := opts.Target.MarkComplete(ctx, rep.Source); err != nil {
		return rep, err
	}
	return rep, nil
}

// makePlans pairs each source table with its target table and decides which columns go.
func makePlans(ctx context.Context, src *source, target *postgres.CopyTarget) ([]*plan, error) {
	stables, err := src.tables(ctx, postgres.KeysSchema)
	if err != nil {
		return nil, err
	}
	ttables, err := target.Tables(ctx)
	if err != nil {
		return nil, err
	}
	var plans []*plan
	var problems []string
	for _, st := range stables {
		dt := ttables[st.target]
		if dt == nil {
			if slices.Contains(rebuilt, st.name) {
				plans = append(plans, &plan{src: st, dst: &postgres.TargetTable{Name: st.target}, skipped: true})
				continue
			}
			n, err := st.count(ctx)
			if err != nil {
				return nil, err
			}
			if n > 0 {
				problems = append(problems, fmt.Sprintf("table %s (%d rows) has no place in the PostgreSQL schema", st.target, n))
			}
			continue
		}
		p := &plan{src: st, dst: dt, upsert: slices.Contains(seeded, dt.Name)}
		for _, c := range st.cols {
			tc, ok := dt.Column(c.name)
			if !ok {
				if slices.Contains(rebuilt, st.name+"."+c.name) {
					continue
				}
				n, err := st.countNotNull(ctx, c.name)
				if err != nil {
					return nil, err
				}
				if n > 0 {
					problems = append(problems, fmt.Sprintf("column %s.%s (%d values) has no place in the PostgreSQL schema", st.target, c.name, n))
				}
				continue
			}
			p.cols = append(p.cols, c.name)
			p.types = append(p.types, tc.Type)
		}
		plans = append(plans, p)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("this chatvault's PostgreSQL schema cannot hold all of the source, so nothing was copied:\n  %s",
			strings.Join(problems, "\n  "))
	}
	rank := func(p *plan) int {
		if i := slices.Index(firstTables, p.dst.Name); i >= 0 {
			return i
		}
		return len(firstTables)
	}
	slices.SortStableFunc(plans, func(a, b *plan) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a.dst.Name, b.dst.Name)
	})
	return plans, nil
}

// copyTable copies what is left of one table and returns how many rows it copied.
func copyTable(ctx context.Context, opts Options, source string, p *plan, prog postgres.CopyProgress) (int64, error) {
	name := p.dst.Name
	if prog.Done {
		opts.Logf("%s: copied by an earlier run (%d rows)", name, prog.Rows)
		return 0, nil
	}
	if p.upsert {
		rows, _, err := p.src.page(ctx, p.cols, nil, math.MaxInt32)
		if err != nil {
			return 0, err
		}
		if err := convertRows(p, rows); err != nil {
			return 0, err
		}
		if err := opts.Target.UpsertRows(ctx, source, p.dst, p.cols, rows); err != nil {
			return 0, err
		}
		p.report.CopiedNow = int64(len(rows))
		opts.Logf("%s: %d rows", name, len(rows))
		return int64(len(rows)), nil
	}
	after, err := keyFromJSON(prog.LastKey)
	if err != nil {
		return 0, err
	}
	total, copied := prog.Rows, int64(0)
	if after != nil {
		opts.Logf("%s: resuming after %d rows", name, total)
	}
	for batches := 1; ; batches++ {
		rows, last, err := p.src.page(ctx, p.cols, after, opts.Batch)
		if err != nil {
			return copied, err
		}
		if len(rows) == 0 {
			key, err := keyJSON(after)
			if err != nil {
				return copied, err
			}
			if after == nil {
				key = nil
			}
			if err := opts.Target.FinishTable(ctx, source, name, key, total); err != nil {
				return copied, err
			}
			p.report.CopiedNow = copied
			opts.Logf("%s: %d rows (%d copied by this run)", name, total, copied)
			return copied, nil
		}
		if err := convertRows(p, rows); err != nil {
			return copied, err
		}
		key, err := keyJSON(last)
		if err != nil {
			return copied, err
		}
		if err := opts.Target.CopyBatch(ctx, source, name, p.cols, rows, key, total+int64(len(rows))); err != nil {
			return copied, err
		}
		total += int64(len(rows))
		copied += int64(len(rows))
		after = last
		if batches%progressEvery == 0 {
			opts.Logf("%s: %d rows so far", name, total)
		}
	}
}

// convertRows shapes source values (SQLite's int64, float64, string, []byte, nil) for the target
// column types, in place.
func convertRows(p *plan, rows [][]any) error {
	for _, r := range rows {
		for i, v := range r {
			c, err := convert(v, p.types[i])
			if err != nil {
				return fmt.Errorf("%s.%s: %w", p.src.name, p.cols[i], err)
			}
			r[i] = c
		}
	}
	return nil
}

func convert(v any, typ string) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch typ {
	case "bigint", "integer", "smallint":
		switch x := v.(type) {
		case int64:
			return x, nil
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
				return int64(x), nil
			}
		case string:
			if n, err := strconv.ParseInt(x, 10, 64); err == nil {
				return n, nil
			}
		}
	case "boolean":
		if x, ok := v.(int64); ok {
			return x != 0, nil
		}
	case "text", "character varying":
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			if utf8.Valid(x) {
				return string(x), nil
			}
		case int64:
			return strconv.FormatInt(x, 10), nil
		}
	case "bytea":
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	case "double precision", "real":
		switch x := v.(type) {
		case float64:
			return x, nil
		case int64:
			return float64(x), nil
		}
	default:
		return nil, fmt.Errorf("the target column type %s is not one the copy knows", typ)
	}
	return nil, fmt.Errorf("value %.40q (%T) does not fit the target column type %s", fmt.Sprint(v), v, typ)
}

// verify counts and checksums one table on both sides.
func verify(ctx context.Context, target *postgres.CopyTarget, p *plan) error {
	var ssum, tsum checksum
	var after []any
	for {
		rows, last, err := p.src.page(ctx, p.cols, after, DefaultBatch)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			break
		}
		if err := convertRows(p, rows); err != nil {
			return err
		}
		for _, r := range rows {
			ssum.add(r)
		}
		after = last
	}
	if err := target.Scan(ctx, p.dst.Name, p.cols, func(r []any) error { tsum.add(r); return nil }); err != nil {
		return err
	}
	p.report.SourceRows, p.report.SourceSum = ssum.n, ssum.String()
	p.report.TargetRows, p.report.TargetSum = tsum.n, tsum.String()
	return nil
}

// checksum is an order-independent digest of a set of rows: the XOR of each row's SHA-256 over a
// canonical encoding of its values, and the row count. Rows are unique (primary keys), so XOR
// cannot cancel two equal rows out; order-independence lets each side be read in its own order
// (PostgreSQL's text ordering is its collation's, SQLite's is bytewise).
type checksum struct {
	n   int64
	sum [sha256.Size]byte
	buf []byte
}

func (c *checksum) add(row []any) {
	c.buf = c.buf[:0]
	for _, v := range row {
		c.buf = appendCanonical(c.buf, v)
	}
	h := sha256.Sum256(c.buf)
	for i := range h {
		c.sum[i] ^= h[i]
	}
	c.n++
}

func (c *checksum) String() string { return hex.EncodeToString(c.sum[:8]) }

// appendCanonical encodes one value so that equal values (after conversion to the target's types)
// encode alike on both sides and no two different rows share an encoding.
func appendCanonical(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, 0)
	case int64:
		b = append(b, 1)
		return binary.AppendVarint(b, x)
	case bool:
		if x {
			return append(b, 2, 1)
		}
		return append(b, 2, 0)
	case string:
		b = append(b, 3)
		b = binary.AppendUvarint(b, uint64(len(x)))
		return append(b, x...)
	case []byte:
		b = append(b, 3)
		b = binary.AppendUvarint(b, uint64(len(x)))
		return append(b, x...)
	case float64:
		b = append(b, 4)
		return binary.BigEndian.AppendUint64(b, math.Float64bits(x))
	default:
		s := fmt.Sprintf("%T:%v", v, v)
		b = append(b, 5)
		b = binary.AppendUvarint(b, uint64(len(s)))
		return append(b, s...)
	}
}

// fingerprint names the source by its orgs (ids and creation times: random, so unique to a store),
// so a resumed copy can tell it continues from the same store.
func fingerprint(ctx context.Context, plans []*plan) (string, error) {
	for _, p := range plans {
		if p.src.name != "orgs" || p.src.target != "orgs" {
			continue
		}
		var sum checksum
		var after []any
		for {
			rows, last, err := p.src.page(ctx, []string{"id", "created_at"}, after, DefaultBatch)
			if err != nil {
				return "", err
			}
			if len(rows) == 0 {
				return "sqlite:" + sum.String(), nil
			}
			for _, r := range rows {
				sum.add(r)
			}
			after = last
		}
	}
	return "", errors.New("the source has no orgs table: is it a chatvault data directory?")
}
