package search

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Query limits: a query is typed by a person; anything larger is a mistake or an attack on the
// index (each term is a posting-list read).
const (
	MaxQueryRunes = 256
	MaxTerms      = 16
)

// Query is a parsed search: every clause must hold. A clause holds when any of its terms matches
// (terms joined by OR), or, for an excluding clause, when none does.
type Query struct {
	Clauses []Clause
}

// Clause is one AND-ed part of a query.
type Clause struct {
	Terms []Term
	Not   bool
}

// Term is one word, run of CJK text, or quoted phrase, cut into units.
type Term struct {
	Text   string // as typed, without quotes
	Phrase bool
	Units  []Unit
}

// ErrQuery is the class of query errors; the message says what to change.
var ErrQuery = errors.New("invalid query")

type queryError struct{ msg string }

func (e *queryError) Error() string { return e.msg }
func (e *queryError) Unwrap() error { return ErrQuery }

func queryErr(msg string) error { return &queryError{msg: msg} }

// Options change how a query is read.
type Options struct {
	// PrefixLast reads the last word as a prefix, as if it ended in *, when the query does not
	// end in a space: search as you type. A last word that cannot be a prefix (fewer than two
	// letters, digits, CJK, a phrase, an exclusion) is read as it is.
	PrefixLast bool
	// Stem reads each bare English word as its light stem, so it also finds the word's plural,
	// -ing and -ed forms (meeting finds meetings and meet). Words in quotes, prefixes and the
	// letters of a run with digits (iphone15) stay exact.
	Stem bool
}

// Parse reads a query with the default Options.
func Parse(s string) (*Query, error) { return ParseWith(s, Options{}) }

// ParseWith reads the query language: words and CJK text (a run without spaces is one term),
// "exact phrases", -exclusions (-word or -"phrase"), OR between two terms, and word* for the words
// that start with a prefix of at least two letters. Terms are AND-ed. OR binds tighter than AND:
// `合同 v1 OR v2` means 合同 and (v1 or v2).
func ParseWith(s string, o Options) (*Query, error) {
	if !utf8.ValidString(s) {
		return nil, queryErr("the query is not valid UTF-8")
	}
	if utf8.RuneCountInString(s) > MaxQueryRunes {
		return nil, queryErr("the query is longer than 256 characters")
	}
	type atom struct {
		term Term
		not  bool
		or   bool // the bare word OR
	}
	var atoms []atom
	rest := strings.TrimSpace(s)
	for rest != "" {
		not := false
		if strings.HasPrefix(rest, "-") && len(rest) > 1 && !unicode.IsSpace(rune(rest[1])) {
			not, rest = true, rest[1:]
		}
		var raw string
		phrase := false
		if strings.HasPrefix(rest, `"`) {
			phrase = true
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 { // an unclosed quote runs to the end, as people expect when they forget it
				raw, rest = rest[1:], ""
			} else {
				raw, rest = rest[1:1+end], rest[2+end:]
			}
		} else {
			end := strings.IndexFunc(rest, unicode.IsSpace)
			if end < 0 {
				end = len(rest)
			}
			raw, rest = rest[:end], rest[end:]
		}
		rest = strings.TrimSpace(rest)
		if !phrase && !not && raw == "OR" {
			atoms = append(atoms, atom{or: true})
			continue
		}
		units := Units(raw)
		if len(units) == 0 {
			continue // punctuation or emoji alone: nothing to look for
		}
		if !phrase {
			typing := o.PrefixLast && !not && rest == "" && !unicode.IsSpace(lastRune(s))
			if err := markPrefix(raw, units, typing); err != nil {
				return nil, err
			}
			if o.Stem {
				markStems(units)
			}
		}
		atoms = append(atoms, atom{term: Term{Text: raw, Phrase: phrase, Units: units}, not: not})
	}

	q := &Query{}
	terms := 0
	for i := 0; i < len(atoms); i++ {
		a := atoms[i]
		if a.or { // OR with nothing on one side is the word "or"
			a = atom{term: Term{Text: "OR", Units: Units("OR")}}
		}
		c := Clause{Terms: []Term{a.term}, Not: a.not}
		// Gather "x OR y OR z"; an excluded term never joins an OR.
		for !c.Not && i+2 < len(atoms) && atoms[i+1].or && !atoms[i+2].or && !atoms[i+2].not {
			c.Terms = append(c.Terms, atoms[i+2].term)
			i += 2
		}
		terms += len(c.Terms)
		q.Clauses = append(q.Clauses, c)
	}
	if terms > MaxTerms {
		return nil, queryErr("the query has more than 16 terms")
	}
	positive := false
	for _, c := range q.Clauses {
		positive = positive || !c.Not
	}
	if !positive {
		if len(q.Clauses) > 0 {
			return nil, queryErr("the query only excludes: add a word to look for")
		}
		return nil, queryErr("the query has no words to look for")
	}
	return q, nil
}

// Tokens returns what a candidate must hold in the index: for every including clause, any of its
// terms' token sets (AND over clauses, OR over terms, AND over tokens). Excluding clauses are left
// to the exact check: leaving out a message by a blind token could drop one that does not contain
// the excluded words in sequence.
func (q *Query) Tokens() [][][]string {
	var out [][][]string
	for _, c := range q.Clauses {
		if c.Not {
			continue
		}
		var alts [][]string
		for _, t := range c.Terms {
			alts = append(alts, termTokens(t.Units)...)
		}
		out = append(out, alts)
	}
	return out
}

// markPrefix marks the last unit of a bare term as a prefix when the term ends in * right after
// it, or when typing (search as you type) and it ends the term. An explicit * that cannot work
// is refused, so that m* does not quietly mean the word m.
func markPrefix(raw string, units []Unit, typing bool) error {
	u := &units[len(units)-1]
	starred := strings.HasSuffix(raw, "*") && u.End == len(raw)-1
	if !starred && !(typing && u.End == len(raw)) {
		return nil
	}
	if u.CJK {
		return nil // a CJK character already matches inside any run: the * adds nothing
	}
	if !isLetters(*u) || utf8.RuneCountInString(u.Text) < minPrefix {
		if !starred {
			return nil
		}
		return queryErr("a prefix needs at least two letters before the * (" + raw + ")")
	}
	u.Prefix = true
	return nil
}

// maxStemsPerTerm bounds the stemmed units of one term: each can double the term's alternative
// token sets (stemPrefix as a word or as a prefix).
const maxStemsPerTerm = 3

// markStems gives the stand-alone English words of a bare term their stems. A word joined to a
// neighbour of its kind (the letters of iphone15) is matched through the pair, exactly.
func markStems(units []Unit) {
	n := 0
	for i := range units {
		u := &units[i]
		if u.CJK || u.Prefix || !isLetters(*u) || n == maxStemsPerTerm {
			continue
		}
		if i > 0 && u.Joined && sameKind(units[i-1], *u) || i+1 < len(units) && units[i+1].Joined && sameKind(*u, units[i+1]) {
			continue
		}
		// A word of two letters is left exact: its stem prefix would read a large part of the
		// index (p:go) to find almost nothing.
		s := Stem(u.Text)
		if len(u.Text) < 3 || !asciiLetters(s) || utf8.RuneCountInString(stemPrefix(s)) < minPrefix {
			continue
		}
		u.Stem = s
		n++
	}
}

func lastRune(s string) rune {
	r, _ := utf8.DecodeLastRuneInString(s)
	return r
}

// Span is a byte range of the original text that matched a term.
type Span struct{ Start, End int }

// Match checks a text against the query exactly and returns where the including terms occur (for
// the snippet) and a score: how many times they occur, weighted by term length and damped by the
// text's length, so a short message that is all about the query ranks above a long one that
// mentions it once.
func (q *Query) Match(text string) (ok bool, spans []Span, score float64) {
	units := Units(text)
	for _, c := range q.Clauses {
		found := false
		for _, t := range c.Terms {
			n := 0
			for i := 0; i+len(t.Units) <= len(units); {
				j, hit := contains(units[i:], t.Units)
				if !hit {
					break
				}
				n++
				if !c.Not {
					first, last := units[i+j], units[i+j+len(t.Units)-1]
					spans = append(spans, Span{Start: first.Start, End: last.End})
				}
				i += j + 1
			}
			if n > 0 {
				found = true
				score += float64(n * len(t.Units))
			}
		}
		if found == c.Not {
			return false, nil, 0
		}
	}
	return true, mergeSpans(spans), score / (1 + float64(len(units))/16)
}

func mergeSpans(spans []Span) []Span {
	if len(spans) < 2 {
		return spans
	}
	// Insertion sort: a message has few hits.
	for i := 1; i < len(spans); i++ {
		for j := i; j > 0 && spans[j].Start < spans[j-1].Start; j-- {
			spans[j], spans[j-1] = spans[j-1], spans[j]
		}
	}
	out := spans[:1]
	for _, s := range spans[1:] {
		last := &out[len(out)-1]
		if s.Start <= last.End {
			last.End = max(last.End, s.End)
			continue
		}
		out = append(out, s)
	}
	return out
}
