package http

import (
	"net"
	"net/http"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/account"
)

// LoginRequest is the body of POST /api/v1/auth/login.
type LoginRequest struct {
	Org        string `json:"org"`
	Username   string `json:"username"`
	Password   string `json:"password"`
	DeviceName string `json:"device_name"`
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	var req LoginRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	// The peer address, not X-Forwarded-For: a header the client writes would let it pick a fresh
	// source for every guess. Behind a proxy every login shares the proxy's address (the
	// per-account limits still apply); docs/operations.md says so.
	source, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		source = r.RemoteAddr
	}
	res, err := s.accounts.Login(r.Context(), account.LoginRequest{Org: req.Org, Username: req.Username,
		Password: req.Password, DeviceName: req.DeviceName, Source: source})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	if err := s.accounts.Logout(r.Context(), a); err != nil {
		return err
	}
	return noContent(w)
}

func (s *Server) me(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	u, err := s.accounts.Me(r.Context(), a)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

// ChangePasswordRequest is the body of PUT /api/v1/me/password.
type ChangePasswordRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req ChangePasswordRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	if err := s.accounts.ChangePassword(r.Context(), a, req.CurrentPassword, req.NewPassword); err != nil {
		return err
	}
	return noContent(w)
}

type deviceView struct {
	*chatvault.Device
	Current bool `json:"current"`
}

func (s *Server) devices(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	ds, err := s.accounts.Devices(r.Context(), a)
	if err != nil {
		return err
	}
	out := make([]deviceView, len(ds))
	for i, d := range ds {
		out[i] = deviceView{Device: d, Current: d.ID == a.DeviceID}
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": out})
	return nil
}

func (s *Server) revokeDevice(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	if err := s.accounts.RevokeDevice(r.Context(), a, r.PathValue("device_id")); err != nil {
		return err
	}
	return noContent(w)
}
