package http

import (
	"net/http"

	"github.com/chatvault/chatvault"
)

func (s *Server) listRules(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	rules, err := s.retention.Rules(r.Context(), a)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"rules": rules})
	return nil
}

// RuleRequest is the body of POST /api/v1/admin/retention/rules.
type RuleRequest struct {
	Pattern string `json:"pattern"`
	Regex   bool   `json:"regex"`
}

func (s *Server) createRule(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req RuleRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	rule, err := s.retention.CreateRule(r.Context(), a, req.Pattern, req.Regex)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, rule)
	return nil
}

func (s *Server) deleteRule(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	if err := s.retention.DeleteRule(r.Context(), a, r.PathValue("rule_id")); err != nil {
		return err
	}
	return noContent(w)
}

// ImportantRequest is the body of PUT .../messages/{id}/important.
type ImportantRequest struct {
	Important bool `json:"important"`
}

func (s *Server) flagMessage(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req ImportantRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	m, err := s.retention.Flag(r.Context(), a, r.PathValue("conversation_id"), r.PathValue("message_id"), req.Important)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"message_id": m.ID, "important": m.Important})
	return nil
}

func (s *Server) star(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	return s.setStar(w, r, a, true)
}

func (s *Server) unstar(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	return s.setStar(w, r, a, false)
}

func (s *Server) setStar(w http.ResponseWriter, r *http.Request, a chatvault.Actor, on bool) error {
	m, err := s.chat.Star(r.Context(), a, r.PathValue("conversation_id"), r.PathValue("message_id"), on)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}
