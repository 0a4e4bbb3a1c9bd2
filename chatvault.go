// Package chatvault holds the domain of the chat-history server: the types every layer speaks
// (orgs, users, devices, conversations, messages), the typed errors transports map to statuses, and
// the store interfaces that each storage engine implements. It imports no driver and no transport.
//
// The rules that act on these types live in internal packages named for what they do (account,
// chat); storage engines live in internal/sqlite (and later internal/postgres); transports in
// internal/http.
package chatvault

import "time"

// Clock tells the time. Every rule that depends on time (recall windows, retention, join times)
// reads it from an injected Clock so tests can move through simulated years.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock, truncated to milliseconds because that is what the stores keep:
// a value read back must equal the value written.
type SystemClock struct{}

// Now returns the current UTC time at millisecond precision.
func (SystemClock) Now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
