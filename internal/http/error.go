package http

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/chatvault/chatvault"
)

// Transport-only error codes, for failures that happen before a request reaches the domain.
const (
	codeMethodNotAllowed = "method_not_allowed"
	codeUnsupportedMedia = "unsupported_media_type"
)

// statusOf maps every error code to its HTTP status: the one place where that happens.
var statusOf = map[string]int{
	chatvault.EINVALID:      http.StatusBadRequest,
	chatvault.EUNAUTHORIZED: http.StatusUnauthorized,
	chatvault.EFORBIDDEN:    http.StatusForbidden,
	chatvault.ENOTFOUND:     http.StatusNotFound,
	chatvault.ECONFLICT:     http.StatusConflict,
	chatvault.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	chatvault.EUNAVAILABLE:  http.StatusServiceUnavailable,
	chatvault.EFULL:         http.StatusInsufficientStorage,
	chatvault.ERESYNC:       http.StatusGone,
	chatvault.ETOOMANY:      http.StatusTooManyRequests,
	chatvault.EINTERNAL:     http.StatusInternalServerError,
	codeMethodNotAllowed:    http.StatusMethodNotAllowed,
	codeUnsupportedMedia:    http.StatusUnsupportedMediaType,
}

// ErrorBody is the JSON every error response carries.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail names the problem: a stable code, a message for people and, for bad input, the field.
type ErrorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Field     string `json:"field,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// writeError answers a request with err. Internal errors are logged with the request id and shown
// to the client only as "internal error".
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := chatvault.ErrorCode(err)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		code = chatvault.EUNAVAILABLE
		err = chatvault.Errorf(chatvault.EUNAVAILABLE, "the request was cancelled or timed out")
	}
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	id := requestID(r.Context())
	if status >= 500 {
		s.logger.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="chatvault"`)
	}
	var de *chatvault.Error
	if errors.As(err, &de) && de.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((de.RetryAfter+time.Second-1)/time.Second), 10))
	}
	writeJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: chatvault.ErrorMessage(err),
		Field: chatvault.ErrorField(err), RequestID: id}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
