package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of one scenario run: what was measured, on what, with what data, and
// the reference measured in the same run.
type Report struct {
	Scenario  string      `json:"scenario"`
	StartedAt time.Time   `json:"started_at"`
	Machine   Machine     `json:"machine"`
	Dataset   DatasetInfo `json:"dataset"`
	Store     string      `json:"store"`
	// Durability states what every acknowledged write was subject to, as read back from the engine.
	Durability string             `json:"durability"`
	Settings   map[string]any     `json:"settings"`
	Results    map[string]*Result `json:"results"`
	Reference  *Result            `json:"reference"`
	// Ceiling is a second reference where a scenario has one (ingest): the engine on a minimal
	// table; Ratio then also holds X_vs_ceiling.
	Ceiling *Result `json:"ceiling,omitempty"`
	// Ratio compares each path with the reference: its rate divided by the reference's rate
	// (1 = as fast as the raw engine).
	Ratio map[string]float64 `json:"ratio"`
	// Figures holds measured quantities that are not a path's rate or latency (fanout: server
	// bytes per connection), by name with its unit.
	Figures map[string]float64 `json:"figures,omitempty"`
	Notes   []string           `json:"notes,omitempty"`

	order []string // result keys in the order they were measured
}

// Machine describes where the benchmark ran.
type Machine struct {
	CPUs     int    `json:"cpus"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
	Go       string `json:"go"`
	CPUModel string `json:"cpu_model,omitempty"`
	MemBytes int64  `json:"mem_bytes,omitempty"`
	// Fsync latency of a 4 KiB write in the working directory, measured at the start of the run.
	FsyncP50Ms float64 `json:"fsync_p50_ms"`
	FsyncP99Ms float64 `json:"fsync_p99_ms"`
}

// DatasetInfo describes the data the benchmark ran on.
type DatasetInfo struct {
	Messages      int     `json:"messages"`
	Conversations int     `json:"conversations"`
	Users         int     `json:"users"`
	Orgs          int     `json:"orgs"`
	AvgBodyBytes  float64 `json:"avg_body_bytes"`
	Seed          uint64  `json:"seed"`
	DBBytes       int64   `json:"db_bytes,omitempty"`
}

// Result is one measured path.
type Result struct {
	Name   string  `json:"name"`
	Unit   string  `json:"unit"` // what Rate counts per second: "messages" or "pages"
	Ops    int     `json:"ops"`  // acknowledged messages, or pages read
	Errors int     `json:"errors"`
	Secs   float64 `json:"seconds"`
	Rate   float64 `json:"per_second"`
	// Latency is per operation: one acknowledged message, one page, or (for batched references)
	// one batch, as LatencyOf says.
	LatencyOf string  `json:"latency_of"`
	P50Ms     float64 `json:"p50_ms"`
	P90Ms     float64 `json:"p90_ms"`
	P95Ms     float64 `json:"p95_ms"`
	P99Ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	// PeakRSSBytes is VmHWM of the process that did the work, reset when the measurement started.
	PeakRSSBytes int64  `json:"peak_rss_bytes"`
	RSSOf        string `json:"rss_of"`
	// PeakAnonRSSBytes is the highest anonymous RSS (RssAnon) sampled every 20 ms: RSS without
	// the pages of memory-mapped files, which grow with the database a scan reads.
	PeakAnonRSSBytes int64 `json:"peak_anon_rss_bytes,omitempty"`
	// CPU seconds used during the measurement by the server process and by the bench process.
	ServerCPUSecs float64 `json:"server_cpu_seconds,omitempty"`
	BenchCPUSecs  float64 `json:"bench_cpu_seconds,omitempty"`
	Note          string  `json:"note,omitempty"`
}

func newReport(scenario string, started time.Time, workDir string) *Report {
	rep := &Report{Scenario: scenario, StartedAt: started.UTC().Truncate(time.Second), Machine: machine(),
		Settings: map[string]any{}, Results: map[string]*Result{}, Ratio: map[string]float64{}}
	if p50, p99, err := fsyncProbe(workDir, 200); err == nil {
		rep.Machine.FsyncP50Ms, rep.Machine.FsyncP99Ms = msRound(p50), msRound(p99)
	} else {
		rep.Notes = append(rep.Notes, "fsync probe failed: "+err.Error())
	}
	return rep
}

func msRound(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

func (rep *Report) add(key string, res *Result) {
	rep.Results[key] = res
	rep.order = append(rep.order, key)
}

// finish fills in the ratios once the reference is known.
func (rep *Report) finish() {
	if rep.Reference == nil || rep.Reference.Rate == 0 {
		return
	}
	for k, r := range rep.Results {
		rep.Ratio[k+"_vs_raw"] = math.Round(r.Rate/rep.Reference.Rate*1000) / 1000
	}
	if rep.Ceiling == nil || rep.Ceiling.Rate == 0 {
		return
	}
	for k, r := range rep.Results {
		rep.Ratio[k+"_vs_ceiling"] = math.Round(r.Rate/rep.Ceiling.Rate*1000) / 1000
	}
	rep.Ratio["raw_vs_ceiling"] = math.Round(rep.Reference.Rate/rep.Ceiling.Rate*1000) / 1000
}

func fromSummary(s Summary, elapsed time.Duration) *Result {
	ms := msRound
	r := &Result{Ops: s.Count, Secs: math.Round(elapsed.Seconds()*1000) / 1000, P50Ms: ms(s.P50), P90Ms: ms(s.P90), P95Ms: ms(s.P95),
		P99Ms: ms(s.P99), MaxMs: ms(s.Max)}
	if elapsed > 0 {
		r.Rate = math.Round(float64(s.Count) / elapsed.Seconds())
	}
	return r
}

// WriteTable prints the report for people.
func (rep *Report) WriteTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	d := rep.Dataset
	fmt.Fprintf(bw, "chatvault bench %s   %s\n", rep.Scenario, rep.StartedAt.Format(time.RFC3339))
	fmt.Fprintf(bw, "machine:    %d CPUs, %s/%s, %s", rep.Machine.CPUs, rep.Machine.OS, rep.Machine.Arch, rep.Machine.Go)
	if rep.Machine.CPUModel != "" {
		fmt.Fprintf(bw, ", %s", rep.Machine.CPUModel)
	}
	fmt.Fprintf(bw, "; fsync of 4 KiB p50 %.2f ms, p99 %.2f ms\n", rep.Machine.FsyncP50Ms, rep.Machine.FsyncP99Ms)
	fmt.Fprintf(bw, "dataset:    %d messages, %d conversations, %d users, %d orgs, avg body %.1f bytes (seed %d)\n",
		d.Messages, d.Conversations, d.Users, d.Orgs, d.AvgBodyBytes, d.Seed)
	fmt.Fprintf(bw, "store:      %s; durability: %s\n", rep.Store, rep.Durability)
	var keys []string
	for k := range rep.Settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var settings []string
	for _, k := range keys {
		settings = append(settings, fmt.Sprintf("%s=%v", k, rep.Settings[k]))
	}
	fmt.Fprintf(bw, "settings:   %s\n\n", strings.Join(settings, " "))

	tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\trate/s\tops\terrors\tp50 ms\tp90 ms\tp95 ms\tp99 ms\tmax ms\tpeak RSS\tvs raw\tlatency of\t")
	row := func(label string, r *Result, ratio string) {
		fmt.Fprintf(tw, "%s\t%.0f %s\t%d\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%s\t%s\t%s\t\n", label, r.Rate, r.Unit, r.Ops, r.Errors,
			r.P50Ms, r.P90Ms, r.P95Ms, r.P99Ms, r.MaxMs, mib(r.PeakRSSBytes), ratio, r.LatencyOf)
	}
	for _, k := range rep.order {
		ratio := "-"
		if v, ok := rep.Ratio[k+"_vs_raw"]; ok {
			ratio = fmt.Sprintf("%.3f", v)
		}
		row(k, rep.Results[k], ratio)
	}
	if rep.Reference != nil {
		row("raw (reference)", rep.Reference, "1.000")
	}
	if rep.Ceiling != nil && rep.Reference != nil && rep.Reference.Rate > 0 {
		row("ceiling (minimal table)", rep.Ceiling, fmt.Sprintf("%.3f", rep.Ceiling.Rate/rep.Reference.Rate))
	}
	tw.Flush()
	fmt.Fprintln(bw)
	for _, k := range rep.order {
		r := rep.Results[k]
		fmt.Fprintf(bw, "%-9s %s; RSS of %s", k+":", r.Name, r.RSSOf)
		if r.PeakAnonRSSBytes > 0 {
			fmt.Fprintf(bw, "; peak anonymous RSS %s", mib(r.PeakAnonRSSBytes))
		}
		if r.ServerCPUSecs > 0 || r.BenchCPUSecs > 0 {
			fmt.Fprintf(bw, "; CPU s: server %.1f, bench %.1f", r.ServerCPUSecs, r.BenchCPUSecs)
		}
		if r.Note != "" {
			fmt.Fprintf(bw, "; %s", r.Note)
		}
		fmt.Fprintln(bw)
	}
	if rep.Reference != nil {
		fmt.Fprintf(bw, "%-9s %s; RSS of %s", "raw:", rep.Reference.Name, rep.Reference.RSSOf)
		if rep.Reference.PeakAnonRSSBytes > 0 {
			fmt.Fprintf(bw, "; peak anonymous RSS %s", mib(rep.Reference.PeakAnonRSSBytes))
		}
		fmt.Fprintln(bw)
	}
	if rep.Ceiling != nil {
		fmt.Fprintf(bw, "%-9s %s; RSS of %s\n", "ceiling:", rep.Ceiling.Name, rep.Ceiling.RSSOf)
		var vs []string
		for _, k := range append(slices.Clone(rep.order), "raw") {
			if v, ok := rep.Ratio[k+"_vs_ceiling"]; ok {
				vs = append(vs, fmt.Sprintf("%s %.3f", k, v))
			}
		}
		fmt.Fprintf(bw, "vs ceiling: %s\n", strings.Join(vs, ", "))
	}
	var figs []string
	for k := range rep.Figures {
		figs = append(figs, k)
	}
	slices.Sort(figs)
	for _, k := range figs {
		fmt.Fprintf(bw, "%s: %.6g\n", k, rep.Figures[k])
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(bw, "note: %s\n", n)
	}
	return bw.Flush()
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(rep)
}

func mib(b int64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemBytes = kb << 10
		}
	}
	return m
}
