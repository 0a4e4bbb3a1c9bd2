package chatvault_test

import (
	"testing"

	"github.com/chatvault/chatvault"
)

func TestCheckName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"chinese", "张伟", true},
		{"mathematical script", "𝒜", true},
		{"emoji zwj sequence", "👩\u200d💻", true},
		{"decomposed combining mark", "cafe\u0301", true},
		{"arabic", "محمد علي", true},
		{"hebrew and latin", "דנה Dana", true},
		{"persian zwnj", "می\u200cخواهم", true},
		{"devanagari zwj", "क्\u200dष", true},
		{"emoji flag tag sequence", "🏴\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F", true},
		{"variation selector", "❤\ufe0f", true},
		{"at the limit", "1234567890123456", true},

		{"right-to-left override", "admin\u202egnp.exe", false},
		{"left-to-right embedding", "\u202aBob", false},
		{"pop directional formatting", "Bob\u202c", false},
		{"right-to-left isolate", "\u2067Bob", false},
		{"pop directional isolate", "Bob\u2069", false},
		{"right-to-left mark", "Bob\u200f", false},
		{"left-to-right mark", "\u200eBob", false},
		{"arabic letter mark", "Bob\u061c", false},
		{"zero width space", "Bo\u200bb", false},
		{"soft hyphen", "Bo\u00adb", false},
		{"byte order mark", "\ufeffBob", false},
		{"word joiner", "Bo\u2060b", false},
		{"tag characters outside a flag", "Bob\U000E0041\U000E0042", false},
		{"flag sequence without cancel tag", "🏴\U000E0067\U000E0062", false},
		{"flag sequence interrupted", "🏴\U000E0067x\U000E007F", false},
		{"lone cancel tag", "Bob\U000E007F", false},
		{"trailing zwj", "Bob\u200d", false},
		{"leading zwnj", "\u200cBob", false},
		{"two joiners", "a\u200d\u200db", false},
		{"nul", "Bo\x00b", false},
		{"newline", "Bob\nAdmin", false},
		{"tab", "Bob\tAdmin", false},
		{"c1 control", "Bob\u0085", false},
		{"line separator", "Bob\u2028Admin", false},
		{"paragraph separator", "Bob\u2029Admin", false},
		{"invalid utf-8", "Bo\xffb", false},
		{"encoded surrogate", "Bo\xed\xa0\x80b", false},
		{"over the limit", "12345678901234567", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := chatvault.CheckName("display_name", tc.in, 16)
			if tc.ok && err != nil {
				t.Fatalf("CheckName(%q) = %v; want nil", tc.in, err)
			}
			if !tc.ok {
				if chatvault.ErrorCode(err) != chatvault.EINVALID || chatvault.ErrorField(err) != "display_name" {
					t.Fatalf("CheckName(%q) = %v; want EINVALID naming display_name", tc.in, err)
				}
			}
		})
	}
}
