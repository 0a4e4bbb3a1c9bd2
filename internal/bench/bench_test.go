package bench

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/chatvault/chatvault"
)

// chatvaultBinary builds cmd/chatvault once per test run, so the HTTP paths run against a real
// `chatvault serve` child process, as they do from the command.
var chatvaultBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "chatvault-bench-test-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "chatvault")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/chatvault/chatvault/cmd/chatvault").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/chatvault: %v\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := chatvaultBinary(); err == nil {
		os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

func serverCommand(t *testing.T) func(dir string) *exec.Cmd {
	t.Helper()
	bin, err := chatvaultBinary()
	if err != nil {
		t.Fatal(err)
	}
	return func(dir string) *exec.Cmd {
		cmd := exec.Command(bin, "serve", "--data", dir, "--listen", "127.0.0.1:0", "--log-format", "json")
		cmd.Env = append(os.Environ(), "CHATVAULT_CONFIG=")
		return cmd
	}
}

// digest hashes everything a data set holds, in order.
func digest(t *testing.T, p Params) string {
	t.Helper()
	d := NewDataset(p)
	h := sha256.New()
	for _, o := range d.Orgs {
		fmt.Fprintf(h, "%+v\n", *o.Org)
		for _, u := range o.Users {
			fmt.Fprintf(h, "%+v\n", *u)
		}
	}
	for _, c := range d.Convs {
		fmt.Fprintf(h, "%+v %v %d\n", *c.Conversation, c.Members, c.Messages)
	}
	for m := range d.Messages() {
		fmt.Fprintf(h, "%+v\n", *m)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func TestGeneratorDeterministic(t *testing.T) {
	p := Params{Seed: 7, Messages: 3000, PasswordHash: "hash"}
	a, b := digest(t, p), digest(t, p)
	if a != b {
		t.Fatalf("digest(seed 7) = %s, then %s; want the same", a, b)
	}
	p.Seed = 8
	if c := digest(t, p); c == a {
		t.Fatalf("digest(seed 8) = digest(seed 7) = %s; want different data", c)
	}
}

// TestDatasetConsistent checks what BulkLoad trusts: seqs gap-free per conversation and equal to
// the planned counts, senders members, times inside the three years and in stream order.
func TestDatasetConsistent(t *testing.T) {
	d := NewDataset(Params{Seed: 1, Messages: 5000})
	if len(d.Orgs) < 1 || len(d.Users) < 8 || len(d.Convs) == 0 {
		t.Fatalf("NewDataset: %d orgs, %d users, %d conversations; want at least 1, 8, 1", len(d.Orgs), len(d.Users), len(d.Convs))
	}
	byID := map[string]*Conv{}
	total := 0
	for _, c := range d.Convs {
		byID[c.ID] = c
		total += c.Messages
		if c.Kind == chatvault.Direct && len(c.Members) != 2 {
			t.Errorf("direct conversation %s has %d members, want 2", c.ID, len(c.Members))
		}
	}
	if total != 5000 {
		t.Fatalf("conversation message counts sum to %d, want 5000", total)
	}
	seqs := map[string]int64{}
	var prev time.Time
	n := 0
	for m := range d.Messages() {
		n++
		c := byID[m.ConversationID]
		if c == nil {
			t.Fatalf("message %s is in unknown conversation %s", m.ID, m.ConversationID)
		}
		if seqs[c.ID]++; m.Seq != seqs[c.ID] {
			t.Fatalf("message %s seq = %d, want %d", m.ID, m.Seq, seqs[c.ID])
		}
		member := false
		for _, u := range c.Members {
			member = member || u == m.SenderID
		}
		if !member {
			t.Fatalf("message %s sender %s is not a member of %s", m.ID, m.SenderID, c.ID)
		}
		if m.SentAt.Before(Start) || !m.SentAt.Before(End) || m.SentAt.Before(prev) || m.SentAt.Before(c.CreatedAt) {
			t.Fatalf("message %s sent at %s: want within [%s, %s), after %s and after the conversation's creation", m.ID, m.SentAt, Start, End, prev)
		}
		prev = m.SentAt
	}
	if n != 5000 {
		t.Fatalf("Messages() yielded %d, want 5000", n)
	}
	for _, c := range d.Convs {
		if seqs[c.ID] != int64(c.Messages) {
			t.Fatalf("conversation %s got %d messages, want %d", c.ID, seqs[c.ID], c.Messages)
		}
	}
}

// TestBodyShape holds the generator to the bounds stated in text.go.
func TestBodyShape(t *testing.T) {
	const n = 20000
	r := rand.New(rand.NewPCG(1, 1))
	var han, latinOnly, emojiN, url, digit, short, long, bytes int
	maxRunes := 0
	for range n {
		b := Body(r)
		if !utf8.ValidString(b) || strings.TrimSpace(b) == "" {
			t.Fatalf("Body() = %q: want valid, non-blank UTF-8", b)
		}
		runes := utf8.RuneCountInString(b)
		bytes += len(b)
		maxRunes = max(maxRunes, runes)
		hasHan := strings.ContainsFunc(b, func(c rune) bool { return unicode.Is(unicode.Han, c) })
		if hasHan {
			han++
		} else if strings.ContainsFunc(b, func(c rune) bool { return c >= 'a' && c <= 'z' }) {
			latinOnly++
		}
		if strings.ContainsFunc(b, func(c rune) bool { return c >= 0x1F300 || c == 0x2764 || c == 0x2705 || c == 0x2615 }) {
			emojiN++
		}
		if strings.Contains(b, "https://") {
			url++
		}
		if strings.ContainsFunc(b, unicode.IsDigit) {
			digit++
		}
		if runes <= 12 {
			short++
		}
		if runes > 200 {
			long++
		}
	}
	share := func(k int) float64 { return float64(k) / n }
	for _, c := range []struct {
		name   string
		got    float64
		lo, hi float64
	}{
		{"messages with Han characters", share(han), 0.65, 0.85},
		{"messages in Latin script only", share(latinOnly), 0.15, 0.30},
		{"messages with emoji", share(emojiN), 0.08, 0.20},
		{"messages with a URL", share(url), 0.02, 0.06},
		{"messages with a digit", share(digit), 0.08, 0.20},
		{"messages of at most 12 runes", share(short), 0.50, 0.80},
		{"messages over 200 runes", share(long), 0.005, 0.04},
		{"average body bytes", float64(bytes) / n, 40, 100},
	} {
		if c.got < c.lo || c.got > c.hi {
			t.Errorf("%s = %.4f, want within [%.3f, %.3f]", c.name, c.got, c.lo, c.hi)
		}
	}
	if maxRunes > 5000 {
		t.Errorf("longest body = %d runes, want at most 5000", maxRunes)
	}
}

func TestChineseVocabulary(t *testing.T) {
	if len(zhWords) < 300 {
		t.Errorf("len(zhWords) = %d, want at least 300 (a few hundred common words)", len(zhWords))
	}
	seen := map[string]bool{}
	for _, w := range zhWords {
		if seen[w.text] {
			t.Errorf("zhWords lists %q twice", w.text)
		}
		seen[w.text] = true
		if w.weight <= 0 {
			t.Errorf("zhWords %q weight = %d, want > 0", w.text, w.weight)
		}
	}
}

func TestPercentile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, c := range []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 50, 7 * time.Millisecond},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(hundred...), 50, 50 * time.Millisecond},
		{ms(hundred...), 90, 90 * time.Millisecond},
		{ms(hundred...), 99, 99 * time.Millisecond},
		{ms(hundred...), 100, 100 * time.Millisecond},
		{ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{ms(1, 2, 3, 4), 51, 3 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{ms(15, 20, 35, 40, 50), 30, 20 * time.Millisecond}, // the textbook nearest-rank example
		{ms(15, 20, 35, 40, 50), 40, 20 * time.Millisecond},
		{ms(15, 20, 35, 40, 50), 50, 35 * time.Millisecond},
	} {
		if got := Percentile(c.in, c.p); got != c.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", c.in, c.p, got, c.want)
		}
	}
	s := Summarize(ms(5, 1, 4, 2, 3))
	if s.Count != 5 || s.P50 != 3*time.Millisecond || s.Max != 5*time.Millisecond || s.Mean != 3*time.Millisecond {
		t.Errorf("Summarize(5 1 4 2 3) = %+v, want count 5, p50 3ms, max 5ms, mean 3ms", s)
	}
}

// TestScenarios runs each scenario end to end on a tiny data set, the HTTP paths against a child
// server process, and checks the JSON report has every key the issue asks for. No timings are
// asserted.
func TestScenarios(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	m, err := Generate(ctx, data, 3, 400, t.Logf)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if m.Messages != 400 {
		t.Fatalf("Generate: manifest messages = %d, want 400", m.Messages)
	}
	l, err := openLocal(data) // gen seals the bodies: the data set opens only with its keys
	if err != nil {
		t.Fatal(err)
	}
	db := l.db
	d := NewDataset(Params{Seed: 3, Messages: 400})
	for _, c := range d.Convs[:min(len(d.Convs), 20)] {
		got, err := db.FindConversation(ctx, c.OrgID, c.ID)
		if err != nil {
			t.Fatalf("FindConversation(%s) after gen: %v", c.ID, err)
		}
		if got.LastSeq != int64(c.Messages) {
			t.Errorf("conversation %s last_seq = %d, want %d", c.ID, got.LastSeq, c.Messages)
		}
	}
	db.Close()

	for _, sc := range []struct {
		name string
		run  func(context.Context, Config) (*Report, error)
	}{{"ingest", Ingest}, {"history", History}} {
		t.Run(sc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Data, cfg.Work, cfg.Server, cfg.Logf = data, t.TempDir(), serverCommand(t), t.Logf
			cfg.Senders, cfg.Readers, cfg.Count, cfg.RawBatch = 4, 2, 60, 16
			rep, err := sc.run(ctx, cfg)
			if err != nil {
				t.Fatalf("%s: %v", sc.name, err)
			}
			checkReport(t, rep, sc.name, []string{"scenario", "started_at", "machine.cpus", "machine.os", "machine.go",
				"dataset.messages", "dataset.conversations", "dataset.avg_body_bytes", "durability",
				"results.store.per_second", "results.store.p50_ms", "results.store.p99_ms", "results.store.peak_rss_bytes",
				"results.http.per_second", "results.http.p50_ms", "results.http.p99_ms", "results.http.peak_rss_bytes",
				"reference.name", "reference.per_second", "ratio.store_vs_raw", "ratio.http_vs_raw"})
			for k, r := range rep.Results {
				if r.Errors > 0 || r.Ops == 0 {
					t.Errorf("%s path %s: %d ops, %d errors (%s); want ops and no errors", sc.name, k, r.Ops, r.Errors, r.Note)
				}
			}
			if r := rep.Reference; r.Errors > 0 || r.Ops == 0 {
				t.Errorf("%s reference: %d ops, %d errors (%s); want ops and no errors", sc.name, r.Ops, r.Errors, r.Note)
			}
			if !strings.Contains(rep.Durability, "synchronous=FULL") {
				t.Errorf("durability = %q, want it to state synchronous=FULL", rep.Durability)
			}
		})
	}
}
