package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
)

// Export jobs: what the store keeps of them, their updates, and the listing by state across orgs
// that a restarting server resumes from.
func testExportJobs(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 1)
	j := &chatvault.ExportJob{OrgID: f.org.ID, ID: id(), RequesterID: f.users[0].ID, Request: []byte(`{"format":"csv","query":"合同"}`),
		State: chatvault.ExportQueued, CreatedAt: t0, Node: "0123456789abcdef0123456789abcdef"}
	if err := s.CreateExportJob(ctx, j); err != nil {
		t.Fatalf("CreateExportJob() = %v", err)
	}
	if _, err := s.FindExportJob(ctx, f.org.ID, id()); chatvault.ErrorCode(err) != chatvault.ENOTFOUND {
		t.Fatalf("FindExportJob(unknown) = %v; want %s", err, chatvault.ENOTFOUND)
	}
	other := newFixture(t, s, 1)
	if _, err := s.FindExportJob(ctx, other.org.ID, j.ID); chatvault.ErrorCode(err) != chatvault.ENOTFOUND {
		t.Fatalf("FindExportJob(another org) = %v; want %s", err, chatvault.ENOTFOUND)
	}
	started, done, expires := t0.Add(time.Second), t0.Add(time.Minute), t0.Add(7*24*time.Hour)
	j.State, j.RowsDone, j.RowsEstimated, j.Bytes, j.SHA256 = chatvault.ExportDone, 41, 42, 1234, "ab12"
	j.StartedAt, j.FinishedAt, j.ExpiresAt, j.Checkpoint = &started, &done, &expires, []byte("sealed:AbC+/=")
	if err := s.UpdateExportJob(ctx, j); err != nil {
		t.Fatalf("UpdateExportJob() = %v", err)
	}
	got, err := s.FindExportJob(ctx, f.org.ID, j.ID)
	if err != nil {
		t.Fatalf("FindExportJob() = %v", err)
	}
	if string(got.Request) != string(j.Request) || string(got.Checkpoint) != string(j.Checkpoint) || got.Node != j.Node || got.State != j.State || got.RowsDone != 41 || got.RowsEstimated != 42 ||
		got.Bytes != 1234 || got.SHA256 != "ab12" || got.RequesterID != j.RequesterID || !got.CreatedAt.Equal(t0) ||
		got.StartedAt == nil || !got.StartedAt.Equal(started) || got.ExpiresAt == nil || !got.ExpiresAt.Equal(expires) {
		t.Fatalf("FindExportJob() = %+v; want %+v", got, j)
	}
	running := &chatvault.ExportJob{OrgID: other.org.ID, ID: id(), RequesterID: other.users[0].ID, Request: []byte(`{}`),
		State: chatvault.ExportRunning, CreatedAt: t0.Add(time.Hour)}
	if err := s.CreateExportJob(ctx, running); err != nil {
		t.Fatal(err)
	}
	js, err := s.FindExportJobsByState(ctx, chatvault.ExportQueued, chatvault.ExportRunning)
	if err != nil || len(js) != 1 || js[0].ID != running.ID {
		t.Fatalf("FindExportJobsByState(queued, running) = %d jobs, %v; want the other org's running one", len(js), err)
	}
}
