package account_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/account"
)

// FuzzNormalizeUsername checks that NormalizeUsername never panics, that what it returns is a valid
// username, and that normalizing a normalized name changes nothing (so stored names compare equal to
// what a login normalizes to).
func FuzzNormalizeUsername(f *testing.F) {
	for _, seed := range []string{
		"alice",
		"  Alice.Smith@example.com ",
		"ＡＤＭＩＮ",      // fullwidth, folds to "admin" under NFKC
		"İstanbul",   // capital I with dot lowers to i + U+0307, a mark
		"ﬀ_ligature", // NFKC expands the ligature
		"K\u212a",    // Kelvin sign
		"张伟-2024",
		"a b",
		"",
		strings.Repeat("x", 64),
		strings.Repeat("x", 65),
		"\xff\xfe",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := account.NormalizeUsername(in)
		if err != nil {
			var e *chatvault.Error
			if !errors.As(err, &e) || e.Code != chatvault.EINVALID || e.Field != "username" {
				t.Fatalf("NormalizeUsername(%q) error = %#v; want an %q error for field username", in, err, chatvault.EINVALID)
			}
			return
		}
		if !utf8.ValidString(out) {
			t.Fatalf("NormalizeUsername(%q) = %q; want valid UTF-8", in, out)
		}
		if n := utf8.RuneCountInString(out); n < 1 || n > 64 {
			t.Fatalf("NormalizeUsername(%q) = %q, %d runes; want 1..64", in, out, n)
		}
		for _, r := range out {
			if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("._-@", r) {
				t.Fatalf("NormalizeUsername(%q) = %q holds %q; want only letters, digits and ._-@", in, out, r)
			}
		}
		again, err := account.NormalizeUsername(out)
		if err != nil {
			t.Fatalf("NormalizeUsername(%q) error = %v; want nil (it is NormalizeUsername(%q))", out, err, in)
		}
		if again != out {
			t.Fatalf("NormalizeUsername(%q) = %q; want %q (not idempotent; input %q)", out, again, out, in)
		}
	})
}
