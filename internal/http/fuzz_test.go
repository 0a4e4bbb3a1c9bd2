package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
)

// requestBodies makes a fresh zero value of every request body the API decodes.
var requestBodies = []func() any{
	func() any { return new(LoginRequest) },
	func() any { return new(CreateUserRequest) },
	func() any { return new(CreateConversationRequest) },
	func() any { return new(MembersRequest) },
	func() any { return new(ReadRequest) },
	func() any { return new(SendMessageRequest) },
	func() any { return new(EditMessageRequest) },
	func() any { return new(ChangePasswordRequest) },
	func() any { return new(ResetPasswordRequest) },
	func() any { return new(PatchUserRequest) },
}

// FuzzDecodeBody checks that any body decodes into every request type without panicking, that
// every failure is a client error with a message, and that what decodes survives a round trip.
func FuzzDecodeBody(f *testing.F) {
	for _, seed := range []string{
		`{"username":"alice","password":"correct horse","device_name":"laptop"}`,
		`{"type":"group","title":"第12轮 合同 🚀","members":["u1","u2"],"history_visible_to_new_members":true}`,
		`{"client_msg_id":"c-1","text":"hello 🚀","reply_to":""}`,
		`{"seq":9223372036854775807}`,
		`{"text":"x","version":-1}`,
		`{"roles":["member","org_admin"],"display_name":"\u0000"}`,
		`{"members":null} {}`,
		`[1,2,3]`,
		`{"version":1e400}`,
		"\xef\xbb\xbf{}",
		`  `,
		"{\"text\":\"caf\xe9\"}",
		"{\"text\":\"\xed\xa0\x80\"}",
		`{"text":"\ud83d"}`,
		`{"text":"\uDE80x"}`,
		`{"text":"\ud83d\ud83d\ude80"}`,
		`{"text":"\ud83d\ude80 \uFFFD \\ud800"}`,
		`{"members":["a","\ud800"],"title":"t"}`,
		`{"a":{"b":[1,{"c":"\udfff"}]}}`,
		"{\"te\xffxt\":\"x\"}",
		`{"text":"\ud83d\u`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkStrictText(t, body)
		for _, newBody := range requestBodies {
			v := newBody()
			err := DecodeBody(body, v)
			if err != nil {
				var e *chatvault.Error
				if !errors.As(err, &e) {
					t.Fatalf("DecodeBody(%q, %T) error = %#v; want a *chatvault.Error", body, v, err)
				}
				if e.Code != chatvault.EINVALID && e.Code != chatvault.ETOOLARGE {
					t.Fatalf("DecodeBody(%q, %T) code = %q; want %q or %q", body, v, e.Code, chatvault.EINVALID, chatvault.ETOOLARGE)
				}
				if e.Message == "" {
					t.Fatalf("DecodeBody(%q, %T) message = \"\"; want a message", body, v)
				}
				continue
			}
			// What decoded must encode and decode back to the same value: DecodeBody accepts
			// exactly what the handlers will see.
			again, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("json.Marshal(%#v) error = %v", v, err)
			}
			w := newBody()
			if err := DecodeBody(again, w); err != nil {
				t.Fatalf("DecodeBody(%q, %T) error = %v; want nil (re-encoded from %q)", again, w, err, body)
			}
			if !reflect.DeepEqual(v, w) {
				t.Fatalf("DecodeBody(%q) = %#v; want %#v (re-encoded from %q)", again, w, v, body)
			}
		}
	})
}

// surrogateEscape finds a \u escape of half a surrogate pair, or text that only looks like one.
var surrogateEscape = regexp.MustCompile(`(?i)\\ud[89a-f]`)

// checkStrictText holds DecodeBody to its promise about text, against a simpler oracle: a body it
// accepts is UTF-8 and decodes to no U+FFFD the body did not spell out; and a body of valid JSON
// and UTF-8 with no \uD800-\uDFFF escape anywhere is never refused for its text.
func checkStrictText(t *testing.T, body []byte) {
	t.Helper()
	var v any
	err := DecodeBody(body, &v)
	if err == nil {
		if !utf8.Valid(body) {
			t.Fatalf("DecodeBody(%q) accepted bytes that are not UTF-8", body)
		}
		lower := strings.ToLower(string(body))
		if strings.Contains(fmt.Sprint(v), "\ufffd") && !strings.Contains(lower, `\ufffd`) && !strings.Contains(lower, "\ufffd") {
			t.Fatalf("DecodeBody(%q) = %q: a U+FFFD the body does not hold", body, fmt.Sprint(v))
		}
	}
	if json.Valid(body) && utf8.Valid(body) && !surrogateEscape.Match(body) {
		err := checkText(body)
		if dup := duplicateKey(body); dup != "" {
			if err == nil {
				t.Fatalf("checkText(%q) = nil; want an error for the key %q twice in one object", body, dup)
			}
		} else if err != nil {
			t.Fatalf("checkText(%q) = %v; want nil for valid JSON in UTF-8 without surrogate escapes or duplicate keys", body, err)
		}
	}
}

// duplicateKey returns a key that appears twice (ignoring case) in one object of the valid JSON
// body, read with encoding/json's tokenizer rather than checkText's own scanner, or "".
func duplicateKey(body []byte) string {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	type frame struct {
		object, wantKey bool
		seen            map[string]bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch tok := tok.(type) {
		case json.Delim:
			switch tok {
			case '{', '[':
				if top != nil && top.object {
					top.wantKey = true
				}
				stack = append(stack, &frame{object: tok == '{', wantKey: tok == '{', seen: map[string]bool{}})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if top != nil && top.object && top.wantKey {
				k := strings.ToLower(tok)
				if top.seen[k] {
					return tok
				}
				top.seen[k] = true
				top.wantKey = false
				continue
			}
		}
		if top != nil && top.object {
			top.wantKey = true
		}
	}
}

// FuzzCheckQuery: checkQuery refuses exactly the query strings url.ParseQuery cannot parse whole or
// that hold text that is not UTF-8, and names a parameter the query really has.
func FuzzCheckQuery(f *testing.F) {
	for _, seed := range []string{
		"",
		"since=%%%garbage",
		"since=c1.2&timeout=5",
		"q=%E4%B8%8A%E6%B5%B7",
		"q=%FF",
		"q=%E4%B8",
		"%zz=1",
		"%FF=1",
		"limit=1;after_seq=2",
		"a=%3B&&b",
		"=x",
		"x=%",
		"q=caf\xe9",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		err := checkQuery(raw)
		values, parseErr := url.ParseQuery(raw)
		text := true
		for k, vs := range values {
			text = text && utf8.ValidString(k)
			for _, v := range vs {
				text = text && utf8.ValidString(v)
			}
		}
		if want := parseErr == nil && text; (err == nil) != want {
			t.Fatalf("checkQuery(%q) = %v; want refused = %v (url.ParseQuery error %v, all UTF-8 %v)", raw, err, !want, parseErr, text)
		}
		if err == nil {
			return
		}
		var e *chatvault.Error
		if !errors.As(err, &e) || e.Code != chatvault.EINVALID || e.Message == "" {
			t.Fatalf("checkQuery(%q) = %#v; want EINVALID with a message", raw, err)
		}
		if e.Field != "" && !slices.ContainsFunc(strings.Split(raw, "&"), func(pair string) bool {
			k, _, _ := strings.Cut(pair, "=")
			k, err := url.QueryUnescape(k)
			return err == nil && k == e.Field
		}) {
			t.Fatalf("checkQuery(%q) names %q, which is not a parameter of it", raw, e.Field)
		}
	})
}

var pageFields = map[string]bool{"before_seq": true, "after_seq": true, "around_seq": true, "limit": true}

// FuzzParsePage checks ParsePage against any raw query: it never panics, what it accepts is a page
// the chat service can serve, and what it rejects names the parameter at fault.
func FuzzParsePage(f *testing.F) {
	for _, seed := range []string{
		"",
		"after_seq=0&limit=200",
		"before_seq=9223372036854775807",
		"around_seq=10&limit=1",
		"limit=0",
		"limit=201",
		"after_seq=-1",
		"before_seq=%2B5",
		"limit=1;after_seq=2",
		"after_seq=1&after_seq=x",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/", RawQuery: rawQuery}}
		p, err := ParsePage(r)
		if err != nil {
			var e *chatvault.Error
			if !errors.As(err, &e) {
				t.Fatalf("ParsePage(%q) error = %#v; want a *chatvault.Error", rawQuery, err)
			}
			if e.Code != chatvault.EINVALID {
				t.Fatalf("ParsePage(%q) code = %q; want %q", rawQuery, e.Code, chatvault.EINVALID)
			}
			if !pageFields[e.Field] {
				t.Fatalf("ParsePage(%q) field = %q; want one of before_seq, after_seq, around_seq, limit", rawQuery, e.Field)
			}
			if e.Message == "" {
				t.Fatalf("ParsePage(%q) message = \"\"; want a message", rawQuery)
			}
			return
		}
		set := 0
		for name, v := range map[string]*int64{"before_seq": p.Before, "after_seq": p.After, "around_seq": p.Around} {
			if v == nil {
				continue
			}
			set++
			if *v < 0 {
				t.Errorf("ParsePage(%q) %s = %d; want >= 0", rawQuery, name, *v)
			}
		}
		if set > 1 {
			t.Errorf("ParsePage(%q) set %d of before_seq, after_seq, around_seq; want at most 1", rawQuery, set)
		}
		if p.Limit < 0 || p.Limit > chat.MaxPageLimit {
			t.Errorf("ParsePage(%q) Limit = %d; want 0..%d", rawQuery, p.Limit, chat.MaxPageLimit)
		}
	})
}

// FuzzParseSearch: any query string is a search request or an EINVALID error that names a
// parameter; and a request that parses has a query and a limit the service accepts.
func FuzzParseSearch(f *testing.F) {
	for _, seed := range []string{
		"q=%E4%B8%8A%E6%B5%B7",
		"q=x&scope=org&sort=relevance&limit=100",
		"q=x&from=2026-01-01&to=2026-02-01T00:00:00Z",
		"q=x&has_reply=true&edited=0",
		"q=x&limit=0",
		"q=x&q=y",
		"q=&cursor=dDE",
		"colour=red",
		"q=x&from=2026-13-45",
		"q=%FF",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		values, err := url.ParseQuery(rawQuery)
		if err != nil {
			return // the server answers a malformed query string before it gets here
		}
		req, err := ParseSearch(values)
		if err != nil {
			var e *chatvault.Error
			_, nameless := values[""]
			if !errors.As(err, &e) || e.Code != chatvault.EINVALID || (e.Field == "") != nameless {
				t.Fatalf("ParseSearch(%q) error = %#v; want EINVALID naming the parameter (none when it has no name)", rawQuery, err)
			}
			return
		}
		if req.Query == "" || req.Limit < 0 || req.Limit > chat.MaxSearchLimit {
			t.Fatalf("ParseSearch(%q) = %+v: empty query or limit out of range", rawQuery, req)
		}
	})
}
