package http_test

// The contract scenarios for accounts, users, conversations, messages, transport and sync; the
// machinery that checks every request and response is in openapi_test.go.

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/account"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/google/uuid"
)

func contractHealth(t *testing.T, c *contract) {
	ts, _ := c.serve(t)
	ts.must(http.StatusOK, "GET", "/healthz", "", nil)
	ts.must(http.StatusOK, "GET", "/readyz", "", nil)
	// The contract the spec says the server serves is the file itself, byte for byte.
	r := ts.must(http.StatusOK, "GET", "/api/v1/openapi.yaml", "", nil)
	want, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.Body, want) {
		t.Errorf("GET /api/v1/openapi.yaml = %d bytes; want %s (%d bytes)", len(r.Body), specPath, len(want))
	}
}

func contractAccounts(t *testing.T, c *contract) {
	ts, k := c.serve(t)
	alice := ts.newUser("小明")

	var me chatvault.User
	ts.must(http.StatusOK, "GET", "/api/v1/me", alice.Token, nil).decode(t, &me)
	if me.ID != alice.ID || me.Username != "小明" {
		t.Errorf("GET /me = %+v; want user %s 小明", me, alice.ID)
	}

	// 401 without or with a wrong token; the spec rejects the first as well.
	k.breaking(func() {
		wantError(t, ts.must(http.StatusUnauthorized, "GET", "/api/v1/me", "", nil), chatvault.EUNAUTHORIZED, "")
	})
	ts.must(http.StatusUnauthorized, "GET", "/api/v1/me", "cvt_not-a-token", nil)

	// Login: bad input, wrong password.
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/auth/login", "", map[string]string{
			"username": "小明", "password": "password-小明"}), chatvault.EINVALID, "device_name")
	})
	ts.must(http.StatusUnauthorized, "POST", "/api/v1/auth/login", "", map[string]string{
		"username": "小明", "password": "wrong password", "device_name": "手机"})
	// Guessing at another account: throttled, with Retry-After; a security_admin lifts the lock.
	for range account.DefaultLoginPolicy().FreeFailures {
		ts.must(http.StatusUnauthorized, "POST", "/api/v1/auth/login", "", map[string]string{
			"username": "admin", "password": "wrong password", "device_name": "d"})
	}
	wantError(t, ts.must(http.StatusTooManyRequests, "POST", "/api/v1/auth/login", "", map[string]string{
		"username": "admin", "password": "wrong password", "device_name": "d"}), chatvault.ETOOMANY, "")
	var adminUser chatvault.User
	ts.must(http.StatusOK, "GET", "/api/v1/me", ts.adminToken, nil).decode(t, &adminUser)
	ts.must(http.StatusNoContent, "POST", "/api/v1/admin/users/"+adminUser.ID+"/unlock", ts.adminToken, nil)
	ts.must(http.StatusForbidden, "POST", "/api/v1/admin/users/"+adminUser.ID+"/unlock", alice.Token, nil)

	// A second device, listed, then revoked from the first.
	second := ts.login("小明", "password-小明", "default")
	var devs struct {
		Devices []struct {
			ID      string `json:"id"`
			Current bool   `json:"current"`
		} `json:"devices"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/devices", alice.Token, nil).decode(t, &devs)
	if len(devs.Devices) != 2 {
		t.Fatalf("GET /devices lists %d devices; want 2", len(devs.Devices))
	}
	ts.must(http.StatusNoContent, "DELETE", "/api/v1/devices/"+second.DeviceID, alice.Token, nil)
	ts.must(http.StatusNotFound, "DELETE", "/api/v1/devices/"+second.DeviceID, alice.Token, nil)
	ts.must(http.StatusUnauthorized, "GET", "/api/v1/me", second.Token, nil)

	// Password change: wrong current password, too short, then right.
	wantError(t, ts.must(http.StatusForbidden, "PUT", "/api/v1/me/password", alice.Token, map[string]string{
		"current_password": "nope", "new_password": "新密码-long-enough"}), chatvault.EFORBIDDEN, "current_password")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "PUT", "/api/v1/me/password", alice.Token, map[string]string{
			"current_password": "password-小明", "new_password": "short"}), chatvault.EINVALID, "")
	})
	ts.must(http.StatusNoContent, "PUT", "/api/v1/me/password", alice.Token, map[string]string{
		"current_password": "password-小明", "new_password": "新密码-long-enough"})

	// The directory, paged.
	ts.newUser("bob")
	var dir struct {
		Users []account.Person `json:"users"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/users?limit=2", alice.Token, nil).decode(t, &dir)
	if len(dir.Users) != 2 {
		t.Fatalf("GET /users?limit=2 = %d users; want 2", len(dir.Users))
	}
	ts.must(http.StatusOK, "GET", "/api/v1/users?after="+dir.Users[1].Username, alice.Token, nil).decode(t, &dir)
	if len(dir.Users) != 1 || dir.Users[0].Username != "小明" {
		t.Errorf("GET /users second page = %+v; want only 小明", dir.Users)
	}
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "GET", "/api/v1/users?limit=many", alice.Token, nil), chatvault.EINVALID, "limit")
		wantError(t, ts.must(http.StatusBadRequest, "GET", "/api/v1/users?limit=5000", alice.Token, nil), chatvault.EINVALID, "limit")
	})

	// Logout ends this device only.
	ts.must(http.StatusNoContent, "POST", "/api/v1/auth/logout", alice.Token, nil)
	ts.must(http.StatusUnauthorized, "GET", "/api/v1/me", alice.Token, nil)
	ts.login("小明", "新密码-long-enough", "")
}

func contractAdmin(t *testing.T, c *contract) {
	ts, k := c.serve(t)
	admin := ts.adminToken
	var u chatvault.User
	ts.must(http.StatusCreated, "POST", "/api/v1/admin/users", admin, map[string]any{
		"username": "Zhang.Wei", "password": "password-zw", "display_name": "张伟", "roles": []string{"member", "auditor"}}).decode(t, &u)
	if u.Username != "zhang.wei" || u.DisplayName != "张伟" || !u.HasRole(chatvault.RoleAuditor) {
		t.Errorf("created user = %+v; want zhang.wei 张伟 with auditor", u)
	}
	wantError(t, ts.must(http.StatusConflict, "POST", "/api/v1/admin/users", admin, map[string]any{
		"username": "ZHANG.WEI", "password": "password-zw"}), chatvault.ECONFLICT, "username")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/users", admin, map[string]any{
			"username": "li", "password": "password-li", "colour": "blue"}), chatvault.EINVALID, "colour")
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/users", admin, map[string]any{
			"username": "li", "password": "password-li", "roles": []string{"emperor"}}), chatvault.EINVALID, "roles")
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/users", admin, []byte(`{"username": "li",`)), chatvault.EINVALID, "")
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/users", admin, []byte(`{"username": 7, "password": "password-li"}`)), chatvault.EINVALID, "username")
	})

	var list struct {
		Users []chatvault.User `json:"users"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/users?limit=1", admin, nil).decode(t, &list)
	if len(list.Users) != 1 || list.Users[0].Username != "admin" {
		t.Fatalf("GET /admin/users?limit=1 = %+v; want admin", list.Users)
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/users?after=admin&limit=10", admin, nil).decode(t, &list)
	if len(list.Users) != 1 || list.Users[0].ID != u.ID {
		t.Errorf("GET /admin/users?after=admin = %+v; want zhang.wei", list.Users)
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/users/"+u.ID, admin, nil)
	ts.must(http.StatusNotFound, "GET", "/api/v1/admin/users/"+uuid.NewString(), admin, nil)

	// Disable signs the user out; enable lets them sign in again.
	zw := ts.login("zhang.wei", "password-zw", "")
	ts.must(http.StatusOK, "POST", "/api/v1/admin/users/"+u.ID+"/disable", admin, nil).decode(t, &u)
	if !u.Disabled {
		t.Errorf("disabled user = %+v; want disabled", u)
	}
	ts.must(http.StatusUnauthorized, "GET", "/api/v1/me", zw.Token, nil)
	ts.must(http.StatusUnauthorized, "POST", "/api/v1/auth/login", "", map[string]string{
		"username": "zhang.wei", "password": "password-zw", "device_name": "laptop"})
	ts.must(http.StatusOK, "POST", "/api/v1/admin/users/"+u.ID+"/enable", admin, nil)
	ts.must(http.StatusNotFound, "POST", "/api/v1/admin/users/"+uuid.NewString()+"/enable", admin, nil)
	var self chatvault.User
	ts.must(http.StatusOK, "GET", "/api/v1/me", admin, nil).decode(t, &self)
	ts.must(http.StatusConflict, "POST", "/api/v1/admin/users/"+self.ID+"/disable", admin, nil)

	// Roles granted and revoked after creation; nobody changes their own.
	ts.must(http.StatusOK, "PATCH", "/api/v1/admin/users/"+u.ID, admin, map[string]any{"roles": []string{"auditor"}, "display_name": "张伟 (审计)"})
	ts.must(http.StatusOK, "PATCH", "/api/v1/admin/users/"+u.ID, admin, map[string]any{"roles": []string{}})
	wantError(t, ts.must(http.StatusForbidden, "PATCH", "/api/v1/admin/users/"+self.ID, admin, map[string]any{"roles": []string{"member"}}), chatvault.EFORBIDDEN, "roles")
	wantError(t, ts.must(http.StatusNotFound, "PATCH", "/api/v1/admin/users/"+uuid.NewString(), admin, map[string]any{"disabled": false}), chatvault.ENOTFOUND, "")
	ts.must(http.StatusConflict, "PATCH", "/api/v1/admin/users/"+self.ID, admin, map[string]any{"disabled": true})
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "PATCH", "/api/v1/admin/users/"+u.ID, admin, map[string]any{"roles": []string{"root"}}), chatvault.EINVALID, "roles")
	})

	// Password resets: chosen, generated, too short.
	var pw struct{ Password string }
	ts.must(http.StatusOK, "POST", "/api/v1/admin/users/"+u.ID+"/password", admin, map[string]string{"password": "密码-chosen-by-admin"}).decode(t, &pw)
	if pw.Password != "密码-chosen-by-admin" {
		t.Errorf("reset password = %q; want the chosen one", pw.Password)
	}
	ts.must(http.StatusOK, "POST", "/api/v1/admin/users/"+u.ID+"/password", admin, nil).decode(t, &pw)
	zw = ts.login("zhang.wei", pw.Password, "")
	k.breaking(func() {
		ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/users/"+u.ID+"/password", admin, map[string]string{"password": "short"})
	})

	// Admin endpoints refuse members.
	for _, call := range []struct{ method, path string }{
		{"GET", "/api/v1/admin/users"},
		{"GET", "/api/v1/admin/users/" + u.ID},
		{"POST", "/api/v1/admin/users/" + u.ID + "/disable"},
		{"POST", "/api/v1/admin/users/" + u.ID + "/password"},
	} {
		wantError(t, ts.must(http.StatusForbidden, call.method, call.path, zw.Token, nil), chatvault.EFORBIDDEN, "")
	}
	ts.must(http.StatusForbidden, "POST", "/api/v1/admin/users", zw.Token, map[string]any{"username": "li", "password": "password-li"})
}

func contractConversations(t *testing.T, c *contract) {
	ts, k := c.serve(t)
	alice, bob, carol := ts.newUser("alice"), ts.newUser("bob"), ts.newUser("carol")

	// A group, with a Chinese title.
	var g struct {
		ID      string `json:"id"`
		Title   string `json:"title"`
		Members []struct {
			UserID string `json:"user_id"`
			Role   string `json:"role"`
		} `json:"members"`
	}
	ts.must(http.StatusCreated, "POST", "/api/v1/conversations", alice.Token, map[string]any{
		"type": "group", "title": "项目讨论 🚀", "members": []string{bob.ID}, "history_visible_to_new_members": true}).decode(t, &g)
	if g.Title != "项目讨论 🚀" || len(g.Members) != 2 {
		t.Errorf("created group = %+v; want title 项目讨论 🚀 and 2 members", g)
	}
	wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/conversations", alice.Token, map[string]any{
		"type": "group", "members": []string{uuid.NewString()}}), chatvault.EINVALID, "members")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/conversations", alice.Token, map[string]any{
			"type": "channel"}), chatvault.EINVALID, "type")
	})

	// A direct conversation exists once per pair: the second request finds it.
	var d1, d2 conversation
	ts.must(http.StatusCreated, "POST", "/api/v1/conversations", alice.Token, map[string]any{
		"type": "direct", "members": []string{bob.ID}}).decode(t, &d1)
	ts.must(http.StatusOK, "POST", "/api/v1/conversations", bob.Token, map[string]any{
		"type": "direct", "members": []string{alice.ID}}).decode(t, &d2)
	if d1.ID != d2.ID || d1.Type != "direct" {
		t.Errorf("direct conversations %+v and %+v; want the same", d1, d2)
	}

	ts.clock.Advance(time.Second) // so the group's message is the latest activity
	ts.send(alice, g.ID, "大家好")
	var list struct {
		Conversations []struct {
			ID          string             `json:"id"`
			UnreadCount int                `json:"unread_count"`
			LastMessage *chatvault.Message `json:"last_message"`
		} `json:"conversations"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/conversations", bob.Token, nil).decode(t, &list)
	if len(list.Conversations) != 2 || list.Conversations[0].ID != g.ID || list.Conversations[0].UnreadCount != 1 ||
		list.Conversations[0].LastMessage == nil || list.Conversations[0].LastMessage.Text != "大家好" {
		t.Errorf("bob's conversations = %+v; want the group first with 1 unread 大家好", list.Conversations)
	}
	ts.must(http.StatusOK, "GET", "/api/v1/conversations/"+g.ID, bob.Token, nil)

	// 404 for a conversation that does not exist and for one the caller never was in, alike.
	wantError(t, ts.must(http.StatusNotFound, "GET", "/api/v1/conversations/"+uuid.NewString(), alice.Token, nil), chatvault.ENOTFOUND, "")
	wantError(t, ts.must(http.StatusNotFound, "GET", "/api/v1/conversations/"+d1.ID, carol.Token, nil), chatvault.ENOTFOUND, "")
	ts.must(http.StatusNotFound, "POST", "/api/v1/conversations/"+d1.ID+"/read", carol.Token, map[string]int{"seq": 1})

	// Read marker and cleared history.
	var read struct {
		ReadSeq int64 `json:"read_seq"`
	}
	ts.must(http.StatusOK, "POST", "/api/v1/conversations/"+g.ID+"/read", bob.Token, map[string]int{"seq": 99}).decode(t, &read)
	if read.ReadSeq != 1 {
		t.Errorf("read_seq = %d; want 1 (capped at last_seq)", read.ReadSeq)
	}
	k.breaking(func() {
		ts.must(http.StatusBadRequest, "POST", "/api/v1/conversations/"+g.ID+"/read", bob.Token, map[string]int{"seq": -1})
		ts.must(http.StatusBadRequest, "POST", "/api/v1/conversations/"+g.ID+"/read", bob.Token, map[string]string{"seq": "1"})
	})
	var cleared struct {
		ClearedSeq int64 `json:"cleared_seq"`
	}
	ts.must(http.StatusOK, "POST", "/api/v1/conversations/"+g.ID+"/clear", bob.Token, nil).decode(t, &cleared)
	if cleared.ClearedSeq != 1 {
		t.Errorf("cleared_seq = %d; want 1", cleared.ClearedSeq)
	}

	// Members: add, remove by the owner, refuse others, leave, and a direct conversation is fixed.
	ts.must(http.StatusOK, "POST", "/api/v1/conversations/"+g.ID+"/members", bob.Token, map[string]any{"members": []string{carol.ID}})
	k.breaking(func() {
		ts.must(http.StatusBadRequest, "POST", "/api/v1/conversations/"+g.ID+"/members", bob.Token, map[string]any{"members": []string{}})
	})
	wantError(t, ts.must(http.StatusForbidden, "DELETE", "/api/v1/conversations/"+g.ID+"/members/"+alice.ID, bob.Token, nil), chatvault.EFORBIDDEN, "")
	ts.must(http.StatusNoContent, "DELETE", "/api/v1/conversations/"+g.ID+"/members/"+carol.ID, alice.Token, nil)
	ts.must(http.StatusNotFound, "DELETE", "/api/v1/conversations/"+g.ID+"/members/"+carol.ID, alice.Token, nil)
	ts.must(http.StatusForbidden, "POST", "/api/v1/conversations/"+g.ID+"/members", carol.Token, map[string]any{"members": []string{carol.ID}})
	ts.must(http.StatusNoContent, "POST", "/api/v1/conversations/"+g.ID+"/leave", bob.Token, nil)
	wantError(t, ts.must(http.StatusForbidden, "POST", "/api/v1/conversations/"+g.ID+"/leave", bob.Token, nil), chatvault.EFORBIDDEN, "")
	ts.must(http.StatusOK, "GET", "/api/v1/conversations/"+g.ID, bob.Token, nil) // former members still see it
	wantError(t, ts.must(http.StatusConflict, "POST", "/api/v1/conversations/"+d1.ID+"/leave", bob.Token, nil), chatvault.ECONFLICT, "")
	ts.must(http.StatusConflict, "POST", "/api/v1/conversations/"+d1.ID+"/members", alice.Token, map[string]any{"members": []string{carol.ID}})
}

func contractMessages(t *testing.T, c *contract) {
	ts, k := c.serve(t)
	alice, bob := ts.newUser("alice"), ts.newUser("bob")
	g := ts.group(alice, "周报", false, bob)
	base := "/api/v1/conversations/" + g.ID + "/messages"

	// Send, retry with the same client_msg_id, reuse it for other text.
	var first chatvault.Message
	ts.must(http.StatusCreated, "POST", base, alice.Token, map[string]string{"client_msg_id": "m-1", "text": "你好，世界 👋"}).decode(t, &first)
	var again chatvault.Message
	ts.must(http.StatusOK, "POST", base, alice.Token, map[string]string{"client_msg_id": "m-1", "text": "你好，世界 👋"}).decode(t, &again)
	if again.ID != first.ID || again.Seq != 1 {
		t.Errorf("retry = %+v; want the original %+v", again, first)
	}
	wantError(t, ts.must(http.StatusConflict, "POST", base, alice.Token, map[string]string{"client_msg_id": "m-1", "text": "别的"}), chatvault.ECONFLICT, "client_msg_id")
	var reply chatvault.Message
	ts.must(http.StatusCreated, "POST", base, bob.Token, map[string]string{"client_msg_id": "b-1", "text": "收到", "reply_to": first.ID}).decode(t, &reply)
	if reply.ReplyTo != first.ID {
		t.Errorf("reply_to = %q; want %q", reply.ReplyTo, first.ID)
	}
	wantError(t, ts.must(http.StatusBadRequest, "POST", base, bob.Token, map[string]string{
		"client_msg_id": "b-2", "text": "?", "reply_to": uuid.NewString()}), chatvault.EINVALID, "reply_to")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "POST", base, bob.Token, map[string]string{"text": "no id"}), chatvault.EINVALID, "client_msg_id")
		wantError(t, ts.must(http.StatusBadRequest, "POST", base, bob.Token, map[string]string{"client_msg_id": "b-3", "text": ""}), chatvault.EINVALID, "text")
	})
	wantError(t, ts.must(http.StatusNotFound, "POST", "/api/v1/conversations/"+uuid.NewString()+"/messages", bob.Token,
		map[string]string{"client_msg_id": "b-4", "text": "hello?"}), chatvault.ENOTFOUND, "")
	for i := range 5 {
		ts.send(bob, g.ID, fmt.Sprintf("消息 %d", i+3))
	}

	// Paging: newest, before, after, around; bad queries.
	if p := ts.history(alice, g.ID, "?limit=3"); len(p.Messages) != 3 || p.Messages[0].Seq != 5 || !p.HasMoreBefore {
		t.Errorf("newest page = %v; want seq 5..7 with more before", texts(p.Messages))
	}
	if p := ts.history(alice, g.ID, "?before_seq=3"); len(p.Messages) != 2 || p.HasMore {
		t.Errorf("before_seq=3 = %v; want 2 and no more", texts(p.Messages))
	}
	if p := ts.history(alice, g.ID, "?after_seq=5&limit=1"); len(p.Messages) != 1 || p.Messages[0].Seq != 6 || !p.HasMoreAfter {
		t.Errorf("after_seq=5 = %v; want seq 6 with more after", texts(p.Messages))
	}
	if p := ts.history(alice, g.ID, "?around_seq=4&limit=3"); len(p.Messages) != 3 || p.Messages[0].Seq != 3 || !p.HasMoreBefore || !p.HasMoreAfter {
		t.Errorf("around_seq=4 = %v; want seq 3..5 with more either side", texts(p.Messages))
	}
	wantError(t, ts.must(http.StatusBadRequest, "GET", base+"?before_seq=3&after_seq=1", alice.Token, nil), chatvault.EINVALID, "")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "GET", base+"?limit=0", alice.Token, nil), chatvault.EINVALID, "limit")
		wantError(t, ts.must(http.StatusBadRequest, "GET", base+"?limit=201", alice.Token, nil), chatvault.EINVALID, "limit")
		wantError(t, ts.must(http.StatusBadRequest, "GET", base+"?after_seq=-1", alice.Token, nil), chatvault.EINVALID, "after_seq")
		wantError(t, ts.must(http.StatusBadRequest, "GET", base+"?before_seq=soon", alice.Token, nil), chatvault.EINVALID, "before_seq")
	})

	// One message, its edits and versions.
	msg := base + "/" + first.ID
	ts.must(http.StatusOK, "GET", msg, bob.Token, nil)
	ts.must(http.StatusNotFound, "GET", base+"/"+uuid.NewString(), bob.Token, nil)
	var edited chatvault.Message
	ts.must(http.StatusOK, "PATCH", msg, alice.Token, map[string]any{"text": "你好，世界（已编辑）", "version": 1}).decode(t, &edited)
	if edited.Version != 2 || edited.EditedAt == nil {
		t.Errorf("edited = %+v; want version 2 with edited_at", edited)
	}
	wantError(t, ts.must(http.StatusConflict, "PATCH", msg, alice.Token, map[string]any{"text": "stale", "version": 1}), chatvault.ECONFLICT, "")
	wantError(t, ts.must(http.StatusForbidden, "PATCH", msg, bob.Token, map[string]any{"text": "not mine"}), chatvault.EFORBIDDEN, "")
	k.breaking(func() {
		ts.must(http.StatusBadRequest, "PATCH", msg, alice.Token, map[string]any{"text": "x", "version": -1})
	})
	var versions struct {
		Versions []chatvault.MessageVersion `json:"versions"`
	}
	ts.must(http.StatusOK, "GET", msg+"/versions", bob.Token, nil).decode(t, &versions)
	if len(versions.Versions) != 2 || versions.Versions[0].Text != "你好，世界 👋" || versions.Versions[1].Version != 2 {
		t.Errorf("versions = %+v; want the sent and the edited text", versions.Versions)
	}

	// Recall: not someone else's, once, and within the window.
	ts.must(http.StatusForbidden, "POST", msg+"/recall", bob.Token, nil)
	var recalled chatvault.Message
	ts.must(http.StatusOK, "POST", msg+"/recall", alice.Token, nil).decode(t, &recalled)
	if recalled.State != chatvault.StateRecalled || recalled.Text != "" {
		t.Errorf("recalled = %+v; want state recalled without text", recalled)
	}
	ts.must(http.StatusConflict, "POST", msg+"/recall", alice.Token, nil)
	ts.must(http.StatusConflict, "PATCH", msg, alice.Token, map[string]any{"text": "revive"})
	ts.must(http.StatusOK, "GET", msg+"/versions", bob.Token, nil).decode(t, &versions)
	if len(versions.Versions) != 0 {
		t.Errorf("versions of a recalled message = %+v; want none", versions.Versions)
	}
	late := ts.send(alice, g.ID, "too late to take back")
	ts.clock.Advance(3 * time.Minute)
	ts.must(http.StatusConflict, "POST", base+"/"+late.ID+"/recall", alice.Token, nil)

	// Hide: for the caller only, twice is fine.
	ts.must(http.StatusNoContent, "POST", base+"/"+reply.ID+"/hide", alice.Token, nil)
	ts.must(http.StatusNoContent, "POST", base+"/"+reply.ID+"/hide", alice.Token, nil)
	ts.must(http.StatusNotFound, "GET", base+"/"+reply.ID, alice.Token, nil)
	ts.must(http.StatusOK, "GET", base+"/"+reply.ID, bob.Token, nil)
	ts.must(http.StatusNotFound, "POST", base+"/"+uuid.NewString()+"/hide", alice.Token, nil)

	// Once out of the group, no more sending.
	ts.must(http.StatusNoContent, "POST", "/api/v1/conversations/"+g.ID+"/leave", bob.Token, nil)
	wantError(t, ts.must(http.StatusForbidden, "POST", base, bob.Token, map[string]string{"client_msg_id": "b-9", "text": "still here?"}), chatvault.EFORBIDDEN, "")
}

// contractTransport covers what the transport answers before a handler runs.
func contractTransport(t *testing.T, c *contract) {
	ts, k := c.serve(t)
	alice := ts.newUser("alice")
	g := ts.group(alice, "transport", false)
	base := "/api/v1/conversations/" + g.ID + "/messages"

	// 413: a body over the limit (64 KiB in tests), here a valid message that is simply too long.
	wantError(t, ts.must(http.StatusRequestEntityTooLarge, "POST", base, alice.Token, map[string]string{
		"client_msg_id": "big", "text": strings.Repeat("长", 30_000)}), chatvault.ETOOLARGE, "")

	// 415: a body that is not JSON.
	k.breaking(func() {
		r := ts.doRaw("POST", base, alice.Token, "text/plain; charset=utf-8", []byte(`{"client_msg_id": "t", "text": "hi"}`))
		if r.Status != http.StatusUnsupportedMediaType {
			t.Errorf("text/plain body: status %d; want 415; body %s", r.Status, r.Body)
		}
	})
	// application/json with parameters, and +json, are JSON.
	if r := ts.doRaw("POST", base, alice.Token, "application/json; charset=utf-8", []byte(`{"client_msg_id": "u", "text": "ok"}`)); r.Status != http.StatusCreated {
		t.Errorf("application/json; charset=utf-8 body: status %d; want 201; body %s", r.Status, r.Body)
	}

	// 400: malformed JSON, not an object, two values. kin-openapi decodes only the first JSON
	// value of a body, so the spec cannot be seen to reject the last.
	k.breaking(func() {
		for _, body := range []string{`{"client_msg_id": "x", "text": }`, `["x"]`} {
			wantError(t, ts.must(http.StatusBadRequest, "POST", base, alice.Token, []byte(body)), chatvault.EINVALID, "")
		}
	})
	wantError(t, ts.must(http.StatusBadRequest, "POST", base, alice.Token, []byte(`{"client_msg_id": "x", "text": "a"} {}`)), chatvault.EINVALID, "")

	// 400: input that encoding/json or net/url would alter rather than refuse, on operations that
	// take no body or parameters too.
	wantError(t, ts.must(http.StatusBadRequest, "GET", "/api/v1/sync?since=%%%garbage", alice.Token, nil), chatvault.EINVALID, "since")
	wantError(t, ts.must(http.StatusBadRequest, "GET", "/api/v1/me?x=%zz", alice.Token, nil), chatvault.EINVALID, "x")
	wantError(t, ts.must(http.StatusBadRequest, "POST", base, alice.Token, []byte(`{"client_msg_id": "s", "text": "\ud800"}`)), chatvault.EINVALID, "text")
	wantError(t, ts.must(http.StatusBadRequest, "POST", base, alice.Token, []byte("{\"client_msg_id\": \"s\", \"text\": \"\xff\"}")), chatvault.EINVALID, "text")
	wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/conversations", alice.Token, map[string]any{
		"type": "group", "title": "Payroll \u202efdp.exe"}), chatvault.EINVALID, "title")

	// 405: a path that exists, with a method it does not take. The spec cannot describe this one
	// operation by operation; the checker still holds the body to the Error schema.
	k.expect = specNoMethod
	r := ts.must(http.StatusMethodNotAllowed, "DELETE", "/api/v1/conversations", alice.Token, nil)
	k.expect = specAccepts
	wantError(t, r, "method_not_allowed", "")
	if allow := r.Header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("405 Allow = %q; want GET and POST", allow)
	}
}

func contractSync(t *testing.T, c *contract) {
	ts, k := c.serve(t)
	alice, bob := ts.newUser("alice"), ts.newUser("bob")
	g := ts.group(alice, "同步", false, bob)

	// Long-poll: an initial sync, then what changed after its cursor.
	var initial chat.SyncResult
	ts.must(http.StatusOK, "GET", "/api/v1/sync", bob.Token, nil).decode(t, &initial)
	if !initial.Initial || len(initial.Conversations) != 1 || initial.Conversations[0].ID != g.ID {
		t.Errorf("initial sync = %+v; want the one group", initial)
	}
	sent := ts.send(alice, g.ID, "新消息")
	var next chat.SyncResult
	ts.must(http.StatusOK, "GET", "/api/v1/sync?timeout=5&since="+url.QueryEscape(initial.Cursor), bob.Token, nil).decode(t, &next)
	if next.Initial || len(next.Conversations) != 1 || next.Conversations[0].LastMessage == nil || next.Conversations[0].LastMessage.ID != sent.ID {
		t.Errorf("sync since %s = %+v; want the group with the new message", initial.Cursor, next)
	}
	wantError(t, ts.must(http.StatusBadRequest, "GET", "/api/v1/sync?since=yesterday", bob.Token, nil), chatvault.EINVALID, "since")
	wantError(t, ts.must(http.StatusGone, "GET", "/api/v1/sync?since=c1.zzzzzz", bob.Token, nil), chatvault.ERESYNC, "")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "GET", "/api/v1/sync?timeout=61", bob.Token, nil), chatvault.EINVALID, "timeout")
		ts.must(http.StatusUnauthorized, "GET", "/api/v1/ws", "", nil)
	})
	ts.must(http.StatusUpgradeRequired, "GET", "/api/v1/ws", bob.Token, nil) // a plain GET, not a handshake

	// WebSocket: a sync frame first, then a send answered by an ack. Every frame is checked
	// against WSFrame, every send against WSSend.
	conn := k.dialWS(t, ts, bob.Token, false)
	if f := k.readFrame(t, conn); f.Type != "sync" || f.Sync == nil || !f.Sync.Initial {
		t.Errorf("first frame = %+v; want an initial sync", f)
	}
	k.sendFrame(t, conn, map[string]string{"type": "send", "conversation_id": g.ID, "client_msg_id": "ws-1", "text": "从 WebSocket 发出"})
	for {
		f := k.readFrame(t, conn)
		if f.Type == "ack" {
			if f.ClientMsgID != "ws-1" || !f.Created || f.Message == nil || f.Message.Text != "从 WebSocket 发出" {
				t.Errorf("ack = %+v; want the stored message for ws-1", f)
			}
			break
		}
	}
	k.sendFrame(t, conn, map[string]string{"type": "send", "conversation_id": g.ID, "client_msg_id": "ws-2", "text": "   "})
	for {
		f := k.readFrame(t, conn)
		if f.Type == "error" {
			if f.ClientMsgID != "ws-2" || f.Error == nil || f.Error.Code != chatvault.EINVALID || f.Error.Field != "text" {
				t.Errorf("error frame = %+v; want invalid text for ws-2", f)
			}
			break
		}
	}
	// Browsers pass the token in the query.
	conn = k.dialWS(t, ts, alice.Token, true)
	if f := k.readFrame(t, conn); f.Type != "sync" {
		t.Errorf("first frame = %+v; want sync", f)
	}
}
