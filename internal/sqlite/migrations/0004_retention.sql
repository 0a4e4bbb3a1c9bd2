-- Retention: policies, overrides, preferences, the important tier, legal holds, purge runs and
-- their certificates, and the audit log of every policy, hold and deletion action.

CREATE TABLE retention_policies (
	org_id          TEXT NOT NULL PRIMARY KEY,
	policy          TEXT NOT NULL, -- JSON of chatvault.Policy
	updated_at      INTEGER NOT NULL
) WITHOUT ROWID;

ALTER TABLE conversations ADD COLUMN retention_days INTEGER;          -- an admin's override; NULL: none
ALTER TABLE conversations ADD COLUMN expire_scanned_seq INTEGER NOT NULL DEFAULT 0; -- all <= it examined
ALTER TABLE users ADD COLUMN retention_days INTEGER;                  -- the user's own window; NULL: none, 0: forever

ALTER TABLE messages ADD COLUMN importance INTEGER NOT NULL DEFAULT 0; -- ImportantBy* flags
ALTER TABLE messages ADD COLUMN expired_at INTEGER;

-- Small partial indexes: only messages waiting for destruction.
CREATE INDEX messages_expiring ON messages (org_id, conversation_id, seq) WHERE expired_at IS NOT NULL AND state != 'purged';
CREATE INDEX messages_recalled ON messages (org_id, conversation_id, seq) WHERE state = 'recalled';
-- The important tier expires by its own, longer clock, so it gets its own small index instead of
-- pinning the scan watermark of the conversation.
CREATE INDEX messages_important ON messages (org_id, conversation_id, seq) WHERE importance != 0 AND expired_at IS NULL AND state != 'purged';

ALTER TABLE events ADD COLUMN from_seq INTEGER;

CREATE TABLE stars (
	org_id          TEXT NOT NULL,
	conversation_id TEXT NOT NULL,
	seq             INTEGER NOT NULL,
	user_id         TEXT NOT NULL,
	created_at      INTEGER NOT NULL,
	PRIMARY KEY (org_id, conversation_id, seq, user_id)
) WITHOUT ROWID;

CREATE TABLE important_rules (
	org_id     TEXT NOT NULL,
	id         TEXT NOT NULL,
	pattern    TEXT NOT NULL,
	regex      INTEGER NOT NULL,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (org_id, id)
) WITHOUT ROWID;

CREATE TABLE legal_holds (
	org_id        TEXT NOT NULL,
	id            TEXT NOT NULL,
	name          TEXT NOT NULL,
	reason        TEXT NOT NULL,
	custodians    TEXT NOT NULL, -- JSON array of user ids
	conversations TEXT NOT NULL, -- JSON array of conversation ids
	from_at       INTEGER,
	to_at         INTEGER,
	created_by    TEXT NOT NULL,
	created_at    INTEGER NOT NULL,
	released_at   INTEGER,
	released_by   TEXT,
	PRIMARY KEY (org_id, id)
) WITHOUT ROWID;

CREATE TABLE purge_runs (
	org_id      TEXT NOT NULL,
	id          TEXT NOT NULL,
	started_at  INTEGER NOT NULL,
	finished_at INTEGER,
	certificate TEXT NOT NULL, -- JSON of chatvault.PurgeRun
	PRIMARY KEY (org_id, id)
) WITHOUT ROWID;

CREATE TABLE audit_log (
	id       INTEGER PRIMARY KEY,
	org_id   TEXT NOT NULL,
	at       INTEGER NOT NULL,
	actor_id TEXT NOT NULL,
	action   TEXT NOT NULL,
	target   TEXT NOT NULL,
	reason   TEXT NOT NULL,
	outcome  TEXT NOT NULL,
	details  TEXT NOT NULL
);

CREATE INDEX audit_log_org ON audit_log (org_id, id);
