package account

import "slices"

// commonPasswords are passwords of 8 or more characters that lead the public lists of leaked
// passwords (the ones an attacker tries first), lower-cased. A short list in code, not a
// download: it catches what guessing tries first, and the throttle handles the rest.
var commonPasswords = []string{
	"00000000", "11111111", "11223344", "12121212", "12341234", "12344321", "12345678", "123456789",
	"1234567890", "12345678910", "123123123", "123321123", "1q2w3e4r", "1q2w3e4r5t", "1qaz2wsx",
	"87654321", "88888888", "987654321", "99999999", "a1b2c3d4", "aa123456", "abc12345", "abcd1234",
	"abcdefgh", "access14", "admin123", "administrator", "asdfasdf", "asdfghjk", "asdfghjkl",
	"baseball", "basketball", "batman123", "changeme", "charlie1", "chocolate", "computer",
	"corvette", "dearbook", "default1", "dragon123", "football", "football1", "freedom1",
	"google123", "hello123", "iloveyou", "iloveyou1", "jennifer", "jordan23", "letmein1", "letmein123",
	"liverpool", "login123", "lovely123", "master123", "michelle", "mustang1", "password",
	"password!", "password1", "password12", "password123", "password1234", "passw0rd", "p@ssw0rd",
	"p@ssword", "princess", "princess1", "q1w2e3r4", "q1w2e3r4t5", "qazwsxedc", "qwer1234",
	"qwerty12", "qwerty123", "qwerty1234", "qwertyui", "qwertyuiop", "starwars", "sunshine",
	"superman", "trustno1", "welcome1", "welcome123", "whatever", "woaini1314", "zaq12wsx",
	"zxcvbnm1", "zxcvbnm123",
}

func commonPassword(folded string) bool { return slices.Contains(commonPasswords, folded) }
