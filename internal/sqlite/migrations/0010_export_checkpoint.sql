-- An export job's checkpoint (internal/export: its snapshot, how far it has read, the size of its
-- staged records and their key), sealed under the org's audit key, so a job resumes where it was
-- rather than from the start. Empty until the job first saves one.
ALTER TABLE export_jobs ADD COLUMN checkpoint TEXT NOT NULL DEFAULT '';
-- The server (its data directory's node id) that runs the job and keeps its files: only it
-- resumes the job, and only it can serve the download, when several servers share a database.
ALTER TABLE export_jobs ADD COLUMN node TEXT NOT NULL DEFAULT '';
