// Package http is chatvault's REST transport: it decodes requests, authenticates the bearer token,
// calls the domain services and maps their errors to statuses in one place (error.go). It holds no
// business rules and touches no SQL. The contract it serves is api/openapi.yaml.
package http

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/account"
	"github.com/chatvault/chatvault/internal/audit"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/export"
	"github.com/chatvault/chatvault/internal/hub"
	"github.com/chatvault/chatvault/internal/retention"
	"github.com/chatvault/chatvault/internal/wsloop"
)

// Config is what the transport needs to know.
type Config struct {
	// MaxBodyBytes bounds every request body; larger ones get 413.
	MaxBodyBytes int64
	// TLS, when set, serves HTTPS with it (see CertReloader) and sends HSTS on every response.
	TLS *tls.Config
	// WSWriteTimeout is how long a WebSocket write may block before the client is cut off (it then
	// resumes from the last cursor it received). Default 10 s.
	WSWriteTimeout time.Duration
	// Observer receives request timings and counts (metrics); nil observes nothing.
	Observer Observer
	// AccessLog logs one line per request at level INFO: method, route, path, status, bytes,
	// duration and request id; never a body, a query string (it may hold a token) or a header.
	AccessLog bool
}

// DefaultMaxBodyBytes is the request body limit unless configured otherwise.
const DefaultMaxBodyBytes = 64 << 10

// Pinger reports whether the store can take writes (for /readyz).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Services are the domain services the transport calls.
type Services struct {
	Accounts  *account.Service
	Chat      *chat.Service
	Retention *retention.Service
	Audit     *audit.Service
	Hub       *hub.Hub
	Store     Pinger
	// Exports runs export jobs; nil leaves the export routes out.
	Exports *export.Jobs
}

// Server serves the API.
type Server struct {
	accounts  *account.Service
	chat      *chat.Service
	retention *retention.Service
	audit     *audit.Service
	hub       *hub.Hub
	store     Pinger
	exports   *export.Jobs
	logger    *slog.Logger
	cfg       Config

	frames   frameCache // encoded WebSocket message frames, shared across connections
	loopOnce sync.Once
	loop     atomic.Pointer[wsloop.Loop] // live connections, where the system has the event loop
	mux      *http.ServeMux
	patterns []string
	http     *http.Server
	ln       net.Listener
}

// NewServer wires the handlers.
func NewServer(svc Services, logger *slog.Logger, cfg Config) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.WSWriteTimeout <= 0 {
		cfg.WSWriteTimeout = 10 * time.Second
	}
	if cfg.Observer == nil {
		cfg.Observer = noObserver{}
	}
	logger = slog.New(requestIDHandler{logger.Handler()})
	s := &Server{accounts: svc.Accounts, chat: svc.Chat, retention: svc.Retention, audit: svc.Audit, hub: svc.Hub, store: svc.Store, exports: svc.Exports, logger: logger, cfg: cfg, mux: http.NewServeMux()}
	s.routes()
	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      90 * time.Second, // long enough for the sync long-poll to come
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// Handlers that take over a connection (WebSocket) need the socket itself.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, netConnKey{}, c) },
	}
	return s
}

// Patterns lists every route as "METHOD /path/{param}", in registration order.
func (s *Server) Patterns() []string { return append([]string(nil), s.patterns...) }

// Listen opens the listening socket; Addr is known after it returns.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (if another process holds the port, `ss -ltnp` names it; stop it or choose another address with --listen or CHATVAULT_LISTEN)", addr, err)
	}
	s.ln = ln
	return nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until Shutdown; it returns nil after a graceful shutdown.
func (s *Server) Serve() error {
	serve := func() error { return s.http.Serve(s.ln) }
	if s.cfg.TLS != nil {
		s.http.TLSConfig = s.cfg.TLS
		serve = func() error { return s.http.ServeTLS(s.ln, "", "") }
	}
	if err := serve(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting connections and waits for in-flight requests until ctx ends. Live
// connections in the event loop are sent a close frame with their resume cursor and get a few
// seconds to answer it.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if loop := s.loop.Load(); loop != nil {
		wait := 5 * time.Second
		if d, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(d))
		}
		loop.Shutdown(wait)
	}
	return err
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

type authedFunc func(w http.ResponseWriter, r *http.Request, a chatvault.Actor) error

func (s *Server) handle(pattern string, h handlerFunc) {
	s.patterns = append(s.patterns, pattern)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// authed wraps a handler that needs a signed-in caller.
func (s *Server) authed(pattern string, h authedFunc) {
	s.handle(pattern, func(w http.ResponseWriter, r *http.Request) error {
		a, err := s.authenticate(r, false)
		if err != nil {
			return err
		}
		return h(w, r, a)
	})
}

// authenticate resolves the bearer token. Browsers cannot set headers on a WebSocket handshake, so
// that one route also takes the token as ?access_token=.
func (s *Server) authenticate(r *http.Request, allowQuery bool) (chatvault.Actor, error) {
	token, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok && allowQuery && r.URL.Query().Has("access_token") {
		token, ok = r.URL.Query().Get("access_token"), true
	}
	if !ok {
		return chatvault.Actor{}, chatvault.Errorf(chatvault.EUNAUTHORIZED, "send the device token as \"Authorization: Bearer <token>\"")
	}
	a, err := s.accounts.Authenticate(r.Context(), strings.TrimSpace(token))
	if err == nil && a.MustChangePassword && !allowedBeforePasswordChange[r.Pattern] {
		return chatvault.Actor{}, chatvault.Errorf(chatvault.EFORBIDDEN,
			"your password was set by someone else: choose your own first (PUT /api/v1/me/password)")
	}
	return a, err
}

// allowedBeforePasswordChange are the routes a session may use while its user must still choose
// their own password (the bootstrap's one-time password, an administrator's reset).
var allowedBeforePasswordChange = map[string]bool{
	"PUT /api/v1/me/password":  true,
	"GET /api/v1/me":           true,
	"POST /api/v1/auth/logout": true,
}

// ServeHTTP adds a request id, recovers panics, refuses a query string that does not parse, and
// answers unknown routes and methods in JSON.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Request-Id")
	if id == "" || len(id) > 64 {
		var b [8]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
	w.Header().Set("X-Request-Id", id)
	start := time.Now()
	rec := &responseRecorder{ResponseWriter: w}
	w = rec
	route := "unmatched"
	defer func() {
		took := time.Since(start)
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		s.cfg.Observer.Request(route, status, took)
		if s.cfg.AccessLog {
			s.logger.LogAttrs(r.Context(), slog.LevelInfo, "request", slog.String("method", r.Method), slog.String("route", route),
				slog.String("path", r.URL.Path), slog.Int("status", status), slog.Int64("bytes", rec.bytes), slog.Duration("took", took))
		}
	}()
	if s.cfg.TLS != nil {
		w.Header().Set("Strict-Transport-Security", HSTS)
	}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.logger.ErrorContext(r.Context(), "panic serving request", "path", r.URL.Path, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			s.writeError(w, r, fmt.Errorf("panic: %v", p))
		}
	}()
	// Here, before any handler, because handlers read r.URL.Query(), which hides parse errors.
	if err := checkQuery(r.URL.RawQuery); err != nil {
		s.writeError(w, r, err)
		return
	}
	_, pattern := s.mux.Handler(r)
	if pattern == "" {
		s.noRoute(w, r)
		return
	}
	route = pattern
	s.mux.ServeHTTP(w, r)
}

// noRoute answers a request no pattern matched: 405 when the path exists for other methods.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	probe := &statusRecorder{header: http.Header{}}
	s.mux.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", probe.header.Get("Allow"))
		s.writeError(w, r, &chatvault.Error{Code: codeMethodNotAllowed,
			Message: fmt.Sprintf("%s is not allowed here; allowed: %s", r.Method, probe.header.Get("Allow"))})
		return
	}
	s.writeError(w, r, chatvault.Errorf(chatvault.ENOTFOUND, "no such endpoint: %s %s", r.Method, r.URL.Path))
}

type statusRecorder struct {
	header http.Header
	status int
}

func (p *statusRecorder) Header() http.Header         { return p.header }
func (p *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusRecorder) WriteHeader(status int)      { p.status = status }

// bearerToken takes the token out of an Authorization header; the scheme name is case-insensitive
// (RFC 9110).
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}

type requestIDKey struct{}

type netConnKey struct{}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
