-- As SQLite's 0013: a message sent with a client_msg_id has the id chatvault.ClientMessageID
-- derives from it (id_derived = 1) and is found again through messages_id; the client-id index
-- keeps only the rows stored before this migration.
ALTER TABLE messages ADD COLUMN id_derived INTEGER NOT NULL DEFAULT 0;
DROP INDEX messages_client;
CREATE INDEX messages_client_legacy ON messages (org_id, conversation_id, sender_id, client_msg_id)
	WHERE client_msg_id IS NOT NULL AND id_derived = 0;

-- As SQLite's 0013: light English stemming of search queries, per org, on by default.
ALTER TABLE orgs ADD COLUMN search_stemming INTEGER NOT NULL DEFAULT 1;
