package http

import (
	"net/http"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
)

// CreateConversationRequest is the body of POST /api/v1/conversations.
type CreateConversationRequest struct {
	Type                       chatvault.ConversationKind `json:"type"`
	Title                      string                     `json:"title"`
	Members                    []string                   `json:"members"`
	HistoryVisibleToNewMembers bool                       `json:"history_visible_to_new_members"`
}

func (s *Server) createConversation(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req CreateConversationRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	d, created, err := s.chat.CreateConversation(r.Context(), a, chat.NewConversation{Kind: req.Type, Title: req.Title,
		Members: req.Members, HistoryVisible: req.HistoryVisibleToNewMembers})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, d)
	return nil
}

func (s *Server) listConversations(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var cs []*chat.Summary
	var err error
	if q := r.URL.Query().Get("q"); q != "" {
		cs, err = s.chat.FindConversations(r.Context(), a, q)
	} else {
		cs, err = s.chat.Conversations(r.Context(), a)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversations": cs})
	return nil
}

func (s *Server) getConversation(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	d, err := s.chat.Conversation(r.Context(), a, r.PathValue("conversation_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// MembersRequest is the body of POST /api/v1/conversations/{id}/members.
type MembersRequest struct {
	Members []string `json:"members"`
}

func (s *Server) addMembers(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req MembersRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	d, err := s.chat.AddMembers(r.Context(), a, r.PathValue("conversation_id"), req.Members)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	if err := s.chat.RemoveMember(r.Context(), a, r.PathValue("conversation_id"), r.PathValue("user_id")); err != nil {
		return err
	}
	return noContent(w)
}

func (s *Server) leave(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	if err := s.chat.RemoveMember(r.Context(), a, r.PathValue("conversation_id"), a.UserID); err != nil {
		return err
	}
	return noContent(w)
}

// ReadRequest is the body of POST /api/v1/conversations/{id}/read.
type ReadRequest struct {
	Seq int64 `json:"seq"`
}

func (s *Server) markRead(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req ReadRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	seq, err := s.chat.MarkRead(r.Context(), a, r.PathValue("conversation_id"), req.Seq)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int64{"read_seq": seq})
	return nil
}

func (s *Server) clearHistory(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	seq, err := s.chat.ClearHistory(r.Context(), a, r.PathValue("conversation_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int64{"cleared_seq": seq})
	return nil
}
