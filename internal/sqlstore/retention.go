package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/chatvault/chatvault"
)

// FindPolicy returns the org's policy, or the default one when it never set one.
func (c *Core) FindPolicy(ctx context.Context, orgID string) (*chatvault.Policy, error) {
	var raw string
	err := c.cached.QueryRow(ctx, `SELECT policy FROM retention_policies WHERE org_id = $1`, orgID).Scan(&raw)
	if isNoRows(err) {
		p := chatvault.DefaultPolicy()
		return &p, nil
	} else if err != nil {
		return nil, fmt.Errorf("query policy: %w", err)
	}
	var p chatvault.Policy
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return nil, fmt.Errorf("decode policy: %w", err)
	}
	return &p, nil
}

// SavePolicy stores the policy; every conversation of the org is examined afresh at the next run.
func (c *Core) SavePolicy(ctx context.Context, orgID string, p *chatvault.Policy) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return c.update(ctx, func(ctx context.Context, tx Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO retention_policies (org_id, policy, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (org_id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at`,
			orgID, string(raw), Millis(p.UpdatedAt)); err != nil {
			return fmt.Errorf("save policy: %w", err)
		}
		return rescanOrg(ctx, tx, orgID)
	})
}

func rescanOrg(ctx context.Context, tx Tx, orgID string) error {
	if _, err := tx.Exec(ctx, `UPDATE conversations SET expire_scanned_seq = 0 WHERE org_id = $1 AND expire_scanned_seq > 0`, orgID); err != nil {
		return fmt.Errorf("reset retention scan: %w", err)
	}
	return nil
}

func (c *Core) rescanFrom(ctx context.Context, tx Tx, orgID, convID string, seq int64) error {
	_, err := tx.Exec(ctx, c.d.pick(
		`UPDATE conversations SET expire_scanned_seq = MIN(expire_scanned_seq, $1) WHERE org_id = $2 AND id = $3`,
		`UPDATE conversations SET expire_scanned_seq = LEAST(expire_scanned_seq, $1) WHERE org_id = $2 AND id = $3`),
		max(seq, 0), orgID, convID)
	if err != nil {
		return fmt.Errorf("reset retention scan: %w", err)
	}
	return nil
}

// SetConversationRetention sets or clears an override.
func (c *Core) SetConversationRetention(ctx context.Context, orgID, convID string, days *int) error {
	return c.update(ctx, func(ctx context.Context, tx Tx) error {
		n, err := tx.Exec(ctx, `UPDATE conversations SET retention_days = $1, expire_scanned_seq = 0 WHERE org_id = $2 AND id = $3`,
			nullInt(days), orgID, convID)
		if err != nil {
			return fmt.Errorf("set conversation retention: %w", err)
		}
		if n == 0 {
			return chatvault.Errorf(chatvault.ENOTFOUND, "conversation %s not found", convID)
		}
		return nil
	})
}

// FindConversationRetention returns a conversation's override (nil: none).
func (c *Core) FindConversationRetention(ctx context.Context, orgID, convID string) (*int, error) {
	var days sql.NullInt64
	err := c.cached.QueryRow(ctx, `SELECT retention_days FROM conversations WHERE org_id = $1 AND id = $2`, orgID, convID).Scan(&days)
	if isNoRows(err) {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "conversation %s not found", convID)
	} else if err != nil {
		return nil, fmt.Errorf("query conversation retention: %w", err)
	}
	return fromNullInt(days), nil
}

// SetUserRetention sets or clears a user's own preference.
func (c *Core) SetUserRetention(ctx context.Context, orgID, userID string, days *int) error {
	return c.update(ctx, func(ctx context.Context, tx Tx) error {
		n, err := tx.Exec(ctx, `UPDATE users SET retention_days = $1 WHERE org_id = $2 AND id = $3`, nullInt(days), orgID, userID)
		if err != nil {
			return fmt.Errorf("set user retention: %w", err)
		}
		if n == 0 {
			return chatvault.Errorf(chatvault.ENOTFOUND, "user not found")
		}
		_, err = tx.Exec(ctx, `UPDATE conversations SET expire_scanned_seq = 0 WHERE org_id = $1 AND id IN
			(SELECT conversation_id FROM participants WHERE org_id = $1 AND user_id = $2)`, orgID, userID)
		return err
	})
}

// FindMemberRetention returns the preferences of the conversation's current members.
func (c *Core) FindMemberRetention(ctx context.Context, orgID, convID string) ([]*int, error) {
	rows, err := c.cached.Query(ctx, `SELECT u.retention_days FROM participants p
		JOIN users u ON u.org_id = p.org_id AND u.id = p.user_id
		WHERE p.org_id = $1 AND p.conversation_id = $2 AND p.active = 1`, orgID, convID)
	if err != nil {
		return nil, fmt.Errorf("query member retention: %w", err)
	}
	return collect(rows, func(r Row) (*int, error) {
		var d sql.NullInt64
		err := r.Scan(&d)
		return fromNullInt(d), err
	})
}

// FindConversationIDs pages through an org's conversations.
func (c *Core) FindConversationIDs(ctx context.Context, orgID, after string, limit int) ([]string, error) {
	return c.strings(ctx, `SELECT id FROM conversations WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3`, orgID, after, limit)
}

// FindParticipantIDs lists everyone who is or was in the conversation.
func (c *Core) FindParticipantIDs(ctx context.Context, orgID, convID string) ([]string, error) {
	return c.strings(ctx, `SELECT user_id FROM participants WHERE org_id = $1 AND conversation_id = $2`, orgID, convID)
}

func (c *Core) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	out, err := queryStrings(ctx, c.read, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	return out, nil
}

// CreateHold stores a legal hold.
func (c *Core) CreateHold(ctx context.Context, h *chatvault.Hold) error {
	cust, _ := json.Marshal(h.Custodians)
	convs, _ := json.Marshal(h.Conversations)
	return c.update(ctx, func(ctx context.Context, tx Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO legal_holds (org_id, id, name, reason, custodians, conversations, from_at, to_at, created_by, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, h.OrgID, h.ID, h.Name, h.Reason, string(cust), string(convs),
			nullMillis(h.From), nullMillis(h.To), h.CreatedBy, Millis(h.CreatedAt))
		if err != nil {
			return fmt.Errorf("insert hold: %w", err)
		}
		return nil
	})
}

const holdColumns = `org_id, id, name, reason, custodians, conversations, from_at, to_at, created_by, created_at, released_at, released_by`

// FindHolds lists the org's holds, newest first.
func (c *Core) FindHolds(ctx context.Context, orgID string, activeOnly bool) ([]*chatvault.Hold, error) {
	rows, err := c.cached.Query(ctx, `SELECT `+holdColumns+` FROM legal_holds WHERE org_id = $1 AND ($2 = 0 OR released_at IS NULL)
		ORDER BY created_at DESC, id`, orgID, b2i(activeOnly))
	if err != nil {
		return nil, fmt.Errorf("query holds: %w", err)
	}
	return collect(rows, func(r Row) (*chatvault.Hold, error) { return scanHold(r) })
}

func scanHold(s Row) (*chatvault.Hold, error) {
	var h chatvault.Hold
	var cust, convs string
	var from, to, released sql.NullInt64
	var releasedBy sql.NullString
	var created int64
	if err := s.Scan(&h.OrgID, &h.ID, &h.Name, &h.Reason, &cust, &convs, &from, &to, &h.CreatedBy, &created, &released, &releasedBy); err != nil {
		if isNoRows(err) {
			return nil, err
		}
		return nil, fmt.Errorf("scan hold: %w", err)
	}
	if err := json.Unmarshal([]byte(cust), &h.Custodians); err != nil {
		return nil, fmt.Errorf("decode hold custodians: %w", err)
	}
	if err := json.Unmarshal([]byte(convs), &h.Conversations); err != nil {
		return nil, fmt.Errorf("decode hold conversations: %w", err)
	}
	h.From, h.To, h.ReleasedAt, h.ReleasedBy = fromNullMillis(from), fromNullMillis(to), fromNullMillis(released), releasedBy.String
	h.CreatedAt = FromMillis(created)
	return &h, nil
}

// ReleaseHold ends a hold; what it protected is examined afresh at the next run.
func (c *Core) ReleaseHold(ctx context.Context, orgID, holdID, by string, at time.Time) (*chatvault.Hold, error) {
	var out *chatvault.Hold
	err := c.update(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		out, err = scanHold(tx.QueryRow(ctx, `UPDATE legal_holds SET released_at = $1, released_by = $2
			WHERE org_id = $3 AND id = $4 AND released_at IS NULL RETURNING `+holdColumns, Millis(at), by, orgID, holdID))
		if isNoRows(err) {
			return chatvault.Errorf(chatvault.ENOTFOUND, "no active hold %s", holdID)
		} else if err != nil {
			return fmt.Errorf("release hold: %w", err)
		}
		return rescanOrg(ctx, tx, orgID)
	})
	return out, err
}

// CreateRule stores an importance rule.
func (c *Core) CreateRule(ctx context.Context, r *chatvault.ImportantRule) error {
	return c.update(ctx, func(ctx context.Context, tx Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO important_rules (org_id, id, pattern, regex, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			r.OrgID, r.ID, r.Pattern, b2i(r.Regex), r.CreatedBy, Millis(r.CreatedAt))
		if err != nil {
			return fmt.Errorf("insert rule: %w", err)
		}
		return nil
	})
}

// FindRules lists the org's importance rules.
func (c *Core) FindRules(ctx context.Context, orgID string) ([]*chatvault.ImportantRule, error) {
	rows, err := c.cached.Query(ctx, `SELECT id, pattern, regex <> 0, created_by, created_at FROM important_rules WHERE org_id = $1 ORDER BY created_at, id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("query rules: %w", err)
	}
	return collect(rows, func(row Row) (*chatvault.ImportantRule, error) {
		r := chatvault.ImportantRule{OrgID: orgID}
		var created int64
		if err := row.Scan(&r.ID, &r.Pattern, &r.Regex, &r.CreatedBy, &created); err != nil {
			return nil, fmt.Errorf("scan rule: %w", err)
		}
		r.CreatedAt = FromMillis(created)
		return &r, nil
	})
}

// DeleteRule removes a rule; messages it already flagged stay important.
func (c *Core) DeleteRule(ctx context.Context, orgID, ruleID string) error {
	return c.update(ctx, func(ctx context.Context, tx Tx) error {
		n, err := tx.Exec(ctx, `DELETE FROM important_rules WHERE org_id = $1 AND id = $2`, orgID, ruleID)
		if err != nil {
			return fmt.Errorf("delete rule: %w", err)
		}
		if n == 0 {
			return chatvault.Errorf(chatvault.ENOTFOUND, "rule %s not found", ruleID)
		}
		return nil
	})
}

// SetImportance sets or clears a flag. A star is per member: the star flag stays while any member
// has starred the message.
func (c *Core) SetImportance(ctx context.Context, orgID, convID string, seq int64, userID string, flag int, on bool, at time.Time) (*chatvault.Message, error) {
	var out *chatvault.Message
	err := c.update(ctx, func(ctx context.Context, tx Tx) error {
		m, err := c.findMessageBySeq(ctx, tx, orgID, convID, seq, true)
		if err != nil {
			return err
		}
		if m.State == chatvault.StatePurged {
			return chatvault.Errorf(chatvault.ECONFLICT, "the message was purged")
		}
		set := on
		if flag == chatvault.ImportantByStar {
			if on {
				_, err = tx.Exec(ctx, `INSERT INTO stars (org_id, conversation_id, seq, user_id, created_at) VALUES ($1, $2, $3, $4, $5)
					ON CONFLICT DO NOTHING`, orgID, convID, seq, userID, Millis(at))
			} else {
				_, err = tx.Exec(ctx, `DELETE FROM stars WHERE org_id = $1 AND conversation_id = $2 AND seq = $3 AND user_id = $4`, orgID, convID, seq, userID)
			}
			if err != nil {
				return fmt.Errorf("star: %w", err)
			}
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM stars WHERE org_id = $1 AND conversation_id = $2 AND seq = $3)`,
				orgID, convID, seq).Scan(&set); err != nil {
				return fmt.Errorf("count stars: %w", err)
			}
		}
		next := m.Importance &^ flag
		if set {
			next |= flag
		}
		if _, err := tx.Exec(ctx, `UPDATE messages SET importance = $1 WHERE org_id = $2 AND conversation_id = $3 AND seq = $4`,
			next, orgID, convID, seq); err != nil {
			return fmt.Errorf("set importance: %w", err)
		}
		if next == 0 && m.Importance != 0 {
			// No longer protected: the next run must look at it again.
			if err := c.rescanFrom(ctx, tx, orgID, convID, seq-1); err != nil {
				return err
			}
		}
		m.Importance, m.Important = next, next != 0
		out = m
		return nil
	})
	return out, err
}

// SavePurgeRun stores (or updates) a run and its certificate.
func (c *Core) SavePurgeRun(ctx context.Context, r *chatvault.PurgeRun) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return c.update(ctx, func(ctx context.Context, tx Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO purge_runs (org_id, id, started_at, finished_at, certificate) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (org_id, id) DO UPDATE SET finished_at = excluded.finished_at, certificate = excluded.certificate`,
			r.OrgID, r.ID, Millis(r.StartedAt), nullMillis(r.FinishedAt), string(raw))
		if err != nil {
			return fmt.Errorf("save purge run: %w", err)
		}
		return nil
	})
}

// FindPurgeRuns lists the org's runs, newest first.
func (c *Core) FindPurgeRuns(ctx context.Context, orgID string, limit int) ([]*chatvault.PurgeRun, error) {
	rows, err := c.read.Query(ctx, `SELECT certificate FROM purge_runs WHERE org_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2`, orgID, limit)
	if err != nil {
		return nil, fmt.Errorf("query purge runs: %w", err)
	}
	return collect(rows, func(row Row) (*chatvault.PurgeRun, error) {
		var raw string
		if err := row.Scan(&raw); err != nil {
			return nil, err
		}
		var r chatvault.PurgeRun
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			return nil, fmt.Errorf("decode purge run: %w", err)
		}
		return &r, nil
	})
}

// FindPurgeRun finds one run.
func (c *Core) FindPurgeRun(ctx context.Context, orgID, runID string) (*chatvault.PurgeRun, error) {
	var raw string
	err := c.read.QueryRow(ctx, `SELECT certificate FROM purge_runs WHERE org_id = $1 AND id = $2`, orgID, runID).Scan(&raw)
	if isNoRows(err) {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "purge run %s not found", runID)
	} else if err != nil {
		return nil, fmt.Errorf("query purge run: %w", err)
	}
	var r chatvault.PurgeRun
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return nil, fmt.Errorf("decode purge run: %w", err)
	}
	return &r, nil
}

// RecordAudit appends to the audit log.
func (c *Core) RecordAudit(ctx context.Context, e *chatvault.AuditEntry) error {
	details, err := json.Marshal(e.Details)
	if err != nil {
		return err
	}
	return c.update(ctx, func(ctx context.Context, tx Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO audit_log (org_id, at, actor_id, action, target, reason, outcome, details)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`, e.OrgID, Millis(e.At), e.ActorID, e.Action, e.Target, e.Reason, e.Outcome, string(details)).Scan(&e.ID)
		if err != nil {
			return fmt.Errorf("record audit: %w", err)
		}
		return nil
	})
}

// FindAudit lists the org's newest audit entries.
func (c *Core) FindAudit(ctx context.Context, orgID string, limit int) ([]*chatvault.AuditEntry, error) {
	rows, err := c.read.Query(ctx, `SELECT id, at, actor_id, action, target, reason, outcome, details FROM audit_log
		WHERE org_id = $1 ORDER BY id DESC LIMIT $2`, orgID, limit)
	if err != nil {
		return nil, fmt.Errorf("query audit: %w", err)
	}
	return collect(rows, func(row Row) (*chatvault.AuditEntry, error) {
		e := chatvault.AuditEntry{OrgID: orgID}
		var at int64
		var details string
		if err := row.Scan(&e.ID, &at, &e.ActorID, &e.Action, &e.Target, &e.Reason, &e.Outcome, &details); err != nil {
			return nil, fmt.Errorf("scan audit: %w", err)
		}
		e.At = FromMillis(at)
		json.Unmarshal([]byte(details), &e.Details)
		return &e, nil
	})
}

// RecordPurgeItem adds a certificate line to a run.
func (c *Core) RecordPurgeItem(ctx context.Context, orgID, runID string, it chatvault.PurgeRunItem) error {
	return c.update(ctx, func(ctx context.Context, tx Tx) error {
		return recordStep(ctx, tx, chatvault.Selection{OrgID: orgID, ConversationID: it.ConversationID, RunID: runID}, it.Action,
			&chatvault.StepResult{Count: it.Count, FirstSeq: it.FirstSeq, LastSeq: it.LastSeq})
	})
}

// FindPurgeRunItems returns a run's certificate lines in the order they were written.
func (c *Core) FindPurgeRunItems(ctx context.Context, orgID, runID string) ([]chatvault.PurgeRunItem, error) {
	rows, err := c.read.Query(ctx, `SELECT conversation_id, action, count, first_seq, last_seq FROM purge_run_items
		WHERE org_id = $1 AND run_id = $2 ORDER BY id`, orgID, runID)
	if err != nil {
		return nil, fmt.Errorf("query purge run items: %w", err)
	}
	out, err := collect(rows, func(row Row) (chatvault.PurgeRunItem, error) {
		var it chatvault.PurgeRunItem
		err := row.Scan(&it.ConversationID, &it.Action, &it.Count, &it.FirstSeq, &it.LastSeq)
		return it, err
	})
	if err != nil {
		return nil, fmt.Errorf("query purge run items: %w", err)
	}
	if out == nil {
		out = []chatvault.PurgeRunItem{}
	}
	return out, nil
}
