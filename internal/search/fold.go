package search

import (
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/liuzl/gocc"
)

// Traditional and simplified Chinese are folded alike, character by character: every Han
// character maps to one simplified form, in the message and in the query, before units are made,
// so 會議 and 会议 are the same units and find each other. The table comes from OpenCC's
// conversion data (github.com/liuzl/gocc, which embeds it): its traditional-to-simplified
// characters, plus the Hong Kong and Taiwan variant forms it knows (衞, 裡) where the standard
// table has nothing. Characters only, never phrases: a phrase conversion (軟體 → 软件) would
// change the text's length and make matching depend on the words around a character, where a
// search needs each character to mean the same everywhere. See docs/decisions.md for the choice
// of library and its cost.

// hanFold is the folding table: a Han character to its simplified form, for the characters that
// have one. Built on first use from the library's dictionaries (about 40 ms), which are then
// dropped: the table is a few thousand entries.
var hanFold = sync.OnceValue(func() map[rune]rune {
	fold := map[rune]rune{}
	convert := func(conversion string, add func(from, to rune)) {
		cc, err := gocc.New(conversion)
		if err != nil {
			panic("search: load " + conversion + " conversion table: " + err.Error()) // embedded data: cannot fail but by a build mistake
		}
		eachHan(func(r rune) {
			out, err := cc.Convert(string(r))
			if err != nil {
				panic("search: convert with " + conversion + ": " + err.Error())
			}
			to, size := utf8.DecodeRuneInString(out)
			if size == len(out) && to != r && to != utf8.RuneError {
				add(r, to)
			}
		})
	}
	convert("t2s", func(from, to rune) { fold[from] = to })
	// A character that is already some character's simplified form stays as it is: the regional
	// tables map a few of those on again (么 → 幺 in Taiwan's), which would fold 什么 apart from
	// what the standard table made of 什麼.
	simplified := map[rune]bool{}
	for _, to := range fold {
		simplified[to] = true
	}
	for _, regional := range []string{"hk2s", "tw2s"} {
		convert(regional, func(from, to rune) {
			if _, ok := fold[from]; !ok && !simplified[from] {
				fold[from] = to
			}
		})
	}
	// Fold to a fixed point, so that folding twice is folding once (鏇 → 镟 → 旋).
	for from, to := range fold {
		for i := 0; i < 8; i++ {
			next, ok := fold[to]
			if !ok || next == to {
				break
			}
			to = next
		}
		fold[from] = to
	}
	return fold
})

func eachHan(f func(rune)) {
	for _, rg := range unicode.Han.R16 {
		for r := rune(rg.Lo); r <= rune(rg.Hi); r += rune(rg.Stride) {
			f(r)
		}
	}
	for _, rg := range unicode.Han.R32 {
		for r := rune(rg.Lo); r <= rune(rg.Hi); r += rune(rg.Stride) {
			f(r)
		}
	}
}

// FoldHan returns the simplified form of a Han character, or r itself when it has none (or is
// not Han).
func FoldHan(r rune) rune {
	if to, ok := hanFold()[r]; ok {
		return to
	}
	return r
}
