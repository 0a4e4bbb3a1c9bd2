package http

import (
	"net/http"
	"time"

	"github.com/chatvault/chatvault"
)

// DeletionRequest is the body of POST /api/v1/admin/deletions/preview: a conversation, a user
// (an erasure of what they sent), a time range, or a combination.
type DeletionRequest struct {
	ConversationID string `json:"conversation_id"`
	UserID         string `json:"user_id"`
	From           string `json:"from"`
	To             string `json:"to"`
	Reason         string `json:"reason"`
}

func (s *Server) previewDeletion(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req DeletionRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	f := chatvault.BatchFilter{ConversationID: req.ConversationID, SenderID: req.UserID}
	for _, t := range []struct {
		field, v string
		dst      **time.Time
	}{{"from", req.From, &f.From}, {"to", req.To, &f.To}} {
		if t.v != "" {
			v, err := parseTime(t.field, t.v)
			if err != nil {
				return err
			}
			*t.dst = &v
		}
	}
	p, err := s.retention.PreviewDeletion(r.Context(), a, f, req.Reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *Server) confirmDeletion(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	res, err := s.retention.ConfirmDeletion(r.Context(), a, r.PathValue("token"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
