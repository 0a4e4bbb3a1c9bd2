// Package search is chatvault's full-text search over encrypted bodies: how text is cut into
// searchable units, which index tokens a message and a query produce, the query language, and the
// exact check that every candidate passes before it is shown. It holds no SQL and no keys: a store
// turns the tokens made here into keyed blind tokens (HMAC) and keeps them; the chat service runs
// queries through its single read path.
//
// Matching is defined on units, not bytes. Text is normalised (NFKC, then Unicode case folding, so
// full-width and half-width forms and upper and lower case compare alike, then traditional Chinese
// characters folded to simplified ones, so 會議 and 会议 compare alike) and cut into units: every
// CJK character (Han, kana, Hangul) is a unit of its own, every run of letters (with their
// combining marks) and every run of digits is a word unit, and everything else (spaces,
// punctuation, emoji) only separates. Letters and digits that touch are separate units that are
// joined, so iPhone15 is the units iphone and 15: `iphone`, `15` and `iphone15` all find it.
// A query term matches a message when the term's units appear in the message's units as a
// contiguous run, and units the term writes together (nothing between them) are together in the
// message too: a query's consecutive characters are consecutive in the text. So 上海 matches
// 我家在上海东边, 死不 does not match 老死，不相往来 and 合同v2 does not match "合同 V2", "meet" does
// not match "meeting", and a phrase in quotes is the same rule over several words, whose spaces
// ask for nothing ("上海 东边" matches 上海东边 and 上海，东边).
//
// Nothing here is written by hand that a good library does: normalisation and case folding are
// golang.org/x/text's, the traditional/simplified table is OpenCC's (fold.go). The cutting into units is ours because it is the definition of matching.
package search

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Unit is one searchable piece of a text: a CJK character or a word, normalised. Start and End are
// the byte offsets in the original text of the characters it came from. Joined is set when the unit
// follows the one before it with nothing between them (上海, 合同v2): only joined units are
// neighbours in the sense of matching, so 死不 does not match 老死，不相往来.
//
// Prefix and Stem are set only on a query's unit. A prefix matches any word unit that starts with
// its letters (meet* finds meeting); a stem matches any word unit with that light stem (meetings
// finds meeting and meet; see stem.go).
type Unit struct {
	Text       string
	CJK        bool
	Joined     bool
	Prefix     bool
	Stem       string
	Start, End int
}

// IsCJK reports whether r is a character that CJK text is written in without spaces between words.
func IsCJK(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul) ||
		r == 'ー' // the prolonged sound mark is Common, but it is part of katakana words
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Mc, r)
}

// Units cuts s into units. Invalid UTF-8 is treated as separators.
func Units(s string) []Unit {
	var (
		out     []Unit
		word    strings.Builder
		wStart  int
		wEnd    int
		wJoined bool
		wDigit  bool
		gap     bool // a separator came after the last unit
		folder  = cases.Fold()
		it      norm.Iter
	)
	flush := func() {
		if word.Len() > 0 {
			out = append(out, Unit{Text: word.String(), Joined: wJoined, Start: wStart, End: wEnd})
			word.Reset()
		}
	}
	// joined reports whether a unit starting now touches the one before it, and starts it.
	joined := func() bool {
		j := !gap && len(out) > 0
		gap = false
		return j
	}
	it.InitString(norm.NFKC, s)
	for !it.Done() {
		// Each segment normalises independently of its neighbours, so its runes map back to the
		// segment's bytes in s.
		start := it.Pos()
		seg := it.Next()
		end := it.Pos()
		if !utf8.Valid(seg) {
			flush()
			gap = true
			continue
		}
		// Most segments are one CJK character or one ASCII byte, which need no folding library.
		var folded string
		if r, size := utf8.DecodeRune(seg); size == len(seg) && (IsCJK(r) && unicode.SimpleFold(r) == r || r < utf8.RuneSelf) {
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			folded = string(r)
		} else {
			folded = folder.String(string(seg))
		}
		for _, r := range folded {
			switch {
			case IsCJK(r):
				flush()
				out = append(out, Unit{Text: string(FoldHan(r)), CJK: true, Joined: joined(), Start: start, End: end})
			case isWordRune(r):
				// A letter after digits or a digit after letters starts a new unit, joined to
				// the one before; a combining mark stays with what it marks.
				digit := unicode.IsDigit(r)
				if word.Len() > 0 && digit != wDigit && !unicode.In(r, unicode.Mn, unicode.Mc) {
					flush()
				}
				if word.Len() == 0 {
					wStart, wJoined, wDigit = start, joined(), digit
				}
				word.WriteRune(r)
				wEnd = end
			default:
				flush()
				gap = true
			}
		}
	}
	flush()
	return out
}

// Token prefixes keep the kinds of index token apart, so the word "a" and the CJK pair "a" (which
// cannot exist, but the point stands for any kind) never share a blind token.
const (
	unigramPrefix = "1:"
	bigramPrefix  = "2:"
	wordPrefix    = "w:"
	partsPrefix   = "j:" // two joined word units (iphone 15), space-separated
	prefixPrefix  = "p:" // the first letters of a longer word
)

// Prefix tokens: a word of letters is indexed under each of its first minPrefix to maxPrefix
// letters that are shorter than the word itself (meeting: me, mee, meet, meeti). A query prefix
// longer than maxPrefix asks for its first maxPrefix letters and leaves the rest to the exact
// check. The bound keeps the index's growth fixed per word, whatever its length; see
// docs/decisions.md for the measured growth.
const (
	minPrefix = 2
	maxPrefix = 5
)

// isLetters reports whether a unit is a word of letters (not digits, not CJK): the units that
// have prefixes in the index.
func isLetters(u Unit) bool {
	if u.CJK {
		return false
	}
	r, _ := utf8.DecodeRuneInString(u.Text)
	return !unicode.IsDigit(r)
}

// prefixTokens adds the prefix tokens of a word unit.
func prefixTokens(u Unit, add func(string)) {
	if !isLetters(u) {
		return
	}
	n := 0
	for i := range u.Text {
		if n >= minPrefix && n <= maxPrefix {
			add(prefixPrefix + u.Text[:i])
		}
		n++
	}
}

// TokenizerVersion names the rules that turn text into index tokens. A store records the version
// its index was built under and rebuilds the index when it opens under another, so an index never
// lacks a token the running code asks for. Raise it with every change to Units, IndexTokens or
// termTokens that adds or renames a token a query may ask for.
const TokenizerVersion = 4

// sameKind reports whether two units are both CJK or both word units: the pairs of units the
// index keeps. A CJK character next to a word (合同v2) keeps no pair; the query asks for both
// sides and the exact check decides.
func sameKind(a, b Unit) bool { return a.CJK == b.CJK }

// pairToken is the index token of two joined units of the same kind.
func pairToken(a, b Unit) string {
	if a.CJK {
		return bigramPrefix + a.Text + b.Text
	}
	return partsPrefix + a.Text + " " + b.Text
}

// IndexTokens returns the distinct index tokens of a text: every CJK character, every word unit,
// and every pair of joined units of the same kind (two CJK characters with nothing between them,
// or the letters and digits of one run: iphone 15), so a run of units is found through its pairs. A store keys them (HMAC)
// before it keeps them.
func IndexTokens(text string) []string {
	units := Units(text)
	seen := make(map[string]struct{}, 2*len(units))
	var out []string
	add := func(t string) {
		if _, ok := seen[t]; !ok {
			seen[t] = struct{}{}
			out = append(out, t)
		}
	}
	for i, u := range units {
		if u.CJK {
			add(unigramPrefix + u.Text)
		} else {
			add(wordPrefix + u.Text)
			prefixTokens(u, add)
		}
		if i+1 < len(units) && units[i+1].Joined && sameKind(u, units[i+1]) {
			add(pairToken(u, units[i+1]))
		}
	}
	return out
}

// termTokens returns the index tokens every message matching a term's units must hold, as
// alternatives (any one set, all of its tokens): the pairs of its joined units of the same kind,
// and each unit that is in no such pair. A prefix unit pairs with nothing and asks for its prefix
// token, or, when it is short enough to be a whole word, for that word instead; a stemmed unit
// asks the same of what every word with its stem starts with. A message holding one set is a
// candidate; the exact check decides.
func termTokens(units []Unit) [][]string {
	sets := [][]string{nil}
	seen := map[string]bool{}
	add := func(t string) { // a token every set needs
		if !seen[t] {
			seen[t] = true
			for i := range sets {
				sets[i] = append(sets[i], t)
			}
		}
	}
	either := func(a, b string) { // one of two tokens: each set becomes two
		next := make([][]string, 0, 2*len(sets))
		for _, s := range sets {
			next = append(next, append(slices.Clip(s), a), append(slices.Clip(s), b))
		}
		sets = next
	}
	pairs := func(a, b Unit) bool {
		return b.Joined && sameKind(a, b) && !a.Prefix && !b.Prefix && a.Stem == "" && b.Stem == ""
	}
	for i, u := range units {
		if u.Prefix || u.Stem != "" {
			p := u.Text
			if u.Stem != "" {
				p = stemPrefix(u.Stem)
			}
			if utf8.RuneCountInString(p) > maxPrefix {
				add(prefixPrefix + p[:runeOffset(p, maxPrefix)])
			} else {
				either(prefixPrefix+p, wordPrefix+p)
			}
			continue
		}
		prev := i > 0 && pairs(units[i-1], u)
		next := i+1 < len(units) && pairs(u, units[i+1])
		if next {
			add(pairToken(u, units[i+1]))
		}
		if prev || next {
			continue
		}
		if u.CJK {
			add(unigramPrefix + u.Text)
		} else {
			add(wordPrefix + u.Text)
		}
	}
	return sets
}

// runeOffset is the byte offset of the n-th rune of s.
func runeOffset(s string, n int) int {
	for i := range s {
		if n == 0 {
			return i
		}
		n--
	}
	return len(s)
}

// contains reports whether want appears in have as a contiguous run of units, joined in have
// wherever they are joined in want. Where want has a separator (a phrase's space), have may have
// one or not: a separator in a query asks for nothing.
func contains(have, want []Unit) (int, bool) {
	if len(want) == 0 {
		return 0, false
	}
outer:
	for i := 0; i+len(want) <= len(have); i++ {
		for j, w := range want {
			h := have[i+j]
			if j > 0 && w.Joined && !h.Joined {
				continue outer
			}
			switch {
			case w.Stem != "":
				if h.CJK || Stem(h.Text) != w.Stem {
					continue outer
				}
			case w.Prefix:
				if h.CJK || !strings.HasPrefix(h.Text, w.Text) {
					continue outer
				}
			case h.Text != w.Text:
				continue outer
			}
		}
		return i, true
	}
	return 0, false
}

// ConversationToken and SenderToken are index tokens that every message carries besides its
// text's, so a search limited to some conversations or one sender is narrowed by the index itself.
func ConversationToken(id string) string { return "c:" + id }

// SenderToken: see ConversationToken.
func SenderToken(id string) string { return "s:" + id }
