-- Audit keys of a store that runs without encryption at rest: internal/audit seals the free text
-- of audit entries (an org-wide search's query, reasons, patterns) under them. An encrypted store
-- keeps its audit keys wrapped in the keys database instead (conversation "~audit"); the keys a
-- store kept here before it was given encryption stay, to open the entries sealed under them.
CREATE TABLE audit_keys (
	org_id TEXT NOT NULL,
	n      INTEGER NOT NULL,
	key    BLOB NOT NULL,
	PRIMARY KEY (org_id, n)
) WITHOUT ROWID;
