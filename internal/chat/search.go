package chat

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/search"
)

// Search limits. A page is what a person reads; the scan budget bounds one request's work when the
// index finds many candidates the exact check or the reader's visibility turns away (the page then
// comes back short, with a cursor to go on); the relevance window is how many of the newest matches
// relevance ranks, so ranking costs the same whether a word is rare or everywhere.
const (
	DefaultSearchLimit = 20
	MaxSearchLimit     = 100
	searchScanBudget   = 5000
	RelevanceWindow    = 1000
)

// Search scopes and orders.
const (
	ScopeMine      = "mine" // what the caller may see as a member (the default)
	ScopeOrg       = "org"  // the whole org, for a compliance officer; recorded in the audit log
	SortTime       = "time" // newest first (the default)
	SortRelevance  = "relevance"
	auditSearchOrg = "search_org"
)

// SearchRequest is one search.
type SearchRequest struct {
	Query          string
	Scope          string
	ConversationID string
	SenderID       string
	From, To       time.Time
	HasReply       *bool
	Edited         *bool
	Sort           string
	Cursor         string
	Limit          int
	// Prefix reads the query's last word as a prefix while it is being typed (search as you type).
	Prefix bool
}

// SearchHit is one message found, where it is, and the part of it that matched.
type SearchHit struct {
	Message      *chatvault.Message   `json:"message"`
	Conversation SearchConversation   `json:"conversation"`
	Snippet      []search.SnippetPart `json:"snippet"`
	Score        float64              `json:"score,omitempty"`
}

// SearchConversation names a hit's conversation.
type SearchConversation struct {
	ID    string                     `json:"id"`
	Kind  chatvault.ConversationKind `json:"kind"`
	Title string                     `json:"title,omitempty"`
}

// SearchPage is one page of hits; NextCursor is empty when there is nothing more.
type SearchPage struct {
	Hits       []*SearchHit `json:"hits"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

// searchScope is what a search may return: the conversations and, for a member, the seq ranges of
// each they may see.
type searchScope struct {
	convs  map[string]*chatvault.Conversation
	ranges map[string][]chatvault.SeqRange // nil: everything (org scope)
	ids    []string                        // the store's conversation filter; nil: the whole org
	hidden string                          // the user whose hides apply
}

func (sc *searchScope) visible(m *chatvault.Message) bool {
	if sc.ranges == nil {
		return true
	}
	for _, r := range sc.ranges[m.ConversationID] {
		if m.Seq > r.After && m.Seq <= r.UpTo {
			return true
		}
	}
	return false
}

// Search finds the messages matching a query that the caller may see. Every candidate the index
// returns is decrypted and checked against the query exactly, and against the caller's
// visibility (membership windows, cleared history, hides, their own retention window; recalled,
// expired and purged messages are never candidates), before it is shown.
func (s *Service) Search(ctx context.Context, a chatvault.Actor, req SearchRequest) (*SearchPage, error) {
	org, err := s.store.FindOrg(ctx, a.OrgID)
	if err != nil {
		return nil, err
	}
	q, err := search.ParseWith(req.Query, search.Options{PrefixLast: req.Prefix, Stem: org.SearchStemming})
	if err != nil {
		var msg string
		if errors.Is(err, search.ErrQuery) {
			msg = err.Error()
		}
		return nil, chatvault.Invalidf("q", "%s", cmp.Or(msg, "invalid query"))
	}
	if err := req.validate(); err != nil {
		return nil, err
	}
	scope, err := s.searchScope(ctx, a, req)
	if err != nil {
		return nil, err
	}
	if scope.ranges != nil && len(scope.ids) == 0 {
		return &SearchPage{Hits: []*SearchHit{}}, nil
	}
	cur, err := parseSearchCursor(req.Cursor, req.Sort)
	if err != nil {
		return nil, err
	}
	from := req.From
	if w := s.windowStart(a); scope.ranges != nil && w.After(from) {
		from = w
	}
	sq := chatvault.SearchQuery{OrgID: a.OrgID, Tokens: q.Tokens(), ConversationIDs: scope.ids, SenderID: req.SenderID,
		From: from, To: req.To, HiddenFor: scope.hidden, SeqAfter: scope.seqAfter()}

	want := req.Limit + 1 // one more than a page tells whether there is a next page
	if req.Sort == SortRelevance {
		want = RelevanceWindow // ranked from the newest each time; the cursor is a place in the ranking
	} else {
		sq.Before = cur.doc
	}
	hits, exhausted, lastDoc, err := s.collect(ctx, q, scope, req, sq, want)
	if err != nil {
		return nil, err
	}
	page := &SearchPage{Hits: []*SearchHit{}}
	if req.Sort == SortRelevance {
		slices.SortStableFunc(hits, func(x, y scoredHit) int {
			if c := cmp.Compare(y.hit.Score, x.hit.Score); c != 0 {
				return c
			}
			return cmp.Compare(y.doc, x.doc)
		})
		start := 0
		if cur.doc != 0 {
			start = len(hits)
			for i, h := range hits {
				if h.hit.Score < cur.score || (h.hit.Score == cur.score && h.doc < cur.doc) {
					start = i
					break
				}
			}
		}
		hits = hits[start:]
		if len(hits) > req.Limit {
			last := hits[req.Limit-1]
			page.NextCursor = encodeSearchCursor(searchCursor{doc: last.doc, score: last.hit.Score, relevance: true})
			hits = hits[:req.Limit]
		}
	} else {
		switch {
		case len(hits) > req.Limit:
			hits = hits[:req.Limit]
			page.NextCursor = encodeSearchCursor(searchCursor{doc: hits[len(hits)-1].doc})
		case !exhausted:
			// The scan budget ran out first: go on from the last candidate examined.
			page.NextCursor = encodeSearchCursor(searchCursor{doc: lastDoc})
		}
	}
	for _, h := range hits {
		if req.Sort != SortRelevance {
			h.hit.Score = 0
		}
		page.Hits = append(page.Hits, h.hit)
	}
	if req.Scope == ScopeOrg {
		if err := s.auditOrgSearch(ctx, a, req, len(page.Hits)); err != nil {
			return nil, err
		}
	}
	return page, nil
}

type scoredHit struct {
	doc int64
	hit *SearchHit
}

// collect reads candidates newest first and keeps those that pass the exact check and the
// caller's visibility, until it has want hits, the index has no more, or the scan budget is spent.
func (s *Service) collect(ctx context.Context, q *search.Query, scope *searchScope, req SearchRequest,
	sq chatvault.SearchQuery, want int) (hits []scoredHit, exhausted bool, lastDoc int64, err error) {
	examined := 0
	batch := min(max(2*want, 64), 1000)
	for examined < searchScanBudget || req.Sort == SortRelevance && examined < 20*searchScanBudget {
		sq.Limit = batch
		cands, err := s.store.SearchMessages(ctx, sq)
		if err != nil {
			return nil, false, 0, err
		}
		for _, c := range cands {
			examined++
			lastDoc = c.Doc
			m := c.Message
			if !scope.visible(m) || !req.wants(m) {
				continue
			}
			ok, spans, score := q.Match(m.Text)
			if !ok {
				continue
			}
			conv := scope.convs[m.ConversationID]
			if conv == nil { // org scope: conversations are loaded as hits need them
				if conv, err = s.store.FindConversation(ctx, m.OrgID, m.ConversationID); err != nil {
					return nil, false, 0, err
				}
				scope.convs[m.ConversationID] = conv
			}
			hits = append(hits, scoredHit{doc: c.Doc, hit: &SearchHit{Message: m, Snippet: search.Snippet(m.Text, spans), Score: score,
				Conversation: SearchConversation{ID: conv.ID, Kind: conv.Kind, Title: conv.Title}}})
			if len(hits) == want {
				return hits, false, lastDoc, nil
			}
		}
		if len(cands) < batch {
			return hits, true, lastDoc, nil
		}
		sq.Before = cands[len(cands)-1].Doc
		// Few candidates survived: ask for more at a time, so a rare match costs a few index
		// queries, not one per 64 candidates.
		batch = min(2*batch, 1000)
	}
	return hits, false, lastDoc, nil
}

// searchScope resolves what the caller may search.
func (s *Service) searchScope(ctx context.Context, a chatvault.Actor, req SearchRequest) (*searchScope, error) {
	sc := &searchScope{convs: map[string]*chatvault.Conversation{}}
	if req.Scope == ScopeOrg {
		if err := chatvault.Authorize(a, chatvault.PermSearchOrg); err != nil {
			return nil, err
		}
		if req.ConversationID != "" {
			if !validID(req.ConversationID) {
				return nil, chatvault.Errorf(chatvault.ENOTFOUND, "conversation %s not found", req.ConversationID)
			}
			conv, err := s.store.FindConversation(ctx, a.OrgID, req.ConversationID)
			if err != nil {
				return nil, err
			}
			sc.convs[conv.ID] = conv
			sc.ids = []string{conv.ID}
		}
		return sc, nil
	}
	sc.ranges, sc.hidden = map[string][]chatvault.SeqRange{}, a.UserID
	if req.ConversationID != "" {
		acc, err := s.open(ctx, a, req.ConversationID)
		if err != nil {
			return nil, err
		}
		sc.add(acc.conv, acc.part)
		return sc, nil
	}
	ucs, err := s.store.FindUserConversations(ctx, a.OrgID, a.UserID)
	if err != nil {
		return nil, err
	}
	for _, uc := range ucs {
		sc.add(&uc.Conversation, &uc.Participant)
	}
	return sc, nil
}

// seqAfter is, per conversation, the seq before which the reader sees nothing.
func (sc *searchScope) seqAfter() map[string]int64 {
	var out map[string]int64
	for id, rs := range sc.ranges {
		if len(rs) > 0 && rs[0].After > 0 {
			if out == nil {
				out = map[string]int64{}
			}
			out[id] = rs[0].After
		}
	}
	return out
}

func (sc *searchScope) add(conv *chatvault.Conversation, part *chatvault.Participant) {
	ranges := part.VisibleRanges(conv.LastSeq)
	if len(ranges) == 0 {
		return
	}
	sc.convs[conv.ID], sc.ranges[conv.ID] = conv, ranges
	sc.ids = append(sc.ids, conv.ID)
}

// auditOrgSearch records an org-wide search: who searched for what, and how much they saw.
func (s *Service) auditOrgSearch(ctx context.Context, a chatvault.Actor, req SearchRequest, hits int) error {
	details := map[string]any{"query": req.Query, "hits": hits}
	if req.ConversationID != "" {
		details["conversation_id"] = req.ConversationID
	}
	if req.SenderID != "" {
		details["sender_id"] = req.SenderID
	}
	if s.cfg.Audit == nil {
		return chatvault.Errorf(chatvault.EUNAVAILABLE, "org-wide search is off: this server has no audit log to record it in")
	}
	err := s.cfg.Audit.Record(ctx, &chatvault.AuditEntry{OrgID: a.OrgID, At: s.clock.Now(), ActorID: a.UserID,
		Action: auditSearchOrg, Outcome: "ok", Details: details})
	if err != nil {
		return fmt.Errorf("record org-wide search: %w", err)
	}
	return nil
}

func (r *SearchRequest) validate() error {
	r.Scope = cmp.Or(r.Scope, ScopeMine)
	if r.Scope != ScopeMine && r.Scope != ScopeOrg {
		return chatvault.Invalidf("scope", "scope is %q or %q", ScopeMine, ScopeOrg)
	}
	r.Sort = cmp.Or(r.Sort, SortTime)
	if r.Sort != SortTime && r.Sort != SortRelevance {
		return chatvault.Invalidf("sort", "sort is %q or %q", SortTime, SortRelevance)
	}
	switch {
	case r.Limit == 0:
		r.Limit = DefaultSearchLimit
	case r.Limit < 0 || r.Limit > MaxSearchLimit:
		return chatvault.Invalidf("limit", "limit is between 1 and %d", MaxSearchLimit)
	}
	if !r.From.IsZero() && !r.To.IsZero() && !r.From.Before(r.To) {
		return chatvault.Invalidf("to", "to must be after from")
	}
	if r.SenderID != "" && !validID(r.SenderID) {
		return chatvault.Invalidf("sender", "sender is a user id")
	}
	return nil
}

// wants applies the filters the index does not.
func (r *SearchRequest) wants(m *chatvault.Message) bool {
	if r.HasReply != nil && (m.ReplyTo != "") != *r.HasReply {
		return false
	}
	if r.Edited != nil && (m.EditedAt != nil) != *r.Edited {
		return false
	}
	return true
}

// searchCursor is where the next page starts: after document doc in time order, or after (score,
// doc) in relevance order.
type searchCursor struct {
	doc       int64
	score     float64
	relevance bool
}

func encodeSearchCursor(c searchCursor) string {
	s := "t" + strconv.FormatInt(c.doc, 36)
	if c.relevance {
		s = "r" + strconv.FormatInt(c.doc, 36) + "." + strconv.FormatUint(math.Float64bits(c.score), 36)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func parseSearchCursor(s, sort string) (searchCursor, error) {
	if s == "" {
		return searchCursor{}, nil
	}
	bad := chatvault.Invalidf("cursor", "cursor is not one this search returned")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) < 2 {
		return searchCursor{}, bad
	}
	c := searchCursor{relevance: raw[0] == 'r'}
	if c.relevance != (sort == SortRelevance) || (raw[0] != 'r' && raw[0] != 't') {
		return searchCursor{}, bad
	}
	docPart, scorePart, hasScore := strings.Cut(string(raw[1:]), ".")
	if hasScore != c.relevance {
		return searchCursor{}, bad
	}
	if c.doc, err = strconv.ParseInt(docPart, 36, 64); err != nil || c.doc <= 0 {
		return searchCursor{}, bad
	}
	if c.relevance {
		bits, err := strconv.ParseUint(scorePart, 36, 64)
		if err != nil {
			return searchCursor{}, bad
		}
		c.score = math.Float64frombits(bits)
	}
	return c, nil
}
