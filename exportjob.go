package chatvault

import (
	"context"
	"time"
)

// ExportState is where an export job is in its life.
type ExportState string

const (
	ExportQueued   ExportState = "queued"
	ExportRunning  ExportState = "running"
	ExportDone     ExportState = "done"
	ExportFailed   ExportState = "failed"
	ExportCanceled ExportState = "canceled"
	ExportExpired  ExportState = "expired" // done, and its file deleted after the expiry time
)

// ExportJob is an export run by the server for a user. Request holds the export's request
// (internal/export.Request) and Checkpoint how far the job has got, both sealed by
// internal/export, so a job survives a restart and resumes where it was.
type ExportJob struct {
	OrgID       string `json:"-"`
	ID          string `json:"id"`
	RequesterID string `json:"requester_id"`
	Request     []byte `json:"-"`
	Checkpoint  []byte `json:"-"`
	// Node names the server that runs the job and keeps its files (its data directory's node
	// id); empty in rows written before there was one.
	Node          string      `json:"-"`
	State         ExportState `json:"state"`
	RowsDone      int64       `json:"rows_done"`
	RowsEstimated int64       `json:"rows_estimated"`
	Error         string      `json:"error,omitempty"`
	Bytes         int64       `json:"bytes,omitempty"`
	SHA256        string      `json:"sha256,omitempty"`
	CreatedAt     time.Time   `json:"created_at"`
	StartedAt     *time.Time  `json:"started_at,omitempty"`
	FinishedAt    *time.Time  `json:"finished_at,omitempty"`
	ExpiresAt     *time.Time  `json:"expires_at,omitempty"`
}

// ExportJobStore persists export jobs.
type ExportJobStore interface {
	CreateExportJob(ctx context.Context, j *ExportJob) error
	// FindExportJob returns ENOTFOUND when the org has no such job.
	FindExportJob(ctx context.Context, orgID, id string) (*ExportJob, error)
	// UpdateExportJob writes j's state, progress, checkpoint, result and times.
	UpdateExportJob(ctx context.Context, j *ExportJob) error
	// FindExportJobsByState lists the jobs of every org in one of the states, oldest first.
	FindExportJobsByState(ctx context.Context, states ...ExportState) ([]*ExportJob, error)
}
