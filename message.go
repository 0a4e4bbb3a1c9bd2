package chatvault

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/google/uuid"
)

// MessageKind says what a message's body holds.
type MessageKind string

const (
	KindText   MessageKind = "text"
	KindFile   MessageKind = "file"
	KindSystem MessageKind = "system"
)

// clientIDSpace is the namespace of ClientMessageID's name-based UUIDs.
var clientIDSpace = uuid.MustParse("5b0f3c2e-6a51-4c3e-9d1a-7e2f43a8c901")

// ClientMessageID is the id of the message a sender sends with clientMsgID to a conversation:
// a name-based UUID (version 8, SHA-256 of the four values), so a retry of the same send names
// the same message. The store finds retries through the message-id index it keeps anyway, and
// writes no index of client ids per message (docs/decisions.md, "Message ids from client ids").
func ClientMessageID(orgID, convID, senderID, clientMsgID string) string {
	name := make([]byte, 0, len(orgID)+len(convID)+len(senderID)+len(clientMsgID)+4*binary.MaxVarintLen64)
	for _, v := range []string{orgID, convID, senderID, clientMsgID} {
		name = append(binary.AppendUvarint(name, uint64(len(v))), v...) // length-prefixed: unambiguous
	}
	return uuid.NewHash(sha256.New(), clientIDSpace, name, 8).String()
}

// MessageState is where a message is in its life.
type MessageState string

const (
	StateLive     MessageState = "live"
	StateRecalled MessageState = "recalled" // withdrawn by its sender: nobody sees its content
	StatePurged   MessageState = "purged"   // destroyed by policy: only the tombstone (id, conversation, seq) remains
)

// Message is one message in a conversation. ID is time-ordered and unique; Seq is gap-free and
// monotonic within the conversation.
type Message struct {
	OrgID          string       `json:"-"`
	ID             string       `json:"id"`
	ConversationID string       `json:"conversation_id"`
	Seq            int64        `json:"seq"`
	SenderID       string       `json:"sender_id"`
	ClientMsgID    string       `json:"client_msg_id,omitempty"`
	Kind           MessageKind  `json:"kind"`
	Text           string       `json:"text,omitempty"`
	ReplyTo        string       `json:"reply_to,omitempty"`
	SentAt         time.Time    `json:"sent_at"`
	EditedAt       *time.Time   `json:"edited_at,omitempty"`
	Version        int          `json:"version"`
	State          MessageState `json:"state"`
	StateAt        *time.Time   `json:"state_changed_at,omitempty"`
	// Important says the message is in the important tier (a rule, an admin or a member's star).
	Important bool `json:"important"`

	// Importance holds the ImportantBy* flags; ExpiredAt is when retention expired the message (it
	// is gone for every reader and is destroyed after the grace window).
	Importance int        `json:"-"`
	ExpiredAt  *time.Time `json:"-"`
}

// MessageVersion is an earlier text of an edited message, kept as its history.
type MessageVersion struct {
	Version   int       `json:"version"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"created_at"` // when this version was written (sent or edited)
}

// MessageQuery reads a seq range of one conversation: After < seq < Before (Before 0 = no bound).
type MessageQuery struct {
	After  int64
	Before int64
	Desc   bool // newest first, so Limit keeps the newest of the range
	Limit  int
	// HiddenFor leaves out the messages this user hid for themselves.
	HiddenFor string
	// SentFrom leaves out messages sent before it (the reader's own visibility window); zero: none.
	SentFrom time.Time
}

// MessageCount counts the messages with After < seq <= UpTo, not sent by ExcludeSender, not hidden by
// HiddenFor, and live; it stops counting at Limit.
type MessageCount struct {
	After         int64
	UpTo          int64
	ExcludeSender string
	HiddenFor     string
	SentFrom      time.Time
	Limit         int
}

// MessageStore persists messages.
type MessageStore interface {
	// AppendMessage allocates the next seq and stores m, durably, before it returns. When the sender
	// already sent m.ClientMsgID in this conversation it fills m with that message and returns
	// created=false. ENOTFOUND if the sender was never a member (the conversation may as well not
	// exist), EFORBIDDEN if they no longer are; EINVALID (field "reply_to") if ReplyTo names no
	// message of the conversation.
	AppendMessage(ctx context.Context, m *Message) (created bool, err error)
	FindMessages(ctx context.Context, orgID, convID string, q MessageQuery) ([]*Message, error)
	FindMessageByID(ctx context.Context, orgID, convID, msgID string) (*Message, error)
	CountMessages(ctx context.Context, orgID, convID string, q MessageCount) (int, error)
	// EditMessage replaces the text of a live message whose version is still expectVersion, keeping
	// the old text as a version. ECONFLICT if the message changed or is not live.
	EditMessage(ctx context.Context, orgID, convID string, seq int64, expectVersion int, text string, at time.Time) (*Message, error)
	// RecallMessage marks a live message recalled. ECONFLICT if it is not live.
	RecallMessage(ctx context.Context, orgID, convID string, seq int64, at time.Time) (*Message, error)
	FindMessageVersions(ctx context.Context, orgID, convID string, seq int64) ([]*MessageVersion, error)
	// HideMessage hides one message from one user (all their devices); hiding twice is not an error.
	HideMessage(ctx context.Context, orgID, convID, userID string, seq int64, at time.Time) error
}

// Store is everything a storage engine provides. Each engine passes internal/storetest.
type Store interface {
	OrgStore
	UserStore
	DeviceStore
	ConversationStore
	MessageStore
	FeedStore
	RetentionStore
	SearchStore
	ExportJobStore
	// Ping returns nil when the store is open and can take a write.
	Ping(ctx context.Context) error
	Close() error
}
