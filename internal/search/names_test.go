package search

import "testing"

func TestNameQueries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query string
		names []string
		want  bool
	}{
		// As written: any part, folded like message text.
		{"张三", []string{"张三"}, true},
		{"三", []string{"张三"}, true},
		{"張三", []string{"张三"}, true},
		{"张三", []string{"張三"}, true},
		{"ALICE", []string{"Alice 爱丽丝"}, true},
		{"丽丝", []string{"Alice 爱丽丝"}, true},
		// Full pinyin, with or without spaces, and its start.
		{"zhangsan", []string{"张三"}, true},
		{"zhang san", []string{"张三"}, true},
		{"ZhangSan", []string{"张三"}, true},
		{"zhangs", []string{"张三"}, true},
		{"san", []string{"张三"}, true},
		// Initials, and a mix of initials and syllables.
		{"zs", []string{"张三"}, true},
		{"zsan", []string{"张三"}, true},
		{"zhs", []string{"张三"}, true},
		{"lisi", []string{"张三"}, false},
		{"zx", []string{"张三"}, false},
		{"sz", []string{"张三"}, false}, // in order
		// Every reading of a character that has several.
		{"zengguofan", []string{"曾国藩"}, true},
		{"cengguofan", []string{"曾国藩"}, true},
		{"shanxiansheng", []string{"单先生"}, true},
		// Groups by title, Latin words within Chinese.
		{"xmhy", []string{"项目会议 Project"}, true},
		{"xiangmu", []string{"项目会议 Project"}, true},
		{"proj", []string{"项目会议 Project"}, true},
		{"xmhyproj", []string{"项目会议 Project"}, true},
		{"xmproj", []string{"项目会议 Project"}, false}, // the units spelt are consecutive
		// Any of several names.
		{"wangwu", []string{"alice", "王五"}, true},
		{"wangwu", []string{"alice", "bob"}, false},
		// Kana have no pinyin; they match as written.
		{"テスト", []string{"テスト"}, true},
		{"tesuto", []string{"テスト"}, false},
	}
	for _, tc := range tests {
		q := ParseName(tc.query)
		if q == nil {
			t.Fatalf("ParseName(%q) = nil", tc.query)
		}
		if got := q.Matches(tc.names...); got != tc.want {
			t.Errorf("name query %q on %q = %v; want %v", tc.query, tc.names, got, tc.want)
		}
	}
	for _, blank := range []string{"", "  ", "，。!", "🙂"} {
		if q := ParseName(blank); q != nil {
			t.Errorf("ParseName(%q) = %+v; want nil: nothing to look for", blank, q)
		}
	}
}

func FuzzNameQuery(f *testing.F) {
	for _, seed := range [][2]string{{"zs", "张三"}, {"zhangsan", "張三"}, {"ab", "\xff"}, {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "阿阿阿阿阿阿阿阿阿阿阿阿阿阿阿阿阿阿阿阿阿阿阿阿阿阿阿阿阿阿"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, query, name string) {
		q := ParseName(query)
		if q == nil {
			return
		}
		q.Matches(name) // never panics; as written, a name always finds itself
		if self := ParseName(name); self != nil && !self.Matches(name) {
			t.Fatalf("name %q does not find itself", name)
		}
	})
}
