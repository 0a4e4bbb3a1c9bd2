package chat_test

// The exactness test's oracle: its own reading of what a query means, written apart from
// internal/search so that a mistake there is not repeated here.

import (
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/chatvault/chatvault/internal/search"
	"github.com/liuzl/gocc"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// The oracle's canonical text: NFKC and case folding over the whole string, traditional Chinese
// characters folded to simplified ones (with internal/search's table: which characters are one
// is data, not a matching rule the oracle should check against itself), then every CJK
// character, every run of letters (with their marks) and every run of digits as one unit, each unit followed by joinedSep when
// the next unit touches it (上海, 合同v2) and by boundarySep when a space, punctuation or the end of
// the text comes next.
const (
	joinedSep   = "\x00"
	boundarySep = "\x01"
)

func isSep(b byte) bool { return b == joinedSep[0] || b == boundarySep[0] }

func canon(s string) string {
	s = cases.Fold().String(norm.NFKC.String(s))
	var b strings.Builder
	word, digits, gap := false, false, false
	next := func() { // a unit starts: end the one before it
		if b.Len() > 0 {
			if gap {
				b.WriteString(boundarySep)
			} else {
				b.WriteString(joinedSep)
			}
		}
		gap = false
	}
	for _, r := range s {
		cjk := unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul) || r == 'ー'
		letter := unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.In(r, unicode.Mn, unicode.Mc)
		switch {
		case cjk:
			next()
			b.WriteRune(search.FoldHan(r))
			word = false
		case letter:
			digit := unicode.IsDigit(r)
			if !word || digit != digits && !unicode.In(r, unicode.Mn, unicode.Mc) {
				next()
				digits = digit
			}
			b.WriteRune(r)
			word = true
		default:
			word, gap = false, true
		}
	}
	if b.Len() > 0 {
		b.WriteString(boundarySep)
	}
	return b.String()
}

// cunit is a unit of a canonical text; joined: it touches the unit before it. In a query term,
// prefix: any unit starting with text matches; stem: any word of letters with this light stem
// matches (the search stems bare English words; which stem a word has is internal/search's
// data, as the traditional-character table is, but which words are stemmed and how a stemmed
// term matches is the oracle's own reading).
type cunit struct {
	text   string
	joined bool
	prefix bool
	stem   string
}

// stemOf is the stem a bare query word is matched by: words of three or more ASCII letters.
func stemOf(u string) string {
	if len(u) < 3 || unitClass(u) != 1 || strings.IndexFunc(u, func(r rune) bool { return r < 'a' || r > 'z' }) >= 0 {
		return ""
	}
	return search.Stem(u)
}

// cunits splits a canonical text back into its units.
func cunits(c string) []cunit {
	var out []cunit
	joined := false
	for c != "" {
		i := strings.IndexAny(c, joinedSep+boundarySep)
		out = append(out, cunit{text: c[:i], joined: joined})
		joined = c[i:i+1] == joinedSep
		c = c[i+1:]
	}
	return out
}

// oterm is what a query term asks for: its units in order, touching where joined is set and with
// or without a separator where it is not (a phrase's spaces ask for nothing).
type oterm []cunit

// forms spells the term as it may appear in a canonical text, without the separator after its
// last unit: one form per choice of separator at each place the term leaves free.
func (t oterm) forms() []string {
	forms := []string{t[0].text}
	for _, u := range t[1:] {
		var next []string
		for _, f := range forms {
			next = append(next, f+joinedSep+u.text)
			if !u.joined {
				next = append(next, f+boundarySep+u.text)
			}
		}
		forms = next
	}
	return forms
}

// in reports whether the term occurs in canonical text c as whole units.
func (t oterm) in(c string) bool {
	if slices.ContainsFunc(t, func(u cunit) bool { return u.stem != "" }) {
		return t.inUnits(cunits(c))
	}
	for _, f := range t.forms() {
		for at := 0; ; {
			i := strings.Index(c[at:], f)
			if i < 0 {
				break
			}
			i += at
			if (i == 0 || isSep(c[i-1])) && (t[len(t)-1].prefix || isSep(c[i+len(f)])) {
				return true
			}
			at = i + 1
		}
	}
	return false
}

// inUnits is in for a term with stemmed units, walking the text's units: a stemmed unit matches a
// word of letters with its stem, any other its own text; units joined in the term are joined in
// the text.
func (t oterm) inUnits(us []cunit) bool {
	for i := 0; i+len(t) <= len(us); i++ {
		ok := true
		for j, w := range t {
			h := us[i+j]
			switch {
			case j > 0 && w.joined && !h.joined:
				ok = false
			case w.stem != "":
				ok = unitClass(h.text) == 1 && search.Stem(h.text) == w.stem
			case w.prefix:
				ok = unitClass(h.text) != 0 && strings.HasPrefix(h.text, w.text)
			default:
				ok = h.text == w.text
			}
			if !ok {
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// oracleQuery is a query the test generates and its meaning: all of `all`, any of `any`, none of `not`.
type oracleQuery struct {
	text          string
	all, any, not []oterm
}

func (q oracleQuery) matches(c string) bool {
	has := func(t oterm) bool { return t.in(c) }
	for _, t := range q.all {
		if !has(t) {
			return false
		}
	}
	if len(q.any) > 0 && !slices.ContainsFunc(q.any, has) {
		return false
	}
	return !slices.ContainsFunc(q.not, has)
}

func isCJKUnit(u string) bool { return unitClass(u) == 0 }

// unitClass: 0 for a CJK unit, 1 for letters, 2 for digits.
func unitClass(u string) int {
	r, _ := utf8.DecodeRuneInString(u)
	switch {
	case unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul):
		return 0
	case unicode.IsDigit(r):
		return 2
	}
	return 1
}

// termFrom picks a term of the given kind from a text's units, written as a user would type it.
// Runs are drawn across separators as well as within joined text, so a query like 死不 drawn from
// 老死，不相往来 asks whether the search finds characters that are not neighbours in the text.
func termFrom(r *rand.Rand, us []cunit, kind int) (typed string, term oterm, ok bool) {
	if len(us) == 0 || us[0].text == "" {
		return "", nil, false
	}
	i := r.IntN(len(us))
	together := func(run []cunit) oterm { // typed without spaces: every unit touches the one before
		t := make(oterm, len(run))
		for j, u := range run {
			t[j] = cunit{text: u.text, joined: j > 0}
		}
		return t
	}
	texts := func(run []cunit) []string {
		out := make([]string, len(run))
		for j, u := range run {
			out[j] = u.text
		}
		return out
	}
	switch kind {
	case 0, 1, 2, 3: // 1 to 4 CJK characters typed in a row
		n := kind + 1
		if i+n > len(us) {
			return "", nil, false
		}
		run := us[i : i+n]
		for _, u := range run {
			if !isCJKUnit(u.text) {
				return "", nil, false
			}
		}
		return strings.Join(texts(run), ""), together(run), true
	case 4: // a word, typed in upper case; or the start of a word of letters, as a prefix
		if isCJKUnit(us[i].text) {
			return "", nil, false
		}
		if rs := []rune(us[i].text); unitClass(us[i].text) == 1 && len(rs) >= 2 && r.IntN(2) == 0 {
			p := string(rs[:2+r.IntN(len(rs)-1)])
			return strings.ToUpper(p) + "*", oterm{{text: p, prefix: true}}, true
		}
		return strings.ToUpper(us[i].text), oterm{{text: us[i].text, stem: stemOf(us[i].text)}}, true
	case 5: // a quoted phrase of two or three units
		n := 2 + r.IntN(2)
		if i+n > len(us) {
			return "", nil, false
		}
		t := together(us[i : i+n])
		for j := range t {
			t[j].joined = false
		}
		return `"` + strings.Join(texts(us[i:i+n]), " ") + `"`, t, true
	default: // mixed: two or three units of different kinds typed without a space (合同v2,
		// 北京meeting, iphone15, po20231205合同), whether the text has them together or not
		n := 2 + r.IntN(2)
		if i+n > len(us) {
			return "", nil, false
		}
		run := us[i : i+n]
		for j := 1; j < n; j++ {
			if c := unitClass(run[j].text); c != 0 && c == unitClass(run[j-1].text) {
				return "", nil, false // typed together they would be one unit
			}
		}
		t := together(run)
		for j := range t {
			// A word stands alone, and is stemmed, unless a letter or digit unit touches it
			// (iphone15: the run is matched exactly).
			alone := (j == 0 || isCJKUnit(t[j-1].text)) && (j == n-1 || isCJKUnit(t[j+1].text))
			if alone {
				t[j].stem = stemOf(t[j].text)
			}
		}
		return strings.Join(texts(run), ""), t, true
	}
}

var s2t = sync.OnceValues(func() (*gocc.OpenCC, error) { return gocc.New("s2t") })

// traditional writes text in traditional characters, as a reader in Hong Kong or Taiwan would
// (phrase by phrase, OpenCC's way, not the search's character folding).
func traditional(tb testing.TB, text string) string {
	tb.Helper()
	cc, err := s2t()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cc.Convert(text)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// makeQuery draws a query from a text the searcher sees. A third of the queries are typed in
// traditional characters (the corpus is mostly simplified, so these find text in the other script).
func makeQuery(tb testing.TB, r *rand.Rand, s *searcher) (oracleQuery, bool) {
	pick := func() []cunit {
		return cunits(s.texts[s.refs[r.IntN(len(s.refs))]])
	}
	kind := r.IntN(8)
	typed, t, ok := termFrom(r, pick(), kind%7)
	if !ok {
		return oracleQuery{}, false
	}
	// Only where the conversion keeps the characters' meaning for search: OpenCC converts
	// phrases, and a phrase may come out as characters that fold to other ones.
	if tr := traditional(tb, typed); r.IntN(3) == 0 && canon(tr) == canon(typed) {
		typed = tr
	}
	q := oracleQuery{text: typed, all: []oterm{t}}
	switch r.IntN(10) {
	case 0: // AND with a second term from another text
		if t2, c2, ok := termFrom(r, pick(), r.IntN(5)); ok {
			q.text += " " + t2
			q.all = append(q.all, c2)
		}
	case 1: // OR
		if t2, c2, ok := termFrom(r, pick(), r.IntN(5)); ok {
			q = oracleQuery{text: typed + " OR " + t2, any: []oterm{t, c2}}
		}
	case 2: // exclusion
		if t2, c2, ok := termFrom(r, pick(), r.IntN(5)); ok && t2 != typed {
			q.text += " -" + t2
			q.not = []oterm{c2}
		}
	case 3: // something nobody wrote, typed before the term
		if !strings.HasPrefix(typed, `"`) {
			joinedT := slices.Clone(t)
			joinedT[0].joined = true
			q = oracleQuery{text: "齉齾" + typed, all: []oterm{append(oterm{{text: "齉"}, {text: "齾", joined: true}}, joinedT...)}}
		}
	}
	return q, true
}
