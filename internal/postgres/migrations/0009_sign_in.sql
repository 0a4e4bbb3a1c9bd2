-- Sign-in, as in SQLite's 0014_sign_in.sql.
ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN last_seen_at BIGINT;
