package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/audit"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/export"
	"github.com/chatvault/chatvault/internal/export/xlsx"
)

// Export measures `chatvault export` in process on a working copy, encrypted at rest: each org
// exported whole by a compliance officer (every message read, decrypted, filtered and written) as
// CSV, JSONL and XLSX, one format after another, to files in the work directory. The reference,
// in the same run, is a raw scan of the same rows: every conversation paged by seq through the
// store (read and decrypt), nothing written.
func Export(ctx context.Context, cfg Config) (*Report, error) {
	ds, rep, err := cfg.start("export")
	if err != nil {
		return nil, err
	}
	l, dir, err := cfg.workStore(ctx, ds, "export", rep)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	defer l.close()
	one := cfg
	one.Count = 1
	rep.Settings = map[string]any{"seed": cfg.Seed, "scope": "org (compliance officer), every org in turn", "page_size": 500}

	// Officers are made here rather than stored: the roles on the actor are what authorisation
	// reads, and each export's audit entry names a real user of the org.
	var officers []chatvault.Actor
	for _, o := range ds.d.Orgs {
		officers = append(officers, chatvault.Actor{OrgID: o.Org.ID, UserID: o.Users[0].ID,
			Roles: []chatvault.Role{chatvault.RoleMember, chatvault.RoleComplianceOfficer}})
	}

	var scanned int64
	cfg.Logf("export: reference scan")
	ref := one.inProcess(ctx, "raw scan: every conversation paged by seq through Store.FindMessages (read and decrypt), 500 a page, nothing written",
		"messages", "the whole scan", 1, func(ctx context.Context, _ int, _ *rand.Rand) error {
			scanned = 0
			for _, a := range officers {
				for after := ""; ; {
					ids, err := l.db.FindConversationIDs(ctx, a.OrgID, after, 500)
					if err != nil {
						return err
					}
					for _, id := range ids {
						for seq := int64(0); ; {
							ms, err := l.db.FindMessages(ctx, a.OrgID, id, chatvault.MessageQuery{After: seq, Limit: 500})
							if err != nil {
								return err
							}
							scanned += int64(len(ms))
							if len(ms) < 500 {
								break
							}
							seq = ms[len(ms)-1].Seq
						}
					}
					if len(ids) < 500 {
						break
					}
					after = ids[len(ids)-1]
				}
			}
			return nil
		})
	perMessage(ref, scanned)
	rep.Reference = ref

	for _, format := range []export.Format{export.CSV, export.JSONL, export.XLSX} {
		var rows, bytes int64
		cfg.Logf("export: %s", format)
		res := one.inProcess(ctx, fmt.Sprintf("export.Exporter, scope org, %s written to a file in the work directory", format),
			"messages", "the whole export", 1, func(ctx context.Context, _ int, _ *rand.Rand) error {
				rows, bytes = 0, 0
				for _, a := range officers {
					n, size, err := exportOrg(ctx, l, dir, a, format)
					if err != nil {
						return err
					}
					rows += n
					bytes += size
				}
				return nil
			})
		perMessage(res, rows)
		rep.add(string(format), res)
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s: %d rows, %d bytes written (%.1f bytes a row)", format, rows, bytes, float64(bytes)/float64(max(rows, 1))))
	}
	job, err := measureExportJobs(ctx, one, l, dir, officers)
	if err != nil {
		return nil, err
	}
	rep.add("csv job", job)
	if err := l.close(); err != nil {
		return nil, err
	}
	rep.finish()
	return rep, nil
}

// measureExportJobs measures what the API runs: a CSV export job per org, which stages the
// records in sealed frames (with a checkpoint every second) and then writes the zip package from
// them, polled until done.
func measureExportJobs(ctx context.Context, cfg Config, l *local, dir string, officers []chatvault.Actor) (*Result, error) {
	clock := chatvault.SystemClock{}
	jobs, err := export.NewJobs(export.JobsConfig{Store: l.db, Chat: l.chat, Clock: clock, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Dir: filepath.Join(dir, "export-jobs"), NewWriter: xlsx.NewWriter, Seal: audit.New(l.db, l.db.Keyring(), clock)})
	if err != nil {
		return nil, err
	}
	defer jobs.Close()
	var rows int64
	cfg.Logf("export: csv job")
	res := cfg.inProcess(ctx, "export.Jobs, scope org, csv: staged in sealed frames, then packaged as a zip; polled every 50 ms",
		"messages", "the whole export", 1, func(ctx context.Context, _ int, _ *rand.Rand) error {
			rows = 0
			for _, a := range officers {
				st, err := jobs.Start(ctx, a, export.Request{Scope: chat.ScopeOrg, Format: export.CSV, TimeZone: "Asia/Shanghai"})
				if err != nil {
					return err
				}
				for st.State == chatvault.ExportQueued || st.State == chatvault.ExportRunning {
					time.Sleep(50 * time.Millisecond)
					if st, err = jobs.Job(ctx, a, st.ID); err != nil {
						return err
					}
				}
				if st.State != chatvault.ExportDone {
					return fmt.Errorf("export job %s: %s (%s)", st.ID, st.State, st.Error)
				}
				rows += st.RowsDone
				if err := jobs.Cancel(ctx, a, st.ID); err != nil { // deletes the package
					return err
				}
			}
			return nil
		})
	perMessage(res, rows)
	return res, nil
}

// perMessage turns a one-operation result into a rate of messages.
func perMessage(r *Result, n int64) {
	r.Ops = int(n)
	if r.Secs > 0 {
		r.Rate = float64(n) / r.Secs
	}
}

func exportOrg(ctx context.Context, l *local, dir string, a chatvault.Actor, format export.Format) (rows, size int64, err error) {
	req := export.Request{Scope: chat.ScopeOrg, Format: format, TimeZone: "Asia/Shanghai"}
	if err := req.Validate(); err != nil {
		return 0, 0, err
	}
	src, err := l.chat.OpenExport(ctx, a, req.Scope, chatvault.AuditEntry{Target: "bench", Details: export.AuditDetails(&req)})
	if err != nil {
		return 0, 0, err
	}
	path := filepath.Join(dir, "export-"+a.OrgID+"."+string(format))
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(path)
	defer f.Close()
	bw := bufio.NewWriterSize(f, 256<<10)
	w, err := xlsx.NewWriter(&export.SingleFile{W: bw}, &req, "messages")
	if err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	st, err := (&export.Exporter{Users: l.db}).Run(ctx, a.OrgID, src, &req, w)
	if err != nil {
		return 0, 0, fmt.Errorf("export %s after %s: %w", format, time.Since(t0), err)
	}
	if err := bw.Flush(); err != nil {
		return 0, 0, err
	}
	info, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	return st.Rows, info.Size(), nil
}
