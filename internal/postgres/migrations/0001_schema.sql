-- The PostgreSQL schema: the SQLite schema (internal/sqlite/migrations 0001-0005) with the same
-- table names, column names and value encodings, so `chatvault migrate` copies each table column
-- for column: times are Unix milliseconds (BIGINT), ids TEXT, bodies BYTEA, booleans the same
-- 0/1 integers, roles the same comma-separated string, JSON documents the same TEXT.
--
-- Where PostgreSQL forces a difference:
--   * messages is PARTITIONED BY RANGE (sent_at), one partition per calendar month (UTC), made on
--     demand by the store (messages_YYYY_MM). A partitioned table's unique constraints must
--     include the partition key, so the primary key is (org_id, conversation_id, seq, sent_at) and
--     the SQLite unique indexes on id and on client_msg_id are plain indexes here. Uniqueness of
--     (org, conversation, seq) and of (org, conversation, sender, client_msg_id) is guaranteed by
--     the store instead: it allocates seq and checks client_msg_id while holding the
--     conversation row's lock (SELECT ... FOR UPDATE, then UPDATE ... last_seq + 1), so two
--     appends to one conversation never interleave. Message ids are UUIDv7 made by the server.
--   * message_versions is not partitioned: it has no sent_at column, and adding one would break
--     the column-for-column copy. Versions are rare (edits) and die with their message.
--   * audit_log.id and purge_run_items.id are identity columns (SQLite rowids). A copy inserts
--     the ids it reads; it must then move the sequences past them (setval).
--   * Wrapped data-key material is not in this schema: it lives in the schema chatvault_keys
--     (keymigrations/), or in another database (Options.KeysURL), so that
--     `pg_dump --exclude-schema=chatvault_keys` is a data backup without keys.
--   * event_outbox is PostgreSQL's alone: live delivery across processes (see events.go).
--
-- Distribution: every key leads with (org_id, conversation_id) where the row belongs to a
-- conversation, and no foreign key crosses conversations, so the conversation tables can be
-- distributed by conversation_id (Citus, YugabyteDB). The only foreign keys are users -> orgs and
-- devices -> users, as in SQLite (org-level tables).
--
-- Search: the blind-token index will be a table keyed (org_id, conversation_id, token, seq), added
-- by a later migration; nothing here needs to change for it.

CREATE TABLE orgs (
	id         TEXT NOT NULL PRIMARY KEY,
	slug       TEXT NOT NULL UNIQUE,
	name       TEXT NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE users (
	org_id         TEXT NOT NULL REFERENCES orgs (id),
	id             TEXT NOT NULL,
	username       TEXT NOT NULL,
	display_name   TEXT NOT NULL,
	roles          TEXT NOT NULL, -- comma-separated role names
	disabled       INTEGER NOT NULL DEFAULT 0,
	password_hash  TEXT NOT NULL,
	created_at     BIGINT NOT NULL,
	retention_days INTEGER, -- the user's own window; NULL: none, 0: forever
	PRIMARY KEY (org_id, id),
	UNIQUE (org_id, username)
);

CREATE TABLE devices (
	org_id     TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	id         TEXT NOT NULL,
	name       TEXT NOT NULL,
	token_hash BYTEA NOT NULL UNIQUE,
	created_at BIGINT NOT NULL,
	revoked_at BIGINT,
	PRIMARY KEY (org_id, user_id, id),
	FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id)
);

CREATE TABLE conversations (
	org_id             TEXT NOT NULL,
	id                 TEXT NOT NULL,
	kind               TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
	title              TEXT NOT NULL DEFAULT '',
	created_by         TEXT NOT NULL,
	created_at         BIGINT NOT NULL,
	history_visible    INTEGER NOT NULL DEFAULT 0,
	direct_key         TEXT,
	last_seq           BIGINT NOT NULL DEFAULT 0, -- the seq allocator; its row lock serialises appends
	last_event_id      BIGINT NOT NULL DEFAULT 0,
	retention_days     INTEGER,
	expire_scanned_seq BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (org_id, id)
);

CREATE UNIQUE INDEX conversations_direct ON conversations (org_id, direct_key) WHERE direct_key IS NOT NULL;
CREATE INDEX conversations_changed ON conversations (org_id, last_event_id);

CREATE TABLE participants (
	org_id           TEXT NOT NULL,
	conversation_id  TEXT NOT NULL,
	user_id          TEXT NOT NULL,
	role             TEXT NOT NULL,
	active           INTEGER NOT NULL,
	read_seq         BIGINT NOT NULL DEFAULT 0,
	cleared_seq      BIGINT NOT NULL DEFAULT 0,
	changed_event_id BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (org_id, conversation_id, user_id)
);

CREATE INDEX participants_user ON participants (org_id, user_id);
CREATE INDEX participants_changed ON participants (org_id, user_id, changed_event_id);

CREATE TABLE member_spans (
	org_id          TEXT NOT NULL,
	conversation_id TEXT NOT NULL,
	user_id         TEXT NOT NULL,
	from_seq        BIGINT NOT NULL,
	to_seq          BIGINT,
	joined_at       BIGINT NOT NULL,
	left_at         BIGINT,
	from_event      BIGINT NOT NULL DEFAULT 0,
	to_event        BIGINT,
	PRIMARY KEY (org_id, conversation_id, user_id, from_seq)
);

CREATE INDEX member_spans_user ON member_spans (org_id, user_id);

CREATE TABLE messages (
	org_id          TEXT NOT NULL,
	conversation_id TEXT NOT NULL,
	seq             BIGINT NOT NULL,
	id              TEXT NOT NULL,
	sender_id       TEXT NOT NULL,
	client_msg_id   TEXT,
	kind            TEXT NOT NULL,
	body            BYTEA,
	reply_to        TEXT,
	sent_at         BIGINT NOT NULL,
	edited_at       BIGINT,
	version         INTEGER NOT NULL DEFAULT 1,
	state           TEXT NOT NULL DEFAULT 'live',
	state_at        BIGINT,
	importance      INTEGER NOT NULL DEFAULT 0,
	expired_at      BIGINT,
	PRIMARY KEY (org_id, conversation_id, seq, sent_at)
) PARTITION BY RANGE (sent_at);

CREATE INDEX messages_id ON messages (org_id, conversation_id, id);
CREATE INDEX messages_client ON messages (org_id, conversation_id, sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL;
CREATE INDEX messages_expiring ON messages (org_id, conversation_id, seq) WHERE expired_at IS NOT NULL AND state <> 'purged';
CREATE INDEX messages_recalled ON messages (org_id, conversation_id, seq) WHERE state = 'recalled';
CREATE INDEX messages_important ON messages (org_id, conversation_id, seq) WHERE importance <> 0 AND expired_at IS NULL AND state <> 'purged';

CREATE TABLE message_versions (
	org_id          TEXT NOT NULL,
	conversation_id TEXT NOT NULL,
	seq             BIGINT NOT NULL,
	version         INTEGER NOT NULL,
	body            BYTEA,
	created_at      BIGINT NOT NULL,
	PRIMARY KEY (org_id, conversation_id, seq, version)
);

CREATE TABLE hidden_messages (
	org_id          TEXT NOT NULL,
	conversation_id TEXT NOT NULL,
	user_id         TEXT NOT NULL,
	seq             BIGINT NOT NULL,
	hidden_at       BIGINT NOT NULL,
	PRIMARY KEY (org_id, conversation_id, user_id, seq)
);

-- One counter numbers every change. Its row is updated inside each writing transaction and stays
-- locked until that transaction commits, so commit order is number order (see events.go).
CREATE TABLE counters (
	name  TEXT NOT NULL PRIMARY KEY,
	value BIGINT NOT NULL
);

INSERT INTO counters (name, value) VALUES ('event', 0);

CREATE TABLE events (
	org_id          TEXT NOT NULL,
	conversation_id TEXT NOT NULL,
	id              BIGINT NOT NULL,
	kind            TEXT NOT NULL,
	for_user        TEXT,
	subject         TEXT,
	seq             BIGINT,
	message_id      TEXT,
	created_at      BIGINT NOT NULL,
	from_seq        BIGINT,
	PRIMARY KEY (org_id, conversation_id, id)
);

CREATE TABLE data_keys (
	org_id          TEXT NOT NULL,
	conversation_id TEXT NOT NULL,
	id              BIGINT NOT NULL,
	bucket          TEXT NOT NULL,
	first_seq       BIGINT NOT NULL,
	created_at      BIGINT NOT NULL,
	destroyed_at    BIGINT,
	PRIMARY KEY (org_id, conversation_id, id)
);

CREATE TABLE store_encryption (
	id     INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
	sealed INTEGER NOT NULL
);

INSERT INTO store_encryption (id, sealed) VALUES (1, 0);

CREATE TABLE retention_policies (
	org_id     TEXT NOT NULL PRIMARY KEY,
	policy     TEXT NOT NULL, -- JSON of chatvault.Policy
	updated_at BIGINT NOT NULL
);

CREATE TABLE stars (
	org_id          TEXT NOT NULL,
	conversation_id TEXT NOT NULL,
	seq             BIGINT NOT NULL,
	user_id         TEXT NOT NULL,
	created_at      BIGINT NOT NULL,
	PRIMARY KEY (org_id, conversation_id, seq, user_id)
);

CREATE TABLE important_rules (
	org_id     TEXT NOT NULL,
	id         TEXT NOT NULL,
	pattern    TEXT NOT NULL,
	regex      INTEGER NOT NULL,
	created_by TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (org_id, id)
);

CREATE TABLE legal_holds (
	org_id        TEXT NOT NULL,
	id            TEXT NOT NULL,
	name          TEXT NOT NULL,
	reason        TEXT NOT NULL,
	custodians    TEXT NOT NULL, -- JSON array of user ids
	conversations TEXT NOT NULL, -- JSON array of conversation ids
	from_at       BIGINT,
	to_at         BIGINT,
	created_by    TEXT NOT NULL,
	created_at    BIGINT NOT NULL,
	released_at   BIGINT,
	released_by   TEXT,
	PRIMARY KEY (org_id, id)
);

CREATE TABLE purge_runs (
	org_id      TEXT NOT NULL,
	id          TEXT NOT NULL,
	started_at  BIGINT NOT NULL,
	finished_at BIGINT,
	certificate TEXT NOT NULL, -- JSON of chatvault.PurgeRun
	PRIMARY KEY (org_id, id)
);

CREATE TABLE audit_log (
	id       BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	org_id   TEXT NOT NULL,
	at       BIGINT NOT NULL,
	actor_id TEXT NOT NULL,
	action   TEXT NOT NULL,
	target   TEXT NOT NULL,
	reason   TEXT NOT NULL,
	outcome  TEXT NOT NULL,
	details  TEXT NOT NULL
);

CREATE INDEX audit_log_org ON audit_log (org_id, id);

CREATE TABLE purge_run_items (
	id              BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	org_id          TEXT NOT NULL,
	run_id          TEXT NOT NULL,
	conversation_id TEXT NOT NULL,
	action          TEXT NOT NULL,
	count           INTEGER NOT NULL,
	first_seq       BIGINT NOT NULL,
	last_seq        BIGINT NOT NULL
);

CREATE INDEX purge_run_items_run ON purge_run_items (org_id, run_id, id);

-- Live delivery (events.go): each writing transaction that publishes events writes one row here,
-- keyed by the range of event numbers it took, with the events minus message content. Listeners
-- in every process read it in number order after each NOTIFY, and from where they stopped after
-- a reconnect. Rows older than a few minutes are pruned.
CREATE TABLE event_outbox (
	first_id   BIGINT NOT NULL PRIMARY KEY,
	last_id    BIGINT NOT NULL,
	events     TEXT NOT NULL, -- JSON; never message text
	created_at BIGINT NOT NULL
);
