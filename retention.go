package chatvault

import (
	"context"
	"time"
)

// RetentionMode says whose choice sets a conversation's retention when no override does.
type RetentionMode string

const (
	ModeOrg        RetentionMode = "org"         // the org default
	ModeUserChoice RetentionMode = "user_choice" // the longest preference among current members
)

// Policy is an org's retention policy. Days of 0 mean forever (for MaxDays: no ceiling).
type Policy struct {
	DefaultDays    int           `json:"default_days"`
	MinDays        int           `json:"min_days"`
	MaxDays        int           `json:"max_days"`
	ImportantDays  int           `json:"important_days"`
	Mode           RetentionMode `json:"mode"`
	PreserveRecall bool          `json:"preserve_recalls"`
	// RecallWindowSeconds is how long a sender may recall a message; 0 uses the server's default.
	RecallWindowSeconds int        `json:"recall_window_seconds"`
	GraceDays           int        `json:"purge_grace_days"`
	Locked              bool       `json:"locked"`
	LockedAt            *time.Time `json:"locked_at,omitempty"`
	UpdatedAt           time.Time  `json:"updated_at"`
	UpdatedBy           string     `json:"updated_by,omitempty"`
}

// DefaultPolicy is the policy of an org that never set one.
func DefaultPolicy() Policy {
	return Policy{DefaultDays: 180, Mode: ModeOrg, GraceDays: 7}
}

// Hold is a legal hold: while active, nothing it covers is purged or destroyed. Every criterion
// that is set must match; a hold with none covers the whole org.
type Hold struct {
	OrgID         string     `json:"-"`
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	Reason        string     `json:"reason"`
	Custodians    []string   `json:"custodians"`    // user ids: the conversations they are or were in
	Conversations []string   `json:"conversations"` // conversation ids
	From          *time.Time `json:"from,omitempty"`
	To            *time.Time `json:"to,omitempty"`
	CreatedBy     string     `json:"created_by"`
	CreatedAt     time.Time  `json:"created_at"`
	ReleasedAt    *time.Time `json:"released_at,omitempty"`
	ReleasedBy    string     `json:"released_by,omitempty"`
}

// Active reports whether the hold is in force.
func (h *Hold) Active() bool { return h.ReleasedAt == nil }

// TimeRange is [From, To); a nil end is open.
type TimeRange struct {
	From *time.Time
	To   *time.Time
}

// ImportantRule flags new messages as important: Pattern is a plain substring (case-folded), or a
// regular expression when Regex is set.
type ImportantRule struct {
	OrgID     string    `json:"-"`
	ID        string    `json:"id"`
	Pattern   string    `json:"pattern"`
	Regex     bool      `json:"regex"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// Importance flags on a message; any set flag puts it in the important tier.
const (
	ImportantByRule  = 1
	ImportantByAdmin = 2
	ImportantByStar  = 4
)

// Selection picks messages of one conversation for a retention step. Held ranges are excluded.
type Selection struct {
	OrgID          string
	ConversationID string
	AfterSeq       int64 // resume point: only seq > AfterSeq
	Limit          int   // at most this many rows change in one step
	Held           []TimeRange
	HeldAll        bool // the whole conversation is held: select nothing
	At             time.Time
	// ExcludeRecalled leaves recalled messages out of expiry and its counts: when an org does not
	// preserve recalls, the run destroys them directly instead.
	ExcludeRecalled bool
	// RunID, when set, makes each step record its certificate line (PurgeRunItem) in the same
	// transaction as its changes.
	RunID string
}

// ExpireStep marks live messages expired: non-important ones sent before SentBefore, or, when
// Important is set, important ones sent before ImportantBefore (nil: important ones stay).
type ExpireStep struct {
	Selection
	SentBefore      time.Time
	ImportantBefore *time.Time
	Important       bool
}

// DestroyStep destroys messages: expired ones whose expiry is before ExpiredBefore, and, when
// Recalled, recalled ones; or, when Sender or SentFrom/SentTo are set (an admin batch delete or an
// erasure), every message that matches them and was sent before YoungestAllowed.
type DestroyStep struct {
	Selection
	ExpiredBefore *time.Time
	Recalled      bool
	Batch         *BatchFilter
}

// BatchFilter selects messages for an admin batch delete or a user erasure.
type BatchFilter struct {
	ConversationID string     `json:"conversation_id,omitempty"`
	SenderID       string     `json:"user_id,omitempty"`
	From           *time.Time `json:"from,omitempty"`
	To             *time.Time `json:"to,omitempty"`
	// SentBefore is the min_days floor: younger messages are refused.
	SentBefore time.Time `json:"-"`
}

// StepResult says what one step changed.
type StepResult struct {
	Count    int   // rows changed
	FirstSeq int64 // lowest and highest seq changed (0 when none)
	LastSeq  int64
	Scanned  int64 // highest seq examined: resume after it
	Done     bool  // nothing more to do in this conversation
}

// PurgeCount describes, without changing anything, what a step would do in one conversation.
type PurgeCount struct {
	ConversationID string     `json:"conversation_id"`
	Count          int        `json:"count"`
	FirstSeq       int64      `json:"first_seq,omitempty"`
	LastSeq        int64      `json:"last_seq,omitempty"`
	FirstSentAt    *time.Time `json:"first_sent_at,omitempty"`
	LastSentAt     *time.Time `json:"last_sent_at,omitempty"`
	Held           int        `json:"held"`      // would go but for a hold
	TooYoung       int        `json:"too_young"` // refused: younger than min_days (batch deletes)
}

// PurgeRun is one run of the retention job in one org, and its deletion certificate.
type PurgeRun struct {
	OrgID      string         `json:"org_id"`
	ID         string         `json:"id"`
	DryRun     bool           `json:"dry_run"`
	StartedAt  time.Time      `json:"started_at"` // also the "now" every cutoff of the run is computed from
	FinishedAt *time.Time     `json:"finished_at,omitempty"`
	Policy     Policy         `json:"policy"`
	Holds      []string       `json:"holds_in_force"`
	Items      []PurgeRunItem `json:"conversations"`
	Totals     map[string]int `json:"totals"`
	Signature  string         `json:"signature,omitempty"` // set once the evidence log exists
	Evidence   map[string]any `json:"evidence,omitempty"`  // evidence-log checkpoints before and after
}

// PurgeRunItem is one step's effect on one conversation, as the certificate lists it.
type PurgeRunItem struct {
	ConversationID string `json:"conversation_id"`
	Action         string `json:"action"` // expired, destroyed
	Count          int    `json:"count"`
	FirstSeq       int64  `json:"first_seq"`
	LastSeq        int64  `json:"last_seq"`
}

// PolicyStore keeps org policies, conversation overrides and users' own windows.
type PolicyStore interface {
	FindPolicy(ctx context.Context, orgID string) (*Policy, error)
	SavePolicy(ctx context.Context, orgID string, p *Policy) error
	// SetConversationRetention sets (days >= 0) or clears (nil) a conversation's override.
	SetConversationRetention(ctx context.Context, orgID, convID string, days *int) error
	FindConversationRetention(ctx context.Context, orgID, convID string) (*int, error)
	// SetUserRetention sets (days >= 0; 0 = forever) or clears (nil) a user's own preference.
	SetUserRetention(ctx context.Context, orgID, userID string, days *int) error
	// FindMemberRetention returns the preferences of the conversation's current members (nil: none set).
	FindMemberRetention(ctx context.Context, orgID, convID string) ([]*int, error)
}

// HoldStore keeps legal holds.
type HoldStore interface {
	CreateHold(ctx context.Context, h *Hold) error
	FindHolds(ctx context.Context, orgID string, activeOnly bool) ([]*Hold, error)
	ReleaseHold(ctx context.Context, orgID, holdID, by string, at time.Time) (*Hold, error)
}

// ImportanceStore keeps the rules that flag messages important, and the flags themselves.
type ImportanceStore interface {
	CreateRule(ctx context.Context, r *ImportantRule) error
	FindRules(ctx context.Context, orgID string) ([]*ImportantRule, error)
	DeleteRule(ctx context.Context, orgID, ruleID string) error
	// SetImportance sets or clears one importance flag on a message (stars count per member).
	SetImportance(ctx context.Context, orgID, convID string, seq int64, userID string, flag int, on bool, at time.Time) (*Message, error)
}

// PurgeStepStore carries out the bounded steps of a purge, and counts what they would do.
type PurgeStepStore interface {
	// FindConversationIDs pages through an org's conversations by id.
	FindConversationIDs(ctx context.Context, orgID, after string, limit int) ([]string, error)
	// FindParticipantIDs lists everyone who is or was in the conversation.
	FindParticipantIDs(ctx context.Context, orgID, convID string) ([]string, error)
	// ExpireMessages marks one bounded step of expirable messages, resuming after s.AfterSeq (or,
	// when s.AfterSeq is 0, after the conversation's scan watermark).
	ExpireMessages(ctx context.Context, s ExpireStep) (*StepResult, error)
	DestroyMessages(ctx context.Context, s DestroyStep) (*StepResult, error)
	CountExpirable(ctx context.Context, s ExpireStep) (*PurgeCount, error)
	CountDestroyable(ctx context.Context, s DestroyStep) (*PurgeCount, error)
	// UnexpireMessages makes expired, not yet destroyed messages live again when the plan no longer
	// lets them go (the policy grew longer, a message became important). s.SentBefore zero: keep all.
	UnexpireMessages(ctx context.Context, s ExpireStep) (*StepResult, error)
	// RestoreExpired makes expired (not yet destroyed) messages in [fromSeq, toSeq] live again.
	RestoreExpired(ctx context.Context, orgID, convID string, fromSeq, toSeq int64, at time.Time) (*StepResult, error)
}

// PurgeRunStore keeps purge runs and their certificates.
type PurgeRunStore interface {
	SavePurgeRun(ctx context.Context, r *PurgeRun) error
	// RecordPurgeItem adds a certificate line that no step wrote itself (data keys destroyed).
	RecordPurgeItem(ctx context.Context, orgID, runID string, item PurgeRunItem) error
	// FindPurgeRunItems returns a run's certificate lines in the order they were written.
	FindPurgeRunItems(ctx context.Context, orgID, runID string) ([]PurgeRunItem, error)
	FindPurgeRuns(ctx context.Context, orgID string, limit int) ([]*PurgeRun, error)
	FindPurgeRun(ctx context.Context, orgID, runID string) (*PurgeRun, error)
}

// RetentionStore is everything a store provides for retention; each service takes only the
// parts it uses.
type RetentionStore interface {
	PolicyStore
	HoldStore
	ImportanceStore
	PurgeStepStore
	PurgeRunStore
	AuditStore
	AuditKeyStore
}
