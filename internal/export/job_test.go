package export_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/clocktest"
	"github.com/chatvault/chatvault/internal/export"
	"github.com/chatvault/chatvault/internal/export/xlsx"
	"github.com/google/uuid"
)

func (w *world) jobs(t *testing.T, dir string) *export.Jobs {
	t.Helper()
	j, err := export.NewJobs(export.JobsConfig{Store: w.db, Chat: w.chat, Clock: w.clk,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Dir: dir, NewWriter: xlsx.NewWriter})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(j.Close)
	return j
}

func waitJob(t *testing.T, j *export.Jobs, a chatvault.Actor, id string) *export.Status {
	t.Helper()
	var st *export.Status
	clocktest.Poll(t, "export "+id+" finished", func() error {
		var err error
		if st, err = j.Job(context.Background(), a, id); err != nil {
			t.Fatalf("Job() = %v", err)
		}
		if st.State == chatvault.ExportQueued || st.State == chatvault.ExportRunning {
			return fmt.Errorf("export is %s", st.State)
		}
		return nil
	})
	return st
}

// A job a server left running when it died (its row says running, a partial file lies beside
// the finished ones) runs again when the next server starts, and its package is byte for byte
// the package of an uninterrupted run of the same request. A resumed org-wide export records a
// new audit entry before it reads anything.
func TestResumedJobIsByteIdentical(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	dir := t.TempDir()
	j := w.jobs(t, dir)
	for _, format := range []export.Format{export.CSV, export.JSONL, export.HTML, export.XLSX} {
		t.Run(string(format), func(t *testing.T) {
			st, err := j.Start(ctx, w.officer, export.Request{Scope: "org", Format: format, Filter: export.Filter{Edits: true, Recalled: true}})
			if err != nil {
				t.Fatalf("Start() = %v", err)
			}
			if done := waitJob(t, j, w.officer, st.ID); done.State != chatvault.ExportDone {
				t.Fatalf("export = %s (%s); want done", done.State, done.Error)
			}
			want, err := os.ReadFile(filepath.Join(dir, st.ID+".zip"))
			if err != nil {
				t.Fatal(err)
			}

			// What a kill -9 mid-export leaves: the row running with some progress, a partial file.
			job, err := w.db.FindExportJob(ctx, w.org.ID, st.ID)
			if err != nil {
				t.Fatal(err)
			}
			job.ID, job.State, job.RowsDone, job.Bytes, job.SHA256 = uuid.NewString(), chatvault.ExportRunning, 3, 0, ""
			job.FinishedAt, job.ExpiresAt = nil, nil
			if err := w.db.CreateExportJob(ctx, job); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, job.ID+".zip.partial"), want[:len(want)/2], 0o600); err != nil {
				t.Fatal(err)
			}
			before := w.auditCount(t)
			restarted := w.jobs(t, dir)
			if err := restarted.Resume(ctx); err != nil {
				t.Fatalf("Resume() = %v", err)
			}
			if done := waitJob(t, restarted, w.officer, job.ID); done.State != chatvault.ExportDone {
				t.Fatalf("resumed export = %s (%s); want done", done.State, done.Error)
			}
			got, err := os.ReadFile(filepath.Join(dir, job.ID+".zip"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("resumed package differs from the uninterrupted one (%d bytes; want %d)", len(got), len(want))
			}
			if n := w.auditCount(t); n != before+1 {
				t.Errorf("resuming wrote %d audit entries; want 1", n-before)
			}
		})
	}
}

func (w *world) auditCount(t *testing.T) int {
	t.Helper()
	es, err := w.db.FindAudit(context.Background(), w.org.ID, 10000)
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}
