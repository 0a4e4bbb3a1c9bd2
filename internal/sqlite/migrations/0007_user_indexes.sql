-- A user's conversations and membership spans are read on every search, conversation list and
-- initial sync. The indexes by user held only the key, so each row cost a second lookup in its
-- table: for a member of 1,000 conversations that was three quarters of a search's time (measured
-- at 1M messages). These indexes carry the columns those reads need.
DROP INDEX participants_user;
CREATE INDEX participants_user ON participants (org_id, user_id, role, active, read_seq, cleared_seq);
DROP INDEX member_spans_user;
CREATE INDEX member_spans_user ON member_spans (org_id, user_id, conversation_id, from_seq, to_seq, from_event, to_event, joined_at, left_at);
