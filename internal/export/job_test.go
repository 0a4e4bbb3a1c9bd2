package export_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/clocktest"
	"github.com/chatvault/chatvault/internal/export"
	"github.com/chatvault/chatvault/internal/export/xlsx"
)

// jobs returns export jobs over dir that save a checkpoint at every chance and tell hook of it.
func (w *world) jobs(t *testing.T, dir string, hook func(ctx context.Context, id string, p export.Position)) *export.Jobs {
	t.Helper()
	return w.nodeJobs(t, "", dir, hook)
}

// nodeJobs is jobs for the server named node.
func (w *world) nodeJobs(t *testing.T, node, dir string, hook func(ctx context.Context, id string, p export.Position)) *export.Jobs {
	t.Helper()
	j, err := export.NewJobs(export.JobsConfig{Store: w.db, Chat: w.chat, Clock: w.clk, Node: node,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Dir: dir, NewWriter: xlsx.NewWriter, Seal: w.audit,
		CheckpointEvery: time.Nanosecond, Checkpointed: hook})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(j.Close)
	return j
}

// stoppedJob starts req on the server named node over dir and stops that server (Close) when the
// job has read its first conversation and saved the checkpoint, as a server stopping mid-export
// does. It returns the job's id and where it stopped.
func (w *world) stoppedJob(t *testing.T, node, dir string, req export.Request) (string, export.Position) {
	t.Helper()
	stopped := make(chan export.Position, 1)
	j := w.nodeJobs(t, node, dir, func(ctx context.Context, id string, p export.Position) {
		if p.Conv == 1 && !p.Begun {
			stopped <- p
			<-ctx.Done()
		}
	})
	st, err := j.Start(context.Background(), w.officer, req)
	if err != nil {
		t.Fatalf("Start() = %v", err)
	}
	p := <-stopped
	j.Close()
	return st.ID, p
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

// A job stopped in the middle of its read (the server stopping) goes on from its checkpoint when
// the next server starts: it reads the snapshot it took, so a message sent while it was stopped
// stays out, even in a conversation it had read already, and its package is byte for byte that
// of an uninterrupted run. The resumed org-wide export records a new audit entry before it reads.
func TestJobResumesFromItsCheckpoint(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	for _, format := range []export.Format{export.CSV, export.JSONL, export.HTML, export.XLSX} {
		t.Run(string(format), func(t *testing.T) {
			dir := t.TempDir()
			req := export.Request{Scope: "org", Format: format, Filter: export.Filter{Edits: true, Recalled: true}}
			whole := w.jobs(t, dir, nil)
			st, err := whole.Start(ctx, w.officer, req)
			if err != nil {
				t.Fatalf("Start() = %v", err)
			}
			if done := waitJob(t, whole, w.officer, st.ID); done.State != chatvault.ExportDone {
				t.Fatalf("export = %s (%s); want done", done.State, done.Error)
			}
			want := readZip(t, filepath.Join(dir, st.ID+".zip"))

			cut, p := w.stoppedJob(t, "", dir, req)
			job, err := w.db.FindExportJob(ctx, w.org.ID, cut)
			if err != nil {
				t.Fatal(err)
			}
			if job.State != chatvault.ExportRunning || job.RowsDone != p.Rows || len(job.Checkpoint) == 0 {
				t.Fatalf("stopped job = %s, %d rows, %d checkpoint bytes; want running at %d rows with a checkpoint",
					job.State, job.RowsDone, len(job.Checkpoint), p.Rows)
			}
			if _, err := os.Stat(filepath.Join(dir, cut+".zip")); err == nil {
				t.Fatal("the stopped job wrote its package")
			}

			// Sent while the server is down: after the snapshot, so out of the export.
			w.send(t, w.alice, w.direct, "sent while the server was down", "")
			w.send(t, w.alice, w.group, "sent while the server was down", "")

			before := w.auditCount(t)
			restarted := w.jobs(t, dir, nil)
			if err := restarted.Resume(ctx); err != nil {
				t.Fatalf("Resume() = %v", err)
			}
			if done := waitJob(t, restarted, w.officer, cut); done.State != chatvault.ExportDone {
				t.Fatalf("resumed export = %s (%s); want done", done.State, done.Error)
			}
			got := readZip(t, filepath.Join(dir, cut+".zip"))
			for name, data := range want {
				if name == "manifest.json" {
					continue // it names the job's own creation time
				}
				if !bytes.Equal(got[name], data) {
					t.Errorf("resumed %s differs from the uninterrupted export's:\n%s\nwant:\n%s", name, clip(got[name]), clip(data))
				}
			}
			if len(got) != len(want) {
				t.Errorf("resumed package holds %d files; want %d", len(got), len(want))
			}
			if n := w.auditCount(t); n != before+1 {
				t.Errorf("resuming wrote %d audit entries; want 1", n-before)
			}
			// Removed just after the job is marked done (a crash in between leaves them to the
			// next start's sweep).
			clocktest.Poll(t, "staged records removed", func() error {
				if _, err := os.Stat(filepath.Join(dir, cut+".stage")); !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("the staged records outlive the finished job: %v", err)
				}
				return nil
			})
		})
	}
}

// What a job keeps while it runs is not in the clear: its row seals the request (a search query
// names what someone looks for) and the checkpoint, and the staged records on disk are sealed.
func TestJobKeepsNothingInTheClear(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	dir := t.TempDir()
	id, _ := w.stoppedJob(t, "", dir, export.Request{Scope: "org", Format: export.JSONL, Filter: export.Filter{Query: "会议 OR budget"}})
	job, err := w.db.FindExportJob(ctx, w.org.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	staged, err := os.ReadFile(filepath.Join(dir, id+".stage"))
	if err != nil {
		t.Fatal(err)
	}
	if len(staged) == 0 {
		t.Fatal("nothing staged at the checkpoint")
	}
	for name, data := range map[string][]byte{"request": job.Request, "checkpoint": job.Checkpoint, "staged records": staged} {
		for _, clear := range []string{"会议", "budget", "Alice", "张三"} {
			if bytes.Contains(data, []byte(clear)) {
				t.Errorf("the job's %s holds %q in the clear", name, clear)
			}
		}
	}
	for name, data := range map[string][]byte{"request": job.Request, "checkpoint": job.Checkpoint} {
		if !bytes.HasPrefix(data, []byte("sealed:")) {
			t.Errorf("the job's %s is not sealed: %.40q", name, data)
		}
	}
	// The sealed request still reads back for its owner.
	resumed := w.jobs(t, dir, nil)
	if err := resumed.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if done := waitJob(t, resumed, w.officer, id); done.State != chatvault.ExportDone || done.RowsDone == 0 {
		t.Fatalf("resumed export = %s, %d rows (%s); want done with rows", done.State, done.RowsDone, done.Error)
	}
}

// Staged records that were lost or altered while the server was down fail the resumed job with
// a message that says what to do; they never become a package.
func TestResumeRefusesDamagedStage(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	for _, tc := range []struct {
		name   string
		damage func(path string) error
		want   string
	}{
		{"removed", os.Remove, "start the export again"},
		{"cut short", func(path string) error { return os.Truncate(path, 10) }, "start the export again"},
		{"a byte flipped", func(path string) error {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			data[len(data)/2] ^= 1
			return os.WriteFile(path, data, 0o600)
		}, "start the export again"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			id, _ := w.stoppedJob(t, "", dir, export.Request{Scope: "org", Format: export.CSV})
			if err := tc.damage(filepath.Join(dir, id+".stage")); err != nil {
				t.Fatal(err)
			}
			resumed := w.jobs(t, dir, nil)
			if err := resumed.Resume(ctx); err != nil {
				t.Fatal(err)
			}
			done := waitJob(t, resumed, w.officer, id)
			if done.State != chatvault.ExportFailed || !strings.Contains(done.Error, tc.want) {
				t.Fatalf("export = %s (%q); want failed saying %q", done.State, done.Error, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, id+".zip")); err == nil {
				t.Error("a package was written from damaged records")
			}
		})
	}
}

// Servers sharing a store each keep their own jobs' files: a server that starts does not take
// over (or fail) a job another one runs, and cannot serve or cancel it; the job's own server does.
func TestJobsBelongToTheirServer(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	id, _ := w.stoppedJob(t, "node-a", dirA, export.Request{Scope: "org", Format: export.CSV})

	b := w.nodeJobs(t, "node-b", dirB, nil)
	if err := b.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Job(ctx, w.officer, id); err != nil || got.State != chatvault.ExportRunning {
		t.Fatalf("after another server started, the job is %v, %v; want still running on its own server", got.State, err)
	}
	if err := b.Cancel(ctx, w.officer, id); chatvault.ErrorCode(err) != chatvault.ECONFLICT {
		t.Errorf("Cancel() on another server = %v; want %s", err, chatvault.ECONFLICT)
	}
	if _, err := os.Stat(filepath.Join(dirB, id+".stage")); err == nil {
		t.Error("the other server staged records of the job")
	}

	again := w.nodeJobs(t, "node-a", dirA, nil)
	if err := again.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if done := waitJob(t, again, w.officer, id); done.State != chatvault.ExportDone {
		t.Fatalf("export on its own server = %s (%s); want done", done.State, done.Error)
	}
	if _, _, err := b.Download(ctx, w.officer, id); chatvault.ErrorCode(err) != chatvault.ECONFLICT {
		t.Errorf("Download() on another server = %v; want %s", err, chatvault.ECONFLICT)
	}
	f, _, err := again.Download(ctx, w.officer, id)
	if err != nil {
		t.Fatalf("Download() on the job's server = %v", err)
	}
	f.Close()
}

func readZip(t *testing.T, path string) map[string][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("%s is not a zip: %v", path, err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name], err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func clip(b []byte) string {
	if len(b) > 400 {
		return string(b[:400]) + "…"
	}
	return string(b)
}

func (w *world) auditCount(t *testing.T) int {
	t.Helper()
	es, err := w.db.FindAudit(context.Background(), w.org.ID, 10000)
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// A server that stopped between finishing a job and removing its staged records leaves them
// behind; the next start removes them, and leaves an unfinished job's alone.
func TestResumeSweepsLeftovers(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	dir := t.TempDir()
	running, _ := w.stoppedJob(t, "", dir, export.Request{Scope: "org", Format: export.CSV})
	leftovers := []string{"01234567-89ab-7def-8123-456789abcdef.stage", "01234567-89ab-7def-8123-456789abcdef.zip.partial"}
	for _, name := range leftovers {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("left over"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	staged, err := os.ReadFile(filepath.Join(dir, running+".stage"))
	if err != nil {
		t.Fatal(err)
	}
	j := w.nodeJobs(t, "", dir, func(ctx context.Context, id string, p export.Position) { <-ctx.Done() })
	if err := j.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range leftovers {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("leftover %s is still there: %v", name, err)
		}
	}
	// The unfinished job's records are kept (its run waits in the hook, at its first save).
	got, err := os.ReadFile(filepath.Join(dir, running+".stage"))
	if err != nil || !bytes.Equal(got, staged) {
		t.Errorf("the unfinished job's staged records = %d bytes, %v; want the %d it had", len(got), err, len(staged))
	}
}
