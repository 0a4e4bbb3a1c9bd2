package http

import (
	"net/http"

	"github.com/chatvault/chatvault"
)

// listAudit serves the audit log with its sealed free text opened (internal/audit).
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	limit, err := QueryInt(r.URL.Query(), "limit", 1000)
	if err != nil {
		return err
	}
	n := 100
	if limit != nil && *limit > 0 {
		n = int(*limit)
	}
	es, err := s.audit.Entries(r.Context(), a, n)
	if err != nil {
		return err
	}
	if es == nil {
		es = []*chatvault.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": es})
	return nil
}
