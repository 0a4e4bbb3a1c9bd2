package chat

import (
	"context"
	"strconv"
	"strings"

	"github.com/chatvault/chatvault"
)

// SyncResult is what a device needs to catch up: the conversations that changed (with their
// current state; the device fetches the seq range after the highest seq it has, up to LastSeq),
// the other events it may see, and the cursor to resume from.
type SyncResult struct {
	Cursor        string            `json:"cursor"`
	Initial       bool              `json:"initial"`
	Conversations []*Summary        `json:"conversations"`
	Events        []chatvault.Event `json:"events"`
}

// MaxSyncConversations bounds an incremental sync; past it the device is told to start over.
const MaxSyncConversations = 2000

const cursorPrefix = "c1."

// EncodeCursor makes the opaque cursor for an event number.
func EncodeCursor(eventID int64) string { return cursorPrefix + strconv.FormatInt(eventID, 36) }

// DecodeCursor parses a cursor made by EncodeCursor. A malformed one is EINVALID naming "since".
func DecodeCursor(s string) (int64, error) {
	raw, ok := strings.CutPrefix(s, cursorPrefix)
	n, err := strconv.ParseInt(raw, 36, 64)
	if !ok || err != nil || n < 0 || raw != strconv.FormatInt(n, 36) {
		return 0, chatvault.Invalidf("since", "since is not a cursor this server issued: start over with an initial sync (omit since)")
	}
	return n, nil
}

// InitialSync lists every conversation of the actor with its state, and the cursor from which
// later changes follow. The cursor is read first, so nothing that happens during the listing is lost
// (at worst it is reported twice).
func (s *Service) InitialSync(ctx context.Context, a chatvault.Actor) (*SyncResult, error) {
	cursor, err := s.store.LastEventID(ctx)
	if err != nil {
		return nil, err
	}
	convs, err := s.Conversations(ctx, a)
	if err != nil {
		return nil, err
	}
	return &SyncResult{Cursor: EncodeCursor(cursor), Initial: true, Conversations: convs, Events: []chatvault.Event{}}, nil
}

// Sync returns what changed for the actor after since (an event number).
func (s *Service) Sync(ctx context.Context, a chatvault.Actor, since int64) (*SyncResult, error) {
	ch, err := s.store.FindChanges(ctx, a.OrgID, a.UserID, since, MaxSyncConversations)
	if err != nil {
		return nil, err
	}
	res := &SyncResult{Cursor: EncodeCursor(ch.Cursor), Conversations: []*Summary{}, Events: []chatvault.Event{}}
	parts := make(map[string]*chatvault.Participant, len(ch.Conversations))
	for _, uc := range ch.Conversations {
		parts[uc.Conversation.ID] = &uc.Participant
	}
	withEvents := map[string]bool{}
	for _, ev := range ch.Events {
		if visibleEvent(parts[ev.ConversationID], a.UserID, ev) {
			res.Events = append(res.Events, ev)
			withEvents[ev.ConversationID] = true
		}
	}
	for _, uc := range ch.Conversations {
		if !withEvents[uc.Conversation.ID] && !memberAfter(&uc.Participant, since) {
			continue // it changed only after this user left
		}
		sum, err := s.summarize(ctx, uc, s.windowStart(a))
		if err != nil {
			return nil, err
		}
		res.Conversations = append(res.Conversations, sum)
	}
	return res, nil
}

// visibleEvent applies membership to a recorded event: per-user events are already the user's own;
// message events follow the seq windows; membership events follow the event windows, and a user
// always learns of their own joining and leaving.
func visibleEvent(p *chatvault.Participant, userID string, ev chatvault.Event) bool {
	if p == nil {
		return false
	}
	switch {
	case ev.PerUser():
		return true
	case ev.Kind == chatvault.EventEdited || ev.Kind == chatvault.EventRecalled:
		return p.Sees(ev.Seq)
	case ev.Kind == chatvault.EventPurged || ev.Kind == chatvault.EventRestored:
		for _, r := range p.VisibleRanges(ev.Seq) {
			if r.UpTo >= ev.FromSeq { // the range overlaps what the participant may see
				return true
			}
		}
		return false
	case ev.Subject == userID:
		return true
	}
	for _, sp := range p.Spans {
		if ev.ID > sp.FromEvent && (sp.ToEvent == nil || ev.ID <= *sp.ToEvent) {
			return true
		}
	}
	return false
}

// memberAfter reports whether the participant was a member at some point after event since.
func memberAfter(p *chatvault.Participant, since int64) bool {
	for _, sp := range p.Spans {
		if sp.ToEvent == nil || *sp.ToEvent > since {
			return true
		}
	}
	return false
}
