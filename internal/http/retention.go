package http

import (
	"net/http"
	"time"

	"github.com/chatvault/chatvault"
)

// retentionRoutes lists the retention, compliance and audit endpoints. Their handlers live by
// noun: this file (policy, overrides, users' own windows), rule.go (importance rules, flags,
// stars), hold.go, purge.go (runs and restores), deletion.go (batch deletes) and audit.go.
func (s *Server) retentionRoutes() {
	s.authed("GET /api/v1/admin/retention/policy", s.getPolicy)
	s.authed("PUT /api/v1/admin/retention/policy", s.putPolicy)
	s.authed("POST /api/v1/admin/retention/lock", s.lockPolicy)
	s.authed("GET /api/v1/admin/retention/preview", s.previewPolicy)
	s.authed("POST /api/v1/admin/retention/preview", s.previewProposed)
	s.authed("POST /api/v1/admin/retention/run", s.runRetention)
	s.authed("GET /api/v1/admin/retention/runs", s.listRuns)
	s.authed("POST /api/v1/admin/retention/restore", s.restoreExpired)
	s.authed("GET /api/v1/admin/retention/rules", s.listRules)
	s.authed("POST /api/v1/admin/retention/rules", s.createRule)
	s.authed("DELETE /api/v1/admin/retention/rules/{rule_id}", s.deleteRule)
	s.authed("PUT /api/v1/admin/conversations/{conversation_id}/retention", s.putConversationRetention)
	s.authed("PUT /api/v1/admin/conversations/{conversation_id}/messages/{message_id}/important", s.flagMessage)
	s.authed("POST /api/v1/admin/deletions/preview", s.previewDeletion)
	s.authed("POST /api/v1/admin/deletions/{token}/confirm", s.confirmDeletion)
	s.authed("GET /api/v1/admin/audit", s.listAudit)
	s.authed("GET /api/v1/compliance/holds", s.listHolds)
	s.authed("POST /api/v1/compliance/holds", s.createHold)
	s.authed("POST /api/v1/compliance/holds/{hold_id}/release", s.releaseHold)
	s.authed("GET /api/v1/me/retention", s.getMyRetention)
	s.authed("PUT /api/v1/me/retention", s.putMyRetention)
	s.authed("PUT /api/v1/conversations/{conversation_id}/messages/{message_id}/star", s.star)
	s.authed("DELETE /api/v1/conversations/{conversation_id}/messages/{message_id}/star", s.unstar)
}

// PolicyRequest is the body of PUT /api/v1/admin/retention/policy.
type PolicyRequest struct {
	DefaultDays         int                     `json:"default_days"`
	MinDays             int                     `json:"min_days"`
	MaxDays             int                     `json:"max_days"`
	ImportantDays       int                     `json:"important_days"`
	Mode                chatvault.RetentionMode `json:"mode"`
	PreserveRecalls     bool                    `json:"preserve_recalls"`
	RecallWindowSeconds int                     `json:"recall_window_seconds"`
	GraceDays           int                     `json:"purge_grace_days"`
	Reason              string                  `json:"reason"`
}

func (r PolicyRequest) policy() chatvault.Policy {
	return chatvault.Policy{DefaultDays: r.DefaultDays, MinDays: r.MinDays, MaxDays: r.MaxDays, ImportantDays: r.ImportantDays,
		Mode: r.Mode, PreserveRecall: r.PreserveRecalls, RecallWindowSeconds: r.RecallWindowSeconds, GraceDays: r.GraceDays}
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	p, err := s.retention.Policy(r.Context(), a)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *Server) putPolicy(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req PolicyRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	p, err := s.retention.SetPolicy(r.Context(), a, req.policy(), req.Reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

// ReasonRequest is a body that only says why.
type ReasonRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) lockPolicy(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req ReasonRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	p, err := s.retention.Lock(r.Context(), a, req.Reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

// parseTime reads an RFC 3339 time or a date (YYYY-MM-DD, midnight UTC).
func parseTime(field, v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, chatvault.Invalidf(field, "%s must be a date (2026-12-31) or an RFC 3339 time, not %q", field, v)
}

func (s *Server) previewPolicy(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var at time.Time // zero: now, by the server's clock
	if v := r.URL.Query().Get("at"); v != "" {
		var err error
		if at, err = parseTime("at", v); err != nil {
			return err
		}
	}
	p, err := s.retention.Preview(r.Context(), a, at, nil)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

// ProposedPreviewRequest is the body of POST /api/v1/admin/retention/preview.
type ProposedPreviewRequest struct {
	At     string        `json:"at"`
	Policy PolicyRequest `json:"policy"`
}

func (s *Server) previewProposed(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req ProposedPreviewRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	var at time.Time
	if req.At != "" {
		var err error
		if at, err = parseTime("at", req.At); err != nil {
			return err
		}
	}
	p := req.Policy.policy()
	prev, err := s.retention.Preview(r.Context(), a, at, &p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, prev)
	return nil
}

// DaysRequest sets a retention in days: null clears it, 0 means forever.
type DaysRequest struct {
	Days   *int   `json:"days"`
	Reason string `json:"reason"`
}

func (s *Server) putConversationRetention(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req DaysRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	if err := s.retention.SetConversationRetention(r.Context(), a, r.PathValue("conversation_id"), req.Days, req.Reason); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversation_id": r.PathValue("conversation_id"), "days": req.Days})
	return nil
}

func (s *Server) getMyRetention(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	writeJSON(w, http.StatusOK, map[string]any{"days": a.RetentionDays})
	return nil
}

func (s *Server) putMyRetention(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req DaysRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	if err := s.retention.SetMyRetention(r.Context(), a, req.Days); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"days": req.Days})
	return nil
}
