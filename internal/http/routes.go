package http

import (
	"net/http"
)

// routes lists every endpoint. api/openapi.yaml describes the same set; a test keeps them equal.
func (s *Server) routes() {
	s.handle("GET /healthz", s.healthz)
	s.handle("GET /readyz", s.readyz)
	s.handle("GET /api/v1/openapi.yaml", s.openapi)

	s.handle("POST /api/v1/auth/login", s.login)
	s.authed("POST /api/v1/auth/logout", s.logout)
	s.authed("GET /api/v1/me", s.me)
	s.authed("PUT /api/v1/me/password", s.changePassword)
	s.authed("GET /api/v1/devices", s.devices)
	s.authed("DELETE /api/v1/devices/{device_id}", s.revokeDevice)
	s.authed("GET /api/v1/users", s.directory)

	s.authed("GET /api/v1/admin/org", s.getOrg)
	s.authed("PATCH /api/v1/admin/org", s.patchOrg)
	s.authed("POST /api/v1/admin/users", s.createUser)
	s.authed("GET /api/v1/admin/users", s.listUsers)
	s.authed("GET /api/v1/admin/users/{user_id}", s.getUser)
	s.authed("PATCH /api/v1/admin/users/{user_id}", s.patchUser)
	s.authed("POST /api/v1/admin/users/{user_id}/disable", s.disableUser)
	s.authed("POST /api/v1/admin/users/{user_id}/enable", s.enableUser)
	s.authed("POST /api/v1/admin/users/{user_id}/password", s.resetPassword)
	s.authed("POST /api/v1/admin/users/{user_id}/unlock", s.unlockUser)

	s.authed("POST /api/v1/conversations", s.createConversation)
	s.authed("GET /api/v1/conversations", s.listConversations)
	s.authed("GET /api/v1/conversations/{conversation_id}", s.getConversation)
	s.authed("POST /api/v1/conversations/{conversation_id}/members", s.addMembers)
	s.authed("DELETE /api/v1/conversations/{conversation_id}/members/{user_id}", s.removeMember)
	s.authed("POST /api/v1/conversations/{conversation_id}/leave", s.leave)
	s.authed("POST /api/v1/conversations/{conversation_id}/read", s.markRead)
	s.authed("POST /api/v1/conversations/{conversation_id}/clear", s.clearHistory)

	s.authed("POST /api/v1/conversations/{conversation_id}/messages", s.sendMessage)
	s.authed("GET /api/v1/conversations/{conversation_id}/messages", s.listMessages)
	s.authed("GET /api/v1/conversations/{conversation_id}/messages/{message_id}", s.getMessage)
	s.authed("PATCH /api/v1/conversations/{conversation_id}/messages/{message_id}", s.editMessage)
	s.authed("GET /api/v1/conversations/{conversation_id}/messages/{message_id}/versions", s.messageVersions)
	s.authed("POST /api/v1/conversations/{conversation_id}/messages/{message_id}/recall", s.recallMessage)
	s.authed("POST /api/v1/conversations/{conversation_id}/messages/{message_id}/hide", s.hideMessage)

	s.authed("GET /api/v1/sync", s.sync)
	s.authed("GET /api/v1/search", s.search)
	s.handle("GET /api/v1/ws", s.websocket)

	s.retentionRoutes()
	s.exportRoutes()
}

func noContent(w http.ResponseWriter) error {
	w.WriteHeader(http.StatusNoContent)
	return nil
}
