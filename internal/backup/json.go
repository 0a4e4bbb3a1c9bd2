package backup

import (
	"encoding/json"
	"log/slog"
	"sort"
	"time"
)

// The command line prints these reports with --json for scripts: field names in snake_case like
// every other JSON chatvault writes, durations in seconds (a number a script can compare, not Go's
// nanoseconds), and errors as their text (an error value has no JSON form of its own).

func (r *CreateResult) MarshalJSON() ([]byte, error) {
	type plain CreateResult
	return json.Marshal(struct {
		*plain
		Duration float64            `json:"duration_seconds"`
		Phases   map[string]float64 `json:"phase_seconds"`
	}{(*plain)(r), r.Duration.Seconds(), phaseSeconds(r.Phases)})
}

func (e TargetError) MarshalJSON() ([]byte, error) {
	msg := ""
	if e.Err != nil {
		msg = e.Err.Error()
	}
	return json.Marshal(struct {
		Target string `json:"target"`
		Kind   string `json:"kind"`
		Error  string `json:"error"`
	}{e.Target, e.Kind, msg})
}

func (r *VerifyReport) MarshalJSON() ([]byte, error) {
	type plain VerifyReport
	stored := make(map[string]string, len(r.Stored))
	for t, err := range r.Stored {
		stored[t] = "ok"
		if err != nil {
			stored[t] = err.Error()
		}
	}
	return json.Marshal(struct {
		*plain
		Stored  map[string]string `json:"stored"`
		Elapsed float64           `json:"elapsed_seconds"`
	}{(*plain)(r), stored, r.Elapsed.Seconds()})
}

// phaseSeconds is a backup's phases in seconds, rounded to the millisecond.
func phaseSeconds(phases map[string]time.Duration) map[string]float64 {
	out := make(map[string]float64, len(phases))
	for k, d := range phases {
		out[k] = d.Round(time.Millisecond).Seconds()
	}
	return out
}

// phaseLog logs a backup's phases as a group of durations (phases.snapshot=1.2s), in a stable order.
type phaseLog map[string]time.Duration

func (p phaseLog) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, len(p))
	for k, d := range p {
		attrs = append(attrs, slog.Duration(k, d.Round(time.Millisecond)))
	}
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].Key < attrs[j].Key })
	return slog.GroupValue(attrs...)
}
