package http

import (
	"net/http"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/retention"
)

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

// RunRequest is the optional body of POST /api/v1/admin/retention/run.
type RunRequest struct {
	DryRun bool `json:"dry_run"`
}

func (s *Server) runRetention(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req RunRequest
	if err := decodeOptionalJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	run, err := s.retention.RunNow(r.Context(), a, req.DryRun)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, run)
	return nil
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	runs, err := s.retention.Runs(r.Context(), a, 50)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": runs})
	return nil
}

// RestoreRequest is the body of POST /api/v1/admin/retention/restore.
type RestoreRequest struct {
	ConversationID string `json:"conversation_id"`
	FromSeq        int64  `json:"from_seq"`
	ToSeq          int64  `json:"to_seq"`
	Reason         string `json:"reason"`
}

func (s *Server) restoreExpired(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req RestoreRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	n, err := s.retention.Restore(r.Context(), a, req.ConversationID, req.FromSeq, req.ToSeq, req.Reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{"restored": n})
	return nil
}

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

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	limit, err := QueryInt(r.URL.Query(), "limit", 1000)
	if err != nil {
		return err
	}
	n := 100
	if limit != nil && *limit > 0 {
		n = int(*limit)
	}
	es, err := s.retention.Audit(r.Context(), a, n)
	if err != nil {
		return err
	}
	if es == nil {
		es = []*chatvault.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": es})
	return nil
}

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
