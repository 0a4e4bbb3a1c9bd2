-- Audit keys of a store that runs without encryption at rest, as in SQLite's 0008_audit_keys.sql:
-- internal/audit seals the free text of audit entries under them. An encrypted store keeps its
-- audit keys wrapped in chatvault_keys.data_keys (conversation "~audit") instead.
CREATE TABLE audit_keys (
	org_id TEXT NOT NULL,
	n      BIGINT NOT NULL,
	key    BYTEA NOT NULL,
	PRIMARY KEY (org_id, n)
);
