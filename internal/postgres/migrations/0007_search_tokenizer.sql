-- The tokenizer version (internal/search.TokenizerVersion) the search index was built under, as
-- SQLite's store_encryption.search_tokenizer: an index built before this migration is version 1.
-- When the store opens under another version it empties search_docs and indexes every message
-- again. A table of its own, not a column of store_encryption: chatvault migrate copies that row
-- from SQLite, and a copied index version would describe an index that did not come along.
CREATE TABLE search_state (
	id        INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
	tokenizer INTEGER NOT NULL
);

INSERT INTO search_state (id, tokenizer) VALUES (1, 1);
