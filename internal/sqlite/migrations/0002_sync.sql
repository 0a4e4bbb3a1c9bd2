-- The change feed. One counter numbers every change in commit order (the single writer makes
-- commit order and number order the same); a device's sync cursor is such a number.

CREATE TABLE counters (
	name  TEXT NOT NULL PRIMARY KEY,
	value INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO counters (name, value) VALUES ('event', 0);

-- New messages write no event row: they move last_event_id, and this index finds the
-- conversations that changed since a cursor at a cost that grows with changes, not memberships.
ALTER TABLE conversations ADD COLUMN last_event_id INTEGER NOT NULL DEFAULT 0;
CREATE INDEX conversations_changed ON conversations (org_id, last_event_id);

-- Per-user changes (read marker, cleared history, hides) move the participant's changed_event_id.
ALTER TABLE participants ADD COLUMN changed_event_id INTEGER NOT NULL DEFAULT 0;
CREATE INDEX participants_changed ON participants (org_id, user_id, changed_event_id);

-- The events a member may see are also bounded by membership, in event numbers.
ALTER TABLE member_spans ADD COLUMN from_event INTEGER NOT NULL DEFAULT 0;
ALTER TABLE member_spans ADD COLUMN to_event INTEGER;

-- Changes other than new messages. for_user set: only that user sees the event.
CREATE TABLE events (
	org_id          TEXT NOT NULL,
	conversation_id TEXT NOT NULL,
	id              INTEGER NOT NULL,
	kind            TEXT NOT NULL,
	for_user        TEXT,
	subject         TEXT,
	seq             INTEGER,
	message_id      TEXT,
	created_at      INTEGER NOT NULL,
	PRIMARY KEY (org_id, conversation_id, id)
) WITHOUT ROWID;
