package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatvault/chatvault/internal/bench"
	"github.com/chatvault/chatvault/internal/clocktest"
)

// zipFiles reads every file of a zip package.
func zipFiles(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("package is not a zip: %v", err)
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

// kill -9 of the server in the middle of an org-wide XLSX export, after its first checkpoint;
// after a restart the job goes on from that checkpoint (not from the start) and its workbook is
// byte for byte that of an uninterrupted export of the same request.
func TestExportResumesAfterKill(t *testing.T) {
	bin := chatvaultBinary(t)
	dataDir := t.TempDir()
	if _, err := bench.Generate(context.Background(), dataDir, 1, 30_000, t.Logf); err != nil {
		t.Fatalf("generate data set: %v", err)
	}
	pw, err := os.ReadFile(filepath.Join(dataDir, bench.PasswordFile))
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimSpace(string(pw))
	srv := startServer(t, bin, dataDir)
	login := func(p *serverProc, user, password string) string {
		var res struct {
			Token string `json:"token"`
		}
		p.must("POST", "/api/v1/auth/login", "", map[string]string{"username": user, "password": password, "device_name": "export test"}, &res, http.StatusOK)
		return res.Token
	}
	admin := login(srv, "admin", password)
	srv.must("POST", "/api/v1/admin/users", admin, map[string]any{"username": "officer", "password": "password-officer",
		"roles": []string{"compliance_officer"}}, nil, http.StatusCreated)
	officer := login(srv, "officer", "password-officer")

	type job struct {
		ID       string `json:"id"`
		State    string `json:"state"`
		RowsDone int64  `json:"rows_done"`
	}
	request := map[string]any{"format": "xlsx", "scope": "org", "lang": "zh-CN", "time_zone": "Asia/Shanghai", "include_edits": true}
	wait := func(p *serverProc, id string, done func(job) bool) job {
		var j job
		clocktest.Poll(t, "export "+id, func() error {
			p.must("GET", "/api/v1/exports/"+id, officer, nil, &j, http.StatusOK)
			if !done(j) {
				return fmt.Errorf("export %s is %s, %d rows", id, j.State, j.RowsDone)
			}
			return nil
		})
		return j
	}
	finished := func(j job) bool { return j.State != "queued" && j.State != "running" }
	download := func(p *serverProc, id string) map[string][]byte {
		status, body, err := p.do("GET", "/api/v1/exports/"+id+"/download", officer, nil, nil)
		if err != nil || status != http.StatusOK {
			t.Fatalf("download %s = %d, %v", id, status, err)
		}
		return zipFiles(t, body)
	}

	var whole job
	srv.must("POST", "/api/v1/exports", officer, request, &whole, http.StatusAccepted)
	if j := wait(srv, whole.ID, finished); j.State != "done" || j.RowsDone < 30_000 {
		t.Fatalf("uninterrupted export = %+v; want done with at least 30,000 rows", j)
	}
	want := download(srv, whole.ID)

	var cut job
	srv.must("POST", "/api/v1/exports", officer, request, &cut, http.StatusAccepted)
	// rows_done is saved with each checkpoint, so a count above 0 means there is one to resume from.
	wait(srv, cut.ID, func(j job) bool { return (j.State == "running" && j.RowsDone > 0) || finished(j) })
	srv.kill()
	if _, err := os.Stat(filepath.Join(dataDir, "exports", cut.ID+".zip")); err == nil {
		t.Fatalf("the export finished before the kill; the test needs a larger data set")
	}

	srv = startServer(t, bin, dataDir)
	if j := wait(srv, cut.ID, finished); j.State != "done" {
		t.Fatalf("export after restart = %+v; want done", j)
	}
	if from := srv.resumedFrom(t, cut.ID); from <= 0 {
		t.Errorf("the restarted server resumed the export from row %d; want from its checkpoint, past row 0", from)
	}
	got := download(srv, cut.ID)
	if len(got) != len(want) {
		t.Fatalf("resumed package holds %d files; want %d", len(got), len(want))
	}
	for name, data := range want {
		if name == "manifest.json" {
			continue // it names the job's own creation time
		}
		if !bytes.Equal(got[name], data) {
			t.Errorf("resumed %s differs from the uninterrupted export's (%d bytes; want %d)", name, len(got[name]), len(data))
		}
	}
}

// resumedFrom is the row an "export resumed" log line of the server says the export went on from;
// -1 when there is none.
func (p *serverProc) resumedFrom(t *testing.T, id string) int64 {
	t.Helper()
	for _, line := range p.logLines() {
		var rec struct {
			Msg      string `json:"msg"`
			Export   string `json:"export"`
			FromRows int64  `json:"from_rows"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "export resumed" && rec.Export == id {
			return rec.FromRows
		}
	}
	return -1
}
