package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/sqlite"
)

// BenchmarkEncryption measures ingest (AppendMessage from 64 concurrent senders, so group commit
// works as in production) and history (pages of 50, newest first) with encryption off and on, in
// the same run, on the same machine. Run:
//
//	go test ./internal/sqlite -run '^$' -bench Encryption -benchtime 20000x -count 3
func BenchmarkEncryption(b *testing.B) {
	for _, mode := range []string{"off", "on"} {
		open := func(b *testing.B) *sqlite.DB {
			dir := b.TempDir()
			if mode == "off" {
				db, err := sqlite.Open(dir)
				if err != nil {
					b.Fatal(err)
				}
				return db
			}
			return openEncrypted(b, dir)
		}
		b.Run("ingest/encryption="+mode, func(b *testing.B) {
			db := open(b)
			defer db.Close()
			w := newWorld(b, db)
			convs := make([]*chatvault.Conversation, 32)
			for i := range convs {
				convs[i] = w.conv(b)
			}
			text := "一条普通长度的聊天消息 with some English words, about eighty bytes long."
			var next atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for s := range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						c := convs[(int(i)+s)%len(convs)]
						if _, err := w.trySend(c, text, time.Now()); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
		b.Run("history/encryption="+mode, func(b *testing.B) {
			db := open(b)
			defer db.Close()
			w := newWorld(b, db)
			c := w.conv(b)
			const n = 5000
			var wg sync.WaitGroup
			for g := range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range n / 50 {
						if _, err := w.trySend(c, fmt.Sprintf("history message %d/%d 历史消息 with a body of ordinary length", g, i), time.Now()); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			ctx := context.Background()
			b.ResetTimer()
			var pages atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				i := int64(0)
				for pb.Next() {
					i++
					before := n - (i*37)%(n-50)
					ms, err := db.FindMessages(ctx, w.org.ID, c.ID, chatvault.MessageQuery{Before: before, Desc: true, Limit: 50})
					if err != nil || len(ms) != 50 {
						b.Errorf("FindMessages() = %d, %v", len(ms), err)
						return
					}
					pages.Add(1)
				}
			})
			b.ReportMetric(float64(pages.Load()*50)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// TestEncryptionOverhead compares encryption off and on in alternating short rounds within one
// process, so load from elsewhere on the machine falls on both sides alike; it reports the median
// round of each. It is a measurement, not a check: it runs only when asked.
//
//	CHATVAULT_BENCH_ENCRYPTION=1 go test ./internal/sqlite -run EncryptionOverhead -v
func TestEncryptionOverhead(t *testing.T) {
	if os.Getenv("CHATVAULT_BENCH_ENCRYPTION") == "" {
		t.Skip("set CHATVAULT_BENCH_ENCRYPTION=1 to measure")
	}
	const rounds, perRound, senders, pages = 7, 3000, 64, 3000
	type side struct {
		db    *sqlite.DB
		w     *world
		convs []*chatvault.Conversation
		hist  *chatvault.Conversation
		in    []float64
		out   []float64
	}
	sides := map[string]*side{}
	for _, mode := range []string{"off", "on"} {
		dir := t.TempDir()
		var db *sqlite.DB
		if mode == "off" {
			var err error
			if db, err = sqlite.Open(dir); err != nil {
				t.Fatal(err)
			}
		} else {
			db = openEncrypted(t, dir)
		}
		defer db.Close()
		s := &side{db: db, w: newWorld(t, db)}
		for range 32 {
			s.convs = append(s.convs, s.w.conv(t))
		}
		s.hist = s.w.conv(t)
		for i := range 2000 {
			s.w.send(t, s.hist, fmt.Sprintf("history message %d 历史消息 with a body of ordinary length", i), time.Now())
		}
		sides[mode] = s
	}
	ctx := context.Background()
	text := "一条普通长度的聊天消息 with some English words, about eighty bytes long."
	ingest := func(s *side) float64 {
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for g := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= perRound {
					if _, err := s.w.trySend(s.convs[g%len(s.convs)], text, time.Now()); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return perRound / time.Since(start).Seconds()
	}
	history := func(s *side) float64 {
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1); i <= pages; i = next.Add(1) {
					ms, err := s.db.FindMessages(ctx, s.w.org.ID, s.hist.ID, chatvault.MessageQuery{Before: 2000 - (i*37)%1900, Desc: true, Limit: 50})
					if err != nil || len(ms) != 50 {
						t.Errorf("FindMessages() = %d, %v", len(ms), err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return pages * 50 / time.Since(start).Seconds()
	}
	for r := range rounds {
		order := []string{"off", "on"}
		if r%2 == 1 {
			order = []string{"on", "off"}
		}
		for _, mode := range order {
			s := sides[mode]
			s.in = append(s.in, ingest(s))
			s.out = append(s.out, history(s))
		}
	}
	median := func(xs []float64) float64 {
		xs = slices.Clone(xs)
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	off, on := sides["off"], sides["on"]
	t.Logf("%d alternating rounds; ingest: %d sends per round from %d senders into 32 conversations; history: %d pages of 50 from 4 readers", rounds, perRound, senders, pages)
	t.Logf("ingest  msgs/s  off %8.0f  on %8.0f  overhead %5.1f%%  (rounds off %v on %v)", median(off.in), median(on.in), 100*(1-median(on.in)/median(off.in)), round0(off.in), round0(on.in))
	t.Logf("history msgs/s  off %8.0f  on %8.0f  overhead %5.1f%%  (rounds off %v on %v)", median(off.out), median(on.out), 100*(1-median(on.out)/median(off.out)), round0(off.out), round0(on.out))
}

func round0(xs []float64) []int {
	out := make([]int, len(xs))
	for i, x := range xs {
		out[i] = int(x)
	}
	return out
}
