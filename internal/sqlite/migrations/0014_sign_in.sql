-- Sign-in: a user whose password an administrator set (or the bootstrap's one-time password)
-- must choose their own before doing anything else; a device's last use, for the idle timeout.
ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN last_seen_at INTEGER; -- unix ms; NULL: not used since sign-in
