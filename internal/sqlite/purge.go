package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chatvault/chatvault"
)

// The purge steps: each is one writer transaction that changes at most about a thousand rows, so
// live sends and reads wait for at most one step, never for a whole purge.

// scanWindow bounds how many seqs one expiry step examines, so a step never holds the writer for
// long however many rows it skips.
const scanWindow = 1000

// ExpireMessages marks one bounded step of expirable messages.
func (db *DB) ExpireMessages(ctx context.Context, s chatvault.ExpireStep) (*chatvault.StepResult, error) {
	if s.Important {
		return db.expireImportant(ctx, s)
	}
	res := &chatvault.StepResult{}
	err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
		*res = chatvault.StepResult{}
		var lastSeq, scanned int64
		err := tx.QueryRowContext(ctx, `SELECT last_seq, expire_scanned_seq FROM conversations WHERE org_id = ? AND id = ?`,
			s.OrgID, s.ConversationID).Scan(&lastSeq, &scanned)
		if errors.Is(err, sql.ErrNoRows) {
			return chatvault.Errorf(chatvault.ENOTFOUND, "conversation %s not found", s.ConversationID)
		} else if err != nil {
			return fmt.Errorf("query conversation: %w", err)
		}
		after := max(s.AfterSeq, scanned)
		boundary, err := firstSeqSentFrom(ctx, tx, s.OrgID, s.ConversationID, s.SentBefore, lastSeq)
		if err != nil {
			return err
		}
		hi := min(after+int64(max(s.Limit, 1)), boundary-1, after+scanWindow)
		res.Scanned = max(after, hi)
		if hi <= after {
			res.Done = true
			return nil
		}
		held, heldArgs := heldClause(s.Held)
		args := append([]any{millis(s.At), s.OrgID, s.ConversationID, after, hi, millis(s.SentBefore)}, heldArgs...)
		rows, err := tx.QueryContext(ctx, `UPDATE messages SET expired_at = ?
			WHERE org_id = ? AND conversation_id = ? AND seq > ? AND seq <= ? AND `+expirableStates(s.Selection)+` AND expired_at IS NULL
			AND sent_at < ? AND importance = 0`+held+` RETURNING seq`, args...)
		if err != nil {
			return fmt.Errorf("expire messages: %w", err)
		}
		if err := collectSeqs(rows, res); err != nil {
			return err
		}
		// Messages the clock placed out of order stay below the watermark, to be examined again.
		var late sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT min(seq) FROM messages WHERE org_id = ? AND conversation_id = ? AND seq > ? AND seq <= ? AND sent_at >= ?`,
			s.OrgID, s.ConversationID, after, hi, millis(s.SentBefore)).Scan(&late); err != nil {
			return fmt.Errorf("check message order: %w", err)
		}
		mark := hi
		if late.Valid {
			mark = late.Int64 - 1
		}
		if mark > scanned {
			if _, err := tx.ExecContext(ctx, `UPDATE conversations SET expire_scanned_seq = ? WHERE org_id = ? AND id = ?`, mark, s.OrgID, s.ConversationID); err != nil {
				return fmt.Errorf("advance retention scan: %w", err)
			}
		}
		res.Done = hi >= boundary-1
		if err := recordStep(ctx, tx, s.Selection, "expired", res); err != nil {
			return err
		}
		return emitRange(ctx, tx, s.Selection, chatvault.EventPurged, res)
	})
	return res, err
}

// expireImportant expires, one bounded step at a time, important messages past their own window.
func (db *DB) expireImportant(ctx context.Context, s chatvault.ExpireStep) (*chatvault.StepResult, error) {
	res := &chatvault.StepResult{Done: true}
	if s.ImportantBefore == nil {
		return res, nil
	}
	held, heldArgs := heldClause(s.Held)
	err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
		*res = chatvault.StepResult{}
		args := append([]any{millis(s.At), s.OrgID, s.ConversationID, s.AfterSeq, millis(*s.ImportantBefore)}, heldArgs...)
		rows, err := tx.QueryContext(ctx, `UPDATE messages SET expired_at = ?1 WHERE org_id = ?2 AND conversation_id = ?3 AND seq IN
			(SELECT seq FROM messages INDEXED BY messages_important WHERE org_id = ?2 AND conversation_id = ?3 AND seq > ?4
				AND importance != 0 AND expired_at IS NULL AND `+expirableStates(s.Selection)+` AND sent_at < ?5`+renumber(held, 6)+
			` ORDER BY seq LIMIT `+fmt.Sprint(max(s.Limit, 1))+`) RETURNING seq`, args...)
		if err != nil {
			return fmt.Errorf("expire important messages: %w", err)
		}
		if err := collectSeqs(rows, res); err != nil {
			return err
		}
		res.Done, res.Scanned = res.Count < s.Limit, res.LastSeq
		if err := recordStep(ctx, tx, s.Selection, "expired", res); err != nil {
			return err
		}
		return emitRange(ctx, tx, s.Selection, chatvault.EventPurged, res)
	})
	return res, err
}

// recordStep writes a step's certificate line inside the step's transaction: a run killed at any
// moment has certified exactly what it committed.
func recordStep(ctx context.Context, tx *wtx, s chatvault.Selection, action string, res *chatvault.StepResult) error {
	if s.RunID == "" || res.Count == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO purge_run_items (org_id, run_id, conversation_id, action, count, first_seq, last_seq)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, s.OrgID, s.RunID, s.ConversationID, action, res.Count, res.FirstSeq, res.LastSeq)
	if err != nil {
		return fmt.Errorf("record purge step: %w", err)
	}
	return nil
}

// expirableStates: recalled messages expire with the rest only when the org preserves recalls;
// otherwise the run destroys them directly.
// (Spelled with state != 'purged' so SQLite sees that the partial indexes apply.)
func expirableStates(s chatvault.Selection) string {
	if s.ExcludeRecalled {
		return `state != 'purged' AND state != 'recalled'`
	}
	return `state != 'purged'`
}

// renumber turns the anonymous parameters of a clause into numbered ones from n on, so it can
// follow numbered parameters.
func renumber(clause string, n int) string {
	var b strings.Builder
	for _, r := range clause {
		if r == '?' {
			fmt.Fprintf(&b, "?%d", n)
			n++
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// firstSeqSentFrom finds the first seq whose message was sent at or after t, by binary search over
// the gap-free seqs (sent_at grows with seq; a message the clock placed out of order is caught by
// the caller). It returns lastSeq+1 when every message is older.
func firstSeqSentFrom(ctx context.Context, tx *wtx, orgID, convID string, t time.Time, lastSeq int64) (int64, error) {
	lo, hi := int64(1), lastSeq+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		var sent int64
		err := tx.QueryRowContext(ctx, `SELECT sent_at FROM messages WHERE org_id = ? AND conversation_id = ? AND seq = ?`, orgID, convID, mid).Scan(&sent)
		if err != nil {
			return 0, fmt.Errorf("find retention boundary: %w", err)
		}
		if sent >= millis(t) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, nil
}

// heldClause excludes messages sent inside any held time range.
func heldClause(held []chatvault.TimeRange) (string, []any) {
	var b strings.Builder
	var args []any
	for _, r := range held {
		b.WriteString(" AND NOT (1 = 1")
		if r.From != nil {
			b.WriteString(" AND sent_at >= ?")
			args = append(args, millis(*r.From))
		}
		if r.To != nil {
			b.WriteString(" AND sent_at < ?")
			args = append(args, millis(*r.To))
		}
		b.WriteString(")")
	}
	return b.String(), args
}

func collectSeqs(rows *sql.Rows, res *chatvault.StepResult) error {
	defer rows.Close()
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			return fmt.Errorf("scan seq: %w", err)
		}
		if res.Count == 0 || seq < res.FirstSeq {
			res.FirstSeq = seq
		}
		res.LastSeq = max(res.LastSeq, seq)
		res.Count++
	}
	return rows.Err()
}

func emitRange(ctx context.Context, tx *wtx, s chatvault.Selection, kind chatvault.EventKind, res *chatvault.StepResult) error {
	if res.Count == 0 {
		return nil
	}
	_, err := tx.emit(ctx, chatvault.Event{OrgID: s.OrgID, Kind: kind, ConversationID: s.ConversationID,
		FromSeq: res.FirstSeq, Seq: res.LastSeq, At: s.At})
	return err
}

// destroyWhere is the selection of a destroy step, without the seq bound.
func destroyWhere(s chatvault.DestroyStep) (string, []any, error) {
	held, args := heldClause(s.Held)
	switch {
	case s.Batch != nil:
		w, a := `state != 'purged' AND sent_at < ?`, []any{millis(s.Batch.SentBefore)}
		if s.Batch.SenderID != "" {
			w += ` AND sender_id = ?`
			a = append(a, s.Batch.SenderID)
		}
		if s.Batch.From != nil {
			w += ` AND sent_at >= ?`
			a = append(a, millis(*s.Batch.From))
		}
		if s.Batch.To != nil {
			w += ` AND sent_at < ?`
			a = append(a, millis(*s.Batch.To))
		}
		return w + held, append(a, args...), nil
	case s.Recalled:
		return `state = 'recalled'` + held, args, nil
	case s.ExpiredBefore != nil:
		return `expired_at IS NOT NULL AND state != 'purged' AND expired_at < ?` + held, append([]any{millis(*s.ExpiredBefore)}, args...), nil
	}
	return "", nil, errors.New("destroy step selects nothing: set Batch, Recalled or ExpiredBefore")
}

// DestroyMessages destroys one bounded step of messages: the body and every version go, as do the
// per-user rows that point at them; a tombstone (id, conversation, seq, sender, time) stays.
func (db *DB) DestroyMessages(ctx context.Context, s chatvault.DestroyStep) (*chatvault.StepResult, error) {
	where, args, err := destroyWhere(s)
	if err != nil {
		return nil, err
	}
	res := &chatvault.StepResult{}
	err = db.update(ctx, func(ctx context.Context, tx *wtx) error {
		*res = chatvault.StepResult{}
		sel := append([]any{s.OrgID, s.ConversationID, s.AfterSeq}, args...)
		rows, err := tx.QueryContext(ctx, `SELECT seq FROM messages WHERE org_id = ? AND conversation_id = ? AND seq > ? AND `+where+
			` ORDER BY seq LIMIT ?`, append(sel, s.Limit)...)
		if err != nil {
			return fmt.Errorf("select messages to destroy: %w", err)
		}
		var seqs []int64
		for rows.Next() {
			var seq int64
			if err := rows.Scan(&seq); err != nil {
				rows.Close()
				return err
			}
			seqs = append(seqs, seq)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		res.Done = len(seqs) < s.Limit
		if len(seqs) == 0 {
			res.Scanned = s.AfterSeq
			return nil
		}
		list, _ := json.Marshal(seqs)
		key := []any{s.OrgID, s.ConversationID, string(list)}
		if err := unindexSeqs(ctx, tx, s.OrgID, s.ConversationID, string(list)); err != nil {
			return err
		}
		for _, q := range []string{
			`UPDATE messages SET body = NULL, client_msg_id = NULL, reply_to = NULL, state = 'purged', state_at = ?4, importance = 0,
				expired_at = COALESCE(expired_at, ?4) WHERE org_id = ?1 AND conversation_id = ?2 AND seq IN (SELECT value FROM json_each(?3))`,
			`DELETE FROM message_versions WHERE org_id = ?1 AND conversation_id = ?2 AND seq IN (SELECT value FROM json_each(?3))`,
			`DELETE FROM hidden_messages WHERE org_id = ?1 AND conversation_id = ?2 AND seq IN (SELECT value FROM json_each(?3))`,
			`DELETE FROM stars WHERE org_id = ?1 AND conversation_id = ?2 AND seq IN (SELECT value FROM json_each(?3))`,
		} {
			if _, err := tx.ExecContext(ctx, q, append(key, millis(s.At))...); err != nil {
				return fmt.Errorf("destroy messages: %w", err)
			}
		}
		res.Count, res.FirstSeq, res.LastSeq, res.Scanned = len(seqs), seqs[0], seqs[len(seqs)-1], seqs[len(seqs)-1]
		if err := recordStep(ctx, tx, s.Selection, "destroyed", res); err != nil {
			return err
		}
		return emitRange(ctx, tx, s.Selection, chatvault.EventPurged, res)
	})
	return res, err
}

// CountExpirable says what ExpireMessages would mark in the whole conversation, and how much more
// it would mark but for holds.
func (db *DB) CountExpirable(ctx context.Context, s chatvault.ExpireStep) (*chatvault.PurgeCount, error) {
	importantBefore := int64(-1 << 62)
	if s.ImportantBefore != nil {
		importantBefore = millis(*s.ImportantBefore)
	}
	where := `state IN ('live', 'recalled') AND expired_at IS NULL AND sent_at < ? AND (importance = 0 OR sent_at < ?)`
	// (countPurge applies ExcludeRecalled)
	return db.countPurge(ctx, s.Selection, where, []any{millis(s.SentBefore), importantBefore}, 0)
}

// CountDestroyable says what DestroyMessages would destroy in the whole conversation.
func (db *DB) CountDestroyable(ctx context.Context, s chatvault.DestroyStep) (*chatvault.PurgeCount, error) {
	unheld := s
	unheld.Held = nil
	where, args, err := destroyWhere(unheld)
	if err != nil {
		return nil, err
	}
	floor := int64(0)
	if s.Batch != nil {
		floor = millis(s.Batch.SentBefore)
	}
	return db.countPurge(ctx, s.Selection, where, args, floor)
}

// countPurge counts matches of where, reports how many of them holds protect, and, when
// youngFloor is set, how many would match but for being younger than it.
func (db *DB) countPurge(ctx context.Context, s chatvault.Selection, where string, args []any, youngFloor int64) (*chatvault.PurgeCount, error) {
	out := &chatvault.PurgeCount{ConversationID: s.ConversationID}
	if s.ExcludeRecalled {
		where += ` AND state != 'recalled'`
	}
	held, heldArgs := heldClause(s.Held)
	if s.HeldAll { // a hold covers the whole conversation: all of it counts as held
		held, heldArgs = ` AND 0`, nil
	}
	base := append([]any{s.OrgID, s.ConversationID}, args...)
	var first, last, firstAt, lastAt sql.NullInt64
	err := db.read.QueryRowContext(ctx, `SELECT count(*), min(seq), max(seq), min(sent_at), max(sent_at) FROM messages
		WHERE org_id = ? AND conversation_id = ? AND `+where+held, append(base, heldArgs...)...).Scan(&out.Count, &first, &last, &firstAt, &lastAt)
	if err != nil {
		return nil, fmt.Errorf("count messages: %w", err)
	}
	out.FirstSeq, out.LastSeq = first.Int64, last.Int64
	out.FirstSentAt, out.LastSentAt = fromNullMillis(firstAt), fromNullMillis(lastAt)
	var all int
	if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE org_id = ? AND conversation_id = ? AND `+where, base...).Scan(&all); err != nil {
		return nil, fmt.Errorf("count held messages: %w", err)
	}
	out.Held = all - out.Count
	if youngFloor > 0 {
		young := strings.Replace(where, "sent_at < ?", "sent_at >= ?", 1)
		if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE org_id = ? AND conversation_id = ? AND `+young, base...).Scan(&out.TooYoung); err != nil {
			return nil, fmt.Errorf("count young messages: %w", err)
		}
	}
	return out, nil
}

// UnexpireMessages gives back, one bounded step at a time, expired messages the plan now keeps.
func (db *DB) UnexpireMessages(ctx context.Context, s chatvault.ExpireStep) (*chatvault.StepResult, error) {
	res := &chatvault.StepResult{}
	keep := `NOT (sent_at < ?4 AND (importance = 0 OR sent_at < ?5))`
	sentBefore, importantBefore := int64(-1<<62), int64(-1<<62) // never: keep everything
	if !s.SentBefore.IsZero() {
		sentBefore = millis(s.SentBefore)
	}
	if s.ImportantBefore != nil {
		importantBefore = millis(*s.ImportantBefore)
	}
	err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
		*res = chatvault.StepResult{}
		rows, err := tx.QueryContext(ctx, `UPDATE messages SET expired_at = NULL WHERE org_id = ?1 AND conversation_id = ?2 AND seq IN
			(SELECT seq FROM messages INDEXED BY messages_expiring WHERE org_id = ?1 AND conversation_id = ?2 AND seq > ?3
				AND expired_at IS NOT NULL AND state != 'purged' AND `+keep+` ORDER BY seq LIMIT ?6) RETURNING seq`,
			s.OrgID, s.ConversationID, s.AfterSeq, sentBefore, importantBefore, s.Limit)
		if err != nil {
			return fmt.Errorf("unexpire messages: %w", err)
		}
		if err := collectSeqs(rows, res); err != nil {
			return err
		}
		res.Done, res.Scanned = res.Count < s.Limit, res.LastSeq
		if err := recordStep(ctx, tx, s.Selection, "restored", res); err != nil {
			return err
		}
		return emitRange(ctx, tx, s.Selection, chatvault.EventRestored, res)
	})
	return res, err
}

// RestoreExpired makes expired, not yet destroyed messages live again.
func (db *DB) RestoreExpired(ctx context.Context, orgID, convID string, fromSeq, toSeq int64, at time.Time) (*chatvault.StepResult, error) {
	res := &chatvault.StepResult{}
	err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
		*res = chatvault.StepResult{}
		rows, err := tx.QueryContext(ctx, `UPDATE messages SET expired_at = NULL WHERE org_id = ? AND conversation_id = ? AND seq >= ? AND seq <= ?
			AND expired_at IS NOT NULL AND state != 'purged' RETURNING seq`, orgID, convID, fromSeq, toSeq)
		if err != nil {
			return fmt.Errorf("restore messages: %w", err)
		}
		if err := collectSeqs(rows, res); err != nil {
			return err
		}
		// If the policy still says they go, the next run expires them again.
		if err := rescanFrom(ctx, tx, orgID, convID, fromSeq-1); err != nil {
			return err
		}
		return emitRange(ctx, tx, chatvault.Selection{OrgID: orgID, ConversationID: convID, At: at}, chatvault.EventRestored, res)
	})
	return res, err
}
