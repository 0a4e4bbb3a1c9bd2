package export

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"filippo.io/age"
	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/keyring"
)

// checkpoint is how far a job has got, kept sealed in its row and saved about once a second: the
// position up to which its records are staged, the staged frames that hold them, and their key.
// The snapshot it reads is the stage's first frame (so a resumed job reads the same one: a
// message sent while the server was down stays out), written once: an org-wide snapshot lists
// every conversation, too much to write again every second.
type checkpoint struct {
	Key           []byte   `json:"key"`
	Conversations int      `json:"conversations"` // in the snapshot
	Position      Position `json:"position"`
	Frames        int64    `json:"frames"`
	Size          int64    `json:"size"`
	// Staged says every record is staged: what is left is writing the package.
	Staged bool `json:"staged,omitempty"`
}

type snapConv struct {
	ID      string `json:"id"`
	LastSeq int64  `json:"last_seq"`
}

func (cp *checkpoint) key(orgID string) (*keyring.DataKey, error) {
	return keyring.PlainDataKey(keyring.DataKeyID{Org: orgID, Conversation: "~export", N: 1}, cp.Key)
}

func (j *Jobs) launch(job *chatvault.ExportJob, a chatvault.Actor, src *chat.ExportSource, req *Request, cp *checkpoint) {
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
		err := j.run(ctx, job, src, req, cp)
		switch {
		case err == nil:
		case j.ctx.Err() != nil:
			// The server is stopping: the job stays running in the store and resumes at the next start.
		case ctx.Err() != nil: // canceled by DELETE (whatever error the store made of it)
			j.finish(job, chatvault.ExportCanceled, nil)
		default:
			if errors.Is(err, syscall.ENOSPC) && chatvault.ErrorCode(err) == chatvault.EINTERNAL {
				err = fmt.Errorf("%w: %w", errDiskFull, err)
			}
			j.cfg.Logger.Error("export failed", "export", job.ID, "org", job.OrgID, "err", err)
			j.finish(job, chatvault.ExportFailed, err)
		}
	}()
}

// errDiskFull is what a job that ran out of disk says: its files are removed, and it can be
// started again once space is freed.
var errDiskFull = chatvault.Errorf(chatvault.EFULL, "the server's disk is full: the export stopped and its files were removed; start it again once space is freed")

// run stages the job's records, unless its checkpoint says they are, then writes its package.
func (j *Jobs) run(ctx context.Context, job *chatvault.ExportJob, src *chat.ExportSource, req *Request, cp *checkpoint) error {
	if job.StartedAt == nil || cp == nil {
		now := j.cfg.Clock.Now()
		job.StartedAt, job.RowsDone, job.RowsEstimated = &now, 0, 0
	}
	job.State = chatvault.ExportRunning
	if err := j.cfg.Store.UpdateExportJob(ctx, job); err != nil {
		return err
	}
	if cp == nil || !cp.Staged {
		var err error
		if cp, err = j.stageRecords(ctx, job, src, req, cp); err != nil {
			return err
		}
	}
	return j.writePackage(ctx, job, req, cp)
}

// stageRecords reads the job's snapshot into its staged records, from cp on when it has one
// (taking the snapshot first when not), saving a checkpoint about every CheckpointEvery and when
// the server stops it.
func (j *Jobs) stageRecords(ctx context.Context, job *chatvault.ExportJob, src *chat.ExportSource, req *Request, cp *checkpoint) (*checkpoint, error) {
	ex := &Exporter{Users: j.cfg.Store}
	var convs []*chat.ExportConversation
	var f *os.File
	var err error
	fresh := cp == nil
	if fresh {
		if convs, err = ex.Snapshot(ctx, src, req); err != nil {
			return nil, err
		}
		key, err := keyring.RandomKey()
		if err != nil {
			return nil, err
		}
		cp = &checkpoint{Key: key, Conversations: len(convs)}
		if f, err = os.OpenFile(j.stagePath(job.ID), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600); err != nil {
			return nil, fmt.Errorf("create staged records: %w", err)
		}
	} else if f, err = reopenStage(j.stagePath(job.ID), cp.Size); err != nil {
		return nil, err
	}
	defer f.Close()
	key, err := cp.key(job.OrgID)
	if err != nil {
		return nil, err
	}
	st := newStage(f, key, job.ID, cp.Frames, cp.Size)
	if fresh {
		snap := make([]snapConv, len(convs))
		for i, ec := range convs {
			snap[i] = snapConv{ID: ec.Conversation.ID, LastSeq: ec.Conversation.LastSeq}
		}
		if err := st.writeSnapshot(snap); err != nil {
			return nil, err
		}
	} else if convs, err = j.snapshotAgain(ctx, job, src, key, cp); err != nil {
		return nil, err
	}
	job.RowsDone, job.RowsEstimated = cp.Position.Rows, 0
	for _, ec := range convs {
		job.RowsEstimated += ec.Conversation.LastSeq
	}
	save := func(p Position) error {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("write staged records: %w", err)
		}
		cp.Position, cp.Frames, cp.Size = p, st.frames, st.size
		sealed, err := j.seal(ctx, job, "checkpoint", cp)
		if err != nil {
			return err
		}
		job.Checkpoint, job.RowsDone = sealed, p.Rows
		if err := j.cfg.Store.UpdateExportJob(context.WithoutCancel(ctx), job); err != nil {
			return err
		}
		if j.cfg.Checkpointed != nil {
			j.cfg.Checkpointed(ctx, job.ID, p)
		}
		return nil
	}
	// The snapshot is saved before anything is read, so a resumed job reads the same one.
	if err := save(cp.Position); err != nil {
		return nil, err
	}
	lastSave, pending := time.Now(), cp.Position
	ex.Progress = func(p Progress) { job.RowsDone, job.RowsEstimated = p.Rows, p.Estimated }
	ex.Checkpoint = func(p Position) error {
		if err := st.Flush(); err != nil {
			return err
		}
		pending = p
		if time.Since(lastSave) < j.cfg.CheckpointEvery {
			return nil
		}
		lastSave = time.Now()
		return save(p)
	}
	if _, err := ex.RunFrom(ctx, job.OrgID, src, req, convs, cp.Position, st); err != nil {
		if j.ctx.Err() != nil {
			// The server is stopping: keep what is staged, so the next start goes on from here.
			if serr := save(pending); serr != nil {
				j.cfg.Logger.Warn("save export checkpoint at stop", "export", job.ID, "err", serr)
			}
		}
		return nil, err
	}
	cp.Staged = true
	if err := save(pending); err != nil {
		return nil, err
	}
	return cp, nil
}

// snapshotAgain reads the snapshot a stopped job took from its stage and opens its conversations
// for the actor, as they were: each up to its last seq then. One that the actor may no longer see
// fails the job.
func (j *Jobs) snapshotAgain(ctx context.Context, job *chatvault.ExportJob, src *chat.ExportSource, key *keyring.DataKey, cp *checkpoint) ([]*chat.ExportConversation, error) {
	staged, err := os.Open(j.stagePath(job.ID))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errStageDamaged, err)
	}
	defer staged.Close()
	snap, err := readSnapshot(staged, cp.Size, key, job.ID)
	if err != nil {
		return nil, err
	}
	if len(snap) != cp.Conversations {
		return nil, fmt.Errorf("%w: the snapshot lists %d conversations; the checkpoint %d", errStageDamaged, len(snap), cp.Conversations)
	}
	if len(snap) == 0 {
		return nil, nil
	}
	ids := make([]string, len(snap))
	for i, c := range snap {
		ids[i] = c.ID
	}
	convs, err := src.Conversations(ctx, ids, nil)
	if err != nil {
		return nil, fmt.Errorf("open the export's snapshot again: %w", err)
	}
	if len(convs) != len(snap) {
		return nil, fmt.Errorf("open the export's snapshot again: %d conversations; the snapshot has %d", len(convs), len(snap))
	}
	for i, ec := range convs {
		if ec.Conversation.ID != snap[i].ID {
			return nil, fmt.Errorf("open the export's snapshot again: conversation %s out of order", snap[i].ID)
		}
		ec.Conversation.LastSeq = snap[i].LastSeq
	}
	return convs, nil
}

// reopenStage opens the staged records to go on writing after the size a checkpoint covers:
// whatever was written after it is cut off.
func reopenStage(path string, size int64) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errStageDamaged, err)
	}
	info, err := f.Stat()
	if err == nil && info.Size() < size {
		err = fmt.Errorf("%w: %d bytes; the checkpoint needs %d", errStageDamaged, info.Size(), size)
	}
	if err == nil {
		err = f.Truncate(size)
	}
	if err == nil {
		_, err = f.Seek(size, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// writePackage writes the job's package from its staged records to a partial file, renames it
// into place when complete, and drops the staged records.
func (j *Jobs) writePackage(ctx context.Context, job *chatvault.ExportJob, req *Request, cp *checkpoint) error {
	final := j.path(job.ID)
	partial := final + ".partial"
	f, err := os.OpenFile(partial, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create export file: %w", err)
	}
	defer os.Remove(partial)
	defer f.Close()
	hw := &counter{w: f, h: sha256.New()}
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
	staged, err := os.Open(j.stagePath(job.ID))
	if err != nil {
		return fmt.Errorf("%w: %v", errStageDamaged, err)
	}
	defer staged.Close()
	key, err := cp.key(job.OrgID)
	if err != nil {
		return err
	}
	if err := replay(&ctxReader{ctx: ctx, r: staged}, cp.Size, key, job.ID, req.Location(), wr); err != nil {
		return err
	}
	m := &Manifest{CreatedAt: job.CreatedAt, OrgID: job.OrgID, RequestedBy: job.RequesterID, Request: *req,
		Snapshot: Snapshot{Conversations: cp.Conversations}}
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
	job.RowsDone, job.Bytes, job.SHA256 = cp.Position.Rows, hw.n, hex.EncodeToString(hw.h.Sum(nil))
	done := j.cfg.Clock.Now()
	expires := done.Add(j.cfg.TTL)
	job.State, job.FinishedAt, job.ExpiresAt, job.Checkpoint = chatvault.ExportDone, &done, &expires, nil
	if err := j.cfg.Store.UpdateExportJob(context.WithoutCancel(ctx), job); err != nil {
		return err
	}
	staged.Close()
	if err := os.Remove(j.stagePath(job.ID)); err != nil {
		j.cfg.Logger.Warn("remove staged export records", "export", job.ID, "err", err)
	}
	return nil
}

// ctxReader stops a replay when its context ends (a server stopping, a DELETE).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
