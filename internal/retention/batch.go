package retention

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chatvault/chatvault"
)

// DeletionPreview is what an admin batch delete (or a user erasure) would remove, per
// conversation, and what it must refuse. Confirm with Token to carry it out.
type DeletionPreview struct {
	Token         string                  `json:"token"`
	ExpiresAt     time.Time               `json:"expires_at"`
	Filter        chatvault.BatchFilter   `json:"filter"`
	Conversations []*chatvault.PurgeCount `json:"conversations"`
	Totals        map[string]int          `json:"totals"` // delete, held (refused), too_young (refused: younger than min_days)
}

// DeletionResult is what a confirmed batch delete removed.
type DeletionResult struct {
	Filter  chatvault.BatchFilter    `json:"filter"`
	Deleted int                      `json:"deleted"`
	Items   []chatvault.PurgeRunItem `json:"conversations"`
}

// batchTokenTTL is how long a preview stays confirmable.
const batchTokenTTL = 15 * time.Minute

type pendingBatch struct {
	orgID, actorID string
	filter         chatvault.BatchFilter
	reason         string
	expires        time.Time
}

// batchTokens holds previews awaiting confirmation. They live in memory: a restart (or another
// server process) asks for a fresh preview, which is the safe side to err on.
type batchTokens struct {
	mu      sync.Mutex
	pending map[string]pendingBatch
}

func newBatchTokens() *batchTokens { return &batchTokens{pending: map[string]pendingBatch{}} }

// PreviewDeletion counts what a batch delete with this filter would remove. Held messages and
// messages younger than min_days are refused and counted. A locked policy refuses batch deletes.
func (s *Service) PreviewDeletion(ctx context.Context, a chatvault.Actor, f chatvault.BatchFilter, reason string) (*DeletionPreview, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageRetention); err != nil {
		return nil, err
	}
	if f.ConversationID == "" && f.SenderID == "" && f.From == nil && f.To == nil {
		return nil, chatvault.Invalidf("conversation_id", "name a conversation, a user, or a time range: a batch delete never selects everything")
	}
	if f.From != nil && f.To != nil && !f.From.Before(*f.To) {
		return nil, chatvault.Invalidf("to", "to must be after from")
	}
	p, err := s.store.FindPolicy(ctx, a.OrgID)
	if err != nil {
		return nil, err
	}
	if p.Locked {
		err := chatvault.Errorf(chatvault.EFORBIDDEN, "the retention policy is locked: messages go only when the policy says")
		return nil, s.refused(ctx, a, "deletion.preview", f.ConversationID+f.SenderID, reason, err, map[string]any{"filter": f})
	}
	now := s.clock.Now()
	f.SentBefore = dayCutoff(now, p.MinDays)
	out := &DeletionPreview{Filter: f, Conversations: []*chatvault.PurgeCount{}, Totals: map[string]int{"delete": 0, "held": 0, "too_young": 0}}
	err = s.forEachBatchConversation(ctx, a, f, func(convID string, step chatvault.DestroyStep) error {
		c, err := s.store.CountDestroyable(ctx, step)
		if err != nil {
			return err
		}
		if c.Count+c.Held+c.TooYoung > 0 {
			out.Conversations = append(out.Conversations, c)
			out.Totals["delete"] += c.Count
			out.Totals["held"] += c.Held
			out.Totals["too_young"] += c.TooYoung
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var b [16]byte
	rand.Read(b[:])
	out.Token, out.ExpiresAt = hex.EncodeToString(b[:]), now.Add(batchTokenTTL)
	s.batches.mu.Lock()
	s.batches.pending[out.Token] = pendingBatch{orgID: a.OrgID, actorID: a.UserID, filter: f, reason: reason, expires: out.ExpiresAt}
	s.batches.mu.Unlock()
	return out, nil
}

// ConfirmDeletion carries out a previewed batch delete. Holds and min_days are checked again, as
// they stand now.
func (s *Service) ConfirmDeletion(ctx context.Context, a chatvault.Actor, token string) (*DeletionResult, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageRetention); err != nil {
		return nil, err
	}
	s.batches.mu.Lock()
	pb, ok := s.batches.pending[token]
	delete(s.batches.pending, token)
	s.batches.mu.Unlock()
	now := s.clock.Now()
	if !ok || pb.orgID != a.OrgID || now.After(pb.expires) {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "no pending deletion has this token (it is used once and expires %s after the preview): preview again", batchTokenTTL)
	}
	p, err := s.store.FindPolicy(ctx, a.OrgID)
	if err != nil {
		return nil, err
	}
	if p.Locked {
		return nil, chatvault.Errorf(chatvault.EFORBIDDEN, "the retention policy is locked: messages go only when the policy says")
	}
	f := pb.filter
	f.SentBefore = dayCutoff(now, p.MinDays)
	action, target := "deletion.execute", f.ConversationID+f.SenderID
	if f.SenderID != "" && f.ConversationID == "" && f.From == nil && f.To == nil {
		action = "erasure.execute"
	}
	// Recorded before anything goes, and again with what went (the count is known only after).
	if err := s.recordOutcome(ctx, a, action, target, pb.reason, "started", map[string]any{"filter": f}); err != nil {
		return nil, err
	}
	out := &DeletionResult{Filter: f, Items: []chatvault.PurgeRunItem{}}
	run := &chatvault.PurgeRun{OrgID: a.OrgID, Totals: map[string]int{}}
	err = s.forEachBatchConversation(ctx, a, f, func(convID string, step chatvault.DestroyStep) error {
		before := run.Totals["destroyed"]
		if err := s.steps(ctx, run, convID, "destroyed", func(after int64) (*chatvault.StepResult, error) {
			step.AfterSeq = after
			return s.store.DestroyMessages(ctx, step)
		}); err != nil {
			return err
		}
		if run.Totals["destroyed"] > before && s.shredder != nil {
			if _, err := s.shredder.DestroyEmptyDataKeys(ctx, a.OrgID, convID); err != nil {
				return err
			}
		}
		return nil
	})
	out.Deleted, out.Items = run.Totals["destroyed"], append(out.Items, run.Items...)
	outcome := "ok"
	if err != nil {
		outcome = "failed: " + chatvault.ErrorMessage(err)
	}
	if rerr := s.recordOutcome(ctx, a, action, target, pb.reason, outcome, map[string]any{"filter": f, "deleted": out.Deleted}); rerr != nil {
		return nil, errors.Join(err, fmt.Errorf("deleted %d messages: %w", out.Deleted, rerr))
	}
	return out, err
}

// forEachBatchConversation walks the conversations a filter can touch, with the destroy step for
// each (holds applied).
func (s *Service) forEachBatchConversation(ctx context.Context, a chatvault.Actor, f chatvault.BatchFilter, fn func(string, chatvault.DestroyStep) error) error {
	holds, err := s.store.FindHolds(ctx, a.OrgID, true)
	if err != nil {
		return err
	}
	visit := func(convID string) error {
		parts, err := s.store.FindParticipantIDs(ctx, a.OrgID, convID)
		if err != nil {
			return err
		}
		held, all := heldRanges(holds, convID, parts)
		if all {
			held = []chatvault.TimeRange{{}} // an open range: everything is held
		}
		filter := f
		return fn(convID, chatvault.DestroyStep{Selection: chatvault.Selection{OrgID: a.OrgID, ConversationID: convID,
			Limit: StepSize, Held: held, At: s.clock.Now()}, Batch: &filter})
	}
	switch {
	case f.ConversationID != "":
		if _, err := s.store.FindConversation(ctx, a.OrgID, f.ConversationID); err != nil {
			return err
		}
		return visit(f.ConversationID)
	case f.SenderID != "":
		if _, err := s.store.FindUserByID(ctx, a.OrgID, f.SenderID); err != nil {
			return err
		}
		ucs, err := s.store.FindUserConversations(ctx, a.OrgID, f.SenderID)
		if err != nil {
			return err
		}
		for _, uc := range ucs {
			if err := visit(uc.Conversation.ID); err != nil {
				return err
			}
		}
		return nil
	default:
		return s.forEachConversation(ctx, a.OrgID, visit)
	}
}
