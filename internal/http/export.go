package http

import (
	"net/http"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/export"
)

// ExportRequest is the body of POST /api/v1/exports.
type ExportRequest struct {
	Format          string   `json:"format"`
	Scope           string   `json:"scope"`
	Lang            string   `json:"lang"`
	TimeZone        string   `json:"time_zone"`
	From            string   `json:"from"`
	To              string   `json:"to"`
	Conversations   []string `json:"conversations"`
	Participants    []string `json:"participants"`
	Senders         []string `json:"senders"`
	Query           string   `json:"query"`
	IncludeEdits    bool     `json:"include_edits"`
	IncludeRecalled bool     `json:"include_recalled"`
	IncludeSystem   bool     `json:"include_system"`
	Recipients      []string `json:"recipients"`
}

func (s *Server) exportRoutes() {
	s.authed("POST /api/v1/exports", s.createExport)
	s.authed("GET /api/v1/exports/{export_id}", s.getExport)
	s.authed("GET /api/v1/exports/{export_id}/download", s.downloadExport)
	s.authed("DELETE /api/v1/exports/{export_id}", s.cancelExport)
}

func (s *Server) createExport(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var body ExportRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &body); err != nil {
		return err
	}
	req := export.Request{Scope: body.Scope, Format: export.Format(body.Format), Lang: body.Lang, TimeZone: body.TimeZone, Recipients: body.Recipients,
		Filter: export.Filter{Conversations: body.Conversations, Participants: body.Participants, Senders: body.Senders,
			Query: body.Query, Edits: body.IncludeEdits, Recalled: body.IncludeRecalled, System: body.IncludeSystem}}
	if s.exports == nil {
		return errNoExports
	}
	var err error
	if req.TimeZone == "" {
		if req.TimeZone, err = s.exports.OrgTimeZone(r.Context(), a.OrgID); err != nil {
			return err
		}
	}
	// Dates without an offset are read in the export's time zone; a bad zone is reported by Start.
	loc := time.UTC
	if l, err := time.LoadLocation(req.TimeZone); err == nil {
		loc = l
	}
	if req.From, err = export.ParseTime("from", body.From, loc); err != nil {
		return err
	}
	if req.To, err = export.ParseTime("to", body.To, loc); err != nil {
		return err
	}
	st, err := s.exports.Start(r.Context(), a, req)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/exports/"+st.ID)
	writeJSON(w, http.StatusAccepted, st)
	return nil
}

func (s *Server) getExport(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	if s.exports == nil {
		return errNoExports
	}
	st, err := s.exports.Job(r.Context(), a, r.PathValue("export_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// downloadExport serves the finished package with Range support (http.ServeContent), so a
// broken download resumes where it stopped.
func (s *Server) downloadExport(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	if s.exports == nil {
		return errNoExports
	}
	st, err := s.exports.Job(r.Context(), a, r.PathValue("export_id"))
	if err != nil {
		return err
	}
	f, job, err := s.exports.Download(r.Context(), a, r.PathValue("export_id"))
	if err != nil {
		return err
	}
	defer f.Close()
	// A large package takes longer than the server's write timeout, which is meant for API calls.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	ctype, name := "application/zip", "chatvault-export-"+job.ID+".zip"
	if st.Encrypted {
		ctype, name = "application/octet-stream", name+".age"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("ETag", `"`+job.SHA256+`"`)
	var mod time.Time
	if job.FinishedAt != nil {
		mod = *job.FinishedAt
	}
	http.ServeContent(w, r, "", mod, f)
	return nil
}

func (s *Server) cancelExport(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	if s.exports == nil {
		return errNoExports
	}
	if err := s.exports.Cancel(r.Context(), a, r.PathValue("export_id")); err != nil {
		return err
	}
	return noContent(w)
}

var errNoExports = chatvault.Errorf(chatvault.EUNAVAILABLE, "exports are off on this server")
