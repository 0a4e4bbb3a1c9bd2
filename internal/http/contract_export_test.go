package http_test

// The contract scenario for exports: a member's job from start to download (with a Range
// request), who may see a job, a compliance officer's org-wide export and its audit entry,
// cancellation, expiry, and bad input answered with the field named.

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"testing"

	"filippo.io/age"
	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/clocktest"
)

type exportJob struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	RowsDone int64  `json:"rows_done"`
	SHA256   string `json:"sha256"`
	Error    string `json:"error"`
}

// waitExport polls a job until it leaves queued and running.
func (ts *testServer) waitExport(token, id string) exportJob {
	ts.t.Helper()
	var job exportJob
	clocktest.Poll(ts.t, "export "+id+" finished", func() error {
		ts.must(http.StatusOK, "GET", "/api/v1/exports/"+id, token, nil).decode(ts.t, &job)
		if job.State == "queued" || job.State == "running" {
			return fmt.Errorf("export %s is %s", id, job.State)
		}
		return nil
	})
	return job
}

// getRange downloads with a Range header, checking the exchange against the spec like do.
func (ts *testServer) getRange(path, token, rng string) response {
	ts.t.Helper()
	req, err := http.NewRequest("GET", ts.URL+path, nil)
	if err != nil {
		ts.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Range", rng)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if ts.validate != nil {
		ts.validate(ts.t, req, nil, resp, out)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: out}
}

func contractExport(t *testing.T, c *contract) {
	ts, k := c.serve(t)
	admin := ts.adminToken
	alice, bob, carol := ts.newUser("alice"), ts.newUser("bob"), ts.newUser("carol")
	ts.must(http.StatusCreated, "POST", "/api/v1/admin/users", admin, map[string]any{
		"username": "officer", "password": "password-officer", "roles": []string{"compliance_officer"}})
	officer := ts.login("officer", "password-officer", "").Token
	g := ts.group(alice, "导出 export", false, bob)
	other := ts.group(carol, "carol's", false)
	for _, text := range []string{"你好 🌏", "=SUM(A1:A9)", "a, \"b\"\nc"} {
		ts.send(bob, g.ID, text)
	}

	var job exportJob
	r := ts.must(http.StatusAccepted, "POST", "/api/v1/exports", alice.Token, map[string]any{
		"format": "csv", "lang": "zh-CN", "time_zone": "Asia/Shanghai", "from": "2020-01-01", "participants": []string{bob.ID}})
	r.decode(t, &job)
	if r.Header.Get("Location") != "/api/v1/exports/"+job.ID {
		t.Errorf("Location = %q; want the job's URL", r.Header.Get("Location"))
	}
	job = ts.waitExport(alice.Token, job.ID)
	if job.State != "done" || job.RowsDone != 3 {
		t.Fatalf("export = %+v; want done with 3 rows", job)
	}
	pkg := ts.must(http.StatusOK, "GET", "/api/v1/exports/"+job.ID+"/download", alice.Token, nil).Body
	zr, err := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		t.Fatalf("download is not a zip: %v", err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	if strings.Join(names, ",") != "messages.csv,manifest.json" {
		t.Errorf("package holds %v; want messages.csv and manifest.json", names)
	}
	part := ts.getRange("/api/v1/exports/"+job.ID+"/download", alice.Token, "bytes=10-19")
	if part.Status != http.StatusPartialContent || !bytes.Equal(part.Body, pkg[10:20]) {
		t.Errorf("Range bytes=10-19 = %d, %q; want 206 with %q", part.Status, part.Body, pkg[10:20])
	}

	// Only the requester and compliance officers see a job.
	wantError(t, ts.must(http.StatusNotFound, "GET", "/api/v1/exports/"+job.ID, bob.Token, nil), chatvault.ENOTFOUND, "")
	wantError(t, ts.must(http.StatusNotFound, "GET", "/api/v1/exports/"+job.ID+"/download", admin, nil), chatvault.ENOTFOUND, "")
	ts.must(http.StatusOK, "GET", "/api/v1/exports/"+job.ID, officer, nil)
	wantError(t, ts.must(http.StatusNotFound, "GET", "/api/v1/exports/not-an-id", alice.Token, nil), chatvault.ENOTFOUND, "")

	// An org-wide export: compliance officers only, and audited.
	wantError(t, ts.must(http.StatusForbidden, "POST", "/api/v1/exports", admin, map[string]any{"format": "jsonl", "scope": "org"}), chatvault.EFORBIDDEN, "")
	var orgJob exportJob
	ts.must(http.StatusAccepted, "POST", "/api/v1/exports", officer, map[string]any{
		"format": "jsonl", "scope": "org", "include_edits": true, "include_recalled": true}).decode(t, &orgJob)
	if orgJob = ts.waitExport(officer, orgJob.ID); orgJob.State != "done" || orgJob.RowsDone != 3 {
		t.Errorf("org-wide export = %+v; want done with 3 rows", orgJob)
	}
	entries, err := ts.db.FindAudit(context.Background(), ts.orgID, 100)
	if err != nil {
		t.Fatal(err)
	}
	audited := false
	for _, e := range entries {
		audited = audited || e.Action == chat.AuditExportOrg && e.Target == orgJob.ID
	}
	if !audited {
		t.Errorf("no %s audit entry for export %s", chat.AuditExportOrg, orgJob.ID)
	}

	// The org's time zone: what an export that names none shows times in.
	var org struct {
		TimeZone string `json:"time_zone"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/org", admin, nil).decode(t, &org)
	if org.TimeZone != "UTC" {
		t.Errorf("a new org's time_zone = %q; want UTC", org.TimeZone)
	}
	wantError(t, ts.must(http.StatusForbidden, "PATCH", "/api/v1/admin/org", alice.Token, map[string]any{"time_zone": "Asia/Shanghai"}), chatvault.EFORBIDDEN, "")
	wantError(t, ts.must(http.StatusForbidden, "GET", "/api/v1/admin/org", alice.Token, nil), chatvault.EFORBIDDEN, "")
	for _, body := range []map[string]any{{"time_zone": "Mars/Base"}, {"time_zone": "Local"}, {"time_zone": ""}} {
		wantError(t, ts.must(http.StatusBadRequest, "PATCH", "/api/v1/admin/org", admin, body), chatvault.EINVALID, "time_zone")
	}
	ts.must(http.StatusOK, "PATCH", "/api/v1/admin/org", admin, map[string]any{"time_zone": "Asia/Shanghai"}).decode(t, &org)
	if org.TimeZone != "Asia/Shanghai" {
		t.Errorf("time_zone after PATCH = %q; want Asia/Shanghai", org.TimeZone)
	}
	var zoned exportJob
	// "from" is a date in the org's zone: midnight in Shanghai, 16:00 UTC the day before.
	ts.must(http.StatusAccepted, "POST", "/api/v1/exports", alice.Token, map[string]any{"format": "jsonl", "from": "2020-01-02"}).decode(t, &zoned)
	if zoned = ts.waitExport(alice.Token, zoned.ID); zoned.State != "done" {
		t.Fatalf("export in the org's zone = %+v; want done", zoned)
	}
	files := map[string][]byte{}
	zpkg := ts.must(http.StatusOK, "GET", "/api/v1/exports/"+zoned.ID+"/download", alice.Token, nil).Body
	zzr, err := zip.NewReader(bytes.NewReader(zpkg), int64(len(zpkg)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zzr.File {
		rc, _ := f.Open()
		files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	var manifest struct {
		Request struct {
			TimeZone string    `json:"time_zone"`
			From     time.Time `json:"from"`
		} `json:"request"`
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatal(err)
	}
	if manifest.Request.TimeZone != "Asia/Shanghai" || !manifest.Request.From.Equal(time.Date(2020, 1, 1, 16, 0, 0, 0, time.UTC)) {
		t.Errorf("export without a time_zone: request %+v; want Asia/Shanghai from 2020-01-01T16:00Z", manifest.Request)
	}
	if !bytes.Contains(files["messages.jsonl"], []byte(`+08:00"`)) {
		t.Errorf("export without a time_zone shows times not in +08:00:\n%s", files["messages.jsonl"])
	}

	// A package encrypted to an age recipient as it is written; it decrypts to the zip.
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	var encJob exportJob
	ts.must(http.StatusAccepted, "POST", "/api/v1/exports", alice.Token, map[string]any{
		"format": "jsonl", "recipients": []string{id.Recipient().String()}}).decode(t, &encJob)
	if encJob = ts.waitExport(alice.Token, encJob.ID); encJob.State != "done" {
		t.Fatalf("encrypted export = %+v; want done", encJob)
	}
	enc := ts.must(http.StatusOK, "GET", "/api/v1/exports/"+encJob.ID+"/download", alice.Token, nil)
	if ct := enc.Header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("encrypted download Content-Type = %q; want application/octet-stream", ct)
	}
	plain, err := age.Decrypt(bytes.NewReader(enc.Body), id)
	if err != nil {
		t.Fatalf("age.Decrypt() = %v", err)
	}
	zipped, err := io.ReadAll(plain)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped))); err != nil {
		t.Errorf("decrypted package is not a zip: %v", err)
	}

	// Bad input, each with its field.
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/exports", alice.Token, map[string]any{"format": "pdf"}), chatvault.EINVALID, "format")
	})
	for _, c := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"format": "csv", "time_zone": "Mars/Base"}, "time_zone"},
		{map[string]any{"format": "csv", "from": "last tuesday"}, "from"},
		{map[string]any{"format": "csv", "from": "2026-02-01", "to": "2026-01-01"}, "to"},
		{map[string]any{"format": "csv", "query": "-alpha"}, "query"},
		{map[string]any{"format": "csv", "recipients": []string{"not-a-key"}}, "recipients"},
		{map[string]any{"format": "csv", "participants": []string{"01234567-89ab-7def-8123-456789abcdef"}}, "participants"},
		{map[string]any{"format": "csv", "senders": []string{"01234567-89ab-7def-8123-456789abcdef"}}, "senders"},
	} {
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/exports", alice.Token, c.body), chatvault.EINVALID, c.field)
	}
	for _, conv := range []string{"01234567-89ab-7def-8123-456789abcdef", other.ID} {
		wantError(t, ts.must(http.StatusNotFound, "POST", "/api/v1/exports", alice.Token, map[string]any{
			"format": "csv", "conversations": []string{conv}}), chatvault.ENOTFOUND, "conversation")
	}

	// Cancel deletes a finished file at once; the download then answers 409.
	ts.must(http.StatusNoContent, "DELETE", "/api/v1/exports/"+job.ID, alice.Token, nil)
	var gone exportJob
	ts.must(http.StatusOK, "GET", "/api/v1/exports/"+job.ID, alice.Token, nil).decode(t, &gone)
	if gone.State != "expired" {
		t.Errorf("state after DELETE of a finished export = %q; want expired", gone.State)
	}
	wantError(t, ts.must(http.StatusConflict, "GET", "/api/v1/exports/"+job.ID+"/download", alice.Token, nil), chatvault.ECONFLICT, "")

	// Finished files expire after seven days.
	ts.clock.Advance(7*24*time.Hour + time.Minute)
	if n, err := ts.exports.Expire(context.Background()); err != nil || n != 3 {
		t.Errorf("Expire() = %d, %v; want the three finished files left (org-wide, in the org's zone, encrypted) deleted", n, err)
	}
	var expired map[string]any
	ts.must(http.StatusOK, "GET", "/api/v1/exports/"+orgJob.ID, officer, nil).decode(t, &expired)
	if expired["state"] != "expired" {
		b, _ := json.Marshal(expired)
		t.Errorf("export after its expiry = %s; want state expired", b)
	}
}
