package search

import "testing"

func TestStemJoinsInflectedForms(t *testing.T) {
	t.Parallel()
	// Each group's words share a stem; no two groups do.
	groups := [][]string{
		{"meet", "meets", "meeting", "meetings"},
		{"review", "reviews", "reviewed", "reviewing"},
		{"party", "parties"},
		{"study", "studies", "studied", "studying"},
		{"run", "runs", "running"},
		{"stop", "stops", "stopped", "stopping"},
		{"call", "calls", "called", "calling"},
		{"pass", "passes", "passed", "passing"},
		{"create", "creates", "created", "creating"},
		{"agree", "agrees", "agreed", "agreeing"},
		{"make", "makes", "making"},
		{"box", "boxes"},
		{"match", "matches", "matched"},
		{"status", "statuses"},
		{"need", "needs", "needed", "needing"},
		{"speed", "speeds", "speeding"},
		{"exceed", "exceeds", "exceeded", "exceeding"},
		{"free", "freed", "freeing"},
		{"email", "emails"},
		{"thing", "things"},
		{"class", "classes"},
	}
	stemOf := map[string]string{}
	for _, g := range groups {
		want := Stem(g[0])
		for _, w := range g {
			if got := Stem(w); got != want {
				t.Errorf("Stem(%q) = %q; want %q, the stem of %q", w, got, want, g[0])
			}
		}
		if other, ok := stemOf[want]; ok {
			t.Errorf("%q and %q share the stem %q", g[0], other, want)
		}
		stemOf[want] = g[0]
	}
	// Words that only look inflected keep their form, and other units are left alone.
	for _, w := range []string{"bus", "analysis", "bring", "string", "red", "会议", "ü", "iphone15"} {
		if got := Stem(w); got != w && !(w == "analysis" && got == "analysis") {
			t.Errorf("Stem(%q) = %q; want it unchanged", w, got)
		}
	}
	// Stems of unrelated derivations stay apart: light stemming is not Porter's.
	for _, pair := range [][2]string{{"university", "universe"}, {"general", "generous"}, {"meeting", "meter"}} {
		if Stem(pair[0]) == Stem(pair[1]) {
			t.Errorf("Stem(%q) = Stem(%q) = %q; want them apart", pair[0], pair[1], Stem(pair[0]))
		}
	}
}

func TestStemmedQueries(t *testing.T) {
	t.Parallel()
	stemmed := func(q, text string) bool {
		t.Helper()
		pq, err := ParseWith(q, Options{Stem: true})
		if err != nil {
			t.Fatalf("ParseWith(%q, stem): %v", q, err)
		}
		ok, _, _ := pq.Match(text)
		return ok
	}
	tests := []struct {
		query, text string
		want        bool
	}{
		{"meeting", "two meetings tomorrow", true},
		{"meetings", "the meeting is at 3", true},
		{"meeting", "let's meet 明天", true},
		{"MEETINGS", "明天北京meeting取消", true},
		{"reviewed", "please review 合同", true},
		{"parties", "the party 聚会", true},
		{"cat", "two cats", true},
		{"meeting", "a meter", false},
		{"meeting", "meetup at 5", false},
		// Quotes ask for the exact word.
		{`"meeting"`, "two meetings tomorrow", false},
		{`"meeting"`, "the meeting", true},
		// Runs of letters and digits, prefixes and Chinese are unchanged.
		{"iphones", "iPhone15", true}, // a part of a run is found alone, as unstemmed
		{"iphones15", "iPhone15", false},
		{"meet*", "meetup", true},
		{"会议", "會議", true},
		// Excluding a word excludes its forms.
		{"合同 -reviews", "合同 reviewed", false},
		{"合同 -reviews", "合同 signed", true},
		// Two stemmed words in one term, across punctuation.
		{"e-mails", "send e-mail", true},
	}
	for _, tc := range tests {
		if got := stemmed(tc.query, tc.text); got != tc.want {
			t.Errorf("stemmed query %q on %q = %v; want %v", tc.query, tc.text, got, tc.want)
		}
	}
	// Without the option a word is matched whole, as before.
	if matches(t, "meeting", "two meetings tomorrow") {
		t.Error(`unstemmed "meeting" found "meetings"`)
	}
}

// A stemmed query asks the index only for tokens that every message it must find holds: the
// tokens of each form of the word, as the index makes them, cover one of the query's sets.
func TestStemmedQueryTokensCoverEveryForm(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		query string
		texts []string
	}{
		{"meeting", []string{"meet", "meets", "meeting", "meetings"}},
		{"studies", []string{"study", "studied", "studying", "studies"}},
		{"reviewed", []string{"review", "reviews", "reviewing", "reviewed"}},
		{"agree", []string{"agree", "agreed", "agreeing"}},
		{"cat", []string{"cat", "cats"}},
		{"e-mails", []string{"e-mail", "e mails"}},
	} {
		pq, err := ParseWith(tc.query, Options{Stem: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, text := range tc.texts {
			if ok, _, _ := pq.Match(text); !ok {
				t.Errorf("%q does not match %q", tc.query, text)
				continue
			}
			have := map[string]bool{}
			for _, tok := range IndexTokens(text) {
				have[tok] = true
			}
			covered := false
			for _, set := range pq.Tokens()[0] {
				all := true
				for _, tok := range set {
					all = all && have[tok]
				}
				covered = covered || all
			}
			if !covered {
				t.Errorf("query %q asks for %v; %q holds none of those sets: the index would miss it", tc.query, pq.Tokens()[0], text)
			}
		}
	}
}
