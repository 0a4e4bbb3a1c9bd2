package search

import "strings"

// Light English stemming: a query word finds its plural and its -ing and -ed forms (meeting finds
// meetings and meet, reviewed finds review and reviewing), and nothing further. Porter's and
// Snowball's stemmers, which the Go libraries implement, also strip derivational suffixes, so that
// university and universe, or general and generous, would find each other: more than people mean
// when they type a word. These are the inflectional rules of Porter's step 1 (plurals, -ed, -ing,
// with the undoubling of stopped and the -eed of agreed), written out here; docs/decisions.md has the choice.
//
// A stem is only compared with another stem, never shown, so it need not be a word: make and
// making both stem to mak.

// minStemLen is the shortest word that is stemmed: shorter words are mostly not inflected forms
// (bus, yes, red), and stripping them finds too much.
const minStemLen = 4

// Stem returns the light stem of a folded word unit of ASCII letters; any other unit is returned
// as it is.
func Stem(w string) string {
	if len(w) < minStemLen || !asciiLetters(w) {
		return w
	}
	switch {
	case strings.HasSuffix(w, "ies") && len(w) > 4:
		w = w[:len(w)-3] + "y" // parties → party
	case strings.HasSuffix(w, "sses"):
		w = w[:len(w)-2] // classes → class
	case strings.HasSuffix(w, "ches"), strings.HasSuffix(w, "shes"), strings.HasSuffix(w, "xes"), strings.HasSuffix(w, "zes"):
		w = w[:len(w)-2] // matches → match, boxes → box
	case strings.HasSuffix(w, "ss"), strings.HasSuffix(w, "us"), strings.HasSuffix(w, "is"):
		// class, status, analysis: not plurals
	case strings.HasSuffix(w, "s"):
		w = w[:len(w)-1] // meetings → meeting, reviews → review
	}
	switch {
	case strings.HasSuffix(w, "eed"):
		// agreed is agree + d, but speed and exceed end so themselves: either way the d goes
		// (below), and their -ing forms arrive at the same place.
	case strings.HasSuffix(w, "ied") && len(w) > 4:
		return w[:len(w)-3] + "y" // studied → study
	case strings.HasSuffix(w, "ed"):
		w = stripVerbSuffix(w, 2) // reviewed → review, stopped → stop, created → creat
	case strings.HasSuffix(w, "ing"):
		w = stripVerbSuffix(w, 3) // meeting → meet, running → run, agreeing → agree
	}
	if strings.HasSuffix(w, "eed") && len(w) > 4 {
		w = w[:len(w)-1] // agreed, agree → agre (below); speeding, speed → spe; need stays
	}
	// A final e goes, so that make, makes and making meet at mak, and create, created at creat.
	// It also joins a few short words that are not forms of each other (here, her): quotes ask
	// for the exact word.
	if len(w) >= minStemLen && w[len(w)-1] == 'e' {
		w = w[:len(w)-1]
	}
	return w
}

// stripVerbSuffix removes an -ed or -ing of n letters when what is left is a word of at least
// three letters with a vowel (so thing, bring and red stay), and undoes a doubled final consonant
// (stopped → stop) except l, s and z, which English doubles in the base form too (called, passed).
func stripVerbSuffix(w string, n int) string {
	base := w[:len(w)-n]
	if len(base) < 3 || !strings.ContainsAny(base, "aeiouy") {
		return w
	}
	if k := len(base); base[k-1] == base[k-2] && !strings.ContainsRune("aeioulsz", rune(base[k-1])) {
		base = base[:k-1]
	}
	return base
}

func asciiLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}

// stemPrefix is what every word with the stem s starts with: the stem itself, except that a final
// y may have become i (party, parties). The index holds no stems; a stemmed query unit asks for
// the words that start with this, through the prefix tokens, and the exact check compares stems.
func stemPrefix(s string) string {
	if strings.HasSuffix(s, "y") {
		return s[:len(s)-1]
	}
	return s
}
