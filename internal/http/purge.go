package http

import (
	"net/http"

	"github.com/chatvault/chatvault"
)

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
