package http

import (
	"math"
	"net/http"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
)

// SendMessageRequest is the body of POST /api/v1/conversations/{id}/messages.
type SendMessageRequest struct {
	ClientMsgID string `json:"client_msg_id"`
	Text        string `json:"text"`
	ReplyTo     string `json:"reply_to"`
}

func (s *Server) sendMessage(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req SendMessageRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	m, created, err := s.chat.Send(r.Context(), a, r.PathValue("conversation_id"), chat.SendRequest{
		ClientMsgID: req.ClientMsgID, Text: req.Text, ReplyTo: req.ReplyTo})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		s.cfg.Observer.MessageStored()
	}
	writeJSON(w, status, m)
	return nil
}

// ParsePage reads before_seq, after_seq, around_seq and limit from a query string.
func ParsePage(r *http.Request) (chat.Page, error) {
	q := r.URL.Query()
	var p chat.Page
	var err error
	if p.Before, err = QueryInt(q, "before_seq", math.MaxInt64); err != nil {
		return p, err
	}
	if p.After, err = QueryInt(q, "after_seq", math.MaxInt64); err != nil {
		return p, err
	}
	if p.Around, err = QueryInt(q, "around_seq", math.MaxInt64); err != nil {
		return p, err
	}
	// A page has one anchor. Reject a second one here, naming it, rather than hand on a page
	// whose meaning depends on which anchor the service happens to look at first.
	anchor := ""
	for _, a := range []struct {
		name string
		val  *int64
	}{{"before_seq", p.Before}, {"after_seq", p.After}, {"around_seq", p.Around}} {
		if a.val == nil {
			continue
		}
		if anchor != "" {
			return chat.Page{}, chatvault.Invalidf(a.name, "give at most one of before_seq, after_seq and around_seq, not both %s and %s", anchor, a.name)
		}
		anchor = a.name
	}
	limit, err := QueryInt(q, "limit", chat.MaxPageLimit)
	if err != nil {
		return p, err
	}
	if limit != nil {
		if *limit == 0 {
			return p, chatvault.Invalidf("limit", "limit must be between 1 and %d", chat.MaxPageLimit)
		}
		p.Limit = int(*limit)
	}
	return p, nil
}

func (s *Server) listMessages(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	p, err := ParsePage(r)
	if err != nil {
		return err
	}
	page, err := s.chat.Messages(r.Context(), a, r.PathValue("conversation_id"), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

func (s *Server) getMessage(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	m, err := s.chat.Message(r.Context(), a, r.PathValue("conversation_id"), r.PathValue("message_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

// EditMessageRequest is the body of PATCH /api/v1/conversations/{id}/messages/{message_id}.
type EditMessageRequest struct {
	Text string `json:"text"`
	// Version, when set, makes the edit apply only if the message is still at that version.
	Version int `json:"version"`
}

func (s *Server) editMessage(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	var req EditMessageRequest
	if err := decodeJSON(r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	if req.Version < 0 {
		return chatvault.Invalidf("version", "version must not be negative")
	}
	m, err := s.chat.Edit(r.Context(), a, r.PathValue("conversation_id"), r.PathValue("message_id"), req.Text, req.Version)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

func (s *Server) messageVersions(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	vs, err := s.chat.Versions(r.Context(), a, r.PathValue("conversation_id"), r.PathValue("message_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": vs})
	return nil
}

func (s *Server) recallMessage(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	m, err := s.chat.Recall(r.Context(), a, r.PathValue("conversation_id"), r.PathValue("message_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

func (s *Server) hideMessage(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	if err := s.chat.Hide(r.Context(), a, r.PathValue("conversation_id"), r.PathValue("message_id")); err != nil {
		return err
	}
	return noContent(w)
}
