package http

import (
	"net/http"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/account"
)

// CreateUserRequest is the body of POST /api/v1/admin/users.
type CreateUserRequest struct {
	Username    string           `json:"username"`
	Password    string           `json:"password"`
	DisplayName string           `json:"display_name"`
	Roles       []chatvault.Role `json:"roles"`
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req CreateUserRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	u, err := s.accounts.CreateUser(r.Context(), a, account.NewUser{Username: req.Username, Password: req.Password,
		DisplayName: req.DisplayName, Roles: req.Roles})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, u)
	return nil
}

// userFilter reads ?after=USERNAME&limit=N.
func userFilter(r *http.Request) (chatvault.UserFilter, error) {
	q := r.URL.Query()
	limit, err := QueryInt(q, "limit", 1000)
	if err != nil {
		return chatvault.UserFilter{}, err
	}
	f := chatvault.UserFilter{AfterUsername: q.Get("after"), Limit: 100}
	if limit != nil {
		if *limit == 0 {
			return f, chatvault.Invalidf("limit", "limit must be between 1 and 1000")
		}
		f.Limit = int(*limit)
	}
	return f, nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	f, err := userFilter(r)
	if err != nil {
		return err
	}
	us, err := s.accounts.Users(r.Context(), a, f, r.URL.Query().Get("q"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": us})
	return nil
}

func (s *Server) directory(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	f, err := userFilter(r)
	if err != nil {
		return err
	}
	people, err := s.accounts.Directory(r.Context(), a, f, r.URL.Query().Get("q"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": people})
	return nil
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	u, err := s.accounts.User(r.Context(), a, r.PathValue("user_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (s *Server) disableUser(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	return s.setDisabled(w, r, a, true)
}

func (s *Server) enableUser(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	return s.setDisabled(w, r, a, false)
}

func (s *Server) setDisabled(w http.ResponseWriter, r *http.Request, a chatvault.Actor, disabled bool) error {
	u, err := s.accounts.SetDisabled(r.Context(), a, r.PathValue("user_id"), disabled)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

// ResetPasswordRequest is the optional body of POST /api/v1/admin/users/{id}/password.
type ResetPasswordRequest struct {
	Password string `json:"password"`
}

func (s *Server) resetPassword(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req ResetPasswordRequest
	if err := decodeOptionalJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	pw, err := s.accounts.ResetPassword(r.Context(), a, r.PathValue("user_id"), req.Password)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"password": pw})
	return nil
}

// PatchUserRequest is the body of PATCH /api/v1/admin/users/{id}: the fields sent change.
type PatchUserRequest struct {
	DisplayName *string           `json:"display_name"`
	Roles       *[]chatvault.Role `json:"roles"` // the full set; member is implied
	Disabled    *bool             `json:"disabled"`
}

func (s *Server) patchUser(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req PatchUserRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	p := account.UserPatch{DisplayName: req.DisplayName, Disabled: req.Disabled}
	if req.Roles != nil {
		p.Roles = *req.Roles
		if p.Roles == nil {
			p.Roles = []chatvault.Role{} // "roles": null or [] keeps member only
		}
	}
	u, err := s.accounts.UpdateUser(r.Context(), a, r.PathValue("user_id"), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (s *Server) unlockUser(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	if err := s.accounts.Unlock(r.Context(), a, r.PathValue("user_id")); err != nil {
		return err
	}
	return noContent(w)
}
