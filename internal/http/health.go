package http

import (
	"context"
	"net/http"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/api"
)

// healthz says the process is up. It touches nothing else, so it stays cheap and honest.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyz says the store is open and can take a write.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.logger.WarnContext(r.Context(), "readiness check failed", "error", err)
		return chatvault.Errorf(chatvault.EUNAVAILABLE, "the store is not writable")
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

// openapi serves the contract this binary was built with, so a client reads the version it talks
// to. It is public: it describes the API, not anyone's data.
func (s *Server) openapi(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, err := w.Write(api.OpenAPI)
	return err
}
