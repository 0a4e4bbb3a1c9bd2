package http

// UseGoroutinePerConnection makes s serve WebSockets as it does over TLS and on systems without
// the event loop, so tests can hold that path to the same protocol. Call it before the first
// WebSocket.
func UseGoroutinePerConnection(s *Server) { s.loopOnce.Do(func() {}) }
