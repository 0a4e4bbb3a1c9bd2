-- Encryption at rest (envelope encryption). Bodies in messages.body and message_versions.body are
-- sealed envelopes (see internal/keyring). Each names a data key by its number within its
-- conversation. This table holds only what the data needs to know about each data key; the key
-- material (wrapped by a KEK) lives in the separate keys database (keys/keys.db), which is backed
-- up apart from the data with a short retention, so a destroyed key stays destroyed even in old
-- data backups.
--
-- A data key covers the seqs first_seq <= seq < (the next key's first_seq): keys are made in seq
-- order, one per conversation and month of sent_at, so "does any body still use this key" is a
-- primary-key range lookup.
CREATE TABLE data_keys (
	org_id          TEXT NOT NULL,
	conversation_id TEXT NOT NULL,
	id              INTEGER NOT NULL, -- 1, 2, ... within the conversation; never reused
	bucket          TEXT NOT NULL,    -- 'YYYY-MM' (UTC) of the first message it sealed
	first_seq       INTEGER NOT NULL,
	created_at      INTEGER NOT NULL,
	destroyed_at    INTEGER,          -- set when crypto-shredded; the row keeps the seq range
	PRIMARY KEY (org_id, conversation_id, id)
) WITHOUT ROWID;

-- One row. sealed = 1 once every body is sealed (a store opened with its keyring seals any plain
-- bodies left from before, then sets it); from then on a plain body is refused as tampering, and
-- the store cannot be opened without its keys.
CREATE TABLE store_encryption (
	id     INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
	sealed INTEGER NOT NULL
);

INSERT INTO store_encryption (id, sealed) VALUES (1, 0);
