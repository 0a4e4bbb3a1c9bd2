package chatvault

import (
	"context"
	"time"
)

// ConversationKind is direct (exactly two users, found again by the pair) or group.
type ConversationKind string

const (
	Direct ConversationKind = "direct"
	Group  ConversationKind = "group"
)

// Conversation is a direct chat or a group. Its messages are numbered by a gap-free seq that starts
// at 1; LastSeq is the highest allocated.
type Conversation struct {
	OrgID     string           `json:"-"`
	ID        string           `json:"id"`
	Kind      ConversationKind `json:"type"`
	Title     string           `json:"title,omitempty"`
	CreatedBy string           `json:"created_by"`
	CreatedAt time.Time        `json:"created_at"`
	// HistoryVisibleToNewMembers lets members who join later read what was sent before they joined.
	HistoryVisibleToNewMembers bool  `json:"history_visible_to_new_members"`
	LastSeq                    int64 `json:"last_seq"`

	// DirectKey identifies a direct conversation by its pair of users, so creating it twice finds it.
	DirectKey string `json:"-"`
}

// MemberRole is a member's standing inside one group.
type MemberRole string

const (
	MemberOwner  MemberRole = "owner" // created the group; may remove others
	MemberMember MemberRole = "member"
)

// MemberSpan is one stretch of membership. A member sees the messages with FromSeq < seq, and, once
// the span is closed, seq <= *ToSeq. Spans are in seq, not time, because timestamps collide and seq
// does not.
type MemberSpan struct {
	FromSeq  int64      `json:"from_seq"`
	ToSeq    *int64     `json:"to_seq,omitempty"`
	JoinedAt time.Time  `json:"joined_at"`
	LeftAt   *time.Time `json:"left_at,omitempty"`
	// FromEvent and ToEvent bound, in event numbers, the conversation events the member may see:
	// FromEvent < id <= ToEvent.
	FromEvent int64  `json:"-"`
	ToEvent   *int64 `json:"-"`
}

// Participant is a user's standing in one conversation, current or past: their membership spans,
// their read marker and the lowest seq they may still see (raised by clearing history).
type Participant struct {
	ConversationID string       `json:"conversation_id"`
	UserID         string       `json:"user_id"`
	Role           MemberRole   `json:"role"`
	Active         bool         `json:"active"`
	ReadSeq        int64        `json:"read_seq"`
	ClearedSeq     int64        `json:"cleared_seq"`
	Spans          []MemberSpan `json:"spans"`
}

// Sees reports whether the participant's membership and cleared marker allow seq. Hidden messages
// are a separate, per-message matter.
func (p *Participant) Sees(seq int64) bool {
	if seq <= p.ClearedSeq {
		return false
	}
	for _, s := range p.Spans {
		if seq > s.FromSeq && (s.ToSeq == nil || seq <= *s.ToSeq) {
			return true
		}
	}
	return false
}

// VisibleRanges returns, in ascending order, the half-open seq ranges (after, upTo] the participant
// may see, given that the conversation's last seq is lastSeq.
func (p *Participant) VisibleRanges(lastSeq int64) []SeqRange {
	var out []SeqRange
	for _, s := range p.Spans {
		r := SeqRange{After: max(s.FromSeq, p.ClearedSeq), UpTo: lastSeq}
		if s.ToSeq != nil {
			r.UpTo = min(*s.ToSeq, lastSeq)
		}
		if r.UpTo > r.After {
			out = append(out, r)
		}
	}
	return out
}

// SeqRange is the half-open range of seqs (After, UpTo].
type SeqRange struct {
	After int64
	UpTo  int64
}

// UserConversation is a conversation as one user has it in their list.
type UserConversation struct {
	Conversation Conversation
	Participant  Participant
}

// ConversationStore persists conversations and who is in them.
type ConversationStore interface {
	// CreateConversation stores c with its creator as owner and memberIDs as members, all from seq 0.
	// For a direct conversation that already exists for the same pair (c.DirectKey), it fills c with
	// the existing one and returns created=false. EINVALID (field "members") if a member is not an
	// enabled user of the org.
	CreateConversation(ctx context.Context, c *Conversation, memberIDs []string) (created bool, err error)
	FindConversation(ctx context.Context, orgID, convID string) (*Conversation, error)
	// FindParticipant returns ENOTFOUND if the user was never a member.
	FindParticipant(ctx context.Context, orgID, convID, userID string) (*Participant, error)
	FindParticipants(ctx context.Context, orgID, convID string) ([]*Participant, error)
	// FindUserConversations lists every conversation the user is or was a member of.
	FindUserConversations(ctx context.Context, orgID, userID string) ([]*UserConversation, error)
	// AddMembers starts a membership span for each user not already active and returns those added.
	AddMembers(ctx context.Context, orgID, convID string, userIDs []string, at time.Time) (added []string, err error)
	// RemoveMember closes the user's open span at the conversation's current last seq.
	RemoveMember(ctx context.Context, orgID, convID, userID string, at time.Time) error
	// SetReadSeq raises the read marker to min(seq, last seq) and returns the marker; it never lowers it.
	SetReadSeq(ctx context.Context, orgID, convID, userID string, seq int64, at time.Time) (int64, error)
	// ClearHistory raises the user's cleared marker to the conversation's last seq and returns it.
	ClearHistory(ctx context.Context, orgID, convID, userID string, at time.Time) (int64, error)
}
