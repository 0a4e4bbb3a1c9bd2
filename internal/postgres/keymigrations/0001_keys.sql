-- The wrapped material of every data key, apart from the data: in the schema chatvault_keys of
-- the data database, or of another database (Options.KeysURL). Same columns as the SQLite keys
-- database (internal/sqlite/keys.go).
CREATE TABLE chatvault_keys.data_keys (
	org_id          TEXT NOT NULL,
	conversation_id TEXT NOT NULL,
	id              BIGINT NOT NULL,
	kek_id          TEXT NOT NULL,
	wrapped         BYTEA NOT NULL, -- AES-256-GCM under the KEK: nonce | ciphertext | tag
	created_at      BIGINT NOT NULL,
	PRIMARY KEY (org_id, conversation_id, id)
);

CREATE INDEX data_keys_kek ON chatvault_keys.data_keys (kek_id);
