package http

import (
	"net/http"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/retention"
)

func (s *Server) listHolds(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	hs, err := s.retention.Holds(r.Context(), a)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"holds": hs})
	return nil
}

// HoldRequest is the body of POST /api/v1/compliance/holds.
type HoldRequest struct {
	Name          string   `json:"name"`
	Reason        string   `json:"reason"`
	Custodians    []string `json:"custodians"`
	Conversations []string `json:"conversations"`
	From          string   `json:"from"`
	To            string   `json:"to"`
}

func (s *Server) createHold(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req HoldRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	hr := retention.HoldRequest{Name: req.Name, Reason: req.Reason, Custodians: req.Custodians, Conversations: req.Conversations}
	for _, t := range []struct {
		field, v string
		dst      **time.Time
	}{{"from", req.From, &hr.From}, {"to", req.To, &hr.To}} {
		if t.v != "" {
			v, err := parseTime(t.field, t.v)
			if err != nil {
				return err
			}
			*t.dst = &v
		}
	}
	h, err := s.retention.CreateHold(r.Context(), a, hr)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, h)
	return nil
}

func (s *Server) releaseHold(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req ReasonRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	h, err := s.retention.ReleaseHold(r.Context(), a, r.PathValue("hold_id"), req.Reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}
