package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/chatvault/chatvault"
)

// Export jobs (chatvault.ExportJobStore).

const exportJobColumns = `org_id, id, requester_id, request, state, rows_done, rows_estimated, error, bytes, sha256,
	created_at, started_at, finished_at, expires_at, checkpoint, node`

// CreateExportJob stores a new job.
func (c *Core) CreateExportJob(ctx context.Context, j *chatvault.ExportJob) error {
	err := c.update(ctx, func(ctx context.Context, tx Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO export_jobs (`+exportJobColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
			j.OrgID, j.ID, j.RequesterID, string(j.Request), string(j.State), j.RowsDone, j.RowsEstimated, j.Error, j.Bytes, j.SHA256,
			Millis(j.CreatedAt), nullMillis(j.StartedAt), nullMillis(j.FinishedAt), nullMillis(j.ExpiresAt), string(j.Checkpoint), j.Node)
		return err
	})
	if err != nil {
		return fmt.Errorf("create export job: %w", err)
	}
	return nil
}

// FindExportJob finds one job of an org.
func (c *Core) FindExportJob(ctx context.Context, orgID, id string) (*chatvault.ExportJob, error) {
	j, err := scanExportJob(c.read.QueryRow(ctx, `SELECT `+exportJobColumns+` FROM export_jobs WHERE org_id = $1 AND id = $2`, orgID, id))
	if isNoRows(err) {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "export %s not found", id)
	} else if err != nil {
		return nil, fmt.Errorf("find export job: %w", err)
	}
	return j, nil
}

// UpdateExportJob writes a job's state, progress, result and times.
func (c *Core) UpdateExportJob(ctx context.Context, j *chatvault.ExportJob) error {
	err := c.update(ctx, func(ctx context.Context, tx Tx) error {
		_, err := tx.Exec(ctx, `UPDATE export_jobs SET state = $3, rows_done = $4, rows_estimated = $5, error = $6, bytes = $7,
			sha256 = $8, started_at = $9, finished_at = $10, expires_at = $11, checkpoint = $12 WHERE org_id = $1 AND id = $2`,
			j.OrgID, j.ID, string(j.State), j.RowsDone, j.RowsEstimated, j.Error, j.Bytes, j.SHA256,
			nullMillis(j.StartedAt), nullMillis(j.FinishedAt), nullMillis(j.ExpiresAt), string(j.Checkpoint))
		return err
	})
	if err != nil {
		return fmt.Errorf("update export job: %w", err)
	}
	return nil
}

// FindExportJobsByState lists the jobs of every org in the given states, oldest first.
func (c *Core) FindExportJobsByState(ctx context.Context, states ...chatvault.ExportState) ([]*chatvault.ExportJob, error) {
	var args Args
	var in []string
	for _, s := range states {
		in = append(in, args.Add(string(s)))
	}
	if len(in) == 0 {
		return nil, nil
	}
	q := `SELECT ` + exportJobColumns + ` FROM export_jobs WHERE state IN (` + joinComma(in) + `) ORDER BY created_at, id`
	rows, err := c.read.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("find export jobs: %w", err)
	}
	out, err := collect(rows, scanExportJob)
	if err != nil {
		return nil, fmt.Errorf("find export jobs: %w", err)
	}
	return out, nil
}

func joinComma(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}

func scanExportJob(r Row) (*chatvault.ExportJob, error) {
	var j chatvault.ExportJob
	var req, state, checkpoint string
	var created int64
	var started, finished, expires sql.NullInt64
	if err := r.Scan(&j.OrgID, &j.ID, &j.RequesterID, &req, &state, &j.RowsDone, &j.RowsEstimated, &j.Error, &j.Bytes, &j.SHA256,
		&created, &started, &finished, &expires, &checkpoint, &j.Node); err != nil {
		return nil, err
	}
	j.Request, j.State, j.CreatedAt, j.Checkpoint = []byte(req), chatvault.ExportState(state), FromMillis(created), []byte(checkpoint)
	j.StartedAt, j.FinishedAt, j.ExpiresAt = fromNullMillis(started), fromNullMillis(finished), fromNullMillis(expires)
	return &j, nil
}
