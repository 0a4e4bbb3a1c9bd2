package chatvault

import (
	"context"
	"time"
)

// EventKind names a change that devices must learn about.
type EventKind string

const (
	EventMessage       EventKind = "message"        // a new message (carried in Event.Message)
	EventEdited        EventKind = "message_edited" // a message got a new version
	EventRecalled      EventKind = "message_recalled"
	EventHidden        EventKind = "message_hidden" // for one user only
	EventCleared       EventKind = "history_cleared"
	EventRead          EventKind = "read"          // the user's read marker moved (synced across their devices)
	EventMemberJoined  EventKind = "member_joined" // UserID joined
	EventMemberLeft    EventKind = "member_left"   // UserID left or was removed
	EventCreated       EventKind = "conversation_created"
	EventDeviceRevoked EventKind = "device_revoked"    // close that device's live connections
	EventUserDisabled  EventKind = "user_disabled"     // close every live connection of the user
	EventPurged        EventKind = "messages_purged"   // messages in [FromSeq, Seq] expired or were destroyed: refetch that range
	EventRestored      EventKind = "messages_restored" // expired messages in [FromSeq, Seq] are back: refetch that range
)

// Event is one committed change, numbered by a single counter that grows in commit order, so a
// device that has seen everything up to event N resumes from N. Events with a Subject are for that
// user alone; the others concern every member who can see Seq (or, for membership changes, the
// conversation as a whole).
type Event struct {
	ID             int64     `json:"id"`
	OrgID          string    `json:"-"`
	Kind           EventKind `json:"type"`
	ConversationID string    `json:"conversation_id,omitempty"`
	// Subject is the one user an event is for (hide, clear, read), or the user a membership event
	// is about; empty for events every member sees.
	Subject   string    `json:"user_id,omitempty"`
	Seq       int64     `json:"seq,omitempty"`
	FromSeq   int64     `json:"from_seq,omitempty"` // range events: the first seq of the range
	MessageID string    `json:"message_id,omitempty"`
	DeviceID  string    `json:"device_id,omitempty"`
	At        time.Time `json:"at"`

	// Message is the new message, for EventMessage only; never stored in the event log.
	Message *Message `json:"message,omitempty"`
}

// PerUser reports whether only Subject should learn of the event.
func (e *Event) PerUser() bool {
	switch e.Kind {
	case EventHidden, EventCleared, EventRead, EventDeviceRevoked, EventUserDisabled:
		return true
	}
	return false
}

// Changes is what changed for one user after a cursor, read from one consistent snapshot.
type Changes struct {
	// Cursor is the highest event number the snapshot covers: the next cursor.
	Cursor int64
	// Conversations holds every conversation of the user that has something after the cursor: new
	// messages, another event, or a change to the user's own markers. Visibility is not applied.
	Conversations []*UserConversation
	// Events holds the recorded events of those conversations after the cursor that are for
	// everyone or for this user, in order. Visibility is not applied.
	Events []Event
}

// FeedStore reads the change feed.
type FeedStore interface {
	// FindChanges returns the user's changes in (since, now]. When more than maxConversations
	// changed it returns ERESYNC: the client should start over with an initial sync.
	FindChanges(ctx context.Context, orgID, userID string, since int64, maxConversations int) (*Changes, error)
	// LastEventID returns the number of the last committed event.
	LastEventID(ctx context.Context) (int64, error)
}

// EventSink receives every committed batch of events, in commit order, from the store. It must not
// block for long: it runs on the store's write path.
type EventSink func([]Event)
