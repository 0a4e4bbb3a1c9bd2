package http

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
)

// searchParams are the query parameters GET /api/v1/search knows; any other is refused by name,
// so a misspelt filter never silently widens a search.
var searchParams = []string{"q", "scope", "conversation_id", "sender_id", "from", "to", "has_reply", "edited", "sort", "cursor", "limit", "prefix"}

func (s *Server) search(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	req, err := ParseSearch(r.URL.Query())
	if err != nil {
		return err
	}
	page, err := s.chat.Search(r.Context(), a, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// ParseSearch reads a search request from query parameters.
func ParseSearch(q url.Values) (chat.SearchRequest, error) {
	var req chat.SearchRequest
	// In name order, so the same bad request always gets the same answer.
	for _, k := range slices.Sorted(maps.Keys(q)) {
		vs := q[k]
		if k == "" {
			return req, chatvault.Invalidf("", "the query string has a parameter without a name")
		}
		if !slices.Contains(searchParams, k) {
			return req, chatvault.Invalidf(k, "unknown parameter %q; search takes %v", k, searchParams)
		}
		if len(vs) > 1 {
			return req, chatvault.Invalidf(k, "give %s once", k)
		}
	}
	req.Query = q.Get("q")
	if req.Query == "" {
		return req, chatvault.Invalidf("q", "q (what to search for) is required")
	}
	req.Scope, req.ConversationID, req.SenderID = q.Get("scope"), q.Get("conversation_id"), q.Get("sender_id")
	req.Sort, req.Cursor = q.Get("sort"), q.Get("cursor")
	var err error
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"from", &req.From}, {"to", &req.To}} {
		if v := q.Get(t.name); v != "" {
			if *t.dst, err = parseTime(t.name, v); err != nil {
				return req, err
			}
		}
	}
	for _, b := range []struct {
		name string
		dst  **bool
	}{{"has_reply", &req.HasReply}, {"edited", &req.Edited}} {
		if v := q.Get(b.name); v != "" {
			on, err := strconv.ParseBool(v)
			if err != nil {
				return req, chatvault.Invalidf(b.name, "%s is true or false, not %q", b.name, v)
			}
			*b.dst = &on
		}
	}
	if v := q.Get("prefix"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return req, chatvault.Invalidf("prefix", "prefix is true or false, not %q", v)
		}
		req.Prefix = on
	}
	limit, err := QueryInt(q, "limit", chat.MaxSearchLimit)
	if err != nil {
		return req, err
	}
	if limit != nil {
		if *limit == 0 {
			return req, chatvault.Invalidf("limit", "limit must be between 1 and %d", chat.MaxSearchLimit)
		}
		req.Limit = int(*limit)
	}
	return req, nil
}
