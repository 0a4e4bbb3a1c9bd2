package search

import (
	"slices"
	"strings"
	"unicode"

	"github.com/mozillazg/go-pinyin"
)

// Names are found the way people look for a colleague or a group in a Chinese address book: by
// any part of the name as written (case, width and traditional/simplified folded, as messages
// are), by its full pinyin (zhangsan, zhang san, or the start of it: zhangs), by the initials of
// its syllables (zs), or by a mix (zhangs, zsan). Only names are read as pinyin; message bodies
// are matched by their characters.
//
// The readings of a character are go-pinyin's (its dictionary is the Unicode Han database's
// kHanyuPinyin and kMandarin data), all of them, so that a name with a character read two ways
// (曾 zeng or ceng, 单 dan or shan) is found under either.

// maxReadings bounds the readings tried per character: a few characters have many, and a name
// query is run against every name of a directory.
const maxReadings = 4

// NameQuery is a parsed name search.
type NameQuery struct {
	folded  string // the query's units, folded as text is, without separators
	letters bool   // only ASCII letters: may also be pinyin
}

// MaxNameQuery bounds a name query, in bytes once folded: names are short, and matching tries
// the query against every reading of every name.
const MaxNameQuery = 64

// ParseName reads what a person typed to find a name. It returns nil for a query with nothing
// to look for (empty, spaces, punctuation); a longer one is cut to MaxNameQuery bytes of units.
func ParseName(q string) *NameQuery {
	var b strings.Builder
	letters := true
	for _, u := range Units(q) {
		if b.Len()+len(u.Text) > MaxNameQuery {
			break
		}
		b.WriteString(u.Text)
		letters = letters && !u.CJK && asciiLetters(u.Text)
	}
	if b.Len() == 0 {
		return nil
	}
	return &NameQuery{folded: b.String(), letters: letters}
}

// Matches reports whether any of names (a display name, a username, a title) is found by the
// query.
func (q *NameQuery) Matches(names ...string) bool {
	for _, name := range names {
		if q.matchesName(name) {
			return true
		}
	}
	return false
}

func (q *NameQuery) matchesName(name string) bool {
	units := Units(name)
	var whole strings.Builder
	for _, u := range units {
		whole.WriteString(u.Text)
	}
	if strings.Contains(whole.String(), q.folded) {
		return true
	}
	if !q.letters {
		return false
	}
	// Each unit offers its readings: a CJK character its pinyin syllables, a word itself.
	syllables := make([][]string, len(units))
	for i, u := range units {
		if !u.CJK {
			syllables[i] = []string{u.Text}
			continue
		}
		r := []rune(u.Text)[0]
		if !unicode.Is(unicode.Han, r) {
			continue // kana and hangul have no pinyin
		}
		syllables[i] = readings(u.Text)
	}
	for start := range syllables {
		if consume(q.folded, syllables[start:]) {
			return true
		}
	}
	return false
}

// consume reports whether q can be spelt by the units from the first on, each giving a non-empty
// start of one of its readings (zhang, zh or z) and every unit but the last giving as much as it
// has to leave nothing unspelt: zs, zhangs, zsan and zhangsan are all 张三. Failures are
// remembered by (place in q, unit), so a name of many characters with many readings stays linear
// in q times the units.
func consume(q string, units [][]string) bool {
	failed := map[[2]int]bool{}
	var from func(at, u int) bool
	from = func(at, u int) bool {
		if at == len(q) {
			return true
		}
		if u == len(units) || len(units[u]) == 0 || failed[[2]int{at, u}] {
			return false
		}
		for _, s := range units[u] {
			for n := min(len(s), len(q)-at); n >= 1; n-- {
				if q[at:at+n] == s[:n] && from(at+n, u+1) {
					return true
				}
			}
		}
		failed[[2]int{at, u}] = true
		return false
	}
	return from(0, 0)
}

// readings returns a Han character's pinyin syllables without tones.
func readings(ch string) []string {
	a := pinyin.NewArgs()
	a.Heteronym = true
	rs := pinyin.Pinyin(ch, a)
	if len(rs) == 0 {
		return nil
	}
	out := make([]string, 0, min(len(rs[0]), maxReadings))
	for _, r := range rs[0] {
		if len(out) == maxReadings {
			break
		}
		if r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}
