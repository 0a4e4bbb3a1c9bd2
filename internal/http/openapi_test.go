package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/chatvault/chatvault"
	cvhttp "github.com/chatvault/chatvault/internal/http"
)

// specPath is the HTTP contract, relative to this package.
const specPath = "../../api/openapi.yaml"

// loadSpec loads and validates the contract.
func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(specPath)
	if err != nil {
		t.Fatalf("load %s: %v", specPath, err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("validate %s: %v", specPath, err)
	}
	return doc
}

// operations lists the spec's operations as "METHOD /path" → operation.
func operations(doc *openapi3.T) map[string]*openapi3.Operation {
	out := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			out[method+" "+path] = op
		}
	}
	return out
}

// publicOperations need no bearer token.
var publicOperations = []string{"healthz", "readyz", "openapi", "login"}

// websocketOperation also takes the token in the query, and answers handshake errors in plain text.
const websocketOperation = "websocket"

func TestOpenAPISpecValid(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q; want 3.0.3", doc.OpenAPI)
	}
	ids := map[string]string{}
	for route, op := range operations(doc) {
		if op.OperationID == "" {
			t.Errorf("%s has no operationId", route)
		} else if other, dup := ids[op.OperationID]; dup {
			t.Errorf("%s and %s share operationId %q", route, other, op.OperationID)
		}
		ids[op.OperationID] = route

		public := slices.Contains(publicOperations, op.OperationID)
		switch {
		case public && (op.Security == nil || len(*op.Security) != 0):
			t.Errorf("%s (%s) must declare security: [] (it needs no token)", route, op.OperationID)
		case !public && op.Security != nil && op.OperationID != websocketOperation:
			t.Errorf("%s (%s) overrides the global bearerAuth security", route, op.OperationID)
		case !public && op.Responses.Status(http.StatusUnauthorized) == nil:
			t.Errorf("%s (%s) needs a token but documents no 401", route, op.OperationID)
		}
		if op.RequestBody != nil {
			for _, status := range []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType} {
				if op.Responses.Status(status) == nil {
					t.Errorf("%s (%s) takes a body but documents no %d", route, op.OperationID, status)
				}
			}
		}
		// Every request's query string is checked before routing (checkQuery), so every operation
		// can answer 400.
		if op.Responses.Status(http.StatusBadRequest) == nil {
			t.Errorf("%s (%s) documents no 400 (a query string that does not parse gets one anywhere)", route, op.OperationID)
		}
		if op.Responses.Status(http.StatusInternalServerError) == nil {
			t.Errorf("%s (%s) documents no 500", route, op.OperationID)
		}
		for code, ref := range op.Responses.Map() {
			status, _ := strconv.Atoi(code)
			if status < 400 {
				continue
			}
			mt := ref.Value.Content.Get("application/json")
			if op.OperationID == websocketOperation && mt == nil && ref.Value.Content.Get("text/plain") != nil {
				continue // the WebSocket library's own handshake errors
			}
			if mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/Error" {
				t.Errorf("%s (%s) response %s is not the shared Error schema", route, op.OperationID, code)
			}
		}
	}
	if s := doc.Components.SecuritySchemes["bearerAuth"]; s == nil || s.Value.Type != "http" || s.Value.Scheme != "bearer" {
		t.Errorf("components.securitySchemes.bearerAuth is not an http bearer scheme")
	}
	if len(doc.Security) != 1 || doc.Security[0]["bearerAuth"] == nil {
		t.Errorf("the document's default security is %v; want bearerAuth", doc.Security)
	}
}

func TestOpenAPIRoutesMatchServer(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	srv := cvhttp.NewServer(cvhttp.Services{}, slog.New(slog.DiscardHandler), cvhttp.Config{})
	server := map[string]bool{}
	for _, p := range srv.Patterns() {
		server[p] = true
	}
	spec := map[string]bool{}
	for route := range operations(doc) {
		spec[route] = true
	}
	var missing, extra []string
	for p := range server {
		if !spec[p] {
			missing = append(missing, p)
		}
	}
	for p := range spec {
		if !server[p] {
			extra = append(extra, p)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing) > 0 {
		t.Errorf("routes the server serves but %s does not describe:\n\t%s", specPath, strings.Join(missing, "\n\t"))
	}
	if len(extra) > 0 {
		t.Errorf("routes %s describes but the server does not serve:\n\t%s", specPath, strings.Join(extra, "\n\t"))
	}
}

// contract validates traffic against the spec and records which operations succeeded.
type contract struct {
	doc    *openapi3.T
	router routers.Router
	opts   []openapi3.SchemaValidationOption

	mu   sync.Mutex
	hits map[string][]int // operationId → statuses seen
}

func newContract(t *testing.T) *contract {
	t.Helper()
	doc := loadSpec(t)
	closeObjects(doc)
	doc.Servers = nil // match requests to any host, such as the test server's 127.0.0.1:port
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("build router: %v", err)
	}
	return &contract{doc: doc, router: router, hits: map[string][]int{},
		opts: []openapi3.SchemaValidationOption{
			openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562)),
		}}
}

// closeObjects forbids, for this test only, properties the spec does not list. The published
// contract lets responses gain fields; the test insists that the spec names every field the
// server sends, so the two cannot drift apart unnoticed.
func closeObjects(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	var walk func(ref *openapi3.SchemaRef)
	walk = func(ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		if s.Type.Is(openapi3.TypeObject) && len(s.Properties) > 0 && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
			no := false
			s.AdditionalProperties.Has = &no
		}
		for _, p := range s.Properties {
			walk(p)
		}
		walk(s.Items)
	}
	for _, s := range doc.Components.Schemas {
		walk(s)
	}
	for _, op := range operations(doc) {
		for _, resp := range op.Responses.Map() {
			for _, mt := range resp.Value.Content {
				walk(mt.Schema)
			}
		}
	}
}

// codeOf is the error code every status carries (internal/http/error.go).
var codeOf = map[int]string{
	400: chatvault.EINVALID, 401: chatvault.EUNAUTHORIZED, 403: chatvault.EFORBIDDEN, 404: chatvault.ENOTFOUND,
	405: "method_not_allowed", 409: chatvault.ECONFLICT, 410: chatvault.ERESYNC, 413: chatvault.ETOOLARGE, 415: "unsupported_media_type", 429: chatvault.ETOOMANY,
	500: chatvault.EINTERNAL, 503: chatvault.EUNAVAILABLE, 507: chatvault.EFULL,
}

// expectation is what the spec should make of the next request.
type expectation int

const (
	specAccepts  expectation = iota // the request conforms to the spec
	specRejects                     // the request breaks the spec, and the server must reject it too
	specNoMethod                    // the path exists but the spec has no such method (405)
)

// checker validates one test server's traffic.
type checker struct {
	c      *contract
	expect expectation
}

// serve starts a test server whose every request and response is checked against the spec.
func (c *contract) serve(t *testing.T) (*testServer, *checker) {
	t.Helper()
	ts := newTestServer(t)
	k := &checker{c: c}
	ts.validate = k.validate
	return ts, k
}

// breaking runs f with the spec expected to reject its requests.
func (k *checker) breaking(f func()) {
	k.expect = specRejects
	defer func() { k.expect = specAccepts }()
	f()
}

// authenticate accepts any token that is present where the security scheme says.
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	req := in.RequestValidationInput.Request
	switch in.SecuritySchemeName {
	case "bearerAuth":
		if token, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok && strings.TrimSpace(token) != "" {
			return nil
		}
		return errors.New("no bearer token")
	case "accessToken":
		if req.URL.Query().Get("access_token") != "" {
			return nil
		}
		return errors.New("no access_token")
	}
	return fmt.Errorf("unknown security scheme %q", in.SecuritySchemeName)
}

func (k *checker) validate(t *testing.T, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	t.Helper()
	call := fmt.Sprintf("%s %s (status %d)", req.Method, req.URL.RequestURI(), resp.StatusCode)
	route, params, err := k.c.router.FindRoute(req)
	wsPlain := err == nil && route.Operation.OperationID == websocketOperation &&
		strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain")
	if resp.StatusCode >= 400 && !wsPlain {
		k.checkErrorBody(t, call, resp, respBody)
	}

	if k.expect == specNoMethod {
		if !errors.Is(err, routers.ErrMethodNotAllowed) {
			t.Errorf("%s: spec router says %v; want method not allowed", call, err)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: no operation in the spec: %v", call, err)
		return
	}
	ctx := context.Background()
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: authenticate, MultiError: true,
			RejectWhenRequestBodyNotSpecified: true, SchemaValidationOptions: k.c.opts}}
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	switch {
	case k.expect == specAccepts && reqErr != nil:
		t.Errorf("%s: the request breaks the spec: %v\nbody: %s", call, reqErr, reqBody)
	case k.expect == specRejects && reqErr == nil:
		t.Errorf("%s: the spec accepts a request the test meant to break\nbody: %.200s", call, reqBody)
	case k.expect == specRejects && resp.StatusCode < 400:
		t.Errorf("%s: the server accepted a request the spec rejects (%v)", call, reqErr)
	}

	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, SchemaValidationOptions: k.c.opts}}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("%s: the response breaks the spec: %v\nbody: %s", call, err, respBody)
	}
	if r := route.Operation.Responses.Status(resp.StatusCode); r != nil && len(r.Value.Content) == 0 && len(respBody) > 0 {
		t.Errorf("%s: the spec declares no body, the server sent %s", call, respBody)
	}

	k.c.mu.Lock()
	k.c.hits[route.Operation.OperationID] = append(k.c.hits[route.Operation.OperationID], resp.StatusCode)
	k.c.mu.Unlock()
}

// checkErrorBody checks what every error response carries, routed or not.
func (k *checker) checkErrorBody(t *testing.T, call string, resp *http.Response, body []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Errorf("%s: error body is not JSON: %v: %s", call, err, body)
		return
	}
	if err := k.c.doc.Components.Schemas["Error"].Value.VisitJSON(v, k.c.opts...); err != nil {
		t.Errorf("%s: error body breaks the Error schema: %v", call, err)
	}
	var e cvhttp.ErrorBody
	json.Unmarshal(body, &e)
	if want := codeOf[resp.StatusCode]; e.Error.Code != want {
		t.Errorf("%s: error code %q; want %q", call, e.Error.Code, want)
	}
	if e.Error.RequestID == "" || e.Error.RequestID != resp.Header.Get("X-Request-Id") {
		t.Errorf("%s: request_id %q; want the X-Request-Id header %q", call, e.Error.RequestID, resp.Header.Get("X-Request-Id"))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("%s: Content-Type %q; want JSON in UTF-8", call, ct)
	}
}

// wantError fails unless r is an error response with the code (and, if given, the field).
func wantError(t *testing.T, r response, code, field string) {
	t.Helper()
	gotCode, gotField := r.errorCode(t)
	if gotCode != code || (field != "" && gotField != field) {
		t.Errorf("error = %s/%s; want %s/%s; body %s", gotCode, gotField, code, field, r.Body)
	}
}

// TestOpenAPIContract drives every operation through real servers and checks each request and
// response against api/openapi.yaml.
func TestOpenAPIContract(t *testing.T) {
	t.Parallel()
	c := newContract(t)
	t.Run("scenarios", func(t *testing.T) {
		for _, sc := range []struct {
			name string
			run  func(*testing.T, *contract)
		}{
			{"health", contractHealth},
			{"accounts", contractAccounts},
			{"admin", contractAdmin},
			{"conversations", contractConversations},
			{"messages", contractMessages},
			{"transport", contractTransport},
			{"sync", contractSync},
			{"retention", contractRetention},
			{"retention lock", contractRetentionLock},
			{"search", contractSearch},
			{"export", contractExport},
		} {
			t.Run(sc.name, func(t *testing.T) {
				t.Parallel()
				sc.run(t, c)
			})
		}
	})

	// Every operation in the spec must have succeeded at least once, so the spec cannot grow an
	// operation the tests never drive.
	c.mu.Lock()
	defer c.mu.Unlock()
	var untested []string
	for route, op := range operations(c.doc) {
		if !slices.ContainsFunc(c.hits[op.OperationID], func(s int) bool { return s < 300 }) {
			untested = append(untested, fmt.Sprintf("%s (%s; seen %v)", route, op.OperationID, c.hits[op.OperationID]))
		}
	}
	slices.Sort(untested)
	if len(untested) > 0 && !t.Failed() {
		t.Errorf("operations the contract test never ran successfully:\n\t%s", strings.Join(untested, "\n\t"))
	}
}

// dialWS opens /api/v1/ws and checks the handshake against the spec.
func (k *checker) dialWS(t *testing.T, ts *testServer, token string, inQuery bool) *websocket.Conn {
	t.Helper()
	u, header := ts.URL+"/api/v1/ws", http.Header{}
	if inQuery {
		u += "?access_token=" + url.QueryEscape(token)
	} else {
		header.Set("Authorization", "Bearer "+token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(u, "http"), &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	conn.SetReadLimit(1 << 20)
	t.Cleanup(func() { conn.CloseNow() })
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	k.validate(t, req, nil, resp, nil)
	return conn
}

// readFrame reads one frame and checks it against WSFrame.
func (k *checker) readFrame(t *testing.T, conn *websocket.Conn) cvhttp.WSFrame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, data, err := conn.Read(ctx)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	k.checkSchema(t, "WSFrame", data, openapi3.VisitAsResponse())
	var f cvhttp.WSFrame
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("frame %s: %v", data, err)
	}
	return f
}

// sendFrame checks a client frame against WSSend and sends it.
func (k *checker) sendFrame(t *testing.T, conn *websocket.Conn, frame any) {
	t.Helper()
	data, err := json.Marshal(frame)
	if err != nil {
		t.Fatal(err)
	}
	k.checkSchema(t, "WSSend", data, openapi3.VisitAsRequest())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, data); err != nil {
		t.Fatalf("write frame: %v", err)
	}
}

// checkSchema checks JSON data against a named schema of the spec.
func (k *checker) checkSchema(t *testing.T, name string, data []byte, opts ...openapi3.SchemaValidationOption) {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Errorf("%s %s is not JSON: %v", name, data, err)
		return
	}
	if err := k.c.doc.Components.Schemas[name].Value.VisitJSON(v, append(slices.Clone(k.c.opts), opts...)...); err != nil {
		t.Errorf("%s breaks the %s schema: %v", data, name, err)
	}
}
