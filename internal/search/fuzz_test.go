package search

import (
	"slices"
	"testing"
)

// FuzzQuery: any query string parses or is refused without panicking, and for any text the index
// never misses: when a parsed query matches a text, every token the index lookup asks of some
// alternative of each including clause is among the text's index tokens.
func FuzzQuery(f *testing.F) {
	for _, seed := range []struct{ q, text string }{
		{"上海", "我家在上海东边"},
		{`"quarterly report" -late`, "the quarterly report is late"},
		{"合同v2 OR 北京meeting", "明天北京meeting取消"},
		{"ﾃｽﾄ", "テスト"},
		{"-", "-"},
		{`"`, `""`},
		{"OR OR OR", "or"},
		{"café", "cafe\u0301"},
		{"\xff上", "上\xff海"},
		{"meetings", "let's meet"},
		{"e-mails studies", "e-mail studied"},
	} {
		f.Add(seed.q, seed.text)
	}
	f.Fuzz(func(t *testing.T, query, text string) {
		for _, o := range []Options{{}, {Stem: true}, {Stem: true, PrefixLast: true}} {
			fuzzQuery(t, query, text, o)
		}
	})
}

func fuzzQuery(t *testing.T, query, text string, o Options) {
	q, err := ParseWith(query, o)
	if err != nil {
		return
	}
	ok, spans, _ := q.Match(text)
	for _, s := range spans {
		if s.Start < 0 || s.End > len(text) || s.Start >= s.End {
			t.Fatalf("span %+v outside text of %d bytes", s, len(text))
		}
	}
	Snippet(text, spans)
	if !ok {
		return
	}
	have := IndexTokens(text)
	for _, alts := range q.Tokens() {
		covered := slices.ContainsFunc(alts, func(all []string) bool {
			for _, tok := range all {
				if !slices.Contains(have, tok) {
					return false
				}
			}
			return true
		})
		if !covered {
			t.Fatalf("query %q (%+v) matches %q, but the index lookup %v would miss it (text tokens %v)", query, o, text, alts, have)
		}
	}
}
