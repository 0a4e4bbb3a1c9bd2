package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chatvault/chatvault"
)

// The purge steps: each is one transaction that changes at most about a thousand rows, so live
// sends and reads wait for at most one step (SQLite: one turn of the writer), never for a whole
// purge. On PostgreSQL each step takes the conversation's lock first (as appends do), so its view
// of last_seq and of the scan watermark cannot move under it; SQLite's single writer gives that.

// scanWindow bounds how many seqs one expiry step examines.
const scanWindow = 1000

// ExpireMessages marks one bounded step of expirable messages.
func (c *Core) ExpireMessages(ctx context.Context, s chatvault.ExpireStep) (*chatvault.StepResult, error) {
	if s.Important {
		return c.expireImportant(ctx, s)
	}
	res := &chatvault.StepResult{}
	err := c.update(ctx, func(ctx context.Context, tx Tx) error {
		*res = chatvault.StepResult{}
		var lastSeq, scanned int64
		err := tx.QueryRow(ctx, c.d.pick(
			`SELECT last_seq, expire_scanned_seq FROM conversations WHERE org_id = $1 AND id = $2`,
			`SELECT last_seq, expire_scanned_seq FROM conversations WHERE org_id = $1 AND id = $2 FOR UPDATE`),
			s.OrgID, s.ConversationID).Scan(&lastSeq, &scanned)
		if isNoRows(err) {
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
		var a Args
		q := `UPDATE messages SET expired_at = ` + a.Add(Millis(s.At)) + ` WHERE org_id = ` + a.Add(s.OrgID) +
			` AND conversation_id = ` + a.Add(s.ConversationID) + ` AND seq > ` + a.Add(after) + ` AND seq <= ` + a.Add(hi) +
			` AND ` + expirableStates(s.Selection) + ` AND expired_at IS NULL AND sent_at < ` + a.Add(Millis(s.SentBefore)) +
			` AND importance = 0` + heldClause(&a, s.Held) + ` RETURNING seq`
		rows, err := tx.Query(ctx, q, a...)
		if err != nil {
			return fmt.Errorf("expire messages: %w", err)
		}
		if err := collectSeqs(rows, res); err != nil {
			return err
		}
		// Messages the clock placed out of order stay below the watermark, to be examined again.
		var late sql.NullInt64
		if err := tx.QueryRow(ctx, `SELECT min(seq) FROM messages WHERE org_id = $1 AND conversation_id = $2 AND seq > $3 AND seq <= $4 AND sent_at >= $5`,
			s.OrgID, s.ConversationID, after, hi, Millis(s.SentBefore)).Scan(&late); err != nil {
			return fmt.Errorf("check message order: %w", err)
		}
		mark := hi
		if late.Valid {
			mark = late.Int64 - 1
		}
		if mark > scanned {
			if _, err := tx.Exec(ctx, `UPDATE conversations SET expire_scanned_seq = $1 WHERE org_id = $2 AND id = $3`, mark, s.OrgID, s.ConversationID); err != nil {
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
func (c *Core) expireImportant(ctx context.Context, s chatvault.ExpireStep) (*chatvault.StepResult, error) {
	res := &chatvault.StepResult{Done: true}
	if s.ImportantBefore == nil {
		return res, nil
	}
	err := c.update(ctx, func(ctx context.Context, tx Tx) error {
		*res = chatvault.StepResult{}
		if err := c.lockConversation(ctx, tx, s.OrgID, s.ConversationID); err != nil {
			return err
		}
		var a Args
		org, conv := a.Add(s.OrgID), a.Add(s.ConversationID)
		q := `UPDATE messages SET expired_at = ` + a.Add(Millis(s.At)) + ` WHERE org_id = ` + org + ` AND conversation_id = ` + conv +
			` AND seq IN (SELECT seq FROM messages` + c.d.pick(` INDEXED BY messages_important`, ``) + ` WHERE org_id = ` + org + ` AND conversation_id = ` + conv + ` AND seq > ` + a.Add(s.AfterSeq) +
			` AND importance != 0 AND expired_at IS NULL AND ` + expirableStates(s.Selection) + ` AND sent_at < ` + a.Add(Millis(*s.ImportantBefore)) +
			heldClause(&a, s.Held) + ` ORDER BY seq LIMIT ` + a.Add(max(s.Limit, 1)) + `) RETURNING seq`
		rows, err := tx.Query(ctx, q, a...)
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

// lockConversation takes the conversation's row lock (PostgreSQL; SQLite's writer is alone).
func (c *Core) lockConversation(ctx context.Context, tx Tx, orgID, convID string) error {
	if !c.d.Postgres {
		return nil
	}
	_, err := c.findConversationIn(ctx, tx, orgID, convID, true)
	return err
}

// recordStep writes a step's certificate line inside the step's transaction: a run killed at any
// moment has certified exactly what it committed.
func recordStep(ctx context.Context, tx Tx, s chatvault.Selection, action string, res *chatvault.StepResult) error {
	if s.RunID == "" || res.Count == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO purge_run_items (org_id, run_id, conversation_id, action, count, first_seq, last_seq)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, s.OrgID, s.RunID, s.ConversationID, action, res.Count, res.FirstSeq, res.LastSeq)
	if err != nil {
		return fmt.Errorf("record purge step: %w", err)
	}
	return nil
}

// expirableStates: recalled messages expire with the rest only when the org preserves recalls;
// otherwise the run destroys them directly.
func expirableStates(s chatvault.Selection) string {
	if s.ExcludeRecalled {
		return `state != 'purged' AND state != 'recalled'`
	}
	return `state != 'purged'`
}

// firstSeqSentFrom finds the first seq whose message was sent at or after t, by binary search over
// the gap-free seqs. It returns lastSeq+1 when every message is older.
func firstSeqSentFrom(ctx context.Context, tx Tx, orgID, convID string, t time.Time, lastSeq int64) (int64, error) {
	lo, hi := int64(1), lastSeq+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		var sent int64
		err := tx.QueryRow(ctx, `SELECT sent_at FROM messages WHERE org_id = $1 AND conversation_id = $2 AND seq = $3`, orgID, convID, mid).Scan(&sent)
		if err != nil {
			return 0, fmt.Errorf("find retention boundary: %w", err)
		}
		if sent >= Millis(t) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, nil
}

// heldClause excludes messages sent inside any held time range.
func heldClause(a *Args, held []chatvault.TimeRange) string {
	var b strings.Builder
	for _, r := range held {
		b.WriteString(" AND NOT (1 = 1")
		if r.From != nil {
			b.WriteString(" AND sent_at >= " + a.Add(Millis(*r.From)))
		}
		if r.To != nil {
			b.WriteString(" AND sent_at < " + a.Add(Millis(*r.To)))
		}
		b.WriteString(")")
	}
	return b.String()
}

func collectSeqs(rows Rows, res *chatvault.StepResult) error {
	seqs, err := collect(rows, scanInt64)
	if err != nil {
		return fmt.Errorf("scan seq: %w", err)
	}
	for _, seq := range seqs {
		if res.Count == 0 || seq < res.FirstSeq {
			res.FirstSeq = seq
		}
		res.LastSeq = max(res.LastSeq, seq)
		res.Count++
	}
	return nil
}

func emitRange(ctx context.Context, tx Tx, s chatvault.Selection, kind chatvault.EventKind, res *chatvault.StepResult) error {
	if res.Count == 0 {
		return nil
	}
	_, err := tx.Emit(ctx, chatvault.Event{OrgID: s.OrgID, Kind: kind, ConversationID: s.ConversationID,
		FromSeq: res.FirstSeq, Seq: res.LastSeq, At: s.At})
	return err
}

// destroyWhere is the selection of a destroy step, without the seq bound; young, when set, gets
// the batch filter with the min_days floor turned around (for counting the refused).
func destroyWhere(a *Args, s chatvault.DestroyStep, young bool) (string, error) {
	switch {
	case s.Batch != nil:
		op := "<"
		if young {
			op = ">="
		}
		w := `state != 'purged' AND sent_at ` + op + ` ` + a.Add(Millis(s.Batch.SentBefore))
		if s.Batch.SenderID != "" {
			w += ` AND sender_id = ` + a.Add(s.Batch.SenderID)
		}
		if s.Batch.From != nil {
			w += ` AND sent_at >= ` + a.Add(Millis(*s.Batch.From))
		}
		if s.Batch.To != nil {
			w += ` AND sent_at < ` + a.Add(Millis(*s.Batch.To))
		}
		return w + heldClause(a, s.Held), nil
	case s.Recalled:
		return `state = 'recalled'` + heldClause(a, s.Held), nil
	case s.ExpiredBefore != nil:
		return `expired_at IS NOT NULL AND state != 'purged' AND expired_at < ` + a.Add(Millis(*s.ExpiredBefore)) + heldClause(a, s.Held), nil
	}
	return "", errors.New("destroy step selects nothing: set Batch, Recalled or ExpiredBefore")
}

// DestroyMessages destroys one bounded step of messages: the body and every version go, as do the
// per-user rows that point at them; a tombstone (id, conversation, seq, sender, time) stays.
func (c *Core) DestroyMessages(ctx context.Context, s chatvault.DestroyStep) (*chatvault.StepResult, error) {
	if _, err := destroyWhere(&Args{}, s, false); err != nil {
		return nil, err
	}
	res := &chatvault.StepResult{}
	err := c.update(ctx, func(ctx context.Context, tx Tx) error {
		*res = chatvault.StepResult{}
		if err := c.lockConversation(ctx, tx, s.OrgID, s.ConversationID); err != nil {
			return err
		}
		var a Args
		q := `SELECT seq FROM messages WHERE org_id = ` + a.Add(s.OrgID) + ` AND conversation_id = ` + a.Add(s.ConversationID) +
			` AND seq > ` + a.Add(s.AfterSeq) + ` AND `
		where, _ := destroyWhere(&a, s, false)
		rows, err := tx.Query(ctx, q+where+` ORDER BY seq LIMIT `+a.Add(s.Limit)+c.d.pick(``, ` FOR UPDATE`), a...)
		if err != nil {
			return fmt.Errorf("select messages to destroy: %w", err)
		}
		seqs, err := collect(rows, scanInt64)
		if err != nil {
			return fmt.Errorf("select messages to destroy: %w", err)
		}
		res.Done = len(seqs) < s.Limit
		if len(seqs) == 0 {
			res.Scanned = s.AfterSeq
			return nil
		}
		if err := c.eng.Unindex(ctx, tx, s.OrgID, s.ConversationID, seqs); err != nil {
			return err
		}
		in, list := c.d.seqsIn(seqs)
		if _, err := tx.Exec(ctx, `UPDATE messages SET body = NULL, client_msg_id = NULL, reply_to = NULL, state = 'purged', state_at = $4, importance = 0,
			expired_at = COALESCE(expired_at, $4) WHERE org_id = $1 AND conversation_id = $2 AND `+in,
			s.OrgID, s.ConversationID, list, Millis(s.At)); err != nil {
			return fmt.Errorf("destroy messages: %w", err)
		}
		for _, table := range []string{"message_versions", "hidden_messages", "stars"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE org_id = $1 AND conversation_id = $2 AND `+in,
				s.OrgID, s.ConversationID, list); err != nil {
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
func (c *Core) CountExpirable(ctx context.Context, s chatvault.ExpireStep) (*chatvault.PurgeCount, error) {
	importantBefore := int64(-1 << 62)
	if s.ImportantBefore != nil {
		importantBefore = Millis(*s.ImportantBefore)
	}
	where := func(a *Args) string {
		return `state IN ('live', 'recalled') AND expired_at IS NULL AND sent_at < ` + a.Add(Millis(s.SentBefore)) +
			` AND (importance = 0 OR sent_at < ` + a.Add(importantBefore) + `)`
	}
	return c.countPurge(ctx, s.Selection, where, nil)
}

// CountDestroyable says what DestroyMessages would destroy in the whole conversation.
func (c *Core) CountDestroyable(ctx context.Context, s chatvault.DestroyStep) (*chatvault.PurgeCount, error) {
	unheld := s
	unheld.Held = nil
	if _, err := destroyWhere(&Args{}, unheld, false); err != nil {
		return nil, err
	}
	where := func(a *Args) string { w, _ := destroyWhere(a, unheld, false); return w }
	var young func(a *Args) string
	if s.Batch != nil && !s.Batch.SentBefore.IsZero() && Millis(s.Batch.SentBefore) > 0 {
		young = func(a *Args) string { w, _ := destroyWhere(a, unheld, true); return w }
	}
	return c.countPurge(ctx, s.Selection, where, young)
}

// countPurge counts matches of where, reports how many of them holds protect, and, when young is
// set, how many would match but for being younger than the floor.
func (c *Core) countPurge(ctx context.Context, s chatvault.Selection, where, young func(a *Args) string) (*chatvault.PurgeCount, error) {
	out := &chatvault.PurgeCount{ConversationID: s.ConversationID}
	extra := ""
	if s.ExcludeRecalled {
		extra = ` AND state != 'recalled'`
	}
	base := func(a *Args) string {
		return `FROM messages WHERE org_id = ` + a.Add(s.OrgID) + ` AND conversation_id = ` + a.Add(s.ConversationID) + ` AND `
	}
	var a Args
	q := `SELECT count(*), min(seq), max(seq), min(sent_at), max(sent_at) ` + base(&a) + where(&a) + extra
	if s.HeldAll {
		q += ` AND FALSE` // a hold covers the whole conversation: all of it counts as held
	} else {
		q += heldClause(&a, s.Held)
	}
	var first, last, firstAt, lastAt sql.NullInt64
	if err := c.read.QueryRow(ctx, q, a...).Scan(&out.Count, &first, &last, &firstAt, &lastAt); err != nil {
		return nil, fmt.Errorf("count messages: %w", err)
	}
	out.FirstSeq, out.LastSeq = first.Int64, last.Int64
	out.FirstSentAt, out.LastSentAt = fromNullMillis(firstAt), fromNullMillis(lastAt)
	var all int
	a = nil
	q = `SELECT count(*) ` + base(&a) + where(&a) + extra
	if err := c.read.QueryRow(ctx, q, a...).Scan(&all); err != nil {
		return nil, fmt.Errorf("count held messages: %w", err)
	}
	out.Held = all - out.Count
	if young != nil {
		a = nil
		q = `SELECT count(*) ` + base(&a) + young(&a) + extra
		if err := c.read.QueryRow(ctx, q, a...).Scan(&out.TooYoung); err != nil {
			return nil, fmt.Errorf("count young messages: %w", err)
		}
	}
	return out, nil
}

// UnexpireMessages gives back, one bounded step at a time, expired messages the plan now keeps.
func (c *Core) UnexpireMessages(ctx context.Context, s chatvault.ExpireStep) (*chatvault.StepResult, error) {
	res := &chatvault.StepResult{}
	sentBefore, importantBefore := int64(-1<<62), int64(-1<<62) // never: keep everything
	if !s.SentBefore.IsZero() {
		sentBefore = Millis(s.SentBefore)
	}
	if s.ImportantBefore != nil {
		importantBefore = Millis(*s.ImportantBefore)
	}
	err := c.update(ctx, func(ctx context.Context, tx Tx) error {
		*res = chatvault.StepResult{}
		if err := c.lockConversation(ctx, tx, s.OrgID, s.ConversationID); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `UPDATE messages SET expired_at = NULL WHERE org_id = $1 AND conversation_id = $2 AND seq IN
			(SELECT seq FROM messages`+c.d.pick(` INDEXED BY messages_expiring`, ``)+` WHERE org_id = $1 AND conversation_id = $2 AND seq > $3
				AND expired_at IS NOT NULL AND state != 'purged' AND NOT (sent_at < $4 AND (importance = 0 OR sent_at < $5))
				ORDER BY seq LIMIT $6) RETURNING seq`,
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
func (c *Core) RestoreExpired(ctx context.Context, orgID, convID string, fromSeq, toSeq int64, at time.Time) (*chatvault.StepResult, error) {
	res := &chatvault.StepResult{}
	err := c.update(ctx, func(ctx context.Context, tx Tx) error {
		*res = chatvault.StepResult{}
		if err := c.lockConversation(ctx, tx, orgID, convID); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `UPDATE messages SET expired_at = NULL WHERE org_id = $1 AND conversation_id = $2 AND seq >= $3 AND seq <= $4
			AND expired_at IS NOT NULL AND state != 'purged' RETURNING seq`, orgID, convID, fromSeq, toSeq)
		if err != nil {
			return fmt.Errorf("restore messages: %w", err)
		}
		if err := collectSeqs(rows, res); err != nil {
			return err
		}
		// If the policy still says they go, the next run expires them again.
		if err := c.rescanFrom(ctx, tx, orgID, convID, fromSeq-1); err != nil {
			return err
		}
		return emitRange(ctx, tx, chatvault.Selection{OrgID: orgID, ConversationID: convID, At: at}, chatvault.EventRestored, res)
	})
	return res, err
}

func scanInt64(r Row) (int64, error) {
	var v int64
	err := r.Scan(&v)
	return v, err
}
