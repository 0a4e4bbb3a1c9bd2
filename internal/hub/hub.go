// Package hub delivers committed events to the devices that are online right now: WebSocket
// connections and waiting long-polls. The store hands it every committed batch in commit order
// (Publish); one goroutine routes each event to the subscriptions of the users it concerns. It
// decides who to wake, not what they may read: subscribers fetch through the chat service, which
// applies visibility. The one exception is a brand-new message, which every member whose window
// covers its seq may see as it is; those are pushed whole.
package hub

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/chatvault/chatvault"
)

// Members tells the hub who is in a conversation.
type Members interface {
	FindParticipants(ctx context.Context, orgID, convID string) ([]*chatvault.Participant, error)
}

// maxCachedConversations bounds the membership cache.
const maxCachedConversations = 20000

// Hub routes events to subscriptions.
type Hub struct {
	members Members
	logger  *slog.Logger
	in      chan []chatvault.Event
	stopped chan struct{}

	mu   sync.Mutex
	subs map[userKey]map[*Subscription]struct{}

	// cache is touched only by the routing goroutine.
	cache map[convKey]map[string]*chatvault.Participant

	// observeLag, when set, is given the time from a new message's send to its routing here (see
	// SetLagObserver); read only by the routing goroutine, set before Run.
	observeLag func(time.Duration)
}

// SetLagObserver makes the hub report, for every batch that holds new messages, how long ago the
// oldest of them was sent when the hub routed it: the group commit's wait, the hand-off, and on
// PostgreSQL the notification from another process. It is the delay live devices see ("sync lag")
// before their own fetch. Call it before Run.
func (h *Hub) SetLagObserver(fn func(time.Duration)) { h.observeLag = fn }

type userKey struct{ org, user string }
type convKey struct{ org, conv string }

// New returns a hub; Run must be running for events to flow.
func New(members Members, logger *slog.Logger) *Hub {
	return &Hub{members: members, logger: logger, in: make(chan []chatvault.Event, 4096), stopped: make(chan struct{}),
		subs: map[userKey]map[*Subscription]struct{}{}, cache: map[convKey]map[string]*chatvault.Participant{}}
}

// Publish queues a committed batch. It is the store's event sink: it blocks only when the routing
// goroutine is thousands of batches behind, which slows writers rather than losing events, and
// never once the hub has stopped.
func (h *Hub) Publish(events []chatvault.Event) {
	select {
	case h.in <- events:
	case <-h.stopped:
	}
}

// Run routes events until ctx ends, then closes every subscription.
func (h *Hub) Run(ctx context.Context) {
	defer h.closeAll("server shutting down")
	defer close(h.stopped)
	for {
		select {
		case <-ctx.Done():
			return
		case batch := <-h.in:
			var oldest time.Time
			for i := range batch {
				if batch[i].Kind == chatvault.EventMessage && (oldest.IsZero() || batch[i].At.Before(oldest)) {
					oldest = batch[i].At
				}
				h.route(ctx, &batch[i])
			}
			if h.observeLag != nil && !oldest.IsZero() {
				h.observeLag(time.Since(oldest))
			}
		}
	}
}

// Subscription receives the events of one user's device, in commit order: through C (Subscribe),
// or, for a subscription made with Notify, through Take after its wake function runs. Done is
// closed when the hub drops the subscription, and Reason then says why.
type Subscription struct {
	OrgID, UserID, DeviceID string
	C                       chan *chatvault.Event
	// lossy subscriptions only need waking: when C is full, an event is dropped instead of the
	// subscription.
	lossy bool

	// wake, when set, replaces C: events wait in queue (nil while nothing waits, so an idle
	// subscription holds no buffer) and wake is called when the first arrives and when the
	// subscription is dropped. limit events may wait before the subscriber is a slow consumer.
	wake  func()
	limit int
	qmu   sync.Mutex
	queue []*chatvault.Event

	hub    *Hub
	done   chan struct{}
	once   sync.Once
	reason string
}

// Done is closed when the subscription ends.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Reason says why the hub ended the subscription ("" if it was closed by its owner).
func (s *Subscription) Reason() string {
	<-s.done
	return s.reason
}

// Close ends the subscription.
func (s *Subscription) Close() { s.hub.drop(s, "") }

// Notify registers a device whose events wait in a bounded queue instead of a channel: wake is
// called (from the hub's routing goroutine; it must not block) when events start waiting and when
// the subscription ends, and the owner collects them with Take. Once limit events wait, the
// subscription is dropped with reason "slow consumer".
func (h *Hub) Notify(a chatvault.Actor, limit int, wake func()) *Subscription {
	s := &Subscription{OrgID: a.OrgID, UserID: a.UserID, DeviceID: a.DeviceID, wake: wake, limit: limit, hub: h, done: make(chan struct{})}
	h.add(s)
	return s
}

// Take returns the events waiting for a Notify subscription, oldest first, and empties its queue.
func (s *Subscription) Take() []*chatvault.Event {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	q := s.queue
	s.queue = nil
	return q
}

// Subscribe registers a device. A lossy subscription (a long-poll) is only woken; a lossless one (a
// WebSocket) is dropped with reason "slow consumer" once buffer events are waiting.
func (h *Hub) Subscribe(a chatvault.Actor, buffer int, lossy bool) *Subscription {
	s := &Subscription{OrgID: a.OrgID, UserID: a.UserID, DeviceID: a.DeviceID, C: make(chan *chatvault.Event, buffer),
		lossy: lossy, hub: h, done: make(chan struct{})}
	h.add(s)
	return s
}

func (h *Hub) add(s *Subscription) {
	k := userKey{s.OrgID, s.UserID}
	h.mu.Lock()
	if h.subs[k] == nil {
		h.subs[k] = map[*Subscription]struct{}{}
	}
	h.subs[k][s] = struct{}{}
	h.mu.Unlock()
}

func (h *Hub) drop(s *Subscription, reason string) {
	s.once.Do(func() {
		h.mu.Lock()
		k := userKey{s.OrgID, s.UserID}
		delete(h.subs[k], s)
		if len(h.subs[k]) == 0 {
			delete(h.subs, k)
		}
		h.mu.Unlock()
		s.reason = reason
		close(s.done)
		if s.wake != nil {
			s.wake()
		}
	})
}

func (h *Hub) closeAll(reason string) {
	h.mu.Lock()
	var all []*Subscription
	for _, set := range h.subs {
		for s := range set {
			all = append(all, s)
		}
	}
	h.mu.Unlock()
	for _, s := range all {
		h.drop(s, reason)
	}
}

func (h *Hub) idle() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) == 0
}

// subscribers returns a snapshot of a user's subscriptions.
func (h *Hub) subscribers(org, user string) []*Subscription {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.subs[userKey{org, user}]
	if len(set) == 0 {
		return nil
	}
	out := make([]*Subscription, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	return out
}

func (h *Hub) route(ctx context.Context, ev *chatvault.Event) {
	switch ev.Kind {
	case chatvault.EventDeviceRevoked:
		for _, s := range h.subscribers(ev.OrgID, ev.Subject) {
			if s.DeviceID == ev.DeviceID {
				h.drop(s, "device signed out")
			}
		}
		return
	case chatvault.EventUserDisabled:
		for _, s := range h.subscribers(ev.OrgID, ev.Subject) {
			h.drop(s, "account disabled")
		}
		return
	}
	if ev.PerUser() {
		h.deliver(ev, ev.Subject)
		return
	}
	k := convKey{ev.OrgID, ev.ConversationID}
	switch ev.Kind {
	case chatvault.EventCreated, chatvault.EventMemberJoined, chatvault.EventMemberLeft:
		delete(h.cache, k) // membership changed: reload on next use
	}
	if h.idle() {
		return // nobody is online: no member list to load
	}
	parts, err := h.participants(ctx, k)
	if err != nil {
		// Nobody is woken for this event; their next sync still finds it.
		h.logger.Error("load conversation members for live delivery", "conversation", ev.ConversationID, "error", err)
		return
	}
	delivered := false
	for user, p := range parts {
		if ev.Seq > 0 && (ev.Kind == chatvault.EventMessage || ev.Kind == chatvault.EventEdited || ev.Kind == chatvault.EventRecalled) && !p.Sees(ev.Seq) {
			continue
		}
		h.deliver(ev, user)
		delivered = delivered || user == ev.Subject
	}
	if ev.Subject != "" && !delivered && ev.Kind == chatvault.EventMemberLeft {
		h.deliver(ev, ev.Subject)
	}
}

func (h *Hub) deliver(ev *chatvault.Event, user string) {
	for _, s := range h.subscribers(ev.OrgID, user) {
		if s.wake != nil {
			s.qmu.Lock()
			full := len(s.queue) >= s.limit
			first := len(s.queue) == 0
			if !full {
				s.queue = append(s.queue, ev)
			}
			s.qmu.Unlock()
			switch {
			case full:
				h.drop(s, "slow consumer")
			case first:
				s.wake()
			}
			continue
		}
		select {
		case s.C <- ev:
		default:
			if !s.lossy {
				h.drop(s, "slow consumer")
			}
		}
	}
}

// participants returns the conversation's participants, from the cache or the store.
func (h *Hub) participants(ctx context.Context, k convKey) (map[string]*chatvault.Participant, error) {
	if m, ok := h.cache[k]; ok {
		return m, nil
	}
	ps, err := h.members.FindParticipants(ctx, k.org, k.conv)
	if err != nil {
		return nil, err
	}
	m := make(map[string]*chatvault.Participant, len(ps))
	for _, p := range ps {
		m[p.UserID] = p
	}
	if len(h.cache) >= maxCachedConversations {
		for victim := range h.cache { // map order is random enough for an eviction
			delete(h.cache, victim)
			break
		}
	}
	h.cache[k] = m
	return m, nil
}
