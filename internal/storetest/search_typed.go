package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/search"
)

// testTypedQueries: queries as users type them, in both scripts, and the messages each must and
// must not find once the store's candidates pass the exact check (the table of docs/search.md).
func testTypedQueries(t *testing.T, s chatvault.Store) {
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	texts := []string{
		"我家在上海东边", "上海的會議", "上，海", "死不了", "老死，不相往来", "请看合同v2的第三条", "合同 v2",
		"明天北京meeting取消", "北京 meeting", "the Meeting is at 3", "ＭＥＥＴＩＮＧ", "meetings", "meet",
		"iPhone15价格", "iPhone 15", "smartphone", "15号", "150", "iPhone15Pro", "HT2024合同", "合同号HT2024-0042",
		"HT20245", "明天的会议", "會議室", "会谈", "上海，东边", "会议前review", "会议 reviewed", "quarterly-report",
		"在裡面", "在裏面", "軟體更新",
	}
	for i, text := range texts {
		f.sendAt(t, c, i%2, text, t0.Add(time.Duration(i)*time.Minute))
	}
	for _, tc := range []struct {
		query       string
		finds, nots []string
	}{
		{"上海", []string{"我家在上海东边", "上海的會議"}, []string{"上，海"}},
		{"死不", []string{"死不了"}, []string{"老死，不相往来"}},
		{"合同v2", []string{"请看合同v2的第三条"}, []string{"合同 v2"}},
		{"北京meeting", []string{"明天北京meeting取消"}, []string{"北京 meeting"}},
		{"meeting", []string{"明天北京meeting取消", "北京 meeting", "the Meeting is at 3", "ＭＥＥＴＩＮＧ"}, []string{"meetings", "meet"}},
		{"iphone", []string{"iPhone15价格", "iPhone 15", "iPhone15Pro"}, []string{"smartphone"}},
		{"15", []string{"iPhone15价格", "iPhone 15", "15号", "iPhone15Pro"}, []string{"150"}},
		{"iphone15", []string{"iPhone15价格", "iPhone15Pro"}, []string{"iPhone 15"}},
		{"HT2024", []string{"HT2024合同", "合同号HT2024-0042"}, []string{"HT20245"}},
		{"會議", []string{"上海的會議", "明天的会议", "會議室"}, []string{"会谈"}},
		{"会议", []string{"上海的會議", "明天的会议", "會議室", "会议前review", "会议 reviewed"}, []string{"会谈"}},
		{`"上海 东边"`, []string{"我家在上海东边", "上海，东边"}, nil},
		{`"quarterly report"`, []string{"quarterly-report"}, nil},
		{"meet*", []string{"明天北京meeting取消", "北京 meeting", "the Meeting is at 3", "ＭＥＥＴＩＮＧ", "meetings", "meet"}, nil},
		{"会议 rev*", []string{"会议前review", "会议 reviewed"}, []string{"明天的会议"}},
		{"里面", []string{"在裡面", "在裏面"}, nil},
		{"软件", nil, []string{"軟體更新"}},
		{"软体", []string{"軟體更新"}, nil},
	} {
		pq, err := search.Parse(tc.query)
		if err != nil {
			t.Fatalf("search.Parse(%q) = %v", tc.query, err)
		}
		var got []string
		for _, cand := range f.candidates(t, tc.query, chatvault.SearchQuery{Limit: 1000}) {
			if ok, _, _ := pq.Match(cand.Message.Text); ok {
				got = append(got, cand.Message.Text)
			}
		}
		for _, want := range tc.finds {
			if !slices.Contains(got, want) {
				t.Errorf("query %q does not find %q (found %q)", tc.query, want, got)
			}
		}
		for _, not := range tc.nots {
			if not != "" && slices.Contains(got, not) {
				t.Errorf("query %q finds %q, which it must not", tc.query, not)
			}
		}
	}
}
