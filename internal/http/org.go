package http

import (
	"net/http"

	"github.com/chatvault/chatvault"
)

// OrgSettingsRequest is the body of PATCH /api/v1/admin/org.
type OrgSettingsRequest struct {
	TimeZone *string `json:"time_zone"`
}

func (s *Server) getOrg(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	org, err := s.accounts.Org(r.Context(), a)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, org)
	return nil
}

func (s *Server) patchOrg(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req OrgSettingsRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	if req.TimeZone == nil {
		return chatvault.Invalidf("time_zone", "give time_zone: the only setting this changes")
	}
	org, err := s.accounts.SetTimeZone(r.Context(), a, *req.TimeZone)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, org)
	return nil
}
