package retention

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/chatvault/chatvault"
	"golang.org/x/text/unicode/norm"
)

// CreateRule adds a rule that flags new messages as important: a plain substring (case and width
// folded, so 合同 and ＡＢＣ match as users expect) or a regular expression (RE2 syntax).
func (s *Service) CreateRule(ctx context.Context, a chatvault.Actor, pattern string, regex bool) (*chatvault.ImportantRule, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageRetention); err != nil {
		return nil, err
	}
	if strings.TrimSpace(pattern) == "" || utf8.RuneCountInString(pattern) > 200 {
		return nil, chatvault.Invalidf("pattern", "pattern is required (at most 200 characters)")
	}
	if regex {
		if _, err := regexp.Compile(pattern); err != nil {
			return nil, chatvault.Invalidf("pattern", "pattern is not a valid regular expression: %v", err)
		}
	}
	r := &chatvault.ImportantRule{OrgID: a.OrgID, ID: newID(), Pattern: pattern, Regex: regex, CreatedBy: a.UserID, CreatedAt: s.clock.Now()}
	if err := s.record(ctx, a, "retention.rule.create", r.ID, "", map[string]any{"pattern": pattern, "regex": regex}); err != nil {
		return nil, err
	}
	if err := s.store.CreateRule(ctx, r); err != nil {
		return nil, s.failed(ctx, a, "retention.rule.create", r.ID, "", err)
	}
	s.rules.forget(a.OrgID)
	return r, nil
}

// Rules lists the org's rules.
func (s *Service) Rules(ctx context.Context, a chatvault.Actor) ([]*chatvault.ImportantRule, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageRetention); err != nil {
		return nil, err
	}
	rs, err := s.store.FindRules(ctx, a.OrgID)
	if rs == nil {
		rs = []*chatvault.ImportantRule{}
	}
	return rs, err
}

// DeleteRule removes a rule; what it flagged stays flagged.
func (s *Service) DeleteRule(ctx context.Context, a chatvault.Actor, ruleID string) error {
	if err := chatvault.Authorize(a, chatvault.PermManageRetention); err != nil {
		return err
	}
	if err := s.record(ctx, a, "retention.rule.delete", ruleID, "", nil); err != nil {
		return err
	}
	if err := s.store.DeleteRule(ctx, a.OrgID, ruleID); err != nil {
		return s.failed(ctx, a, "retention.rule.delete", ruleID, "", err)
	}
	s.rules.forget(a.OrgID)
	return nil
}

// Classify is chat's hook for new messages: ImportantByRule when a rule of the org matches.
func (s *Service) Classify(ctx context.Context, orgID, text string) (int, error) {
	rules, err := s.rules.get(ctx, orgID)
	if err != nil {
		return 0, err
	}
	folded := fold(text)
	for _, r := range rules {
		if r.re != nil && r.re.MatchString(text) || r.re == nil && strings.Contains(folded, r.folded) {
			return chatvault.ImportantByRule, nil
		}
	}
	return 0, nil
}

// Flag sets or clears the admin importance flag of a message.
func (s *Service) Flag(ctx context.Context, a chatvault.Actor, convID, msgID string, on bool) (*chatvault.Message, error) {
	if err := chatvault.Authorize(a, chatvault.PermManageRetention); err != nil {
		return nil, err
	}
	m, err := s.store.FindMessageByID(ctx, a.OrgID, convID, msgID)
	if err != nil {
		return nil, err
	}
	details := map[string]any{"important": on, "conversation_id": convID}
	if err := s.record(ctx, a, "message.flag", msgID, "", details); err != nil {
		return nil, err
	}
	out, err := s.store.SetImportance(ctx, a.OrgID, convID, m.Seq, a.UserID, chatvault.ImportantByAdmin, on, s.clock.Now())
	if err != nil {
		return nil, s.failed(ctx, a, "message.flag", msgID, "", err)
	}
	return out, nil
}

func fold(s string) string { return strings.ToLower(norm.NFKC.String(s)) }

type compiledRule struct {
	folded string
	re     *regexp.Regexp
}

// ruleCache keeps each org's compiled rules for a short while, so classifying a send costs no
// query; another server process sees a new rule within ruleTTL.
type ruleCache struct {
	store interface {
		FindRules(ctx context.Context, orgID string) ([]*chatvault.ImportantRule, error)
	}
	clock chatvault.Clock
	mu    sync.Mutex
	orgs  map[string]cachedRules
}

type cachedRules struct {
	rules  []compiledRule
	loaded time.Time
}

const ruleTTL = 30 * time.Second

func newRuleCache(store Stores, clock chatvault.Clock) *ruleCache {
	return &ruleCache{store: store, clock: clock, orgs: map[string]cachedRules{}}
}

func (c *ruleCache) get(ctx context.Context, orgID string) ([]compiledRule, error) {
	c.mu.Lock()
	cached, ok := c.orgs[orgID]
	c.mu.Unlock()
	now := time.Now()
	if ok && now.Sub(cached.loaded) < ruleTTL {
		return cached.rules, nil
	}
	rs, err := c.store.FindRules(ctx, orgID)
	if err != nil {
		return nil, err
	}
	out := make([]compiledRule, 0, len(rs))
	for _, r := range rs {
		cr := compiledRule{folded: fold(r.Pattern)}
		if r.Regex {
			if cr.re, err = regexp.Compile(r.Pattern); err != nil {
				continue // validated on creation; a rule that no longer compiles is skipped
			}
		}
		out = append(out, cr)
	}
	c.mu.Lock()
	c.orgs[orgID] = cachedRules{rules: out, loaded: now}
	c.mu.Unlock()
	return out, nil
}

func (c *ruleCache) forget(orgID string) {
	c.mu.Lock()
	delete(c.orgs, orgID)
	c.mu.Unlock()
}
