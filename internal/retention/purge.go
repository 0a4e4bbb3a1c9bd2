package retention

import (
	"context"
	"fmt"
	"time"

	"github.com/chatvault/chatvault"
)

// plan is what the policy says about one conversation at one moment.
type plan struct {
	convID          string
	days            int        // 0: forever
	sentBefore      *time.Time // messages sent before it expire (nil: never)
	importantBefore *time.Time // important ones sent before it expire (nil: never)
	held            []chatvault.TimeRange
	heldAll         bool
}

func (s *Service) plan(ctx context.Context, orgID, convID string, p *chatvault.Policy, holds []*chatvault.Hold, now time.Time) (*plan, error) {
	d, err := s.Effective(ctx, orgID, convID, p)
	if err != nil {
		return nil, err
	}
	pl := &plan{convID: convID, days: d}
	if d > 0 {
		t := dayCutoff(now, d)
		pl.sentBefore = &t
	}
	if imp := importantRetention(d, p); imp > 0 {
		t := dayCutoff(now, imp)
		pl.importantBefore = &t
	}
	if len(holds) > 0 {
		parts, err := s.store.FindParticipantIDs(ctx, orgID, convID)
		if err != nil {
			return nil, err
		}
		pl.held, pl.heldAll = heldRanges(holds, convID, parts)
	}
	return pl, nil
}

func (pl *plan) selection(orgID string, at time.Time) chatvault.Selection {
	return chatvault.Selection{OrgID: orgID, ConversationID: pl.convID, Limit: StepSize, Held: pl.held, HeldAll: pl.heldAll, At: at}
}

// forEachConversation calls fn for every conversation of the org, in id order.
func (s *Service) forEachConversation(ctx context.Context, orgID string, fn func(convID string) error) error {
	after := ""
	for {
		ids, err := s.store.FindConversationIDs(ctx, orgID, after, 500)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := fn(id); err != nil {
				return err
			}
		}
		if len(ids) < 500 {
			return nil
		}
		after = ids[len(ids)-1]
	}
}

// RunAll runs the retention job in every org (the scheduled job and `chatvault retention run`).
func (s *Service) RunAll(ctx context.Context, dryRun bool) ([]*chatvault.PurgeRun, error) {
	orgs, err := s.store.FindOrgs(ctx)
	if err != nil {
		return nil, err
	}
	var out []*chatvault.PurgeRun
	for _, o := range orgs {
		r, err := s.Run(ctx, o.ID, "system", dryRun)
		if err != nil {
			return out, fmt.Errorf("retention run in org %s: %w", o.Slug, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Run runs the job in one org: expired messages disappear from everyone at once; those expired
// longer than the grace window, and recalled ones the org does not preserve, are destroyed; data
// keys left protecting nothing are destroyed. A run killed half-way is resumed by the next one,
// with the same clock reading, so it finishes with the result it would have had. A dry run
// changes nothing and reports what a run would do now.
func (s *Service) Run(ctx context.Context, orgID, actorID string, dryRun bool) (*chatvault.PurgeRun, error) {
	p, err := s.store.FindPolicy(ctx, orgID)
	if err != nil {
		return nil, err
	}
	holds, err := s.store.FindHolds(ctx, orgID, true)
	if err != nil {
		return nil, err
	}
	run := &chatvault.PurgeRun{OrgID: orgID, ID: newID(), DryRun: dryRun, StartedAt: s.clock.Now(), Policy: *p,
		Items: []chatvault.PurgeRunItem{}, Totals: map[string]int{}}
	if !dryRun {
		if prev, err := s.unfinishedRun(ctx, orgID); err != nil {
			return nil, err
		} else if prev != nil {
			run = prev // resume with its clock reading and what it has done so far
			s.logger.Info("resuming an interrupted retention run", "org", orgID, "run", run.ID)
		}
	}
	run.Holds = []string{}
	for _, h := range holds {
		run.Holds = append(run.Holds, h.ID)
	}
	if !dryRun {
		if err := s.store.SavePurgeRun(ctx, run); err != nil {
			return nil, err
		}
	}
	now := run.StartedAt
	lastSave := time.Now()
	err = s.forEachConversation(ctx, orgID, func(convID string) error {
		pl, err := s.plan(ctx, orgID, convID, p, holds, now)
		if err != nil {
			return err
		}
		if dryRun {
			return s.dryRunConversation(ctx, run, pl, p, now)
		}
		before := len(run.Items)
		if err := s.runConversation(ctx, run, pl, p, now); err != nil {
			return err
		}
		if len(run.Items) == before || time.Since(lastSave) < progressEvery {
			return nil
		}
		lastSave = time.Now()
		return s.store.SavePurgeRun(ctx, run) // progress survives a crash
	})
	if err != nil {
		return nil, err
	}
	finished := s.clock.Now()
	run.FinishedAt = &finished
	if !dryRun {
		// The certificate is what the steps recorded in their own transactions, including what an
		// interrupted attempt of this run did after its last progress save.
		if err := s.certify(ctx, run); err != nil {
			return nil, err
		}
		if err := s.store.SavePurgeRun(ctx, run); err != nil {
			return nil, err
		}
	}
	return run, nil
}

// certify rebuilds a run's certificate lines and totals from what its steps recorded.
func (s *Service) certify(ctx context.Context, run *chatvault.PurgeRun) error {
	items, err := s.store.FindPurgeRunItems(ctx, run.OrgID, run.ID)
	if err != nil {
		return err
	}
	held := run.Totals["held"]
	run.Items, run.Totals = []chatvault.PurgeRunItem{}, map[string]int{"held": held}
	for _, it := range items {
		if it.Action != "data_keys_destroyed" {
			run.Items = append(run.Items, it)
		}
		run.Totals[it.Action] += it.Count
	}
	return nil
}

// progressEvery is how often a run saves its certificate while it works. The certificate grows
// with every step, so saving it after every conversation made a run quadratic in the number of
// conversations (a store of 32,000 conversations rewrote megabytes per conversation). It is wall
// time, not the injected clock: it paces I/O and decides nothing (a simulated clock may stand still).
var progressEvery = time.Second

func (s *Service) unfinishedRun(ctx context.Context, orgID string) (*chatvault.PurgeRun, error) {
	runs, err := s.store.FindPurgeRuns(ctx, orgID, 1)
	if err != nil || len(runs) == 0 {
		return nil, err
	}
	if r := runs[0]; r.FinishedAt == nil && !r.DryRun {
		return r, nil
	}
	return nil, nil
}

// runConversation applies the plan in bounded steps, each its own transaction.
func (s *Service) runConversation(ctx context.Context, run *chatvault.PurgeRun, pl *plan, p *chatvault.Policy, now time.Time) error {
	sel := pl.selection(run.OrgID, now)
	sel.ExcludeRecalled = !p.PreserveRecall // destroyed directly below, never expired first
	sel.RunID = run.ID                      // each step certifies itself, in its own transaction
	// First give back what the policy no longer lets go (it grew longer, a message became
	// important), so the destroy step below only ever takes what the policy allows today.
	keep := chatvault.ExpireStep{Selection: sel, ImportantBefore: pl.importantBefore}
	if pl.sentBefore != nil {
		keep.SentBefore = *pl.sentBefore
	}
	if err := s.steps(ctx, run, pl.convID, "restored", func(after int64) (*chatvault.StepResult, error) {
		keep.AfterSeq = after
		return s.store.UnexpireMessages(ctx, keep)
	}); err != nil {
		return err
	}
	if pl.sentBefore != nil && !pl.heldAll {
		for _, important := range []bool{false, true} {
			step := chatvault.ExpireStep{Selection: sel, SentBefore: *pl.sentBefore, ImportantBefore: pl.importantBefore, Important: important}
			if err := s.steps(ctx, run, pl.convID, "expired", func(after int64) (*chatvault.StepResult, error) {
				step.AfterSeq = after
				return s.store.ExpireMessages(ctx, step)
			}); err != nil {
				return err
			}
		}
	}
	grace := graceCutoff(now, p.GraceDays)
	destroyed := 0
	for _, step := range []chatvault.DestroyStep{{Selection: sel, ExpiredBefore: &grace}, {Selection: sel, Recalled: true}} {
		if step.Recalled && p.PreserveRecall {
			continue
		}
		if pl.heldAll {
			break
		}
		before := run.Totals["destroyed"]
		if err := s.steps(ctx, run, pl.convID, "destroyed", func(after int64) (*chatvault.StepResult, error) {
			step.AfterSeq = after
			return s.store.DestroyMessages(ctx, step)
		}); err != nil {
			return err
		}
		destroyed += run.Totals["destroyed"] - before
	}
	if destroyed > 0 && s.shredder != nil {
		n, err := s.shredder.DestroyEmptyDataKeys(ctx, run.OrgID, pl.convID)
		if err != nil {
			return fmt.Errorf("destroy empty data keys: %w", err)
		}
		run.Totals["data_keys_destroyed"] += n
		if n > 0 {
			// Not in the shredding transaction (the keys live in their own database), so a crash
			// between the two can leave shredded keys uncounted; the keys are gone either way.
			if err := s.store.RecordPurgeItem(ctx, run.OrgID, run.ID, chatvault.PurgeRunItem{ConversationID: pl.convID,
				Action: "data_keys_destroyed", Count: n}); err != nil {
				return err
			}
		}
	}
	return nil
}

// steps repeats one kind of step until it reports done, recording each effect in the certificate.
func (s *Service) steps(ctx context.Context, run *chatvault.PurgeRun, convID, action string, step func(after int64) (*chatvault.StepResult, error)) error {
	after := int64(0)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		res, err := step(after)
		if err != nil {
			return err
		}
		if res.Count > 0 {
			run.Items = append(run.Items, chatvault.PurgeRunItem{ConversationID: convID, Action: action, Count: res.Count,
				FirstSeq: res.FirstSeq, LastSeq: res.LastSeq})
			run.Totals[action] += res.Count
		}
		if res.Done {
			return nil
		}
		after = res.Scanned
	}
}

// dryRunConversation counts, without changing anything, what runConversation would do now.
func (s *Service) dryRunConversation(ctx context.Context, run *chatvault.PurgeRun, pl *plan, p *chatvault.Policy, now time.Time) error {
	counts, err := s.previewConversation(ctx, run.OrgID, pl, p, now, now)
	if err != nil {
		return err
	}
	for _, c := range []struct {
		action string
		pc     *chatvault.PurgeCount
	}{{"expired", counts.Expire}, {"destroyed", counts.Destroy}} {
		if c.pc.Count > 0 {
			run.Items = append(run.Items, chatvault.PurgeRunItem{ConversationID: pl.convID, Action: c.action, Count: c.pc.Count,
				FirstSeq: c.pc.FirstSeq, LastSeq: c.pc.LastSeq})
			run.Totals[c.action] += c.pc.Count
		}
	}
	run.Totals["held"] += counts.Expire.Held
	return nil
}

// ConversationPreview is what would go from one conversation by a given time.
type ConversationPreview struct {
	ConversationID string                `json:"conversation_id"`
	RetentionDays  int                   `json:"retention_days"`
	Expire         *chatvault.PurgeCount `json:"expire"`  // would disappear from everyone
	Destroy        *chatvault.PurgeCount `json:"destroy"` // would be destroyed for good
}

// Preview is the answer to "what would the job do by this time, under this policy".
type Preview struct {
	At            time.Time              `json:"at"`
	Policy        chatvault.Policy       `json:"policy"`
	Proposed      bool                   `json:"proposed"`
	Conversations []*ConversationPreview `json:"conversations"`
	Totals        map[string]int         `json:"totals"`
}

// Preview reports, per conversation, what the job would hide and destroy by at, under the current
// policy or a proposed one (which is validated, not saved), and what holds keep back.
func (s *Service) Preview(ctx context.Context, a chatvault.Actor, at time.Time, proposed *chatvault.Policy) (*Preview, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageRetention); err != nil {
		return nil, err
	}
	if at.IsZero() {
		at = s.clock.Now()
	}
	p, err := s.store.FindPolicy(ctx, a.OrgID)
	if err != nil {
		return nil, err
	}
	if proposed != nil {
		if err := Validate(proposed); err != nil {
			return nil, err
		}
		p = proposed
	}
	holds, err := s.store.FindHolds(ctx, a.OrgID, true)
	if err != nil {
		return nil, err
	}
	out := &Preview{At: at, Policy: *p, Proposed: proposed != nil, Conversations: []*ConversationPreview{},
		Totals: map[string]int{"expire": 0, "destroy": 0, "held": 0}}
	err = s.forEachConversation(ctx, a.OrgID, func(convID string) error {
		pl, err := s.plan(ctx, a.OrgID, convID, p, holds, at)
		if err != nil {
			return err
		}
		cp, err := s.previewConversation(ctx, a.OrgID, pl, p, s.clock.Now(), at)
		if err != nil {
			return err
		}
		if cp.Expire.Count+cp.Destroy.Count+cp.Expire.Held > 0 {
			out.Conversations = append(out.Conversations, cp)
			out.Totals["expire"] += cp.Expire.Count
			out.Totals["destroy"] += cp.Destroy.Count
			out.Totals["held"] += cp.Expire.Held
		}
		return nil
	})
	return out, err
}

// previewConversation counts what would expire by at (not yet expired, older than retention) and
// what would be destroyed by at: what is already expired past the grace window, what expires at
// the next run early enough to pass it (only when now + grace <= at: nothing expires before the
// next run), and unpreserved recalls. Each message is counted once: when recalls are destroyed
// directly, the other counts leave them out.
func (s *Service) previewConversation(ctx context.Context, orgID string, pl *plan, p *chatvault.Policy, now, at time.Time) (*ConversationPreview, error) {
	cp := &ConversationPreview{ConversationID: pl.convID, RetentionDays: pl.days, Expire: &chatvault.PurgeCount{ConversationID: pl.convID},
		Destroy: &chatvault.PurgeCount{ConversationID: pl.convID}}
	sel := pl.selection(orgID, at)
	sel.ExcludeRecalled = !p.PreserveRecall
	graceSpan := time.Duration(p.GraceDays) * 24 * time.Hour
	if pl.sentBefore != nil && !now.Add(graceSpan).After(at) {
		// What is old enough to expire a whole grace window before at is destroyed by at as well.
		early := sel
		graceSent := pl.sentBefore.Add(-time.Duration(p.GraceDays) * 24 * time.Hour)
		var impGrace *time.Time
		if pl.importantBefore != nil {
			t := pl.importantBefore.Add(-time.Duration(p.GraceDays) * 24 * time.Hour)
			impGrace = &t
		}
		gone, err := s.store.CountExpirable(ctx, chatvault.ExpireStep{Selection: early, SentBefore: graceSent, ImportantBefore: impGrace})
		if err != nil {
			return nil, err
		}
		mergeCount(cp.Destroy, gone)
	}
	if pl.sentBefore != nil {
		exp, err := s.store.CountExpirable(ctx, chatvault.ExpireStep{Selection: sel, SentBefore: *pl.sentBefore, ImportantBefore: pl.importantBefore})
		if err != nil {
			return nil, err
		}
		cp.Expire = exp
	}
	grace := graceCutoff(at, p.GraceDays)
	already, err := s.store.CountDestroyable(ctx, chatvault.DestroyStep{Selection: sel, ExpiredBefore: &grace})
	if err != nil {
		return nil, err
	}
	mergeCount(cp.Destroy, already)
	if !p.PreserveRecall {
		rsel := sel
		rsel.ExcludeRecalled = false
		recalled, err := s.store.CountDestroyable(ctx, chatvault.DestroyStep{Selection: rsel, Recalled: true})
		if err != nil {
			return nil, err
		}
		mergeCount(cp.Destroy, recalled)
	}
	return cp, nil
}

// graceCutoff is the ExpiredBefore of a destroy step at t: what expired at or before t minus the
// grace window goes. (With a grace window of 0, what a run expires at t is destroyed by the same
// run, as Preview says; a strict "before t" would leave it for the next run.) The stores keep
// milliseconds.
func graceCutoff(t time.Time, graceDays int) time.Time {
	return dayCutoff(t, graceDays).Add(time.Millisecond)
}

func mergeCount(into, c *chatvault.PurgeCount) {
	if c.Count > 0 {
		if into.Count == 0 || c.FirstSeq < into.FirstSeq {
			into.FirstSeq = c.FirstSeq
		}
		into.LastSeq = max(into.LastSeq, c.LastSeq)
		if into.FirstSentAt == nil || (c.FirstSentAt != nil && c.FirstSentAt.Before(*into.FirstSentAt)) {
			into.FirstSentAt = c.FirstSentAt
		}
		if into.LastSentAt == nil || (c.LastSentAt != nil && c.LastSentAt.After(*into.LastSentAt)) {
			into.LastSentAt = c.LastSentAt
		}
	}
	into.Count += c.Count
	into.Held += c.Held
}

// Runs lists the org's recent runs with their certificates.
func (s *Service) Runs(ctx context.Context, a chatvault.Actor, limit int) ([]*chatvault.PurgeRun, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageRetention); err != nil {
		return nil, err
	}
	rs, err := s.store.FindPurgeRuns(ctx, a.OrgID, limit)
	if rs == nil {
		rs = []*chatvault.PurgeRun{}
	}
	return rs, err
}

// RunNow runs the job in the actor's org on demand.
func (s *Service) RunNow(ctx context.Context, a chatvault.Actor, dryRun bool) (*chatvault.PurgeRun, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageRetention); err != nil {
		return nil, err
	}
	if dryRun {
		return s.Run(ctx, a.OrgID, a.UserID, true)
	}
	// The run's id is known only once it starts, and its totals once it ends: a "started" entry
	// comes first, so no run goes unrecorded, and one with the outcome after.
	if err := s.recordOutcome(ctx, a, "retention.run", a.OrgID, "on demand", "started", nil); err != nil {
		return nil, err
	}
	r, err := s.Run(ctx, a.OrgID, a.UserID, false)
	if err != nil {
		return nil, s.failed(ctx, a, "retention.run", a.OrgID, "on demand", err)
	}
	if err := s.record(ctx, a, "retention.run", r.ID, "on demand", map[string]any{"totals": r.Totals}); err != nil {
		return nil, fmt.Errorf("retention run %s finished: %w", r.ID, err)
	}
	return r, nil
}

// Restore brings back expired messages of a conversation that are still in the grace window
// (seq range inclusive). If the policy still says they go, the next run expires them again: fix the
// policy first.
func (s *Service) Restore(ctx context.Context, a chatvault.Actor, convID string, fromSeq, toSeq int64, reason string) (int, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageRetention); err != nil {
		return 0, err
	}
	if fromSeq < 1 || toSeq < fromSeq {
		return 0, chatvault.Invalidf("from_seq", "give 1 <= from_seq <= to_seq")
	}
	if _, err := s.store.FindConversation(ctx, a.OrgID, convID); err != nil {
		return 0, err
	}
	if err := s.record(ctx, a, "retention.restore", convID, reason, map[string]any{"from_seq": fromSeq, "to_seq": toSeq}); err != nil {
		return 0, err
	}
	res, err := s.store.RestoreExpired(ctx, a.OrgID, convID, fromSeq, toSeq, s.clock.Now())
	if err != nil {
		return 0, s.failed(ctx, a, "retention.restore", convID, reason, err)
	}
	return res.Count, nil
}
