-- The core data model. Keys lead with org and conversation so the same shape can be distributed by
-- conversation on a sharded PostgreSQL-wire engine. Times are Unix milliseconds (UTC).

CREATE TABLE orgs (
	id         TEXT NOT NULL PRIMARY KEY,
	slug       TEXT NOT NULL UNIQUE,
	name       TEXT NOT NULL,
	created_at INTEGER NOT NULL
);

CREATE TABLE users (
	org_id        TEXT NOT NULL REFERENCES orgs (id),
	id            TEXT NOT NULL,
	username      TEXT NOT NULL,
	display_name  TEXT NOT NULL,
	roles         TEXT NOT NULL, -- comma-separated role names
	disabled      INTEGER NOT NULL DEFAULT 0,
	password_hash TEXT NOT NULL,
	created_at    INTEGER NOT NULL,
	PRIMARY KEY (org_id, id),
	UNIQUE (org_id, username)
) WITHOUT ROWID;

CREATE TABLE devices (
	org_id     TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	id         TEXT NOT NULL,
	name       TEXT NOT NULL,
	token_hash BLOB NOT NULL UNIQUE,
	created_at INTEGER NOT NULL,
	revoked_at INTEGER,
	PRIMARY KEY (org_id, user_id, id),
	FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id)
) WITHOUT ROWID;

CREATE TABLE conversations (
	org_id          TEXT NOT NULL,
	id              TEXT NOT NULL,
	kind            TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
	title           TEXT NOT NULL DEFAULT '',
	created_by      TEXT NOT NULL,
	created_at      INTEGER NOT NULL,
	history_visible INTEGER NOT NULL DEFAULT 0,
	direct_key      TEXT,
	last_seq        INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (org_id, id)
) WITHOUT ROWID;

CREATE UNIQUE INDEX conversations_direct ON conversations (org_id, direct_key) WHERE direct_key IS NOT NULL;

-- One row per user who is or was a member: their current standing and per-user markers.
CREATE TABLE participants (
	org_id          TEXT NOT NULL,
	conversation_id TEXT NOT NULL,
	user_id         TEXT NOT NULL,
	role            TEXT NOT NULL,
	active          INTEGER NOT NULL,
	read_seq        INTEGER NOT NULL DEFAULT 0,
	cleared_seq     INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (org_id, conversation_id, user_id)
) WITHOUT ROWID;

CREATE INDEX participants_user ON participants (org_id, user_id);

-- Membership spans: the member sees from_seq < seq <= to_seq (to_seq NULL while still a member).
CREATE TABLE member_spans (
	org_id          TEXT NOT NULL,
	conversation_id TEXT NOT NULL,
	user_id         TEXT NOT NULL,
	from_seq        INTEGER NOT NULL,
	to_seq          INTEGER,
	joined_at       INTEGER NOT NULL,
	left_at         INTEGER,
	PRIMARY KEY (org_id, conversation_id, user_id, from_seq)
) WITHOUT ROWID;

CREATE INDEX member_spans_user ON member_spans (org_id, user_id);

CREATE TABLE messages (
	org_id          TEXT NOT NULL,
	conversation_id TEXT NOT NULL,
	seq             INTEGER NOT NULL,
	id              TEXT NOT NULL,
	sender_id       TEXT NOT NULL,
	client_msg_id   TEXT,
	kind            TEXT NOT NULL,
	body            BLOB,
	reply_to        TEXT,
	sent_at         INTEGER NOT NULL,
	edited_at       INTEGER,
	version         INTEGER NOT NULL DEFAULT 1,
	state           TEXT NOT NULL DEFAULT 'live',
	state_at        INTEGER,
	PRIMARY KEY (org_id, conversation_id, seq)
) WITHOUT ROWID;

CREATE UNIQUE INDEX messages_id ON messages (org_id, conversation_id, id);
CREATE UNIQUE INDEX messages_client ON messages (org_id, conversation_id, sender_id, client_msg_id)
	WHERE client_msg_id IS NOT NULL;

-- Earlier texts of edited messages; version n holds the text that version n of the message had.
CREATE TABLE message_versions (
	org_id          TEXT NOT NULL,
	conversation_id TEXT NOT NULL,
	seq             INTEGER NOT NULL,
	version         INTEGER NOT NULL,
	body            BLOB,
	created_at      INTEGER NOT NULL,
	PRIMARY KEY (org_id, conversation_id, seq, version)
) WITHOUT ROWID;

-- "Hide for me": per-user, per-message. The server copy stays until retention ends.
CREATE TABLE hidden_messages (
	org_id          TEXT NOT NULL,
	conversation_id TEXT NOT NULL,
	user_id         TEXT NOT NULL,
	seq             INTEGER NOT NULL,
	hidden_at       INTEGER NOT NULL,
	PRIMARY KEY (org_id, conversation_id, user_id, seq)
) WITHOUT ROWID;
