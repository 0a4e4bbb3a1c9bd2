// Package retention keeps records exactly as long as policy says: org policies, conversation
// overrides, users' own windows, the important tier, legal holds, the purge job with its grace
// window and deletion certificates, previews, and admin batch deletes. It decides; the store
// carries out bounded steps (about a thousand rows each), so purges never lock out live traffic.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/google/uuid"
)

// Stores is what retention needs from a store.
type Stores interface {
	chatvault.PolicyStore
	chatvault.HoldStore
	chatvault.ImportanceStore
	chatvault.PurgeStepStore
	chatvault.PurgeRunStore
	FindOrgs(ctx context.Context) ([]*chatvault.Org, error)
	FindUserByID(ctx context.Context, orgID, userID string) (*chatvault.User, error)
	FindConversation(ctx context.Context, orgID, convID string) (*chatvault.Conversation, error)
	FindUserConversations(ctx context.Context, orgID, userID string) ([]*chatvault.UserConversation, error)
	FindMessageByID(ctx context.Context, orgID, convID, msgID string) (*chatvault.Message, error)
}

// Recorder writes audit entries and fails closed: an error means the entry was not written
// (internal/audit).
type Recorder interface {
	Record(ctx context.Context, e *chatvault.AuditEntry) error
}

// Shredder destroys data keys that no longer protect anything (crypto-shredding). Optional: set
// when encryption at rest is on.
type Shredder interface {
	DestroyEmptyDataKeys(ctx context.Context, orgID, convID string) (int, error)
}

// Service implements retention.
type Service struct {
	store    Stores
	audit    Recorder
	clock    chatvault.Clock
	logger   *slog.Logger
	shredder Shredder
	rules    *ruleCache
	batches  *batchTokens
}

// New returns a retention service whose actions are written to the audit log through audit.
func New(store Stores, audit Recorder, clock chatvault.Clock, logger *slog.Logger, shredder Shredder) *Service {
	return &Service{store: store, audit: audit, clock: clock, logger: logger, shredder: shredder,
		rules: newRuleCache(store, clock), batches: newBatchTokens()}
}

// StepSize is how many rows one purge step changes, in one transaction.
const StepSize = 1000

// maxDays bounds every day count a policy may hold (100 years).
const maxDays = 36500

// Policy returns the org's policy.
func (s *Service) Policy(ctx context.Context, a chatvault.Actor) (*chatvault.Policy, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageRetention); err != nil {
		return nil, err
	}
	return s.store.FindPolicy(ctx, a.OrgID)
}

// Validate checks a policy on its own.
func Validate(p *chatvault.Policy) error {
	for _, f := range []struct {
		name string
		v    int
	}{{"default_days", p.DefaultDays}, {"min_days", p.MinDays}, {"max_days", p.MaxDays},
		{"important_days", p.ImportantDays}, {"purge_grace_days", p.GraceDays}} {
		if f.v < 0 || f.v > maxDays {
			return chatvault.Invalidf(f.name, "%s must be between 0 and %d", f.name, maxDays)
		}
	}
	if p.RecallWindowSeconds < 0 || p.RecallWindowSeconds > 86400 {
		return chatvault.Invalidf("recall_window_seconds", "recall_window_seconds must be between 0 and 86400")
	}
	if p.Mode != chatvault.ModeOrg && p.Mode != chatvault.ModeUserChoice {
		return chatvault.Invalidf("mode", "mode must be \"org\" or \"user_choice\"")
	}
	if p.MaxDays > 0 && p.MinDays > p.MaxDays {
		return chatvault.Invalidf("min_days", "min_days (%d) is above max_days (%d)", p.MinDays, p.MaxDays)
	}
	if p.DefaultDays > 0 && p.DefaultDays < p.MinDays {
		return chatvault.Invalidf("default_days", "default_days (%d) is below the compliance floor min_days (%d)", p.DefaultDays, p.MinDays)
	}
	if p.MaxDays > 0 && (p.DefaultDays == 0 || p.DefaultDays > p.MaxDays) {
		return chatvault.Invalidf("default_days", "default_days (%s) is above the ceiling max_days (%d)", days(p.DefaultDays), p.MaxDays)
	}
	return nil
}

func days(d int) string {
	if d == 0 {
		return "forever"
	}
	return fmt.Sprint(d)
}

// longer reports whether retention a keeps messages at least as long as b (0 is forever).
func longer(a, b int) bool { return a == 0 || (b != 0 && a >= b) }

// shortenings lists every way next would let something go sooner than prev allows.
func shortenings(prev, next *chatvault.Policy) []string {
	var out []string
	check := func(name string, p, n int) {
		if !longer(n, p) {
			out = append(out, fmt.Sprintf("%s from %s to %s", name, days(p), days(n)))
		}
	}
	check("default_days", prev.DefaultDays, next.DefaultDays)
	check("important_days", prev.ImportantDays, next.ImportantDays)
	if next.MinDays < prev.MinDays {
		out = append(out, fmt.Sprintf("min_days from %d to %d", prev.MinDays, next.MinDays))
	}
	if prev.MaxDays == 0 && next.MaxDays != 0 || prev.MaxDays != 0 && next.MaxDays != 0 && next.MaxDays < prev.MaxDays {
		out = append(out, fmt.Sprintf("max_days from %s to %d", days(prev.MaxDays), next.MaxDays))
	}
	if next.GraceDays < prev.GraceDays {
		out = append(out, fmt.Sprintf("purge_grace_days from %d to %d", prev.GraceDays, next.GraceDays))
	}
	if prev.PreserveRecall && !next.PreserveRecall {
		out = append(out, "preserve_recalls from true to false")
	}
	if prev.Mode != next.Mode {
		out = append(out, fmt.Sprintf("mode from %s to %s", prev.Mode, next.Mode))
	}
	return out
}

// SetPolicy replaces the org's policy. A locked policy may only grow longer; refusals are audited.
func (s *Service) SetPolicy(ctx context.Context, a chatvault.Actor, next chatvault.Policy, reason string) (*chatvault.Policy, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageRetention); err != nil {
		return nil, err
	}
	if err := Validate(&next); err != nil {
		return nil, err
	}
	prev, err := s.store.FindPolicy(ctx, a.OrgID)
	if err != nil {
		return nil, err
	}
	next.Locked, next.LockedAt = prev.Locked, prev.LockedAt // only Lock locks
	if prev.Locked {
		if cuts := shortenings(prev, &next); len(cuts) > 0 {
			err := chatvault.Errorf(chatvault.EFORBIDDEN, "the retention policy is locked and cannot be shortened: %s", strings.Join(cuts, "; "))
			return nil, s.refused(ctx, a, "retention.policy.update", a.OrgID, reason, err, map[string]any{"proposed": next})
		}
	}
	next.UpdatedAt, next.UpdatedBy = s.clock.Now(), a.UserID
	if err := s.record(ctx, a, "retention.policy.update", a.OrgID, reason, map[string]any{"previous": prev, "policy": next}); err != nil {
		return nil, err
	}
	if err := s.store.SavePolicy(ctx, a.OrgID, &next); err != nil {
		return nil, s.failed(ctx, a, "retention.policy.update", a.OrgID, reason, err)
	}
	return &next, nil
}

// Lock locks the org's retention: from now on nobody, admins included, can shorten or disable it.
// There is no unlock.
func (s *Service) Lock(ctx context.Context, a chatvault.Actor, reason string) (*chatvault.Policy, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageRetention); err != nil {
		return nil, err
	}
	if strings.TrimSpace(reason) == "" {
		return nil, chatvault.Invalidf("reason", "say why the policy is being locked: the lock cannot be undone")
	}
	p, err := s.store.FindPolicy(ctx, a.OrgID)
	if err != nil {
		return nil, err
	}
	if err := s.record(ctx, a, "retention.policy.lock", a.OrgID, reason, nil); err != nil {
		return nil, err
	}
	if !p.Locked {
		now := s.clock.Now()
		p.Locked, p.LockedAt, p.UpdatedAt, p.UpdatedBy = true, &now, now, a.UserID
		if err := s.store.SavePolicy(ctx, a.OrgID, p); err != nil {
			return nil, s.failed(ctx, a, "retention.policy.lock", a.OrgID, reason, err)
		}
	}
	return p, nil
}

// SetConversationRetention sets (days) or clears (nil) a conversation's override, within
// [min_days, max_days]; under a lock, never below what the conversation has now.
func (s *Service) SetConversationRetention(ctx context.Context, a chatvault.Actor, convID string, d *int, reason string) error {
	if err := chatvault.Authorize(a, chatvault.PermManageRetention); err != nil {
		return err
	}
	p, err := s.store.FindPolicy(ctx, a.OrgID)
	if err != nil {
		return err
	}
	if d != nil {
		switch {
		case *d < 0 || *d > maxDays:
			return chatvault.Invalidf("days", "days must be between 0 (forever) and %d", maxDays)
		case *d != 0 && *d < p.MinDays:
			return chatvault.Invalidf("days", "%d days is below the org's compliance floor min_days (%d)", *d, p.MinDays)
		case p.MaxDays > 0 && (*d == 0 || *d > p.MaxDays):
			return chatvault.Invalidf("days", "%s days is above the org's ceiling max_days (%d)", days(*d), p.MaxDays)
		}
	}
	if _, err := s.store.FindConversation(ctx, a.OrgID, convID); err != nil {
		return err
	}
	if p.Locked {
		now, err := s.Effective(ctx, a.OrgID, convID, p)
		if err != nil {
			return err
		}
		next := s.effectiveWith(ctx, p, d, nil)
		if d == nil {
			if next, err = s.effectiveFromMembers(ctx, a.OrgID, convID, p); err != nil {
				return err
			}
		}
		if !longer(next, now) {
			err := chatvault.Errorf(chatvault.EFORBIDDEN, "the retention policy is locked: this conversation keeps messages %s days and cannot go to %s", days(now), days(next))
			return s.refused(ctx, a, "retention.conversation.update", convID, reason, err, map[string]any{"days": d})
		}
	}
	if err := s.record(ctx, a, "retention.conversation.update", convID, reason, map[string]any{"days": d}); err != nil {
		return err
	}
	if err := s.store.SetConversationRetention(ctx, a.OrgID, convID, d); err != nil {
		return s.failed(ctx, a, "retention.conversation.update", convID, reason, err)
	}
	return nil
}

// Allowed user windows besides custom values.
const (
	Forever = 0
	OneYear = 365
	Quarter = 90
)

// SetMyRetention sets (or clears) the user's own visibility window: forever (0), 365, 90 or a
// custom number of days. In user_choice mode it also sets how long the server keeps their
// conversations (the longest choice among members wins).
func (s *Service) SetMyRetention(ctx context.Context, a chatvault.Actor, d *int) error {
	if d != nil && (*d < 0 || *d > maxDays) {
		return chatvault.Invalidf("days", "days must be 0 (forever), 365, 90 or another number up to %d", maxDays)
	}
	return s.store.SetUserRetention(ctx, a.OrgID, a.UserID, d)
}

// Effective returns the conversation's server retention in days (0: forever): its override if
// set; else, in user_choice mode, the longest preference among its current members; else the org
// default; then clamped into [min_days, max_days].
func (s *Service) Effective(ctx context.Context, orgID, convID string, p *chatvault.Policy) (int, error) {
	override, err := s.store.FindConversationRetention(ctx, orgID, convID)
	if err != nil {
		return 0, err
	}
	if override != nil {
		return s.effectiveWith(ctx, p, override, nil), nil
	}
	return s.effectiveFromMembers(ctx, orgID, convID, p)
}

func (s *Service) effectiveFromMembers(ctx context.Context, orgID, convID string, p *chatvault.Policy) (int, error) {
	if p.Mode != chatvault.ModeUserChoice {
		return s.effectiveWith(ctx, p, nil, nil), nil
	}
	prefs, err := s.store.FindMemberRetention(ctx, orgID, convID)
	if err != nil {
		return 0, err
	}
	return s.effectiveWith(ctx, p, nil, prefs), nil
}

func (s *Service) effectiveWith(_ context.Context, p *chatvault.Policy, override *int, prefs []*int) int {
	d := p.DefaultDays
	switch {
	case override != nil:
		d = *override
	case p.Mode == chatvault.ModeUserChoice && len(prefs) > 0:
		d = -1
		for _, pref := range prefs {
			v := p.DefaultDays
			if pref != nil {
				v = *pref
			}
			if d == -1 || longer(v, d) {
				d = v
			}
		}
	}
	return clamp(d, p)
}

func clamp(d int, p *chatvault.Policy) int {
	if p.MinDays > 0 && d != 0 && d < p.MinDays {
		d = p.MinDays
	}
	if p.MaxDays > 0 && (d == 0 || d > p.MaxDays) {
		d = p.MaxDays
	}
	return d
}

// importantRetention is how long the important tier keeps a message in a conversation that keeps
// others for d days: the longer of the two, under the same ceiling.
func importantRetention(d int, p *chatvault.Policy) int {
	imp := p.ImportantDays
	if d == 0 || imp == 0 {
		imp = 0
	} else {
		imp = max(imp, d)
	}
	return clamp(imp, p)
}

// Audited actions are recorded before they take effect, so none takes effect unrecorded: when
// the entry cannot be written the action does not happen and the caller gets the error. When the
// action then fails, a second entry with outcome "failed: ..." says so (if that one cannot be
// written either, the log over-reports an action that did not happen, the safe side). A crash
// between the entry and the change leaves the same over-report: only appending the entry in the
// change's own transaction closes that gap (the evidence log's work).

// record writes the entry of an action of a, with outcome "ok".
func (s *Service) record(ctx context.Context, a chatvault.Actor, action, target, reason string, details map[string]any) error {
	return s.recordOutcome(ctx, a, action, target, reason, "ok", details)
}

func (s *Service) recordOutcome(ctx context.Context, a chatvault.Actor, action, target, reason, outcome string, details map[string]any) error {
	return s.audit.Record(ctx, &chatvault.AuditEntry{OrgID: a.OrgID, At: s.clock.Now(), ActorID: a.UserID, Action: action,
		Target: target, Reason: reason, Outcome: outcome, Details: details})
}

// refused records a refusal and returns it; when the refusal cannot be recorded, that failure is
// returned instead: it is the one an operator must see.
func (s *Service) refused(ctx context.Context, a chatvault.Actor, action, target, reason string, refusal error, details map[string]any) error {
	if err := s.recordOutcome(ctx, a, action, target, reason, "refused: "+chatvault.ErrorMessage(refusal), details); err != nil {
		return err
	}
	return refusal
}

// failed records that an action already recorded did not take effect, and returns why.
func (s *Service) failed(ctx context.Context, a chatvault.Actor, action, target, reason string, failure error) error {
	if err := s.recordOutcome(ctx, a, action, target, reason, "failed: "+chatvault.ErrorMessage(failure), nil); err != nil {
		return errors.Join(failure, err)
	}
	return failure
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

func dayCutoff(now time.Time, d int) time.Time { return now.Add(-time.Duration(d) * 24 * time.Hour) }
