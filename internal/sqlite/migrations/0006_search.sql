-- Full-text search over encrypted bodies (internal/search). The index holds blind tokens only:
-- each of a message's search tokens (CJK characters and pairs, words, its conversation and sender)
-- keyed with the org's index key (HMAC), as 16 hex digits. FTS5 keeps the posting lists compact
-- (detail=none: rowids only; positions are not needed, the exact check after decryption decides
-- phrases) and contentless_delete lets a message's entry be deleted by rowid alone, in the same
-- transaction that recalls or destroys the message.
CREATE VIRTUAL TABLE search_index USING fts5 (tokens, content = '', contentless_delete = 1, detail = none, tokenize = 'ascii');

-- A message's document number in search_index (NULL: not indexed). Numbers come from the event
-- counter when the message is stored, so they follow commit order and newest-first is rowid order.
ALTER TABLE messages ADD COLUMN doc INTEGER;
CREATE UNIQUE INDEX messages_doc ON messages (doc) WHERE doc IS NOT NULL;

-- Index keys of a store that runs without encryption (bodies in plain text). An encrypted store
-- keeps its index keys wrapped in the keys database instead.
CREATE TABLE search_keys (
	org_id TEXT NOT NULL PRIMARY KEY,
	key    BLOB NOT NULL
) WITHOUT ROWID;

-- 0: messages stored before this migration still need indexing (done when the store opens).
ALTER TABLE store_encryption ADD COLUMN search_indexed INTEGER NOT NULL DEFAULT 0;
