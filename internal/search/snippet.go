package search

import (
	"strings"
	"unicode/utf8"
)

// SnippetPart is a piece of a snippet; Match marks the pieces that matched the query. Parts rather
// than markup, so a client renders highlights without parsing or escaping anything.
type SnippetPart struct {
	Text  string `json:"text"`
	Match bool   `json:"match,omitempty"`
}

// Snippet sizes, in characters: context kept before the first hit, and the snippet's length.
const (
	snippetBefore = 20
	snippetLen    = 96
)

// Snippet cuts the part of text around the first span, with the spans inside it marked. An
// ellipsis shows where text was cut.
func Snippet(text string, spans []Span) []SnippetPart {
	from := 0
	if len(spans) > 0 {
		from = backRunes(text, spans[0].Start, snippetBefore)
	}
	to := forwardRunes(text, from, snippetLen)
	var parts []SnippetPart
	add := func(s string, match bool) {
		s = strings.Map(func(r rune) rune { // one line: a snippet is shown in a list
			if r == '\n' || r == '\r' || r == '\t' {
				return ' '
			}
			return r
		}, s)
		if s != "" {
			parts = append(parts, SnippetPart{Text: s, Match: match})
		}
	}
	if from > 0 {
		add("…", false)
	}
	at := from
	for _, sp := range spans {
		if sp.End <= from || sp.Start >= to {
			continue
		}
		start, end := max(sp.Start, at), min(sp.End, to)
		add(text[at:start], false)
		add(text[start:end], true)
		at = end
	}
	add(text[at:to], false)
	if to < len(text) {
		add("…", false)
	}
	return parts
}

func backRunes(s string, at, n int) int {
	for ; n > 0 && at > 0; n-- {
		_, size := utf8.DecodeLastRuneInString(s[:at])
		at -= size
	}
	return at
}

func forwardRunes(s string, at, n int) int {
	for ; n > 0 && at < len(s); n-- {
		_, size := utf8.DecodeRuneInString(s[at:])
		at += size
	}
	return at
}
