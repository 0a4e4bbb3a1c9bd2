package export

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/google/uuid"
)

// DefaultTTL is how long a finished export's file is kept unless configured otherwise.
const DefaultTTL = 7 * 24 * time.Hour

// JobStores is what export jobs need from a store.
type JobStores interface {
	chatvault.ExportJobStore
	Users
	FindOrg(ctx context.Context, id string) (*chatvault.Org, error)
}

// JobsConfig wires the export jobs.
type JobsConfig struct {
	Store  JobStores
	Chat   *chat.Service
	Clock  chatvault.Clock
	Logger *slog.Logger
	// Dir holds the export files (DATA/exports).
	Dir string
	// Node names this server among those sharing a store (NodeID of the data directory): a job
	// is resumed, downloaded and canceled only by the server that runs it, since its files are
	// in that server's Dir.
	Node string
	// TTL is how long a finished file is kept; DefaultTTL when zero.
	TTL time.Duration
	// NewWriter makes the writer of a format (xlsx.NewWriter, which has them all).
	NewWriter func(files Files, req *Request, name string) (Writer, error)
	// Seal seals each job's request and checkpoint in its row (audit.Service: the org's audit key).
	Seal Sealer
	// CheckpointEvery is how often a running job saves its checkpoint; DefaultCheckpointEvery
	// when zero. What a stop loses is redone from the last one.
	CheckpointEvery time.Duration
	// Checkpointed, when set, is told each checkpoint a job saves, with the job's context (tests
	// stop a job there: the job waits for the hook).
	Checkpointed func(ctx context.Context, id string, p Position)
}

// DefaultCheckpointEvery is how often a running job saves its checkpoint unless configured.
const DefaultCheckpointEvery = time.Second

// Sealer seals what a job's row keeps: the request names what is exported (a search query,
// people, time ranges) and the checkpoint holds the key of the staged records, so neither is
// kept in the clear.
type Sealer interface {
	Seal(ctx context.Context, org string, plain, aad []byte) ([]byte, error)
	Open(ctx context.Context, org string, sealed, aad []byte) ([]byte, error)
}

// Jobs runs exports in the background for the HTTP API. Each job is a row (state, progress,
// checkpoint, result) and, once done, a zip package in Dir named by its id. A job reads its
// snapshot into staged records (Dir/ID.stage) and then writes the package from them; jobs left
// queued or running by a stopped server go on from their last checkpoint when the next one
// starts (Resume).
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
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = DefaultCheckpointEvery
	}
	if cfg.Seal == nil {
		return nil, errors.New("export jobs: no sealer for their rows")
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
	if req.TimeZone == "" || req.Query != "" && req.Stem == nil {
		org, err := j.cfg.Store.FindOrg(ctx, a.OrgID)
		if err != nil {
			return nil, err
		}
		req.TimeZone = cmp.Or(req.TimeZone, org.TimeZone, chatvault.DefaultTimeZone)
		if req.Query != "" && req.Stem == nil {
			req.Stem = &org.SearchStemming // kept with the job, so a resumed job reads the query alike
		}
	}
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
	job := &chatvault.ExportJob{OrgID: a.OrgID, ID: id, RequesterID: a.UserID, State: chatvault.ExportQueued,
		CreatedAt: j.cfg.Clock.Now(), Node: j.cfg.Node}
	if job.Request, err = j.seal(ctx, job, "request", req); err != nil {
		return nil, err
	}
	if err := j.cfg.Store.CreateExportJob(ctx, job); err != nil {
		return nil, err
	}
	j.launch(job, a, src, &req, nil)
	return j.status(job, &req), nil
}

// OrgTimeZone is the time zone an export request that names none shows times in: the org's.
func (j *Jobs) OrgTimeZone(ctx context.Context, orgID string) (string, error) {
	org, err := j.cfg.Store.FindOrg(ctx, orgID)
	if err != nil {
		return "", err
	}
	return cmp.Or(org.TimeZone, chatvault.DefaultTimeZone), nil
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

// Resume goes on with every job a stopped server left queued or running, from its last
// checkpoint. An org-wide export records a new audit entry first, as any export does.
func (j *Jobs) Resume(ctx context.Context) error {
	jobs, err := j.cfg.Store.FindExportJobsByState(ctx, chatvault.ExportQueued, chatvault.ExportRunning)
	if err != nil {
		return err
	}
	j.sweep(jobs)
	for _, job := range jobs {
		if !j.mine(job) {
			continue // another server's: it resumes it when it starts
		}
		var req Request
		err := j.open(ctx, job, "request", job.Request, &req)
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
		var cp *checkpoint
		if err == nil && len(job.Checkpoint) > 0 {
			cp = &checkpoint{}
			err = j.open(ctx, job, "checkpoint", job.Checkpoint, cp)
		}
		if err != nil {
			j.finish(job, chatvault.ExportFailed, fmt.Errorf("resume: %w", err))
			continue
		}
		var rows int64
		if cp != nil {
			rows = cp.Position.Rows
		}
		j.cfg.Logger.Info("export resumed", "export", job.ID, "org", job.OrgID, "from_rows", rows, "staged", cp != nil && cp.Staged)
		j.launch(job, a, src, &req, cp)
	}
	return nil
}

// sweep removes the staged records and partial packages that no unfinished job owns: a server
// that stopped between marking a job done (or failed) and removing them leaves them behind.
func (j *Jobs) sweep(unfinished []*chatvault.ExportJob) {
	keep := map[string]bool{}
	for _, job := range unfinished {
		keep[job.ID] = true
	}
	entries, err := os.ReadDir(j.cfg.Dir)
	if err != nil {
		j.cfg.Logger.Warn("sweep export directory", "err", err)
		return
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".stage")
		if !ok {
			id, ok = strings.CutSuffix(e.Name(), ".zip.partial")
		}
		if !ok || keep[id] {
			continue
		}
		if err := os.Remove(filepath.Join(j.cfg.Dir, e.Name())); err != nil {
			j.cfg.Logger.Warn("remove leftover export file", "file", e.Name(), "err", err)
		}
	}
}

// sealedPrefix marks a sealed request or checkpoint in a job's row; rows written before sealing
// hold the request as plain JSON.
const sealedPrefix = "sealed:"

// seal returns v as the job's row keeps it: JSON sealed under the org's audit key, bound to the
// org, the job and what it is.
func (j *Jobs) seal(ctx context.Context, job *chatvault.ExportJob, what string, v any) ([]byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	env, err := j.cfg.Seal.Seal(ctx, job.OrgID, plain, keyring.AAD("export-job", job.OrgID, job.ID, what))
	if err != nil {
		return nil, fmt.Errorf("seal export %s: %w", what, err)
	}
	return []byte(sealedPrefix + base64.StdEncoding.EncodeToString(env)), nil
}

// open reads into v what seal stored.
func (j *Jobs) open(ctx context.Context, job *chatvault.ExportJob, what string, stored []byte, v any) error {
	plain := stored
	if rest, ok := bytes.CutPrefix(stored, []byte(sealedPrefix)); ok {
		env, err := base64.StdEncoding.DecodeString(string(rest))
		if err != nil {
			return fmt.Errorf("open export %s: %w: not base64", what, keyring.ErrIntegrity)
		}
		if plain, err = j.cfg.Seal.Open(ctx, job.OrgID, env, keyring.AAD("export-job", job.OrgID, job.ID, what)); err != nil {
			return fmt.Errorf("open export %s: %w", what, err)
		}
	}
	if err := json.Unmarshal(plain, v); err != nil {
		return fmt.Errorf("open export %s: %w", what, err)
	}
	return nil
}

// finish records a job's end that is not success; the error's text is kept only when it is
// safe to show (a domain error), otherwise "internal error".
func (j *Jobs) finish(job *chatvault.ExportJob, state chatvault.ExportState, err error) {
	now := j.cfg.Clock.Now()
	job.State, job.FinishedAt = state, &now
	if err != nil {
		job.Error = chatvault.ErrorMessage(err)
	}
	// The staged records go with their key: the checkpoint holds it.
	job.Checkpoint = nil
	os.Remove(j.stagePath(job.ID))
	os.Remove(j.path(job.ID))
	if uerr := j.cfg.Store.UpdateExportJob(context.Background(), job); uerr != nil {
		j.cfg.Logger.Error("save export state", "export", job.ID, "state", state, "err", uerr)
	}
}

// mine says whether this server runs the job and keeps its files. Rows from before jobs named
// their server belong to any.
func (j *Jobs) mine(job *chatvault.ExportJob) bool { return job.Node == "" || job.Node == j.cfg.Node }

func errElsewhere(id string) error {
	return chatvault.Errorf(chatvault.ECONFLICT, "export %s runs on another chatvault server, which keeps its file: ask that server", id)
}

func (j *Jobs) path(id string) string { return filepath.Join(j.cfg.Dir, id+".zip") }

func (j *Jobs) stagePath(id string) string { return filepath.Join(j.cfg.Dir, id+".stage") }

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
	if err := j.open(ctx, job, "request", job.Request, &req); err != nil {
		return nil, err
	}
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
	if !j.mine(job) {
		return nil, nil, errElsewhere(id)
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
	if !j.mine(job) {
		return errElsewhere(id)
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
		if job.ExpiresAt == nil || now.Before(*job.ExpiresAt) || !j.mine(job) {
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
