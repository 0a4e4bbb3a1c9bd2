package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

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
