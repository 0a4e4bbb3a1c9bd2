package retention

import (
	"context"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatvault/chatvault"
)

// HoldRequest is a compliance officer's request to place a hold.
type HoldRequest struct {
	Name          string
	Reason        string
	Custodians    []string
	Conversations []string
	From, To      *time.Time
}

// CreateHold places a legal hold. From that moment nothing it covers is purged, batch-deleted,
// destroyed after recall, or erased.
func (s *Service) CreateHold(ctx context.Context, a chatvault.Actor, req HoldRequest) (*chatvault.Hold, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageHolds); err != nil {
		return nil, err
	}
	name, reason := strings.TrimSpace(req.Name), strings.TrimSpace(req.Reason)
	if name == "" || utf8.RuneCountInString(name) > 200 {
		return nil, chatvault.Invalidf("name", "name is required (at most 200 characters)")
	}
	if err := chatvault.CheckName("name", name, 200); err != nil {
		return nil, err
	}
	if reason == "" {
		return nil, chatvault.Invalidf("reason", "reason is required: say why the records are held")
	}
	if req.From != nil && req.To != nil && !req.From.Before(*req.To) {
		return nil, chatvault.Invalidf("to", "to must be after from")
	}
	for _, id := range req.Custodians {
		if !validUUID(id) {
			return nil, chatvault.Invalidf("custodians", "%q is not a user id", id)
		}
		if _, err := s.store.FindUserByID(ctx, a.OrgID, id); err != nil {
			return nil, chatvault.Invalidf("custodians", "user %s is not in this org", id)
		}
	}
	for _, id := range req.Conversations {
		if _, err := s.store.FindConversation(ctx, a.OrgID, id); err != nil {
			return nil, chatvault.Invalidf("conversations", "conversation %s is not in this org", id)
		}
	}
	h := &chatvault.Hold{OrgID: a.OrgID, ID: newID(), Name: name, Reason: reason, Custodians: nonNil(req.Custodians),
		Conversations: nonNil(req.Conversations), From: req.From, To: req.To, CreatedBy: a.UserID, CreatedAt: s.clock.Now()}
	if err := s.record(ctx, a, "hold.create", h.ID, reason, map[string]any{"hold": h}); err != nil {
		return nil, err
	}
	if err := s.store.CreateHold(ctx, h); err != nil {
		return nil, s.failed(ctx, a, "hold.create", h.ID, reason, err)
	}
	return h, nil
}

// Holds lists the org's holds.
func (s *Service) Holds(ctx context.Context, a chatvault.Actor) ([]*chatvault.Hold, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageHolds); err != nil {
		return nil, err
	}
	hs, err := s.store.FindHolds(ctx, a.OrgID, false)
	if hs == nil {
		hs = []*chatvault.Hold{}
	}
	return hs, err
}

// ReleaseHold ends a hold; what it protected falls back under the policy at the next run.
func (s *Service) ReleaseHold(ctx context.Context, a chatvault.Actor, holdID, reason string) (*chatvault.Hold, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageHolds); err != nil {
		return nil, err
	}
	if strings.TrimSpace(reason) == "" {
		return nil, chatvault.Invalidf("reason", "reason is required: say why the hold ends")
	}
	if err := s.record(ctx, a, "hold.release", holdID, reason, nil); err != nil {
		return nil, err
	}
	h, err := s.store.ReleaseHold(ctx, a.OrgID, holdID, a.UserID, s.clock.Now())
	if err != nil {
		return nil, s.failed(ctx, a, "hold.release", holdID, reason, err)
	}
	return h, nil
}

// heldRanges returns the time ranges of a conversation that active holds protect. A hold applies
// to a conversation when its conversation list (if any) names it and its custodians (if any)
// include someone who is or was in it; it then protects its time range (all time if unset).
func heldRanges(holds []*chatvault.Hold, convID string, participants []string) (ranges []chatvault.TimeRange, all bool) {
	for _, h := range holds {
		if len(h.Conversations) > 0 && !slices.Contains(h.Conversations, convID) {
			continue
		}
		if len(h.Custodians) > 0 && !slices.ContainsFunc(h.Custodians, func(c string) bool { return slices.Contains(participants, c) }) {
			continue
		}
		if h.From == nil && h.To == nil {
			return nil, true
		}
		ranges = append(ranges, chatvault.TimeRange{From: h.From, To: h.To})
	}
	return ranges, false
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func validUUID(s string) bool {
	return len(s) == 36 && strings.Count(s, "-") == 4
}
