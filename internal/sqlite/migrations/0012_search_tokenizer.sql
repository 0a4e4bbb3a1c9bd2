-- The tokenizer version (internal/search.TokenizerVersion) the search index was built under. An
-- index built before this migration is version 1. When the store opens under another version it
-- empties the index and indexes every message again (indexBacklog), so an upgrade that changes
-- which tokens a message holds needs no step by hand.
ALTER TABLE store_encryption ADD COLUMN search_tokenizer INTEGER NOT NULL DEFAULT 1;
