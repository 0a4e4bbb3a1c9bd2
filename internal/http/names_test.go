package http_test

import (
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/chatvault/chatvault"
)

// People and conversations are found by name as a Chinese address book finds them: as written,
// by full pinyin, by initials.
func TestFindByNameAndPinyin(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	var zhang chatvault.User
	ts.must(http.StatusCreated, "POST", "/api/v1/admin/users", ts.adminToken, map[string]any{
		"username": "zhang3", "password": "password-zhang3", "display_name": "张三"}).decode(t, &zhang)
	ts.must(http.StatusCreated, "POST", "/api/v1/admin/users", ts.adminToken, map[string]any{
		"username": "zeng", "password": "password-zeng", "display_name": "曾国藩"})
	alice := ts.newUser("alice")
	bob := ts.newUser("bob")
	project := ts.group(alice, "项目会议 Project", false, bob)
	ts.group(alice, "周末 Weekend", false, bob)
	var direct conversation
	ts.must(http.StatusCreated, "POST", "/api/v1/conversations", alice.Token, map[string]any{
		"type": "direct", "members": []string{zhang.ID}}).decode(t, &direct)

	people := func(token, path, q string) []string {
		t.Helper()
		var page struct {
			Users []struct {
				Username string `json:"username"`
			} `json:"users"`
		}
		ts.must(http.StatusOK, "GET", path+"?q="+url.QueryEscape(q), token, nil).decode(t, &page)
		var names []string
		for _, u := range page.Users {
			names = append(names, u.Username)
		}
		return names
	}
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"张三", []string{"zhang3"}},
		{"張三", []string{"zhang3"}},
		{"zhangsan", []string{"zhang3"}},
		{"Zhang San", []string{"zhang3"}},
		{"zs", []string{"zhang3"}},
		{"zsan", []string{"zhang3"}},
		{"cengguofan", []string{"zeng"}}, // 曾 read ceng
		{"zgf", []string{"zeng"}},
		{"ali", []string{"alice"}},
		{"lisi", nil},
	} {
		if got := people(alice.Token, "/api/v1/users", tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("directory q=%q: %v; want %v", tc.q, got, tc.want)
		}
		if got := people(ts.adminToken, "/api/v1/admin/users", tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("admin users q=%q: %v; want %v", tc.q, got, tc.want)
		}
	}
	// Pages of matches: the next starts after the last username returned.
	var page struct {
		Users []struct {
			Username string `json:"username"`
		} `json:"users"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/users?q=z&limit=1", alice.Token, nil).decode(t, &page)
	if len(page.Users) != 1 || page.Users[0].Username != "zeng" {
		t.Fatalf("first page of q=z: %+v; want zeng (曾国藩 sorts first by username)", page.Users)
	}
	ts.must(http.StatusOK, "GET", "/api/v1/users?q=z&limit=1&after=zeng", alice.Token, nil).decode(t, &page)
	if len(page.Users) != 1 || page.Users[0].Username != "zhang3" {
		t.Fatalf("second page of q=z: %+v; want zhang3", page.Users)
	}
	wantError(t, ts.must(http.StatusBadRequest, "GET", "/api/v1/users?q="+url.QueryEscape("，。"), alice.Token, nil), chatvault.EINVALID, "q")

	convs := func(q string) []string {
		t.Helper()
		var out struct {
			Conversations []struct {
				ID string `json:"id"`
			} `json:"conversations"`
		}
		ts.must(http.StatusOK, "GET", "/api/v1/conversations?q="+url.QueryEscape(q), alice.Token, nil).decode(t, &out)
		var ids []string
		for _, c := range out.Conversations {
			ids = append(ids, c.ID)
		}
		return ids
	}
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"项目", []string{project.ID}},
		{"xmhy", []string{project.ID}},
		{"xiangmu", []string{project.ID}},
		{"project", []string{project.ID}},
		{"zs", []string{direct.ID}}, // a direct conversation by the other person's name
		{"zhang3", []string{direct.ID}},
		{"lisi", nil},
	} {
		if got := convs(tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("conversations q=%q: %v; want %v", tc.q, got, tc.want)
		}
	}
	// The other person's conversation list finds the same conversation by alice's name.
	var out struct {
		Conversations []struct {
			ID string `json:"id"`
		} `json:"conversations"`
	}
	zt := ts.login("zhang3", "password-zhang3", "").Token
	ts.must(http.StatusOK, "GET", "/api/v1/conversations?q=ali", zt, nil).decode(t, &out)
	if len(out.Conversations) != 1 || out.Conversations[0].ID != direct.ID {
		t.Errorf("zhang3's conversations q=ali: %+v; want the direct conversation with alice", out.Conversations)
	}
}
