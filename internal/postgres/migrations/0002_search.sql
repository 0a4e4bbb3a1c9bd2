-- Full-text search over encrypted bodies (internal/search), as in SQLite's 0006_search.sql: the
-- index holds blind tokens only, each of a message's search tokens (CJK characters and pairs,
-- words, its conversation and sender) keyed with the org's index key (HMAC-SHA-256 cut to 64
-- bits), stored here as the 64 bits themselves.
--
-- One row per indexed message, its tokens in a GIN-indexed array (not a row per token: ten
-- times smaller and one row to write per message, under the event counter's lock; see
-- docs/decisions.md for the figures). Candidates come newest first by doc: PostgreSQL reads the
-- GIN posting lists of a query's tokens and sorts the matches, or, for tokens most messages hold,
-- walks the primary key backwards and checks each row. Tokens are keyed per org, so another
-- org's tokens never match; org_id leads the key for distribution.
CREATE TABLE search_docs (
	org_id          TEXT NOT NULL,
	doc             BIGINT NOT NULL,
	conversation_id TEXT NOT NULL,
	seq             BIGINT NOT NULL,
	sent_at         BIGINT NOT NULL, -- the message's partition key: the join to messages prunes by it
	tokens          BIGINT[] NOT NULL,
	PRIMARY KEY (org_id, doc)
);

CREATE INDEX search_docs_tokens ON search_docs USING gin (tokens);

-- A message's document number (NULL: not indexed): the event number taken when it was stored,
-- so documents follow commit order and newest first is doc order.
ALTER TABLE messages ADD COLUMN doc BIGINT;

-- What the store indexes when it opens: live text that has no document (stored by a bulk load or
-- a copy from SQLite, or unexpired since). Empty once everything is indexed, so the check is free.
CREATE INDEX messages_unindexed ON messages (sent_at, id) WHERE doc IS NULL AND kind = 'text' AND state = 'live' AND expired_at IS NULL;

-- Index keys of a store that runs without encryption (bodies in plain text). An encrypted store
-- keeps its index keys wrapped in chatvault_keys.data_keys instead.
CREATE TABLE search_keys (
	org_id TEXT NOT NULL PRIMARY KEY,
	key    BYTEA NOT NULL
);
