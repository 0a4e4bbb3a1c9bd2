package http

import (
	"net/http"

	"github.com/chatvault/chatvault"
)

// OrgSettingsRequest is the body of PATCH /api/v1/admin/org.
type OrgSettingsRequest struct {
	TimeZone       *string `json:"time_zone"`
	SearchStemming *bool   `json:"search_stemming"`
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
	if req.TimeZone == nil && req.SearchStemming == nil {
		return chatvault.Invalidf("time_zone", "give time_zone or search_stemming: the settings this changes")
	}
	var org *chatvault.Org
	var err error
	if req.TimeZone != nil {
		if org, err = s.accounts.SetTimeZone(r.Context(), a, *req.TimeZone); err != nil {
			return err
		}
	}
	if req.SearchStemming != nil {
		if org, err = s.accounts.SetSearchStemming(r.Context(), a, *req.SearchStemming); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, org)
	return nil
}
