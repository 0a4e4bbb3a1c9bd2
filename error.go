package chatvault

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. Transports map each to one status in one place; anything that is not an *Error is
// internal and its text is never shown to clients.
const (
	EINVALID      = "invalid"           // malformed or out-of-range input
	EUNAUTHORIZED = "unauthorized"      // no valid credentials
	EFORBIDDEN    = "forbidden"         // authenticated, but not allowed
	ENOTFOUND     = "not_found"         // absent, or not visible to the caller
	ECONFLICT     = "conflict"          // the request contradicts stored state
	ETOOLARGE     = "too_large"         // a body or field over its limit
	EUNAVAILABLE  = "unavailable"       // the server cannot serve now (shutting down, store closed)
	EFULL         = "storage_full"      // the store's disk is full: nothing was stored; retry once space is freed
	EINTERNAL     = "internal"          // a bug or an infrastructure failure
	ERESYNC       = "resync_required"   // a sync cursor too old or foreign: start over with an initial sync
	ETOOMANY      = "too_many_requests" // throttled or locked out: retry after Error.RetryAfter
)

// Error is a domain error whose Message is safe to show to the client that caused it.
type Error struct {
	Code    string
	Message string
	// Field names the offending input field, when there is one (for EINVALID and ETOOLARGE).
	Field string
	// RetryAfter, for ETOOMANY, is how long the client should wait before trying again.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("chatvault error: code=%s field=%s message=%s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("chatvault error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalidf returns an EINVALID error that names the offending field.
func Invalidf(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for any other error, and
// "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// ErrorMessage returns the client-safe message of err: the *Error's message, or "internal error".
func ErrorMessage(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Message
	default:
		return "internal error"
	}
}

// ErrorField returns the field named by the first *Error in err's chain, if any.
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}
