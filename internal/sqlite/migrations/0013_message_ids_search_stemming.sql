-- A message sent with a client_msg_id now has the id chatvault.ClientMessageID derives from it
-- (id_derived = 1), so the store finds a retried send through messages_id, which every message is
-- written to anyway. The index of (org, conversation, sender, client_msg_id) was one more B-tree
-- written at a random place per message, a fifth of a message's bytes on disk; it stays only for
-- the rows stored before this migration, whose ids are random, so that a send acknowledged by the
-- old version is still recognised when the client retries it after the upgrade.
ALTER TABLE messages ADD COLUMN id_derived INTEGER NOT NULL DEFAULT 0;
DROP INDEX messages_client;
CREATE UNIQUE INDEX messages_client_legacy ON messages (org_id, conversation_id, sender_id, client_msg_id)
	WHERE client_msg_id IS NOT NULL AND id_derived = 0;

-- Light English stemming of search queries, per org (chatvault.Org.SearchStemming), on by
-- default. The index is unchanged: a stemmed word is looked up through the prefix tokens.
ALTER TABLE orgs ADD COLUMN search_stemming INTEGER NOT NULL DEFAULT 1;
