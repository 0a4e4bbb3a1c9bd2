package chatvault

import (
	"context"
	"time"
)

// SearchQuery asks a store for the candidates of a search: live messages of one org whose index
// entries hold the tokens, newest first. Tokens are internal/search's index tokens in plain text;
// the store keys them (HMAC with the org's index key) before it looks them up, as it did when it
// indexed the messages.
type SearchQuery struct {
	OrgID string
	// Tokens: every element must hold (AND); within it any alternative (OR); within that every
	// token (AND). Must not be empty.
	Tokens [][][]string
	// ConversationIDs restricts the search; empty: the whole org.
	ConversationIDs []string
	SenderID        string
	// From and To bound sent_at: From <= sent_at < To; zero: no bound.
	From, To time.Time
	// HiddenFor leaves out the messages this user hid for themselves.
	HiddenFor string
	// SeqAfter leaves out, per conversation, the messages with seq <= the bound: what a reader
	// cannot see because they joined later or cleared their history. An optimisation only (the
	// reader's visibility is still checked): it keeps the store from decrypting what would be
	// thrown away.
	SeqAfter map[string]int64
	// Before continues after a candidate: only candidates with Doc < Before; 0: from the newest.
	Before int64
	Limit  int
}

// SearchCandidate is a live, unexpired message whose index entries match the tokens. It still has
// to pass the exact check and the reader's visibility: a keyed token can collide, and a pair of
// characters may be present without the whole term.
type SearchCandidate struct {
	// Doc orders candidates (newest first) and is the paging position; it follows commit order.
	Doc     int64
	Message *Message
}

// SearchStore finds search candidates. Index entries are written with the message (AppendMessage,
// EditMessage) and removed in the same transaction as the message's content (recall, purge,
// batch delete); hides, cleared history and membership are applied by the reader.
type SearchStore interface {
	SearchMessages(ctx context.Context, q SearchQuery) ([]SearchCandidate, error)
}
