package chatvault

import (
	"unicode"
	"unicode/utf8"
)

// Characters a name may hold although they are invisible format controls (Unicode category Cf).
const (
	zwnj      = '\u200c' // zero width non-joiner: Persian and Indic spelling needs it
	zwj       = '\u200d' // zero width joiner: emoji sequences (👩‍💻) and Indic conjuncts need it
	blackFlag = '\U0001F3F4'
	tagFirst  = '\U000E0020'
	tagLast   = '\U000E007E'
	cancelTag = '\U000E007F'
)

// CheckName checks a name that one person chooses and others read: a display name, a device name,
// a conversation title, an org or legal-hold name. Such a name must be valid UTF-8 of at most
// maxRunes characters, with no control characters (line breaks, tabs, NUL, U+2028, U+2029) and no
// invisible format characters: bidirectional overrides, embeddings, isolates and marks (U+202A-E,
// U+2066-9, U+200E, U+200F, U+061C) reorder what is shown, so "‮gnp.exe" reads as "exe.png", and
// zero-width spaces, soft hyphens or word joiners make two different names look the same. The
// only format characters kept are the ones scripts and emoji need: ZWJ and ZWNJ between two other
// characters, and the tag characters of an emoji flag sequence (🏴 tags… U+E007F).
//
// Message text is not a name: people write mixed right-to-left text and need these controls
// there, so message bodies keep them and whatever displays them must isolate them.
func CheckName(field, s string, maxRunes int) error {
	if !utf8.ValidString(s) {
		return Invalidf(field, "%s is not valid UTF-8", field)
	}
	if utf8.RuneCountInString(s) > maxRunes {
		return Invalidf(field, "%s may have at most %d characters", field, maxRunes)
	}
	var prev rune = -1
	inFlag := false // inside an emoji tag sequence, after 🏴 and before its cancel tag
	for i, r := range s {
		switch {
		case r == zwj || r == zwnj:
			next, _ := utf8.DecodeRuneInString(s[i+utf8.RuneLen(r):])
			if prev < 0 || prev == zwj || prev == zwnj || i+utf8.RuneLen(r) == len(s) || next == zwj || next == zwnj {
				return Invalidf(field, "%s may hold %U only between two other characters (it joins them)", field, r)
			}
		case r >= tagFirst && r <= tagLast && (prev == blackFlag || inFlag):
			inFlag = true
		case r == cancelTag && inFlag:
			inFlag = false
		case isBidiControl(r):
			return Invalidf(field, "%s may not contain the bidirectional control %U: it changes the order in which a name is shown, so it can pass for another name", field, r)
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			return Invalidf(field, "%s may not contain control characters or line breaks (%U)", field, r)
		case unicode.Is(unicode.Cf, r):
			return Invalidf(field, "%s may not contain the invisible format character %U: it can make two different names look the same", field, r)
		}
		if inFlag && (r < tagFirst || r > tagLast) {
			return Invalidf(field, "%s has an emoji flag sequence that does not end with %U", field, cancelTag)
		}
		prev = r
	}
	if inFlag {
		return Invalidf(field, "%s has an emoji flag sequence that does not end with %U", field, cancelTag)
	}
	return nil
}

// isBidiControl reports the characters Unicode lists as Bidi_Control.
func isBidiControl(r rune) bool {
	return r == '\u061c' || r == '\u200e' || r == '\u200f' || r >= '\u202a' && r <= '\u202e' || r >= '\u2066' && r <= '\u2069'
}
