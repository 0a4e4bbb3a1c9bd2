package chat

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/search"
)

// NewConversation is a request to start a conversation.
type NewConversation struct {
	Kind           chatvault.ConversationKind
	Title          string
	Members        []string // user ids other than the creator
	HistoryVisible bool     // groups only: later members may read earlier messages
}

// MaxMembersPerRequest bounds one create or add request.
const MaxMembersPerRequest = 1000

// Summary is a conversation as it appears in its member's list.
type Summary struct {
	chatvault.Conversation
	Active      bool               `json:"active"`
	ReadSeq     int64              `json:"read_seq"`
	ClearedSeq  int64              `json:"cleared_seq"`
	UnreadCount int                `json:"unread_count"` // saturates at MaxUnreadCount
	LastMessage *chatvault.Message `json:"last_message,omitempty"`
}

// MaxUnreadCount is where unread counting stops, so listing stays cheap in busy conversations.
const MaxUnreadCount = 1000

// Detail is one conversation with its members.
type Detail struct {
	chatvault.Conversation
	Members []Member `json:"members"`
}

// Member is someone who is or was in a conversation, as other members see them.
type Member struct {
	UserID string                 `json:"user_id"`
	Role   chatvault.MemberRole   `json:"role"`
	Active bool                   `json:"active"`
	Spans  []chatvault.MemberSpan `json:"spans"`
}

// CreateConversation starts a group, or finds or starts the direct conversation with one user.
func (s *Service) CreateConversation(ctx context.Context, a chatvault.Actor, req NewConversation) (*Detail, bool, error) {
	members := make([]string, 0, len(req.Members))
	for _, id := range req.Members {
		if !validID(id) {
			return nil, false, chatvault.Invalidf("members", "%q is not a user id", id)
		}
		if id != a.UserID && !slices.Contains(members, id) {
			members = append(members, id)
		}
	}
	if len(members) > MaxMembersPerRequest {
		return nil, false, chatvault.Invalidf("members", "at most %d members per request", MaxMembersPerRequest)
	}
	c := &chatvault.Conversation{OrgID: a.OrgID, ID: newID(), Kind: req.Kind, CreatedBy: a.UserID, CreatedAt: s.clock.Now()}
	switch req.Kind {
	case chatvault.Direct:
		if len(members) != 1 {
			return nil, false, chatvault.Invalidf("members", "a direct conversation has exactly one other member")
		}
		if req.Title != "" || req.HistoryVisible {
			return nil, false, chatvault.Invalidf("type", "title and history_visible_to_new_members are for groups")
		}
		pair := []string{a.UserID, members[0]}
		slices.Sort(pair)
		c.DirectKey = strings.Join(pair, ":")
	case chatvault.Group:
		if err := validTitle(req.Title); err != nil {
			return nil, false, err
		}
		c.Title = strings.TrimSpace(req.Title)
		c.HistoryVisibleToNewMembers = req.HistoryVisible
	default:
		return nil, false, chatvault.Invalidf("type", "type must be \"direct\" or \"group\"")
	}
	created, err := s.store.CreateConversation(ctx, c, members)
	if err != nil {
		return nil, false, err
	}
	d, err := s.Conversation(ctx, a, c.ID)
	return d, created, err
}

// Conversation returns one conversation the actor is or was in, with its members.
func (s *Service) Conversation(ctx context.Context, a chatvault.Actor, convID string) (*Detail, error) {
	acc, err := s.open(ctx, a, convID)
	if err != nil {
		return nil, err
	}
	parts, err := s.store.FindParticipants(ctx, a.OrgID, convID)
	if err != nil {
		return nil, err
	}
	d := &Detail{Conversation: *acc.conv, Members: make([]Member, 0, len(parts))}
	for _, p := range parts {
		d.Members = append(d.Members, Member{UserID: p.UserID, Role: p.Role, Active: p.Active, Spans: p.Spans})
	}
	return d, nil
}

// Conversations lists every conversation the actor is or was in, with the last message they may
// see and how many unread messages from others it holds; most recent first.
func (s *Service) Conversations(ctx context.Context, a chatvault.Actor) ([]*Summary, error) {
	return s.conversations(ctx, a, nil)
}

// FindConversations is Conversations narrowed to the ones a name query finds (search.ParseName:
// as written, by full pinyin or by initials): a group by its title, a direct conversation by the
// other person's display name or username.
func (s *Service) FindConversations(ctx context.Context, a chatvault.Actor, query string) ([]*Summary, error) {
	q := search.ParseName(query)
	if q == nil {
		return nil, chatvault.Invalidf("q", "q has no letters, digits or characters to look for")
	}
	return s.conversations(ctx, a, func(c *chatvault.Conversation) (bool, error) {
		names := []string{c.Title}
		if peer := peerOf(c, a.UserID); peer != "" {
			u, err := s.store.FindUserByID(ctx, a.OrgID, peer)
			if err != nil && chatvault.ErrorCode(err) != chatvault.ENOTFOUND {
				return false, err
			} else if err == nil {
				names = append(names, u.DisplayName, u.Username)
			}
		}
		return q.Matches(names...), nil
	})
}

// peerOf is the other user of a direct conversation (its key joins the pair's ids with ":").
func peerOf(c *chatvault.Conversation, me string) string {
	if c.Kind != chatvault.Direct {
		return ""
	}
	x, y, ok := strings.Cut(c.DirectKey, ":")
	switch {
	case !ok:
		return ""
	case x == me:
		return y
	case y == me:
		return x
	}
	return ""
}

// conversations summarises the actor's conversations that keep accepts (all, when nil).
func (s *Service) conversations(ctx context.Context, a chatvault.Actor, keep func(*chatvault.Conversation) (bool, error)) ([]*Summary, error) {
	ucs, err := s.store.FindUserConversations(ctx, a.OrgID, a.UserID)
	if err != nil {
		return nil, err
	}
	out := make([]*Summary, 0, len(ucs))
	for _, uc := range ucs {
		if keep != nil {
			if ok, err := keep(&uc.Conversation); err != nil {
				return nil, err
			} else if !ok {
				continue
			}
		}
		sum, err := s.summarize(ctx, uc, s.windowStart(a))
		if err != nil {
			return nil, err
		}
		out = append(out, sum)
	}
	slices.SortStableFunc(out, func(x, y *Summary) int {
		if c := activity(y).Compare(activity(x)); c != 0 {
			return c
		}
		return strings.Compare(y.ID, x.ID)
	})
	return out, nil
}

// summarize describes one conversation as its participant has it. LastSeq is capped at what the
// participant may see, so a former member is never told how far the conversation went on.
func (s *Service) summarize(ctx context.Context, uc *chatvault.UserConversation, sentFrom time.Time) (*Summary, error) {
	acc := &access{conv: &uc.Conversation, part: &uc.Participant, sentFrom: sentFrom}
	sum := &Summary{Conversation: uc.Conversation, Active: uc.Participant.Active, ReadSeq: uc.Participant.ReadSeq,
		ClearedSeq: uc.Participant.ClearedSeq}
	if !uc.Participant.Active {
		sum.LastSeq = 0
		for _, sp := range uc.Participant.Spans {
			if sp.ToSeq != nil {
				sum.LastSeq = max(sum.LastSeq, *sp.ToSeq)
			}
		}
	}
	last, err := s.read(ctx, acc, 0, 0, true, 1)
	if err != nil {
		return nil, err
	}
	if len(last) == 1 {
		sum.LastMessage = last[0]
	}
	if sum.UnreadCount, err = s.unread(ctx, acc); err != nil {
		return nil, err
	}
	return sum, nil
}

// activity is when a conversation last changed as far as its member can see.
func activity(s *Summary) time.Time {
	if s.LastMessage != nil {
		return s.LastMessage.SentAt
	}
	return s.CreatedAt
}

func (s *Service) unread(ctx context.Context, acc *access) (int, error) {
	n := 0
	for _, r := range acc.part.VisibleRanges(acc.conv.LastSeq) {
		if r.UpTo <= acc.part.ReadSeq {
			continue
		}
		c, err := s.store.CountMessages(ctx, acc.conv.OrgID, acc.conv.ID, chatvault.MessageCount{
			After: max(r.After, acc.part.ReadSeq), UpTo: r.UpTo, ExcludeSender: acc.part.UserID,
			HiddenFor: acc.part.UserID, SentFrom: acc.sentFrom, Limit: MaxUnreadCount - n})
		if err != nil {
			return 0, err
		}
		if n += c; n >= MaxUnreadCount {
			break
		}
	}
	return n, nil
}

// AddMembers adds users to a group. Any active member may add.
func (s *Service) AddMembers(ctx context.Context, a chatvault.Actor, convID string, userIDs []string) (*Detail, error) {
	if _, err := s.openActive(ctx, a, convID); err != nil {
		return nil, err
	}
	if len(userIDs) == 0 {
		return nil, chatvault.Invalidf("members", "name at least one user id to add")
	}
	if len(userIDs) > MaxMembersPerRequest {
		return nil, chatvault.Invalidf("members", "at most %d members per request", MaxMembersPerRequest)
	}
	for _, id := range userIDs {
		if !validID(id) {
			return nil, chatvault.Invalidf("members", "%q is not a user id", id)
		}
	}
	if _, err := s.store.AddMembers(ctx, a.OrgID, convID, userIDs, s.clock.Now()); err != nil {
		return nil, err
	}
	return s.Conversation(ctx, a, convID)
}

// RemoveMember removes a user from a group: the owner may remove anyone, everyone may remove
// themselves (leave).
func (s *Service) RemoveMember(ctx context.Context, a chatvault.Actor, convID, userID string) error {
	acc, err := s.openActive(ctx, a, convID)
	if err != nil {
		return err
	}
	if userID != a.UserID && acc.part.Role != chatvault.MemberOwner {
		return chatvault.Errorf(chatvault.EFORBIDDEN, "only the group's owner may remove other members")
	}
	return s.store.RemoveMember(ctx, a.OrgID, convID, userID, s.clock.Now())
}

// MarkRead moves the actor's read marker up to seq (never down) and returns it.
func (s *Service) MarkRead(ctx context.Context, a chatvault.Actor, convID string, seq int64) (int64, error) {
	if seq < 0 {
		return 0, chatvault.Invalidf("seq", "seq must not be negative")
	}
	if _, err := s.open(ctx, a, convID); err != nil {
		return 0, err
	}
	return s.store.SetReadSeq(ctx, a.OrgID, convID, a.UserID, seq, s.clock.Now())
}

// ClearHistory hides everything sent so far from the actor, on all their devices. The server copy
// stays until retention ends.
func (s *Service) ClearHistory(ctx context.Context, a chatvault.Actor, convID string) (int64, error) {
	if _, err := s.open(ctx, a, convID); err != nil {
		return 0, err
	}
	return s.store.ClearHistory(ctx, a.OrgID, convID, a.UserID, s.clock.Now())
}
