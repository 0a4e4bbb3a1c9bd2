-- Export jobs, as in SQLite's 0009_exports.sql.
CREATE TABLE export_jobs (
	org_id         TEXT NOT NULL,
	id             TEXT NOT NULL,
	requester_id   TEXT NOT NULL,
	request        TEXT NOT NULL,
	state          TEXT NOT NULL,
	rows_done      BIGINT NOT NULL DEFAULT 0,
	rows_estimated BIGINT NOT NULL DEFAULT 0,
	error          TEXT NOT NULL DEFAULT '',
	bytes          BIGINT NOT NULL DEFAULT 0,
	sha256         TEXT NOT NULL DEFAULT '',
	created_at     BIGINT NOT NULL,
	started_at     BIGINT,
	finished_at    BIGINT,
	expires_at     BIGINT,
	PRIMARY KEY (org_id, id)
);
CREATE INDEX export_jobs_state ON export_jobs (state, created_at);
