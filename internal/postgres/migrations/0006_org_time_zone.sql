-- The org's time zone, as in SQLite's 0011_org_time_zone.sql.
ALTER TABLE orgs ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
