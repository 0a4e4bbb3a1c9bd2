package http

import (
	"net/http"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
)

// MaxSyncTimeout bounds a long-poll.
const MaxSyncTimeout = 60

// sync answers GET /api/v1/sync: without since, an initial sync; with since, what changed after
// it, waiting up to timeout seconds for something to change.
func (s *Server) sync(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error {
	q := r.URL.Query()
	timeout, err := QueryInt(q, "timeout", MaxSyncTimeout)
	if err != nil {
		return err
	}
	if !q.Has("since") {
		res, err := s.chat.InitialSync(r.Context(), a)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, res)
		return nil
	}
	since, err := chat.DecodeCursor(q.Get("since"))
	if err != nil {
		return err
	}
	var wait <-chan time.Time
	var woken <-chan *chatvault.Event
	var gone <-chan struct{}
	if timeout != nil && *timeout > 0 {
		// Subscribe before the first read, so a change between the read and the wait still wakes us.
		sub := s.hub.Subscribe(a, 1, true)
		defer sub.Close()
		woken, gone = sub.C, sub.Done()
		timer := time.NewTimer(time.Duration(*timeout) * time.Second)
		defer timer.Stop()
		wait = timer.C
	}
	for {
		res, err := s.chat.Sync(r.Context(), a, since)
		if err != nil {
			return err
		}
		if len(res.Conversations) > 0 || len(res.Events) > 0 || wait == nil {
			writeJSON(w, http.StatusOK, res)
			return nil
		}
		// Nothing visible changed: wait from the new cursor.
		since, _ = chat.DecodeCursor(res.Cursor)
		select {
		case <-woken:
		case <-wait:
			writeJSON(w, http.StatusOK, res)
			return nil
		case <-gone:
			if _, err := s.accounts.Authenticate(r.Context(), bearer(r)); err != nil {
				return err
			}
			writeJSON(w, http.StatusOK, res) // the server is shutting down
			return nil
		case <-r.Context().Done():
			return r.Context().Err()
		}
	}
}

// bearer returns the token the request was authenticated with.
func bearer(r *http.Request) string {
	if t, ok := bearerToken(r.Header.Get("Authorization")); ok {
		return t
	}
	return r.URL.Query().Get("access_token")
}
