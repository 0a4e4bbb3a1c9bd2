-- An export job's checkpoint, as in SQLite's 0010_export_checkpoint.sql.
ALTER TABLE export_jobs ADD COLUMN checkpoint TEXT NOT NULL DEFAULT '';
ALTER TABLE export_jobs ADD COLUMN node TEXT NOT NULL DEFAULT '';
