// Package chat holds the rules for conversations and messages: who may see, send, edit, recall or
// hide what. Every read of message content goes through Service.read, the single path on which
// membership windows, cleared history, hides and recalls are applied. The one read of content by
// non-participants, org-wide search, is recorded through Config.Audit before its hits are
// returned, and returns nothing when it cannot be.
package chat

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/google/uuid"
)

// Stores is what the chat service needs from a store.
type Stores interface {
	chatvault.ConversationStore
	chatvault.MessageStore
	chatvault.FeedStore
	chatvault.SearchStore
	FindPolicy(ctx context.Context, orgID string) (*chatvault.Policy, error)
	FindOrg(ctx context.Context, id string) (*chatvault.Org, error) // its search settings
	FindUserByID(ctx context.Context, orgID, userID string) (*chatvault.User, error)
	FindConversationIDs(ctx context.Context, orgID, after string, limit int) ([]string, error)
	SetImportance(ctx context.Context, orgID, convID string, seq int64, userID string, flag int, on bool, at time.Time) (*chatvault.Message, error)
}

// Recorder writes audit entries and fails closed: an error means the entry was not written
// (internal/audit).
type Recorder interface {
	Record(ctx context.Context, e *chatvault.AuditEntry) error
}

// Classifier flags new messages as important (the retention rules).
type Classifier interface {
	Classify(ctx context.Context, orgID, text string) (int, error)
}

// Config holds the chat rules an operator may change.
type Config struct {
	// RecallWindow is how long after sending a sender may recall a message, unless the org's
	// policy sets its own.
	RecallWindow time.Duration
	// Classifier, when set, flags new messages as important.
	Classifier Classifier
	// Audit records reads of content by non-participants (org-wide search). Without it such
	// reads are refused: no entry, no data.
	Audit Recorder
}

// DefaultRecallWindow is the recall window unless configured otherwise.
const DefaultRecallWindow = 2 * time.Minute

// Service implements conversations and messages.
type Service struct {
	store Stores
	clock chatvault.Clock
	cfg   Config
}

// NewService returns a Service over store.
func NewService(store Stores, clock chatvault.Clock, cfg Config) *Service {
	if cfg.RecallWindow <= 0 {
		cfg.RecallWindow = DefaultRecallWindow
	}
	return &Service{store: store, clock: clock, cfg: cfg}
}

// access is the caller's standing in one conversation, loaded before anything in it is touched.
type access struct {
	conv *chatvault.Conversation
	part *chatvault.Participant
	// sentFrom is the reader's own visibility window: nothing sent before it is shown.
	sentFrom time.Time
}

// open loads a conversation for the actor. Anyone who never was a member gets ENOTFOUND, exactly as
// for a conversation that does not exist, so existence does not leak.
func (s *Service) open(ctx context.Context, a chatvault.Actor, convID string) (*access, error) {
	notFound := chatvault.Errorf(chatvault.ENOTFOUND, "conversation %s not found", convID)
	if !validID(convID) {
		return nil, notFound
	}
	part, err := s.store.FindParticipant(ctx, a.OrgID, convID, a.UserID)
	if chatvault.ErrorCode(err) == chatvault.ENOTFOUND {
		return nil, notFound
	} else if err != nil {
		return nil, err
	}
	conv, err := s.store.FindConversation(ctx, a.OrgID, convID)
	if err != nil {
		return nil, err
	}
	return &access{conv: conv, part: part, sentFrom: s.windowStart(a)}, nil
}

// windowStart is where the actor's own visibility window begins (zero: no window).
func (s *Service) windowStart(a chatvault.Actor) time.Time {
	if a.RetentionDays == nil || *a.RetentionDays == 0 {
		return time.Time{}
	}
	return s.clock.Now().Add(-time.Duration(*a.RetentionDays) * 24 * time.Hour)
}

// openActive is open for actions only current members may take.
func (s *Service) openActive(ctx context.Context, a chatvault.Actor, convID string) (*access, error) {
	acc, err := s.open(ctx, a, convID)
	if err != nil {
		return nil, err
	}
	if !acc.part.Active {
		return nil, chatvault.Errorf(chatvault.EFORBIDDEN, "you are no longer a member of this conversation")
	}
	return acc, nil
}

// read is the single path through which message content leaves the store. It reads one seq range
// (After < seq < Before), keeps only what the participant may see, and redacts recalled and purged
// content.
func (s *Service) read(ctx context.Context, acc *access, after, before int64, desc bool, limit int) ([]*chatvault.Message, error) {
	ranges := acc.part.VisibleRanges(acc.conv.LastSeq)
	if desc {
		slices.Reverse(ranges)
	}
	var out []*chatvault.Message
	for _, r := range ranges {
		lo, hi := max(after, r.After), r.UpTo+1
		if before > 0 {
			hi = min(hi, before)
		}
		if hi-lo <= 1 {
			continue
		}
		ms, err := s.store.FindMessages(ctx, acc.conv.OrgID, acc.conv.ID, chatvault.MessageQuery{
			After: lo, Before: hi, Desc: desc, Limit: limit - len(out), HiddenFor: acc.part.UserID, SentFrom: acc.sentFrom})
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			out = append(out, redact(m))
		}
		if len(out) >= limit {
			break
		}
	}
	return out, nil
}

// redact removes what nobody may see of a recalled, expired or purged message; its place in the
// sequence stays, so every device learns what happened to it. An expired message (waiting out the
// grace window before destruction) already reads as purged.
func redact(m *chatvault.Message) *chatvault.Message {
	if m.ExpiredAt != nil {
		m.State = chatvault.StatePurged
	}
	if m.State != chatvault.StateLive {
		m.Text, m.ReplyTo, m.Important = "", "", false
	}
	return m
}

func validID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && len(id) == 36
}

// validTitle checks a group's title as a name (chatvault.CheckName): no line breaks, controls or
// bidirectional overrides that could make one group pass for another.
func validTitle(s string) error {
	return chatvault.CheckName("title", strings.TrimSpace(s), 256)
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }
