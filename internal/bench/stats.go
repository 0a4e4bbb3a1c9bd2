package bench

import (
	"math"
	"slices"
	"time"
)

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the nearest-rank method: the
// smallest value such that at least p% of the values are less than or equal to it. It returns 0
// for no values.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Summary is what a report keeps of a set of latencies.
type Summary struct {
	Count int
	P50   time.Duration
	P90   time.Duration
	P95   time.Duration
	P99   time.Duration
	Max   time.Duration
	Mean  time.Duration
}

// Summarize sorts ds in place and summarizes it.
func Summarize(ds []time.Duration) Summary {
	slices.Sort(ds)
	s := Summary{Count: len(ds), P50: Percentile(ds, 50), P90: Percentile(ds, 90), P95: Percentile(ds, 95), P99: Percentile(ds, 99)}
	if len(ds) == 0 {
		return s
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	s.Max, s.Mean = ds[len(ds)-1], sum/time.Duration(len(ds))
	return s
}
