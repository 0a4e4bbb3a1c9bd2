-- An export job's checkpoint (internal/export: its snapshot, how far it has read, the size of its
-- staged records and their key), sealed under the org's audit key, so a job resumes where it was
-- rather than from the start. Empty until the job first saves one.
ALTER TABLE export_jobs ADD COLUMN checkpoint TEXT NOT NULL DEFAULT '';
