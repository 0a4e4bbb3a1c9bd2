package http_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
	cvhttp "github.com/chatvault/chatvault/internal/http"
)

// wantRefused fails unless r is a 400 naming field ("" = no field).
func wantRefused(t *testing.T, what string, r response, field string) {
	t.Helper()
	if r.Status != http.StatusBadRequest {
		t.Errorf("%s: status %d; want 400; body %s", what, r.Status, r.Body)
		return
	}
	if code, got := r.errorCode(t); code != chatvault.EINVALID || got != field {
		t.Errorf("%s: error %s/%q; want %s/%q; body %s", what, code, got, chatvault.EINVALID, field, r.Body)
	}
}

// TestBodyTextRefusedNotAltered: JSON text that encoding/json would turn into U+FFFD (bytes that
// are not UTF-8, half a surrogate pair) is refused with the field named, and nothing is stored.
func TestBodyTextRefusedNotAltered(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice, bob := ts.newUser("alice"), ts.newUser("bob")
	g := ts.group(alice, "input", false, bob)
	messages := "/api/v1/conversations/" + g.ID + "/messages"

	for _, tc := range []struct {
		name, path, body, field string
	}{
		{"invalid utf-8 in text", messages, "{\"client_msg_id\":\"m1\",\"text\":\"caf\xe9\"}", "text"},
		{"encoded surrogate in text", messages, "{\"client_msg_id\":\"m2\",\"text\":\"x\xed\xa0\x80\"}", "text"},
		{"lone high surrogate", messages, `{"client_msg_id":"m3","text":"hi \ud83d"}`, "text"},
		{"lone low surrogate", messages, `{"client_msg_id":"m4","text":"\uDE80 hi"}`, "text"},
		{"high surrogate before another high one", messages, `{"client_msg_id":"m5","text":"\ud83d\ud83d\ude80"}`, "text"},
		{"high surrogate before a plain escape", messages, `{"client_msg_id":"m6","text":"\ud83d\u0041"}`, "text"},
		{"invalid utf-8 in client_msg_id", messages, "{\"client_msg_id\":\"m\xff\",\"text\":\"hi\"}", "client_msg_id"},
		{"invalid utf-8 in a field name", messages, "{\"client_msg_id\":\"m7\",\"te\xffxt\":\"hi\"}", ""},
		{"invalid utf-8 outside strings", messages, "{\"client_msg_id\":\"m8\",\"text\":\"hi\"}\xff", ""},
		{"lone surrogate in a display name", "/api/v1/admin/users",
			`{"username":"mallory","password":"password-mallory","display_name":"M\udc00"}`, "display_name"},
		{"lone surrogate in an array element", "/api/v1/conversations",
			`{"type":"group","title":"t","members":["` + bob.ID + `","\ud800"]}`, "members[1]"},
	} {
		token := alice.Token
		if tc.path == "/api/v1/admin/users" {
			token = ts.adminToken
		}
		r := ts.doRaw("POST", tc.path, token, "application/json", []byte(tc.body))
		wantRefused(t, tc.name, r, tc.field)
	}

	// Nothing of it was stored.
	if p := ts.history(bob, g.ID, ""); len(p.Messages) != 0 {
		t.Errorf("history after refused sends = %q; want none", texts(p.Messages))
	}
	var users struct {
		Users []chatvault.User `json:"users"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/users", ts.adminToken, nil).decode(t, &users)
	for _, u := range users.Users {
		if u.Username == "mallory" {
			t.Errorf("user %+v was created from a refused request", u)
		}
	}
	var convs struct {
		Conversations []conversation `json:"conversations"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/conversations", alice.Token, nil).decode(t, &convs)
	if len(convs.Conversations) != 1 {
		t.Errorf("conversations after a refused create = %+v; want only %s", convs.Conversations, g.ID)
	}

	// A surrogate pair written as two escapes is one character, and is stored as that character.
	var m chatvault.Message
	ts.doRaw("POST", messages, alice.Token, "application/json", []byte(`{"client_msg_id":"ok","text":"\ud83d\ude80 \u5F20"}`)).decode(t, &m)
	if p := ts.history(bob, g.ID, ""); len(p.Messages) != 1 || p.Messages[0].Text != "🚀 张" {
		t.Errorf("history = %q; want [\"🚀 张\"]", texts(p.Messages))
	}
}

// TestDuplicateKeysRefused: a body with one key twice in an object (or twice but for case, which
// encoding/json treats as the same field) is refused, so no two parsers read it differently.
func TestDuplicateKeysRefused(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice, bob := ts.newUser("alice"), ts.newUser("bob")
	g := ts.group(alice, "dup", false, bob)
	messages := "/api/v1/conversations/" + g.ID + "/messages"
	for _, tc := range []struct {
		name, path, body, field string
	}{
		{"text twice", messages, `{"client_msg_id":"d1","text":"a","text":"b"}`, "text"},
		{"text twice, case apart", messages, `{"client_msg_id":"d2","text":"a","Text":"b"}`, "Text"},
		{"escaped the second time", messages, `{"client_msg_id":"d3","text":"a","t\u0065xt":"b"}`, "text"},
		{"in a nested object", "/api/v1/admin/users", `{"username":"dup","password":"password-dup","roles":["auditor"],"roles":[]}`, "roles"},
		{"chinese key twice", messages, `{"client_msg_id":"d4","text":"a","名字":1,"名字":2}`, "名字"},
	} {
		token := alice.Token
		if tc.path == "/api/v1/admin/users" {
			token = ts.adminToken
		}
		wantRefused(t, tc.name, ts.doRaw("POST", tc.path, token, "application/json", []byte(tc.body)), tc.field)
	}
	if p := ts.history(bob, g.ID, ""); len(p.Messages) != 0 {
		t.Errorf("history after refused sends = %q; want none", texts(p.Messages))
	}
	// The same key in two different objects is fine.
	var v map[string]any
	if err := cvhttp.DecodeBody([]byte(`{"a":{"x":1,"y":[{"x":2},{"x":3}]},"b":{"x":4}}`), &v); err != nil {
		t.Errorf("DecodeBody with one key in several objects: %v; want nil", err)
	}
}

// TestMalformedQueryRefused: a query string net/url cannot parse whole is refused before any
// handler reads it, instead of being read with the bad pair dropped.
func TestMalformedQueryRefused(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.newUser("alice")
	g := ts.group(alice, "query", false)
	ts.send(alice, g.ID, "上海 hello")
	messages := "/api/v1/conversations/" + g.ID + "/messages"

	for _, tc := range []struct{ path, field string }{
		// Read as a full initial sync before: the since pair was dropped.
		{"/api/v1/sync?since=%%%garbage", "since"},
		{"/api/v1/sync?timeout=5;since=c1.x", "timeout"},
		{"/api/v1/search?q=%FF", "q"},
		{"/api/v1/search?q=%E4%B8", "q"}, // a character cut short
		{messages + "?limit=1;after_seq=0", "limit"},
		{messages + "?after_seq=%zz", "after_seq"},
		{"/api/v1/conversations?x=%", "x"},
		{"/api/v1/me?%zz=1", ""},
		{"/api/v1/me?%FF=1", ""},
		{"/healthz?probe=%G0", "probe"},
	} {
		wantRefused(t, "GET "+tc.path, ts.do("GET", tc.path, alice.Token, nil), tc.field)
	}

	// Well-formed queries still work.
	var initial chat.SyncResult
	ts.must(http.StatusOK, "GET", "/api/v1/sync", alice.Token, nil).decode(t, &initial)
	ts.must(http.StatusOK, "GET", "/api/v1/sync?since="+url.QueryEscape(initial.Cursor), alice.Token, nil)
	var found chat.SearchPage
	ts.must(http.StatusOK, "GET", "/api/v1/search?q=%E4%B8%8A%E6%B5%B7&limit=5&", alice.Token, nil).decode(t, &found)
	if len(found.Hits) != 1 || found.Hits[0].Message.Text != "上海 hello" {
		t.Errorf("search 上海 = %+v; want the one message", found.Hits)
	}
}

// TestNamesRefuseInvisibleControls drives one table of names through every kind of name
// (display name, conversation title, device name): scripts, emoji and combining marks are stored
// byte for byte; bidirectional and invisible controls are refused with the field named, and
// nothing is stored. Message text keeps them: people write mixed right-to-left text.
func TestNamesRefuseInvisibleControls(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.newUser("alice")
	convs := func() int {
		var list struct {
			Conversations []conversation `json:"conversations"`
		}
		ts.must(http.StatusOK, "GET", "/api/v1/conversations", alice.Token, nil).decode(t, &list)
		return len(list.Conversations)
	}
	devices := func() []chatvault.Device {
		var list struct {
			Devices []chatvault.Device `json:"devices"`
		}
		ts.must(http.StatusOK, "GET", "/api/v1/devices", alice.Token, nil).decode(t, &list)
		return list.Devices
	}

	for i, tc := range []struct {
		name, text string
		ok         bool
	}{
		{"chinese", "张伟", true},
		{"mathematical script", "𝒜", true},
		{"emoji zwj sequence", "👩\u200d💻", true},
		{"decomposed combining mark", "cafe\u0301", true},
		{"arabic", "محمد علي", true},
		{"persian with zwnj", "می\u200cخواهم", true},
		{"hebrew and latin", "דנה Dana", true},
		{"right-to-left override", "Invoice \u202efdp.exe", false},
		{"right-to-left isolate", "\u2067admin\u2069", false},
		{"right-to-left mark", "admin\u200f", false},
		{"zero width space", "ad\u200bmin", false},
		{"line separator", "a\u2028b", false},
	} {
		username := fmt.Sprintf("user%d", i)
		var u chatvault.User
		r := ts.do("POST", "/api/v1/admin/users", ts.adminToken, map[string]any{
			"username": username, "password": "password-" + username, "display_name": tc.text})
		switch {
		case !tc.ok:
			wantRefused(t, tc.name+": display_name", r, "display_name")
			ts.must(http.StatusUnauthorized, "POST", "/api/v1/auth/login", "", map[string]string{
				"username": username, "password": "password-" + username, "device_name": "d"})
		case r.Status != http.StatusCreated:
			t.Errorf("%s: create user with display_name %q: status %d; want 201; body %s", tc.name, tc.text, r.Status, r.Body)
		default:
			r.decode(t, &u)
			var got chatvault.User
			ts.must(http.StatusOK, "GET", "/api/v1/admin/users/"+u.ID, ts.adminToken, nil).decode(t, &got)
			if got.DisplayName != tc.text {
				t.Errorf("display_name read back = %q; want %q", got.DisplayName, tc.text)
			}
		}

		before := convs()
		r = ts.do("POST", "/api/v1/conversations", alice.Token, map[string]any{"type": "group", "title": tc.text})
		if !tc.ok {
			wantRefused(t, tc.name+": title", r, "title")
			if n := convs(); n != before {
				t.Errorf("conversations after a refused title = %d; want %d", n, before)
			}
		} else {
			var c struct {
				ID    string `json:"id"`
				Title string `json:"title"`
			}
			r.decode(t, &c)
			ts.must(http.StatusOK, "GET", "/api/v1/conversations/"+c.ID, alice.Token, nil).decode(t, &c)
			if c.Title != tc.text {
				t.Errorf("title read back = %q; want %q", c.Title, tc.text)
			}
		}

		n := len(devices())
		r = ts.do("POST", "/api/v1/auth/login", "", map[string]string{
			"username": "alice", "password": "password-alice", "device_name": tc.text})
		if !tc.ok {
			wantRefused(t, tc.name+": device_name", r, "device_name")
			if got := len(devices()); got != n {
				t.Errorf("devices after a refused device_name = %d; want %d", got, n)
			}
		} else if ds := devices(); r.Status != http.StatusOK || len(ds) != n+1 || ds[len(ds)-1].Name != tc.text {
			t.Errorf("login with device_name %q: status %d, devices %+v; want the name stored as sent", tc.text, r.Status, ds)
		}
	}

	// Message text keeps every one of them, byte for byte.
	g := ts.group(alice, "texts", false)
	text := "see \u202efdp.exe, \u2067שלום\u2069 and ad\u200bmin"
	ts.send(alice, g.ID, text)
	if p := ts.history(alice, g.ID, ""); len(p.Messages) != 1 || p.Messages[0].Text != text {
		t.Errorf("history = %q; want [%q]", texts(p.Messages), text)
	}
}

// TestHoldNameRefusesBidiControls: a legal hold's name is a name too.
func TestHoldNameRefusesBidiControls(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.must(http.StatusCreated, "POST", "/api/v1/admin/users", ts.adminToken, map[string]any{
		"username": "officer", "password": "password-officer", "roles": []string{"compliance_officer"}})
	officer := ts.login("officer", "password-officer", "").Token
	wantRefused(t, "hold name", ts.do("POST", "/api/v1/compliance/holds", officer, map[string]any{
		"name": "Case \u202e311", "reason": "counsel"}), "name")
	var holds struct {
		Holds []chatvault.Hold `json:"holds"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/compliance/holds", officer, nil).decode(t, &holds)
	if len(holds.Holds) != 0 {
		t.Errorf("holds after a refused name = %+v; want none", holds.Holds)
	}
	ts.must(http.StatusCreated, "POST", "/api/v1/compliance/holds", officer, map[string]any{"name": "张三诉讼 ⚖️", "reason": "counsel"})
}
