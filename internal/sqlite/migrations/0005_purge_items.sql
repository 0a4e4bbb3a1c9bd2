-- A purge run's certificate lines, each written in the same transaction as the step it records,
-- so a run killed part-way still certifies exactly what it did.
CREATE TABLE purge_run_items (
	id              INTEGER PRIMARY KEY,
	org_id          TEXT NOT NULL,
	run_id          TEXT NOT NULL,
	conversation_id TEXT NOT NULL,
	action          TEXT NOT NULL,
	count           INTEGER NOT NULL,
	first_seq       INTEGER NOT NULL,
	last_seq        INTEGER NOT NULL
);

CREATE INDEX purge_run_items_run ON purge_run_items (org_id, run_id, id);
