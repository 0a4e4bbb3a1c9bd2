package search

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// matches parses q and checks text against it.
func matches(t *testing.T, q, text string) bool {
	t.Helper()
	pq, err := Parse(q)
	if err != nil {
		t.Fatalf("Parse(%q): %v", q, err)
	}
	ok, _, _ := pq.Match(text)
	return ok
}

func TestMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query, text string
		want        bool
	}{
		// The peers' failures: a CJK word inside a run of CJK text.
		{"上海", "我家在上海东边", true},
		{"海东", "我家在上海东边", true},
		{"家", "我家在上海东边", true},
		{"我家在上海东边", "我家在上海东边", true},
		{"上东", "我家在上海东边", false},
		{"北京", "我家在上海东边", false},
		// Spaces and punctuation are boundaries: a query's consecutive characters are consecutive
		// in the text (a held-out check over classical Chinese found these matching).
		{"上海东", "上海 东边", false},
		{"上海", "上，海", false},
		{"死不", "老死，不相往来", false},
		{"棘其", "園有棘，其實之食", false},
		{"不相", "老死，不相往来", true},
		{"死", "老死，不相往来", true},
		// A phrase's spaces ask for nothing: the units in order, with or without a separator.
		{`"上海 东边"`, "上海，东边", true},
		{`"上海 东边"`, "上海东边", true},
		{`"上海 东边"`, "上海，南边", false},
		// Mixed scripts.
		{"合同v2", "请看合同v2的第三条", true},
		{"合同v2", "请看合同 V2 的第三条", false},
		{`"合同 v2"`, "请看合同 V2 的第三条", true},
		{"合同v2", "请看合同v3", false},
		{"北京meeting", "明天北京meeting取消", true},
		{"meeting", "明天北京meeting取消", true},
		// Letters and digits that touch are parts of one run, found alone and together.
		{"iPhone", "iPhone15价格多少", true},
		{"15", "iPhone15价格多少", true},
		{"iphone15", "iPhone15价格多少", true},
		{"IPHONE15价格", "iPhone15价格多少", true},
		{"phone", "iPhone15价格多少", false},
		{"iphone15", "iPhone 15", false},
		{`"iphone 15"`, "iPhone15", true},
		{"HT2024", "HT2024合同已签", true},
		{"ht", "HT2024合同已签", true},
		{"2024合同", "HT2024合同已签", true},
		{"HT2024合同", "HT2024合同已签", true},
		{"HT2025", "HT2024合同已签", false},
		{"v2", "合同v2x", true},
		{"2x", "合同v2x", true},
		{"café2", "cafe\u0301 2", false},
		{"café2", "CAFE\u03012", true},
		// Traditional and simplified characters are folded alike, both ways, including the Hong
		// Kong and Taiwan forms; a phrase that differs by more than its characters does not.
		{"会议", "明天的會議改到三樓", true},
		{"會議", "明天的会议改到三楼", true},
		{"三楼会议", "三樓會議室", true},
		{"头发", "剪頭髮", true},
		{"发送", "請發送給張三", true},
		{"里面", "在裡面", true},
		{"里面", "在裏面", true},
		{"卫生", "衞生間", true},
		{"會議", "会谈", false},
		{"软件", "軟體", false},
		// word* finds the words that start with it, the word itself included.
		{"meet*", "the meeting is at 3", true},
		{"meet*", "let us meet", true},
		{"MEETI*", "Meetings all day", true},
		{"meetings*", "the meeting is at 3", false},
		{"meetin*", "the meeting is at 3", true},
		{"eting*", "the meeting is at 3", false},
		{"rev*", "请review一下", true},
		{"iphone*", "iPhone15价格", true},
		{"会议 rev*", "会议前review", true},
		{"会议 rev*", "会议前 preview", false},
		{`"quarterly rep*"`, "the quarterly report", false}, // no prefixes inside a phrase
		{"-meet* call", "call about the meeting", false},
		// Words are whole words, compared after NFKC and case folding.
		{"meet", "the meeting is at 3", false},
		{"MEETING", "the Meeting is at 3", true},
		{"ｍｅｅｔｉｎｇ", "the meeting is at 3", true},
		{"meeting", "ＭＥＥＴＩＮＧ at ３", true},
		{"3", "ＭＥＥＴＩＮＧ at ３", true},
		{"ﾃｽﾄ", "テスト", true}, // half-width katakana
		{"straße", "STRASSE", true},
		{"café", "cafe\u0301 au lait", true}, // precomposed query, decomposed text
		// Phrases, exclusion, OR.
		{`"quarterly report"`, "the quarterly report is late", true},
		{`"report quarterly"`, "the quarterly report is late", false},
		{`quarterly -late`, "the quarterly report is late", false},
		{`quarterly -"report late"`, "the quarterly report is late", true},
		{`合同 v1 OR v2`, "合同v2", true},
		{`合同 v1 OR v2`, "合同v3", false},
		{`v1 OR v2`, "only v2 here", true},
		{`or`, "this or that", true},
		{`OR`, "this or that", true},
		{`-上海 北京`, "北京和上海", false},
		{`-上海 北京`, "北京和天津", true},
	}
	for _, tc := range tests {
		if got := matches(t, tc.query, tc.text); got != tc.want {
			t.Errorf("query %q on %q: match = %v, want %v", tc.query, tc.text, got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, q := range []string{"m*", "2024*", "合同 a*", "", "   ", "-上海", `-"a b"`, "!!! ???", strings.Repeat("a ", 17), strings.Repeat("长", 257), "\xff"} {
		if _, err := Parse(q); err == nil {
			t.Errorf("Parse(%q) = nil error, want an error", q)
		}
	}
}

// The index never misses: for every term a text matches, the text's index tokens include all the
// tokens the term asks for (in one of its alternatives). Checked over every contiguous run of units
// of varied texts, and over the same runs with the last unit cut to each prefix of two letters or
// more, as a prefix query.
func TestIndexCoversEveryMatch(t *testing.T) {
	t.Parallel()
	texts := []string{"我家在上海东边", "會議室裡的電腦，請於明天發送", "老死，不相往来。上海 东边", "iPhone15价格 HT2024合同 po20231205-0042", "请看合同v2的第三条, OK?", "北京meeting 改到 3 点", "テストです 한국어 텍스트", "plain english words only",
		"混合 mixed 中文 and English 文本", "ＦＵＬＬ　ｗｉｄｔｈ　全角", "meetings about the quarterly reviews, Überweisung ok"}
	for _, text := range texts {
		have := IndexTokens(text)
		units := Units(text)
		for i := range units {
			for j := i + 1; j <= len(units); j++ {
				run := slices.Clone(units[i:j])
				covered(t, text, have, run)
				last := &run[len(run)-1]
				if !isLetters(*last) {
					continue
				}
				word := last.Text
				for k := range word {
					if k > 0 && utf8.RuneCountInString(word[:k]) >= minPrefix {
						last.Text, last.Prefix = word[:k], true
						covered(t, text, have, run)
					}
				}
				last.Text = word
				covered(t, text, have, run) // a prefix as long as the word
			}
		}
	}
}

// covered checks that the index tokens have hold one of the alternatives a run of units asks for.
func covered(t *testing.T, text string, have []string, run []Unit) {
	t.Helper()
	alts := termTokens(run)
	for _, need := range alts {
		if !slices.ContainsFunc(need, func(tok string) bool { return !slices.Contains(have, tok) }) {
			return
		}
	}
	t.Errorf("%q: the run %v needs one of %q, which the index lacks", text, run, alts)
}

func TestSnippetMarksMatches(t *testing.T) {
	t.Parallel()
	q, err := Parse("上海")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("前", 40) + "我家在上海东边\n" + strings.Repeat("后", 200)
	ok, spans, _ := q.Match(text)
	if !ok {
		t.Fatal("no match")
	}
	parts := Snippet(text, spans)
	var b strings.Builder
	var marked []string
	for _, p := range parts {
		b.WriteString(p.Text)
		if p.Match {
			marked = append(marked, p.Text)
		}
	}
	got := b.String()
	if !slices.Equal(marked, []string{"上海"}) {
		t.Errorf("marked parts %q, want [上海]", marked)
	}
	if !strings.HasPrefix(got, "…") || !strings.HasSuffix(got, "…") || strings.Contains(got, "\n") {
		t.Errorf("snippet %q: want cut on both sides, on one line", got)
	}
	if n := len([]rune(got)); n > snippetLen+2 {
		t.Errorf("snippet has %d characters, want at most %d", n, snippetLen+2)
	}
}

func TestSnippetKeepsOriginalForms(t *testing.T) {
	t.Parallel()
	q, _ := Parse("meeting")
	text := "Ｔｈｅ ＭＥＥＴＩＮＧ"
	_, spans, _ := q.Match(text)
	parts := Snippet(text, spans)
	if len(parts) != 2 || parts[1].Text != "ＭＥＥＴＩＮＧ" || !parts[1].Match {
		t.Errorf("parts = %+v, want the full-width word marked as written", parts)
	}
}

func TestRelevancePrefersDenserMatches(t *testing.T) {
	t.Parallel()
	q, _ := Parse("合同")
	_, _, short := q.Match("合同合同")
	_, _, long := q.Match("合同" + strings.Repeat("其他内容", 30))
	if short <= long {
		t.Errorf("score of a short message all about the term %v <= a long one mentioning it once %v", short, long)
	}
}

// Folding is a fixed point: a folded character folds to itself, so a query folded once and a text
// folded once meet.
func TestFoldHanIsIdempotent(t *testing.T) {
	t.Parallel()
	n := 0
	for from := range hanFold() {
		to := FoldHan(from)
		if again := FoldHan(to); again != to {
			t.Errorf("FoldHan(%q) = %q, but FoldHan(%q) = %q", from, to, to, again)
		}
		n++
	}
	if n < 4000 {
		t.Errorf("fold table has %d entries, want the whole OpenCC character table (over 4,000)", n)
	}
}

// Search as you type: the last word is a prefix while it is being typed, and a whole word once a
// space follows it.
func TestPrefixLast(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query, text string
		want        bool
	}{
		{"会议 rev", "会议前review", true},
		{"会议 rev ", "会议前review", false},
		{"meeting note", "meeting notebook", true},
		{"notes meeting", "meeting notebook", false}, // only the last word
		{"r", "review", false},                       // one letter: read as it is
		{"r", "r", true},
		{"合同", "合同书", true},
		{"review -prev", "review preview", true}, // an exclusion is never a prefix
		{`"quarterly rep"`, "quarterly report", false},
	}
	for _, tc := range tests {
		q, err := ParseWith(tc.query, Options{PrefixLast: true})
		if err != nil {
			t.Fatalf("ParseWith(%q) = %v", tc.query, err)
		}
		if ok, _, _ := q.Match(tc.text); ok != tc.want {
			t.Errorf("typing %q on %q: match = %v, want %v", tc.query, tc.text, ok, tc.want)
		}
	}
}
