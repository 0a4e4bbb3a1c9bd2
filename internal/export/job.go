package export

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/google/uuid"
)

// DefaultTTL is how long a finished export's file is kept unless configured otherwise.
const DefaultTTL = 7 * 24 * time.Hour

// JobStores is what export jobs need from a store.
type JobStores interface {
	chatvault.ExportJobStore
	Users
}

// JobsConfig wires the export jobs.
type JobsConfig struct {
	Store  JobStores
	Chat   *chat.Service
	Clock  chatvault.Clock
	Logger *slog.Logger
	// Dir holds the export files (DATA/exports).
	Dir string
	// TTL is how long a finished file is kept; DefaultTTL when zero.
	TTL time.Duration
	// NewWriter makes the writer of a format (xlsx.NewWriter, which has them all).
	NewWriter func(files Files, req *Request, name string) (Writer, error)
}

// Jobs runs exports in the background for the HTTP API. Each job is a row (state, progress,
// result) and, once done, a zip package in Dir named by its id. Jobs left queued or running by a
// stopped server run again, from the start, when the next one starts (Resume).
type Jobs struct {
	cfg    JobsConfig
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	running map[string]context.CancelFunc
}

// NewJobs returns the export jobs; Close stops the ones running.
func NewJobs(cfg JobsConfig) (*Jobs, error) {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.NewWriter == nil {
		cfg.NewWriter = NewWriter
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("export directory: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Jobs{cfg: cfg, ctx: ctx, cancel: cancel, running: map[string]context.CancelFunc{}}, nil
}

// Close cancels the running jobs and waits for them; they stay "running" in the store, so the
// next start resumes them.
func (j *Jobs) Close() {
	j.cancel()
	j.wg.Wait()
}

// Status is a job as its requester sees it.
type Status struct {
	*chatvault.ExportJob
	Format Format `json:"format"`
	// Encrypted says the package is encrypted with age to the request's recipients.
	Encrypted bool `json:"encrypted"`
	// ETASeconds estimates the time left of a running job from its pace so far.
	ETASeconds *int64 `json:"eta_seconds,omitempty"`
}

// Start validates req, checks that every conversation it names is visible to a (404 otherwise),
// records the audit entry of an org-wide export (no entry, no job), stores the job and starts it.
func (j *Jobs) Start(ctx context.Context, a chatvault.Actor, req Request) (*Status, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	for field, ids := range map[string][]string{"participants": req.Participants, "senders": req.Senders} {
		for _, uid := range ids {
			if _, err := uuid.Parse(uid); err != nil {
				return nil, chatvault.Invalidf(field, "%s: %q is not a user id", field, uid)
			}
			if _, err := j.cfg.Store.FindUserByID(ctx, a.OrgID, uid); chatvault.ErrorCode(err) == chatvault.ENOTFOUND {
				return nil, chatvault.Invalidf(field, "%s: no user %s in this org", field, uid)
			} else if err != nil {
				return nil, err
			}
		}
	}
	id := uuid.Must(uuid.NewV7()).String()
	src, err := j.cfg.Chat.OpenExport(ctx, a, req.Scope, chatvault.AuditEntry{Target: id, Details: AuditDetails(&req)})
	if err != nil {
		return nil, err
	}
	if len(req.Conversations) > 0 {
		if _, err := src.Conversations(ctx, req.Conversations, nil); err != nil {
			return nil, err
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	job := &chatvault.ExportJob{OrgID: a.OrgID, ID: id, RequesterID: a.UserID, Request: body, State: chatvault.ExportQueued,
		CreatedAt: j.cfg.Clock.Now()}
	if err := j.cfg.Store.CreateExportJob(ctx, job); err != nil {
		return nil, err
	}
	j.launch(job, a, src, &req)
	return j.status(job, &req), nil
}

// AuditDetails is what the audit entry of an org-wide export records of its request.
func AuditDetails(r *Request) map[string]any {
	d := map[string]any{"format": string(r.Format)}
	if !r.From.IsZero() {
		d["from"] = r.From.Format(time.RFC3339)
	}
	if !r.To.IsZero() {
		d["to"] = r.To.Format(time.RFC3339)
	}
	for k, v := range map[string][]string{"conversations": r.Conversations, "participants": r.Participants, "senders": r.Senders} {
		if len(v) > 0 {
			d[k] = v
		}
	}
	if r.Query != "" {
		d["query"] = r.Query
	}
	d["include_edits"], d["include_recalled"], d["include_system"] = r.Edits, r.Recalled, r.System
	return d
}

// Resume starts again every job a stopped server left queued or running. An org-wide export
// records a new audit entry first, as any export does.
func (j *Jobs) Resume(ctx context.Context) error {
	jobs, err := j.cfg.Store.FindExportJobsByState(ctx, chatvault.ExportQueued, chatvault.ExportRunning)
	if err != nil {
		return err
	}
	for _, job := range jobs {
		var req Request
		err := json.Unmarshal(job.Request, &req)
		if err == nil {
			err = req.Validate()
		}
		var u *chatvault.User
		if err == nil {
			u, err = j.cfg.Store.FindUserByID(ctx, job.OrgID, job.RequesterID)
		}
		if err == nil && u.Disabled {
			err = chatvault.Errorf(chatvault.EFORBIDDEN, "the requester is disabled")
		}
		var src *chat.ExportSource
		a := chatvault.Actor{OrgID: job.OrgID, UserID: job.RequesterID}
		if err == nil {
			a.Roles, a.RetentionDays = u.Roles, u.RetentionDays
			details := AuditDetails(&req)
			details["resumed"] = true
			src, err = j.cfg.Chat.OpenExport(ctx, a, req.Scope, chatvault.AuditEntry{Target: job.ID, Details: details})
		}
		if err != nil {
			j.finish(job, chatvault.ExportFailed, fmt.Errorf("resume: %w", err))
			continue
		}
		j.cfg.Logger.Info("export resumed", "export", job.ID, "org", job.OrgID)
		j.launch(job, a, src, &req)
	}
	return nil
}

func (j *Jobs) launch(job *chatvault.ExportJob, a chatvault.Actor, src *chat.ExportSource, req *Request) {
	ctx, cancel := context.WithCancel(j.ctx)
	j.mu.Lock()
	j.running[job.ID] = cancel
	j.mu.Unlock()
	// The run updates its own copy: the caller still reads (and answers with) job.
	mine := *job
	job = &mine
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		defer func() {
			j.mu.Lock()
			delete(j.running, job.ID)
			j.mu.Unlock()
			cancel()
		}()
		err := j.run(ctx, job, a, src, req)
		switch {
		case err == nil:
		case j.ctx.Err() != nil:
			// The server is stopping: the job stays running in the store and resumes at the next start.
		case ctx.Err() != nil: // canceled by DELETE (whatever error the store made of it)
			j.finish(job, chatvault.ExportCanceled, nil)
		default:
			j.cfg.Logger.Error("export failed", "export", job.ID, "org", job.OrgID, "err", err)
			j.finish(job, chatvault.ExportFailed, err)
		}
	}()
}

// run writes the job's package to a partial file and renames it into place when complete.
func (j *Jobs) run(ctx context.Context, job *chatvault.ExportJob, a chatvault.Actor, src *chat.ExportSource, req *Request) error {
	now := j.cfg.Clock.Now()
	job.State, job.StartedAt, job.RowsDone, job.RowsEstimated = chatvault.ExportRunning, &now, 0, 0
	if err := j.cfg.Store.UpdateExportJob(ctx, job); err != nil {
		return err
	}
	final := j.path(job.ID)
	partial := final + ".partial"
	f, err := os.OpenFile(partial, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create export file: %w", err)
	}
	defer os.Remove(partial)
	defer f.Close()
	hw := &hashWriter{w: f, h: sha256.New()}
	// An encrypted package is encrypted as it is written: it never lies on disk in the clear.
	var out io.Writer = hw
	var sealed io.WriteCloser
	if rs := req.AgeRecipients(); len(rs) > 0 {
		if sealed, err = age.Encrypt(hw, rs...); err != nil {
			return fmt.Errorf("encrypt export: %w", err)
		}
		out = sealed
	}
	pkg := NewPackage(out)
	wr, err := j.cfg.NewWriter(pkg, req, "messages")
	if err != nil {
		return err
	}
	var lastSave time.Time
	ex := &Exporter{Users: j.cfg.Store, Progress: func(p Progress) {
		job.RowsDone, job.RowsEstimated = p.Rows, p.Estimated
		// Progress is saved about once a second, not on every page.
		if t := time.Now(); t.Sub(lastSave) >= time.Second {
			lastSave = t
			if err := j.cfg.Store.UpdateExportJob(ctx, job); err != nil && ctx.Err() == nil {
				j.cfg.Logger.Warn("save export progress", "export", job.ID, "err", err)
			}
		}
	}}
	st, err := ex.Run(ctx, a.OrgID, src, req, wr)
	if err != nil {
		return err
	}
	m := &Manifest{CreatedAt: job.CreatedAt, OrgID: job.OrgID, RequestedBy: job.RequesterID, Request: *req,
		Snapshot: Snapshot{Conversations: st.Conversations}}
	if err := pkg.Finish(m, wr.(Lister).Files()); err != nil {
		return err
	}
	if sealed != nil {
		if err := sealed.Close(); err != nil {
			return fmt.Errorf("encrypt export: %w", err)
		}
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("write export file: %w", err)
	}
	if err := os.Rename(partial, final); err != nil {
		return fmt.Errorf("write export file: %w", err)
	}
	job.RowsDone, job.Bytes, job.SHA256 = st.Rows, hw.n, hex.EncodeToString(hw.h.Sum(nil))
	done := j.cfg.Clock.Now()
	expires := done.Add(j.cfg.TTL)
	job.State, job.FinishedAt, job.ExpiresAt = chatvault.ExportDone, &done, &expires
	return j.cfg.Store.UpdateExportJob(context.WithoutCancel(ctx), job)
}

type hashWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (hw *hashWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}

// finish records a job's end that is not success; the error's text is kept only when it is
// safe to show (a domain error), otherwise "internal error".
func (j *Jobs) finish(job *chatvault.ExportJob, state chatvault.ExportState, err error) {
	now := j.cfg.Clock.Now()
	job.State, job.FinishedAt = state, &now
	if err != nil {
		job.Error = chatvault.ErrorMessage(err)
	}
	os.Remove(j.path(job.ID))
	if uerr := j.cfg.Store.UpdateExportJob(context.Background(), job); uerr != nil {
		j.cfg.Logger.Error("save export state", "export", job.ID, "state", state, "err", uerr)
	}
}

func (j *Jobs) path(id string) string { return filepath.Join(j.cfg.Dir, id+".zip") }

// find loads a job the actor may see: their own, or any of the org's for a compliance
// officer. Anyone else gets ENOTFOUND, as for a job that does not exist.
func (j *Jobs) find(ctx context.Context, a chatvault.Actor, id string) (*chatvault.ExportJob, error) {
	notFound := chatvault.Errorf(chatvault.ENOTFOUND, "export %s not found", id)
	if _, err := uuid.Parse(id); err != nil {
		return nil, notFound
	}
	job, err := j.cfg.Store.FindExportJob(ctx, a.OrgID, id)
	if err != nil {
		return nil, err
	}
	if job.RequesterID != a.UserID && chatvault.Authorize(a, chatvault.PermExportOrg) != nil {
		return nil, notFound
	}
	return job, nil
}

// Job returns a job's state and progress.
func (j *Jobs) Job(ctx context.Context, a chatvault.Actor, id string) (*Status, error) {
	job, err := j.find(ctx, a, id)
	if err != nil {
		return nil, err
	}
	var req Request
	_ = json.Unmarshal(job.Request, &req)
	return j.status(job, &req), nil
}

func (j *Jobs) status(job *chatvault.ExportJob, req *Request) *Status {
	s := &Status{ExportJob: job, Format: req.Format, Encrypted: len(req.Recipients) > 0}
	if job.State == chatvault.ExportRunning && job.StartedAt != nil && job.RowsDone > 0 && job.RowsEstimated > job.RowsDone {
		elapsed := j.cfg.Clock.Now().Sub(*job.StartedAt).Seconds()
		eta := int64(elapsed / float64(job.RowsDone) * float64(job.RowsEstimated-job.RowsDone))
		s.ETASeconds = &eta
	}
	return s
}

// Download opens a finished job's file. ECONFLICT while it is not done (or expired).
func (j *Jobs) Download(ctx context.Context, a chatvault.Actor, id string) (*os.File, *chatvault.ExportJob, error) {
	job, err := j.find(ctx, a, id)
	if err != nil {
		return nil, nil, err
	}
	if job.State != chatvault.ExportDone {
		return nil, nil, chatvault.Errorf(chatvault.ECONFLICT, "export %s is %s, not done", id, job.State)
	}
	f, err := os.Open(j.path(job.ID))
	if err != nil {
		return nil, nil, fmt.Errorf("open export file: %w", err)
	}
	return f, job, nil
}

// Cancel stops a queued or running job, or deletes a finished job's file early.
func (j *Jobs) Cancel(ctx context.Context, a chatvault.Actor, id string) error {
	job, err := j.find(ctx, a, id)
	if err != nil {
		return err
	}
	j.mu.Lock()
	cancel, running := j.running[id]
	j.mu.Unlock()
	if running {
		cancel() // the job's goroutine records the cancellation
		return nil
	}
	switch job.State {
	case chatvault.ExportQueued, chatvault.ExportRunning:
		j.finish(job, chatvault.ExportCanceled, nil)
	case chatvault.ExportDone:
		j.finish(job, chatvault.ExportExpired, nil)
	}
	return nil
}

// Expire deletes the files of finished jobs past their expiry time; the jobs runner calls it.
func (j *Jobs) Expire(ctx context.Context) (int, error) {
	jobs, err := j.cfg.Store.FindExportJobsByState(ctx, chatvault.ExportDone)
	if err != nil {
		return 0, err
	}
	now, n := j.cfg.Clock.Now(), 0
	for _, job := range jobs {
		if job.ExpiresAt == nil || now.Before(*job.ExpiresAt) {
			continue
		}
		if err := os.Remove(j.path(job.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return n, fmt.Errorf("delete expired export: %w", err)
		}
		job.State = chatvault.ExportExpired
		if err := j.cfg.Store.UpdateExportJob(ctx, job); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
