-- Export jobs run by the server (internal/export.Jobs): the request as JSON, so a job runs again
-- after a restart, its progress, and the finished file's size, hash and expiry. The file itself
-- lives in DATA/exports/ID.zip.
CREATE TABLE export_jobs (
	org_id         TEXT NOT NULL,
	id             TEXT NOT NULL,
	requester_id   TEXT NOT NULL,
	request        TEXT NOT NULL,
	state          TEXT NOT NULL,
	rows_done      INTEGER NOT NULL DEFAULT 0,
	rows_estimated INTEGER NOT NULL DEFAULT 0,
	error          TEXT NOT NULL DEFAULT '',
	bytes          INTEGER NOT NULL DEFAULT 0,
	sha256         TEXT NOT NULL DEFAULT '',
	created_at     INTEGER NOT NULL,
	started_at     INTEGER,
	finished_at    INTEGER,
	expires_at     INTEGER,
	PRIMARY KEY (org_id, id)
) WITHOUT ROWID;
CREATE INDEX export_jobs_state ON export_jobs (state, created_at);
