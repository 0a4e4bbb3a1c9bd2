package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/chatvault/chatvault"
)

// decodeJSON reads a request body of at most limit bytes into v, strictly: unknown fields, trailing
// data, wrong types and oversized bodies are errors that name the problem.
func decodeJSON(r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &chatvault.Error{Code: codeUnsupportedMedia, Message: "send the body as application/json"}
		}
	}
	body, err := readBody(r, limit)
	if err != nil {
		return err
	}
	return DecodeBody(body, v)
}

// decodeOptionalJSON is decodeJSON for endpoints whose body may be left out entirely.
func decodeOptionalJSON(r *http.Request, limit int64, v any) error {
	body, err := readBody(r, limit)
	if err != nil || len(bytes.TrimSpace(body)) == 0 {
		return err
	}
	return DecodeBody(body, v)
}

func readBody(r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, chatvault.Errorf(chatvault.EINVALID, "read request body: %v", err)
	}
	if int64(len(body)) > limit {
		return nil, chatvault.Errorf(chatvault.ETOOLARGE, "the request body is larger than the limit of %d bytes", limit)
	}
	return body, nil
}

// DecodeBody decodes one JSON value strictly into v. It is separate from decodeJSON so fuzzing can
// reach it without HTTP.
func DecodeBody(body []byte, v any) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		return chatvault.Errorf(chatvault.EINVALID, "a JSON request body is required")
	}
	if err := checkText(body); err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return chatvault.Errorf(chatvault.EINVALID, "the request body holds more than one JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return chatvault.Errorf(chatvault.EINVALID, "the request body holds data after its JSON value")
	}
	return nil
}

// checkText refuses JSON text that encoding/json would alter rather than refuse: bytes that are
// not UTF-8, and \u escapes of half a UTF-16 surrogate pair (\uD800 alone), both of which it
// silently turns into U+FFFD. Storing the replacement would keep something the client never sent,
// and would hide the fault from the client. The error names the field that holds the bad string.
// Syntax errors are left to the decoder, which describes them better.
func checkText(body []byte) error {
	var stack []jsonFrame
	for i := 0; i < len(body); {
		c := body[i]
		top := len(stack) - 1
		switch {
		case c == '{':
			stack = append(stack, jsonFrame{object: true, wantKey: true})
		case c == '[':
			stack = append(stack, jsonFrame{})
		case c == '}' || c == ']':
			if top >= 0 {
				stack = stack[:top]
			}
		case c == ',' && top >= 0:
			stack[top].wantKey = stack[top].object
			stack[top].index++
		case c == ':' && top >= 0:
			stack[top].wantKey = false
		case c == '"':
			end, problem := scanJSONString(body, i+1)
			isKey := top >= 0 && stack[top].object && stack[top].wantKey
			if problem != "" {
				where := jsonPath(stack)
				if isKey {
					where = jsonPath(stack[:top])
					problem = "a field name " + problem
				}
				if where == "" {
					return chatvault.Errorf(chatvault.EINVALID, "the request body holds %s", problem)
				}
				return chatvault.Invalidf(where, "%s holds %s", where, problem)
			}
			if isKey {
				// A key that does not decode is a syntax error the decoder will report.
				stack[top].key = ""
				json.Unmarshal(body[i:min(end+1, len(body))], &stack[top].key)
				// encoding/json keeps the last of two equal keys, and matches field names without
				// regard to case; another parser may keep the first or tell "Text" from "text". A
				// request two parsers could read differently is refused.
				folded := strings.ToLower(stack[top].key)
				if stack[top].seen == nil {
					stack[top].seen = map[string]bool{}
				}
				if stack[top].seen[folded] {
					where := jsonPath(stack)
					return chatvault.Invalidf(where, "the field %q appears twice in one object", where)
				}
				stack[top].seen[folded] = true
			}
			i = end + 1
			continue
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(body[i:])
			if r == utf8.RuneError && size == 1 {
				return chatvault.Errorf(chatvault.EINVALID, "the request body is not valid UTF-8 (byte %d)", i)
			}
			i += size
			continue
		}
		i++
	}
	return nil
}

// jsonFrame is one open object or array on the way to the string checkText looks at.
type jsonFrame struct {
	object  bool
	wantKey bool            // in an object, the next string is a key
	key     string          // in an object, the key of the current value
	seen    map[string]bool // in an object, the keys so far, lower-cased
	index   int             // in an array, the index of the current element
}

// jsonPath names the value the innermost frame is at: text, members[2], policy.days.
func jsonPath(stack []jsonFrame) string {
	var b strings.Builder
	for _, f := range stack {
		switch {
		case !f.object:
			fmt.Fprintf(&b, "[%d]", f.index)
		case b.Len() > 0:
			b.WriteString("." + f.key)
		default:
			b.WriteString(f.key)
		}
	}
	return b.String()
}

// scanJSONString scans the JSON string whose text starts at body[start] and returns the index of
// its closing quote (len(body) when there is none) and what is wrong with its text, if anything.
func scanJSONString(body []byte, start int) (end int, problem string) {
	for j := start; j < len(body); {
		switch c := body[j]; {
		case c == '"':
			return j, ""
		case c == '\\':
			if j+1 < len(body) && body[j+1] == 'u' {
				r, ok := hex4(body, j+2)
				switch {
				case !ok:
					// Not a \u escape: a syntax error the decoder will report.
				case r >= 0xd800 && r < 0xdc00:
					if low, ok := hex4(body, j+8); ok && body[j+6] == '\\' && body[j+7] == 'u' && low >= 0xdc00 && low < 0xe000 {
						j += 12
						continue
					}
					return j, fmt.Sprintf("\\u%s, the first half of a UTF-16 surrogate pair without its second half", body[j+2:j+6])
				case r >= 0xdc00 && r < 0xe000:
					return j, fmt.Sprintf("\\u%s, the second half of a UTF-16 surrogate pair without its first half", body[j+2:j+6])
				}
			}
			j += 2
		case c < utf8.RuneSelf:
			j++
		default:
			r, size := utf8.DecodeRune(body[j:])
			if r == utf8.RuneError && size == 1 {
				return j, fmt.Sprintf("bytes that are not valid UTF-8 (at byte %d)", j)
			}
			j += size
		}
	}
	return len(body), ""
}

// hex4 reads the four hex digits at body[at:], if there are four.
func hex4(body []byte, at int) (rune, bool) {
	if at+4 > len(body) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(body[at:at+4]), 16, 16)
	return rune(n), err == nil
}

// checkQuery refuses a query string that net/url would read only in part. url.ParseQuery drops
// every pair it cannot unescape and every pair with a semicolon, and handlers that read
// r.URL.Query() never see the error: ?since=%%%garbage read as no since at all, a full initial
// sync. Names and values must also be UTF-8 once unescaped, so handlers get text they can store.
// The error names the parameter when its name can be read.
func checkQuery(raw string) error {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil || !utf8.ValidString(key) {
			return chatvault.Errorf(chatvault.EINVALID, "the query string has a parameter name that is not percent-encoded UTF-8: %q", clip(rawKey))
		}
		if strings.Contains(pair, ";") {
			return chatvault.Invalidf(key, "separate query parameters with &, not ; (percent-encode a ; in a value as %%3B)")
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return chatvault.Invalidf(key, "%s is not valid percent-encoding: %q (encode %% itself as %%25)", key, clip(rawValue))
		}
		if !utf8.ValidString(value) {
			return chatvault.Invalidf(key, "%s is not UTF-8 once percent-decoded", key)
		}
	}
	return nil
}

// clip shortens what an error message quotes back, so an error never echoes a huge input.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

func jsonError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return chatvault.Errorf(chatvault.EINVALID, "malformed JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return chatvault.Errorf(chatvault.EINVALID, "the request body must be a JSON object")
		}
		return chatvault.Invalidf(field, "%s must be %s, not %s", field, jsonType(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return chatvault.Errorf(chatvault.EINVALID, "the JSON body ends too early")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return chatvault.Invalidf(field, "unknown field %q", field)
	default:
		return chatvault.Errorf(chatvault.EINVALID, "malformed JSON: %v", err)
	}
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	default:
		return "a number"
	}
}

// QueryInt parses an optional non-negative integer query parameter; nil when absent.
func QueryInt(q url.Values, name string, max int64) (*int64, error) {
	if !q.Has(name) {
		return nil, nil
	}
	raw := q.Get(name)
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 0 || n > max {
		return nil, chatvault.Invalidf(name, "%s must be a whole number from 0 to %d, not %q", name, max, raw)
	}
	return &n, nil
}
