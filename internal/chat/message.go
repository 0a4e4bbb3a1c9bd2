package chat

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatvault/chatvault"
)

// SendRequest is a new text message. ClientMsgID makes retries safe: the same id from the same
// sender in the same conversation returns the first message instead of storing another.
type SendRequest struct {
	ClientMsgID string
	Text        string
	ReplyTo     string
}

// MaxClientMsgID bounds client_msg_id.
const MaxClientMsgID = 128

// Send stores a message and returns it once it is durable; created is false for a retry.
func (s *Service) Send(ctx context.Context, a chatvault.Actor, convID string, req SendRequest) (*chatvault.Message, bool, error) {
	if err := validClientMsgID(req.ClientMsgID); err != nil {
		return nil, false, err
	}
	if err := validMessageText(req.Text); err != nil {
		return nil, false, err
	}
	if !validID(convID) {
		return nil, false, chatvault.Errorf(chatvault.ENOTFOUND, "conversation %s not found", convID)
	}
	// Membership is checked by the store inside the write (never a member: not found; a former
	// member: forbidden), so a plain send reads nothing first. A reply must point at a message the
	// sender can see, which needs the read path.
	if req.ReplyTo != "" {
		acc, err := s.openActive(ctx, a, convID)
		if err != nil {
			return nil, false, err
		}
		if _, err := s.visibleMessage(ctx, acc, req.ReplyTo); err != nil {
			return nil, false, chatvault.Invalidf("reply_to", "reply_to names no message you can see in this conversation")
		}
	}
	m := &chatvault.Message{OrgID: a.OrgID, ID: newID(), ConversationID: convID, SenderID: a.UserID,
		ClientMsgID: req.ClientMsgID, Kind: chatvault.KindText, Text: req.Text, ReplyTo: req.ReplyTo, SentAt: s.clock.Now()}
	if s.cfg.Classifier != nil {
		importance, err := s.cfg.Classifier.Classify(ctx, a.OrgID, req.Text)
		if err != nil {
			return nil, false, err
		}
		m.Importance, m.Important = importance, importance != 0
	}
	created, err := s.store.AppendMessage(ctx, m)
	if err != nil {
		return nil, false, err
	}
	if !created && (m.Text != req.Text || m.ReplyTo != req.ReplyTo) && m.State == chatvault.StateLive && m.Version == 1 {
		return nil, false, &chatvault.Error{Code: chatvault.ECONFLICT, Field: "client_msg_id",
			Message: "client_msg_id was already used for a different message in this conversation"}
	}
	return redact(m), created, nil
}

func validClientMsgID(id string) error {
	if id == "" {
		return chatvault.Invalidf("client_msg_id", "client_msg_id is required: a unique id the client makes per message, so a retry is not stored twice")
	}
	if len(id) > MaxClientMsgID || !utf8.ValidString(id) || strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return chatvault.Invalidf("client_msg_id", "client_msg_id is at most %d bytes of printable UTF-8", MaxClientMsgID)
	}
	return nil
}

func validMessageText(text string) error {
	if strings.TrimSpace(text) == "" {
		return chatvault.Invalidf("text", "text is required and may not be blank")
	}
	if !utf8.ValidString(text) {
		return chatvault.Invalidf("text", "text is not valid UTF-8")
	}
	if strings.ContainsRune(text, 0) {
		return chatvault.Invalidf("text", "text may not contain NUL")
	}
	return nil
}

// Page selects messages by seq: the Limit messages just before Before, just after After, or
// around Around (Around itself included when visible). At most one is set; none means the newest page.
type Page struct {
	Before *int64
	After  *int64
	Around *int64
	Limit  int
}

// Paging limits.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 200
)

// MessagePage is one page, in ascending seq order.
type MessagePage struct {
	Messages []*chatvault.Message `json:"messages"`
	// HasMore says whether more visible messages lie in the paging direction (either side for around).
	HasMore       bool `json:"has_more"`
	HasMoreBefore bool `json:"has_more_before"`
	HasMoreAfter  bool `json:"has_more_after"`
}

// Messages returns one page of what the actor may see of a conversation.
func (s *Service) Messages(ctx context.Context, a chatvault.Actor, convID string, p Page) (*MessagePage, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	acc, err := s.open(ctx, a, convID)
	if err != nil {
		return nil, err
	}
	page := &MessagePage{}
	switch {
	case p.After != nil:
		ms, err := s.read(ctx, acc, *p.After, 0, false, p.Limit+1)
		if err != nil {
			return nil, err
		}
		page.HasMoreAfter = len(ms) > p.Limit
		page.Messages = ms[:min(len(ms), p.Limit)]
		page.HasMore = page.HasMoreAfter
	case p.Around != nil:
		half := p.Limit / 2
		var older []*chatvault.Message
		if *p.Around > 0 { // nothing lies before seq 0 (and a zero bound would mean "no bound")
			if older, err = s.read(ctx, acc, 0, *p.Around, true, half+1); err != nil {
				return nil, err
			}
		}
		page.HasMoreBefore = len(older) > half
		older = older[:min(len(older), half)]
		rest := p.Limit - len(older)
		newer, err := s.read(ctx, acc, *p.Around-1, 0, false, rest+1)
		if err != nil {
			return nil, err
		}
		page.HasMoreAfter = len(newer) > rest
		page.Messages = append(reversed(older), newer[:min(len(newer), rest)]...)
		page.HasMore = page.HasMoreBefore || page.HasMoreAfter
	default:
		var before int64
		if p.Before != nil {
			before = *p.Before
			if before == 0 {
				page.Messages = []*chatvault.Message{}
				return page, nil // nothing lies before the first seq
			}
		}
		ms, err := s.read(ctx, acc, 0, before, true, p.Limit+1)
		if err != nil {
			return nil, err
		}
		page.HasMoreBefore = len(ms) > p.Limit
		page.Messages = reversed(ms[:min(len(ms), p.Limit)])
		page.HasMore = page.HasMoreBefore
	}
	if page.Messages == nil {
		page.Messages = []*chatvault.Message{}
	}
	return page, nil
}

func (p *Page) validate() error {
	set := 0
	for _, v := range []struct {
		name string
		val  *int64
	}{{"before_seq", p.Before}, {"after_seq", p.After}, {"around_seq", p.Around}} {
		if v.val == nil {
			continue
		}
		if *v.val < 0 {
			return chatvault.Invalidf(v.name, "%s must not be negative", v.name)
		}
		set++
	}
	if set > 1 {
		return chatvault.Invalidf("before_seq", "give at most one of before_seq, after_seq and around_seq")
	}
	switch {
	case p.Limit == 0:
		p.Limit = DefaultPageLimit
	case p.Limit < 0 || p.Limit > MaxPageLimit:
		return chatvault.Invalidf("limit", "limit must be between 1 and %d", MaxPageLimit)
	}
	return nil
}

func reversed(ms []*chatvault.Message) []*chatvault.Message {
	out := make([]*chatvault.Message, len(ms))
	for i, m := range ms {
		out[len(ms)-1-i] = m
	}
	return out
}

// visibleMessage finds one message the participant may see, through the read path.
func (s *Service) visibleMessage(ctx context.Context, acc *access, msgID string) (*chatvault.Message, error) {
	notFound := chatvault.Errorf(chatvault.ENOTFOUND, "message %s not found", msgID)
	if !validID(msgID) {
		return nil, notFound
	}
	m, err := s.store.FindMessageByID(ctx, acc.conv.OrgID, acc.conv.ID, msgID)
	if err != nil {
		return nil, err
	}
	ms, err := s.read(ctx, acc, m.Seq-1, m.Seq+1, false, 1)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, notFound
	}
	return ms[0], nil
}

// Message returns one message the actor may see.
func (s *Service) Message(ctx context.Context, a chatvault.Actor, convID, msgID string) (*chatvault.Message, error) {
	acc, err := s.open(ctx, a, convID)
	if err != nil {
		return nil, err
	}
	return s.visibleMessage(ctx, acc, msgID)
}

// Versions returns every text a message has had, oldest first, the current one last. A recalled
// message has no visible history.
func (s *Service) Versions(ctx context.Context, a chatvault.Actor, convID, msgID string) ([]*chatvault.MessageVersion, error) {
	m, err := s.Message(ctx, a, convID, msgID)
	if err != nil {
		return nil, err
	}
	if m.State != chatvault.StateLive {
		return []*chatvault.MessageVersion{}, nil
	}
	vs, err := s.store.FindMessageVersions(ctx, a.OrgID, convID, m.Seq)
	if err != nil {
		return nil, err
	}
	current := m.SentAt
	if m.EditedAt != nil {
		current = *m.EditedAt
	}
	return append(vs, &chatvault.MessageVersion{Version: m.Version, Text: m.Text, CreatedAt: current}), nil
}

// Edit replaces the text of the actor's own message, keeping the old text as a version. A non-zero
// expectVersion makes the edit conditional on the message still being at that version.
func (s *Service) Edit(ctx context.Context, a chatvault.Actor, convID, msgID, text string, expectVersion int) (*chatvault.Message, error) {
	if err := validMessageText(text); err != nil {
		return nil, err
	}
	m, err := s.ownMessage(ctx, a, convID, msgID, "edit")
	if err != nil {
		return nil, err
	}
	if m.Kind != chatvault.KindText {
		return nil, chatvault.Errorf(chatvault.ECONFLICT, "only text messages can be edited")
	}
	if expectVersion == 0 {
		expectVersion = m.Version
	}
	if m.State == chatvault.StateLive && m.Version == expectVersion && m.Text == text {
		return m, nil // nothing changes, so no new version
	}
	return s.store.EditMessage(ctx, a.OrgID, convID, m.Seq, expectVersion, text, s.clock.Now())
}

// Recall withdraws the actor's own message from everyone, within the recall window.
func (s *Service) Recall(ctx context.Context, a chatvault.Actor, convID, msgID string) (*chatvault.Message, error) {
	m, err := s.ownMessage(ctx, a, convID, msgID, "recall")
	if err != nil {
		return nil, err
	}
	if m.State != chatvault.StateLive {
		return nil, chatvault.Errorf(chatvault.ECONFLICT, "the message is already %s", m.State)
	}
	window := s.cfg.RecallWindow
	if p, err := s.store.FindPolicy(ctx, a.OrgID); err != nil {
		return nil, err
	} else if p.RecallWindowSeconds > 0 {
		window = time.Duration(p.RecallWindowSeconds) * time.Second
	}
	if age := s.clock.Now().Sub(m.SentAt); age > window {
		return nil, chatvault.Errorf(chatvault.ECONFLICT, "a message can be recalled only within %s of sending", window)
	}
	recalled, err := s.store.RecallMessage(ctx, a.OrgID, convID, m.Seq, s.clock.Now())
	if err != nil {
		return nil, err
	}
	return redact(recalled), nil
}

func (s *Service) ownMessage(ctx context.Context, a chatvault.Actor, convID, msgID, verb string) (*chatvault.Message, error) {
	acc, err := s.openActive(ctx, a, convID)
	if err != nil {
		return nil, err
	}
	m, err := s.visibleMessage(ctx, acc, msgID)
	if err != nil {
		return nil, err
	}
	if m.SenderID != a.UserID {
		return nil, chatvault.Errorf(chatvault.EFORBIDDEN, "only the sender may %s a message", verb)
	}
	return m, nil
}

// Hide hides one message from the actor on all their devices; others still see it. Hiding a
// message twice is not an error.
func (s *Service) Hide(ctx context.Context, a chatvault.Actor, convID, msgID string) error {
	acc, err := s.open(ctx, a, convID)
	if err != nil {
		return err
	}
	notFound := chatvault.Errorf(chatvault.ENOTFOUND, "message %s not found", msgID)
	if !validID(msgID) {
		return notFound
	}
	m, err := s.store.FindMessageByID(ctx, a.OrgID, convID, msgID)
	if err != nil {
		return err
	}
	if !acc.part.Sees(m.Seq) {
		return notFound
	}
	return s.store.HideMessage(ctx, a.OrgID, convID, a.UserID, m.Seq, s.clock.Now())
}

// Star marks (or unmarks) a message the actor can see as important to them; a starred message is
// kept in the important tier while any member's star is on it.
func (s *Service) Star(ctx context.Context, a chatvault.Actor, convID, msgID string, on bool) (*chatvault.Message, error) {
	m, err := s.Message(ctx, a, convID, msgID)
	if err != nil {
		return nil, err
	}
	if m.State != chatvault.StateLive {
		return nil, chatvault.Errorf(chatvault.ECONFLICT, "only a live message can be starred")
	}
	starred, err := s.store.SetImportance(ctx, a.OrgID, convID, m.Seq, a.UserID, chatvault.ImportantByStar, on, s.clock.Now())
	if err != nil {
		return nil, err
	}
	return redact(starred), nil
}
