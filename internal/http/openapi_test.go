package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
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
	"github.com/google/uuid"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/account"
	"github.com/chatvault/chatvault/internal/chat"
	cvhttp "github.com/chatvault/chatvault/internal/http"
	"github.com/chatvault/chatvault/internal/retention"
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
var publicOperations = []string{"healthz", "readyz", "login"}

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
	405: "method_not_allowed", 409: chatvault.ECONFLICT, 410: chatvault.ERESYNC, 413: chatvault.ETOOLARGE, 415: "unsupported_media_type",
	500: chatvault.EINTERNAL, 503: chatvault.EUNAVAILABLE,
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
		t.Run("health", func(t *testing.T) {
			t.Parallel()
			contractHealth(t, c)
		})
		t.Run("accounts", func(t *testing.T) {
			t.Parallel()
			contractAccounts(t, c)
		})
		t.Run("admin", func(t *testing.T) {
			t.Parallel()
			contractAdmin(t, c)
		})
		t.Run("conversations", func(t *testing.T) {
			t.Parallel()
			contractConversations(t, c)
		})
		t.Run("messages", func(t *testing.T) {
			t.Parallel()
			contractMessages(t, c)
		})
		t.Run("transport", func(t *testing.T) {
			t.Parallel()
			contractTransport(t, c)
		})
		t.Run("sync", func(t *testing.T) {
			t.Parallel()
			contractSync(t, c)
		})
		t.Run("retention", func(t *testing.T) {
			t.Parallel()
			contractRetention(t, c)
		})
		t.Run("retention lock", func(t *testing.T) {
			t.Parallel()
			contractRetentionLock(t, c)
		})
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

func contractHealth(t *testing.T, c *contract) {
	ts, _ := c.serve(t)
	ts.must(http.StatusOK, "GET", "/healthz", "", nil)
	ts.must(http.StatusOK, "GET", "/readyz", "", nil)
}

func contractAccounts(t *testing.T, c *contract) {
	ts, k := c.serve(t)
	alice := ts.newUser("小明")

	var me chatvault.User
	ts.must(http.StatusOK, "GET", "/api/v1/me", alice.Token, nil).decode(t, &me)
	if me.ID != alice.ID || me.Username != "小明" {
		t.Errorf("GET /me = %+v; want user %s 小明", me, alice.ID)
	}

	// 401 without or with a wrong token; the spec rejects the first as well.
	k.breaking(func() {
		wantError(t, ts.must(http.StatusUnauthorized, "GET", "/api/v1/me", "", nil), chatvault.EUNAUTHORIZED, "")
	})
	ts.must(http.StatusUnauthorized, "GET", "/api/v1/me", "cvt_not-a-token", nil)

	// Login: bad input, wrong password.
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/auth/login", "", map[string]string{
			"username": "小明", "password": "password-小明"}), chatvault.EINVALID, "device_name")
	})
	ts.must(http.StatusUnauthorized, "POST", "/api/v1/auth/login", "", map[string]string{
		"username": "小明", "password": "wrong password", "device_name": "手机"})

	// A second device, listed, then revoked from the first.
	second := ts.login("小明", "password-小明", "default")
	var devs struct {
		Devices []struct {
			ID      string `json:"id"`
			Current bool   `json:"current"`
		} `json:"devices"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/devices", alice.Token, nil).decode(t, &devs)
	if len(devs.Devices) != 2 {
		t.Fatalf("GET /devices lists %d devices; want 2", len(devs.Devices))
	}
	ts.must(http.StatusNoContent, "DELETE", "/api/v1/devices/"+second.DeviceID, alice.Token, nil)
	ts.must(http.StatusNotFound, "DELETE", "/api/v1/devices/"+second.DeviceID, alice.Token, nil)
	ts.must(http.StatusUnauthorized, "GET", "/api/v1/me", second.Token, nil)

	// Password change: wrong current password, too short, then right.
	wantError(t, ts.must(http.StatusForbidden, "PUT", "/api/v1/me/password", alice.Token, map[string]string{
		"current_password": "nope", "new_password": "新密码-long-enough"}), chatvault.EFORBIDDEN, "current_password")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "PUT", "/api/v1/me/password", alice.Token, map[string]string{
			"current_password": "password-小明", "new_password": "short"}), chatvault.EINVALID, "")
	})
	ts.must(http.StatusNoContent, "PUT", "/api/v1/me/password", alice.Token, map[string]string{
		"current_password": "password-小明", "new_password": "新密码-long-enough"})

	// The directory, paged.
	ts.newUser("bob")
	var dir struct {
		Users []account.Person `json:"users"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/users?limit=2", alice.Token, nil).decode(t, &dir)
	if len(dir.Users) != 2 {
		t.Fatalf("GET /users?limit=2 = %d users; want 2", len(dir.Users))
	}
	ts.must(http.StatusOK, "GET", "/api/v1/users?after="+dir.Users[1].Username, alice.Token, nil).decode(t, &dir)
	if len(dir.Users) != 1 || dir.Users[0].Username != "小明" {
		t.Errorf("GET /users second page = %+v; want only 小明", dir.Users)
	}
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "GET", "/api/v1/users?limit=many", alice.Token, nil), chatvault.EINVALID, "limit")
		wantError(t, ts.must(http.StatusBadRequest, "GET", "/api/v1/users?limit=5000", alice.Token, nil), chatvault.EINVALID, "limit")
	})

	// Logout ends this device only.
	ts.must(http.StatusNoContent, "POST", "/api/v1/auth/logout", alice.Token, nil)
	ts.must(http.StatusUnauthorized, "GET", "/api/v1/me", alice.Token, nil)
	ts.login("小明", "新密码-long-enough", "")
}

func contractAdmin(t *testing.T, c *contract) {
	ts, k := c.serve(t)
	admin := ts.adminToken
	var u chatvault.User
	ts.must(http.StatusCreated, "POST", "/api/v1/admin/users", admin, map[string]any{
		"username": "Zhang.Wei", "password": "password-zw", "display_name": "张伟", "roles": []string{"member", "auditor"}}).decode(t, &u)
	if u.Username != "zhang.wei" || u.DisplayName != "张伟" || !u.HasRole(chatvault.RoleAuditor) {
		t.Errorf("created user = %+v; want zhang.wei 张伟 with auditor", u)
	}
	wantError(t, ts.must(http.StatusConflict, "POST", "/api/v1/admin/users", admin, map[string]any{
		"username": "ZHANG.WEI", "password": "password-zw"}), chatvault.ECONFLICT, "username")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/users", admin, map[string]any{
			"username": "li", "password": "password-li", "colour": "blue"}), chatvault.EINVALID, "colour")
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/users", admin, map[string]any{
			"username": "li", "password": "password-li", "roles": []string{"emperor"}}), chatvault.EINVALID, "roles")
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/users", admin, []byte(`{"username": "li",`)), chatvault.EINVALID, "")
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/users", admin, []byte(`{"username": 7, "password": "password-li"}`)), chatvault.EINVALID, "username")
	})

	var list struct {
		Users []chatvault.User `json:"users"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/users?limit=1", admin, nil).decode(t, &list)
	if len(list.Users) != 1 || list.Users[0].Username != "admin" {
		t.Fatalf("GET /admin/users?limit=1 = %+v; want admin", list.Users)
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/users?after=admin&limit=10", admin, nil).decode(t, &list)
	if len(list.Users) != 1 || list.Users[0].ID != u.ID {
		t.Errorf("GET /admin/users?after=admin = %+v; want zhang.wei", list.Users)
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/users/"+u.ID, admin, nil)
	ts.must(http.StatusNotFound, "GET", "/api/v1/admin/users/"+uuid.NewString(), admin, nil)

	// Disable signs the user out; enable lets them sign in again.
	zw := ts.login("zhang.wei", "password-zw", "")
	ts.must(http.StatusOK, "POST", "/api/v1/admin/users/"+u.ID+"/disable", admin, nil).decode(t, &u)
	if !u.Disabled {
		t.Errorf("disabled user = %+v; want disabled", u)
	}
	ts.must(http.StatusUnauthorized, "GET", "/api/v1/me", zw.Token, nil)
	ts.must(http.StatusUnauthorized, "POST", "/api/v1/auth/login", "", map[string]string{
		"username": "zhang.wei", "password": "password-zw", "device_name": "laptop"})
	ts.must(http.StatusOK, "POST", "/api/v1/admin/users/"+u.ID+"/enable", admin, nil)
	ts.must(http.StatusNotFound, "POST", "/api/v1/admin/users/"+uuid.NewString()+"/enable", admin, nil)
	var self chatvault.User
	ts.must(http.StatusOK, "GET", "/api/v1/me", admin, nil).decode(t, &self)
	ts.must(http.StatusConflict, "POST", "/api/v1/admin/users/"+self.ID+"/disable", admin, nil)

	// Password resets: chosen, generated, too short.
	var pw struct{ Password string }
	ts.must(http.StatusOK, "POST", "/api/v1/admin/users/"+u.ID+"/password", admin, map[string]string{"password": "密码-chosen-by-admin"}).decode(t, &pw)
	if pw.Password != "密码-chosen-by-admin" {
		t.Errorf("reset password = %q; want the chosen one", pw.Password)
	}
	ts.must(http.StatusOK, "POST", "/api/v1/admin/users/"+u.ID+"/password", admin, nil).decode(t, &pw)
	zw = ts.login("zhang.wei", pw.Password, "")
	k.breaking(func() {
		ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/users/"+u.ID+"/password", admin, map[string]string{"password": "short"})
	})

	// Admin endpoints refuse members.
	for _, call := range []struct{ method, path string }{
		{"GET", "/api/v1/admin/users"},
		{"GET", "/api/v1/admin/users/" + u.ID},
		{"POST", "/api/v1/admin/users/" + u.ID + "/disable"},
		{"POST", "/api/v1/admin/users/" + u.ID + "/password"},
	} {
		wantError(t, ts.must(http.StatusForbidden, call.method, call.path, zw.Token, nil), chatvault.EFORBIDDEN, "")
	}
	ts.must(http.StatusForbidden, "POST", "/api/v1/admin/users", zw.Token, map[string]any{"username": "li", "password": "password-li"})
}

func contractConversations(t *testing.T, c *contract) {
	ts, k := c.serve(t)
	alice, bob, carol := ts.newUser("alice"), ts.newUser("bob"), ts.newUser("carol")

	// A group, with a Chinese title.
	var g struct {
		ID      string `json:"id"`
		Title   string `json:"title"`
		Members []struct {
			UserID string `json:"user_id"`
			Role   string `json:"role"`
		} `json:"members"`
	}
	ts.must(http.StatusCreated, "POST", "/api/v1/conversations", alice.Token, map[string]any{
		"type": "group", "title": "项目讨论 🚀", "members": []string{bob.ID}, "history_visible_to_new_members": true}).decode(t, &g)
	if g.Title != "项目讨论 🚀" || len(g.Members) != 2 {
		t.Errorf("created group = %+v; want title 项目讨论 🚀 and 2 members", g)
	}
	wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/conversations", alice.Token, map[string]any{
		"type": "group", "members": []string{uuid.NewString()}}), chatvault.EINVALID, "members")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/conversations", alice.Token, map[string]any{
			"type": "channel"}), chatvault.EINVALID, "type")
	})

	// A direct conversation exists once per pair: the second request finds it.
	var d1, d2 conversation
	ts.must(http.StatusCreated, "POST", "/api/v1/conversations", alice.Token, map[string]any{
		"type": "direct", "members": []string{bob.ID}}).decode(t, &d1)
	ts.must(http.StatusOK, "POST", "/api/v1/conversations", bob.Token, map[string]any{
		"type": "direct", "members": []string{alice.ID}}).decode(t, &d2)
	if d1.ID != d2.ID || d1.Type != "direct" {
		t.Errorf("direct conversations %+v and %+v; want the same", d1, d2)
	}

	ts.clock.Advance(time.Second) // so the group's message is the latest activity
	ts.send(alice, g.ID, "大家好")
	var list struct {
		Conversations []struct {
			ID          string             `json:"id"`
			UnreadCount int                `json:"unread_count"`
			LastMessage *chatvault.Message `json:"last_message"`
		} `json:"conversations"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/conversations", bob.Token, nil).decode(t, &list)
	if len(list.Conversations) != 2 || list.Conversations[0].ID != g.ID || list.Conversations[0].UnreadCount != 1 ||
		list.Conversations[0].LastMessage == nil || list.Conversations[0].LastMessage.Text != "大家好" {
		t.Errorf("bob's conversations = %+v; want the group first with 1 unread 大家好", list.Conversations)
	}
	ts.must(http.StatusOK, "GET", "/api/v1/conversations/"+g.ID, bob.Token, nil)

	// 404 for a conversation that does not exist and for one the caller never was in, alike.
	wantError(t, ts.must(http.StatusNotFound, "GET", "/api/v1/conversations/"+uuid.NewString(), alice.Token, nil), chatvault.ENOTFOUND, "")
	wantError(t, ts.must(http.StatusNotFound, "GET", "/api/v1/conversations/"+d1.ID, carol.Token, nil), chatvault.ENOTFOUND, "")
	ts.must(http.StatusNotFound, "POST", "/api/v1/conversations/"+d1.ID+"/read", carol.Token, map[string]int{"seq": 1})

	// Read marker and cleared history.
	var read struct {
		ReadSeq int64 `json:"read_seq"`
	}
	ts.must(http.StatusOK, "POST", "/api/v1/conversations/"+g.ID+"/read", bob.Token, map[string]int{"seq": 99}).decode(t, &read)
	if read.ReadSeq != 1 {
		t.Errorf("read_seq = %d; want 1 (capped at last_seq)", read.ReadSeq)
	}
	k.breaking(func() {
		ts.must(http.StatusBadRequest, "POST", "/api/v1/conversations/"+g.ID+"/read", bob.Token, map[string]int{"seq": -1})
		ts.must(http.StatusBadRequest, "POST", "/api/v1/conversations/"+g.ID+"/read", bob.Token, map[string]string{"seq": "1"})
	})
	var cleared struct {
		ClearedSeq int64 `json:"cleared_seq"`
	}
	ts.must(http.StatusOK, "POST", "/api/v1/conversations/"+g.ID+"/clear", bob.Token, nil).decode(t, &cleared)
	if cleared.ClearedSeq != 1 {
		t.Errorf("cleared_seq = %d; want 1", cleared.ClearedSeq)
	}

	// Members: add, remove by the owner, refuse others, leave, and a direct conversation is fixed.
	ts.must(http.StatusOK, "POST", "/api/v1/conversations/"+g.ID+"/members", bob.Token, map[string]any{"members": []string{carol.ID}})
	k.breaking(func() {
		ts.must(http.StatusBadRequest, "POST", "/api/v1/conversations/"+g.ID+"/members", bob.Token, map[string]any{"members": []string{}})
	})
	wantError(t, ts.must(http.StatusForbidden, "DELETE", "/api/v1/conversations/"+g.ID+"/members/"+alice.ID, bob.Token, nil), chatvault.EFORBIDDEN, "")
	ts.must(http.StatusNoContent, "DELETE", "/api/v1/conversations/"+g.ID+"/members/"+carol.ID, alice.Token, nil)
	ts.must(http.StatusNotFound, "DELETE", "/api/v1/conversations/"+g.ID+"/members/"+carol.ID, alice.Token, nil)
	ts.must(http.StatusForbidden, "POST", "/api/v1/conversations/"+g.ID+"/members", carol.Token, map[string]any{"members": []string{carol.ID}})
	ts.must(http.StatusNoContent, "POST", "/api/v1/conversations/"+g.ID+"/leave", bob.Token, nil)
	wantError(t, ts.must(http.StatusForbidden, "POST", "/api/v1/conversations/"+g.ID+"/leave", bob.Token, nil), chatvault.EFORBIDDEN, "")
	ts.must(http.StatusOK, "GET", "/api/v1/conversations/"+g.ID, bob.Token, nil) // former members still see it
	wantError(t, ts.must(http.StatusConflict, "POST", "/api/v1/conversations/"+d1.ID+"/leave", bob.Token, nil), chatvault.ECONFLICT, "")
	ts.must(http.StatusConflict, "POST", "/api/v1/conversations/"+d1.ID+"/members", alice.Token, map[string]any{"members": []string{carol.ID}})
}

func contractMessages(t *testing.T, c *contract) {
	ts, k := c.serve(t)
	alice, bob := ts.newUser("alice"), ts.newUser("bob")
	g := ts.group(alice, "周报", false, bob)
	base := "/api/v1/conversations/" + g.ID + "/messages"

	// Send, retry with the same client_msg_id, reuse it for other text.
	var first chatvault.Message
	ts.must(http.StatusCreated, "POST", base, alice.Token, map[string]string{"client_msg_id": "m-1", "text": "你好，世界 👋"}).decode(t, &first)
	var again chatvault.Message
	ts.must(http.StatusOK, "POST", base, alice.Token, map[string]string{"client_msg_id": "m-1", "text": "你好，世界 👋"}).decode(t, &again)
	if again.ID != first.ID || again.Seq != 1 {
		t.Errorf("retry = %+v; want the original %+v", again, first)
	}
	wantError(t, ts.must(http.StatusConflict, "POST", base, alice.Token, map[string]string{"client_msg_id": "m-1", "text": "别的"}), chatvault.ECONFLICT, "client_msg_id")
	var reply chatvault.Message
	ts.must(http.StatusCreated, "POST", base, bob.Token, map[string]string{"client_msg_id": "b-1", "text": "收到", "reply_to": first.ID}).decode(t, &reply)
	if reply.ReplyTo != first.ID {
		t.Errorf("reply_to = %q; want %q", reply.ReplyTo, first.ID)
	}
	wantError(t, ts.must(http.StatusBadRequest, "POST", base, bob.Token, map[string]string{
		"client_msg_id": "b-2", "text": "?", "reply_to": uuid.NewString()}), chatvault.EINVALID, "reply_to")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "POST", base, bob.Token, map[string]string{"text": "no id"}), chatvault.EINVALID, "client_msg_id")
		wantError(t, ts.must(http.StatusBadRequest, "POST", base, bob.Token, map[string]string{"client_msg_id": "b-3", "text": ""}), chatvault.EINVALID, "text")
	})
	wantError(t, ts.must(http.StatusNotFound, "POST", "/api/v1/conversations/"+uuid.NewString()+"/messages", bob.Token,
		map[string]string{"client_msg_id": "b-4", "text": "hello?"}), chatvault.ENOTFOUND, "")
	for i := range 5 {
		ts.send(bob, g.ID, fmt.Sprintf("消息 %d", i+3))
	}

	// Paging: newest, before, after, around; bad queries.
	if p := ts.history(alice, g.ID, "?limit=3"); len(p.Messages) != 3 || p.Messages[0].Seq != 5 || !p.HasMoreBefore {
		t.Errorf("newest page = %v; want seq 5..7 with more before", texts(p.Messages))
	}
	if p := ts.history(alice, g.ID, "?before_seq=3"); len(p.Messages) != 2 || p.HasMore {
		t.Errorf("before_seq=3 = %v; want 2 and no more", texts(p.Messages))
	}
	if p := ts.history(alice, g.ID, "?after_seq=5&limit=1"); len(p.Messages) != 1 || p.Messages[0].Seq != 6 || !p.HasMoreAfter {
		t.Errorf("after_seq=5 = %v; want seq 6 with more after", texts(p.Messages))
	}
	if p := ts.history(alice, g.ID, "?around_seq=4&limit=3"); len(p.Messages) != 3 || p.Messages[0].Seq != 3 || !p.HasMoreBefore || !p.HasMoreAfter {
		t.Errorf("around_seq=4 = %v; want seq 3..5 with more either side", texts(p.Messages))
	}
	wantError(t, ts.must(http.StatusBadRequest, "GET", base+"?before_seq=3&after_seq=1", alice.Token, nil), chatvault.EINVALID, "")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "GET", base+"?limit=0", alice.Token, nil), chatvault.EINVALID, "limit")
		wantError(t, ts.must(http.StatusBadRequest, "GET", base+"?limit=201", alice.Token, nil), chatvault.EINVALID, "limit")
		wantError(t, ts.must(http.StatusBadRequest, "GET", base+"?after_seq=-1", alice.Token, nil), chatvault.EINVALID, "after_seq")
		wantError(t, ts.must(http.StatusBadRequest, "GET", base+"?before_seq=soon", alice.Token, nil), chatvault.EINVALID, "before_seq")
	})

	// One message, its edits and versions.
	msg := base + "/" + first.ID
	ts.must(http.StatusOK, "GET", msg, bob.Token, nil)
	ts.must(http.StatusNotFound, "GET", base+"/"+uuid.NewString(), bob.Token, nil)
	var edited chatvault.Message
	ts.must(http.StatusOK, "PATCH", msg, alice.Token, map[string]any{"text": "你好，世界（已编辑）", "version": 1}).decode(t, &edited)
	if edited.Version != 2 || edited.EditedAt == nil {
		t.Errorf("edited = %+v; want version 2 with edited_at", edited)
	}
	wantError(t, ts.must(http.StatusConflict, "PATCH", msg, alice.Token, map[string]any{"text": "stale", "version": 1}), chatvault.ECONFLICT, "")
	wantError(t, ts.must(http.StatusForbidden, "PATCH", msg, bob.Token, map[string]any{"text": "not mine"}), chatvault.EFORBIDDEN, "")
	k.breaking(func() {
		ts.must(http.StatusBadRequest, "PATCH", msg, alice.Token, map[string]any{"text": "x", "version": -1})
	})
	var versions struct {
		Versions []chatvault.MessageVersion `json:"versions"`
	}
	ts.must(http.StatusOK, "GET", msg+"/versions", bob.Token, nil).decode(t, &versions)
	if len(versions.Versions) != 2 || versions.Versions[0].Text != "你好，世界 👋" || versions.Versions[1].Version != 2 {
		t.Errorf("versions = %+v; want the sent and the edited text", versions.Versions)
	}

	// Recall: not someone else's, once, and within the window.
	ts.must(http.StatusForbidden, "POST", msg+"/recall", bob.Token, nil)
	var recalled chatvault.Message
	ts.must(http.StatusOK, "POST", msg+"/recall", alice.Token, nil).decode(t, &recalled)
	if recalled.State != chatvault.StateRecalled || recalled.Text != "" {
		t.Errorf("recalled = %+v; want state recalled without text", recalled)
	}
	ts.must(http.StatusConflict, "POST", msg+"/recall", alice.Token, nil)
	ts.must(http.StatusConflict, "PATCH", msg, alice.Token, map[string]any{"text": "revive"})
	ts.must(http.StatusOK, "GET", msg+"/versions", bob.Token, nil).decode(t, &versions)
	if len(versions.Versions) != 0 {
		t.Errorf("versions of a recalled message = %+v; want none", versions.Versions)
	}
	late := ts.send(alice, g.ID, "too late to take back")
	ts.clock.Advance(3 * time.Minute)
	ts.must(http.StatusConflict, "POST", base+"/"+late.ID+"/recall", alice.Token, nil)

	// Hide: for the caller only, twice is fine.
	ts.must(http.StatusNoContent, "POST", base+"/"+reply.ID+"/hide", alice.Token, nil)
	ts.must(http.StatusNoContent, "POST", base+"/"+reply.ID+"/hide", alice.Token, nil)
	ts.must(http.StatusNotFound, "GET", base+"/"+reply.ID, alice.Token, nil)
	ts.must(http.StatusOK, "GET", base+"/"+reply.ID, bob.Token, nil)
	ts.must(http.StatusNotFound, "POST", base+"/"+uuid.NewString()+"/hide", alice.Token, nil)

	// Once out of the group, no more sending.
	ts.must(http.StatusNoContent, "POST", "/api/v1/conversations/"+g.ID+"/leave", bob.Token, nil)
	wantError(t, ts.must(http.StatusForbidden, "POST", base, bob.Token, map[string]string{"client_msg_id": "b-9", "text": "still here?"}), chatvault.EFORBIDDEN, "")
}

// contractTransport covers what the transport answers before a handler runs.
func contractTransport(t *testing.T, c *contract) {
	ts, k := c.serve(t)
	alice := ts.newUser("alice")
	g := ts.group(alice, "transport", false)
	base := "/api/v1/conversations/" + g.ID + "/messages"

	// 413: a body over the limit (64 KiB in tests), here a valid message that is simply too long.
	wantError(t, ts.must(http.StatusRequestEntityTooLarge, "POST", base, alice.Token, map[string]string{
		"client_msg_id": "big", "text": strings.Repeat("长", 30_000)}), chatvault.ETOOLARGE, "")

	// 415: a body that is not JSON.
	k.breaking(func() {
		r := ts.doRaw("POST", base, alice.Token, "text/plain; charset=utf-8", []byte(`{"client_msg_id": "t", "text": "hi"}`))
		if r.Status != http.StatusUnsupportedMediaType {
			t.Errorf("text/plain body: status %d; want 415; body %s", r.Status, r.Body)
		}
	})
	// application/json with parameters, and +json, are JSON.
	if r := ts.doRaw("POST", base, alice.Token, "application/json; charset=utf-8", []byte(`{"client_msg_id": "u", "text": "ok"}`)); r.Status != http.StatusCreated {
		t.Errorf("application/json; charset=utf-8 body: status %d; want 201; body %s", r.Status, r.Body)
	}

	// 400: malformed JSON, not an object, two values. kin-openapi decodes only the first JSON
	// value of a body, so the spec cannot be seen to reject the last.
	k.breaking(func() {
		for _, body := range []string{`{"client_msg_id": "x", "text": }`, `["x"]`} {
			wantError(t, ts.must(http.StatusBadRequest, "POST", base, alice.Token, []byte(body)), chatvault.EINVALID, "")
		}
	})
	wantError(t, ts.must(http.StatusBadRequest, "POST", base, alice.Token, []byte(`{"client_msg_id": "x", "text": "a"} {}`)), chatvault.EINVALID, "")

	// 405: a path that exists, with a method it does not take. The spec cannot describe this one
	// operation by operation; the checker still holds the body to the Error schema.
	k.expect = specNoMethod
	r := ts.must(http.StatusMethodNotAllowed, "DELETE", "/api/v1/conversations", alice.Token, nil)
	k.expect = specAccepts
	wantError(t, r, "method_not_allowed", "")
	if allow := r.Header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("405 Allow = %q; want GET and POST", allow)
	}
}

func contractSync(t *testing.T, c *contract) {
	ts, k := c.serve(t)
	alice, bob := ts.newUser("alice"), ts.newUser("bob")
	g := ts.group(alice, "同步", false, bob)

	// Long-poll: an initial sync, then what changed after its cursor.
	var initial chat.SyncResult
	ts.must(http.StatusOK, "GET", "/api/v1/sync", bob.Token, nil).decode(t, &initial)
	if !initial.Initial || len(initial.Conversations) != 1 || initial.Conversations[0].ID != g.ID {
		t.Errorf("initial sync = %+v; want the one group", initial)
	}
	sent := ts.send(alice, g.ID, "新消息")
	var next chat.SyncResult
	ts.must(http.StatusOK, "GET", "/api/v1/sync?timeout=5&since="+url.QueryEscape(initial.Cursor), bob.Token, nil).decode(t, &next)
	if next.Initial || len(next.Conversations) != 1 || next.Conversations[0].LastMessage == nil || next.Conversations[0].LastMessage.ID != sent.ID {
		t.Errorf("sync since %s = %+v; want the group with the new message", initial.Cursor, next)
	}
	wantError(t, ts.must(http.StatusBadRequest, "GET", "/api/v1/sync?since=yesterday", bob.Token, nil), chatvault.EINVALID, "since")
	wantError(t, ts.must(http.StatusGone, "GET", "/api/v1/sync?since=c1.zzzzzz", bob.Token, nil), chatvault.ERESYNC, "")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "GET", "/api/v1/sync?timeout=61", bob.Token, nil), chatvault.EINVALID, "timeout")
		ts.must(http.StatusUnauthorized, "GET", "/api/v1/ws", "", nil)
	})
	ts.must(http.StatusUpgradeRequired, "GET", "/api/v1/ws", bob.Token, nil) // a plain GET, not a handshake

	// WebSocket: a sync frame first, then a send answered by an ack. Every frame is checked
	// against WSFrame, every send against WSSend.
	conn := k.dialWS(t, ts, bob.Token, false)
	if f := k.readFrame(t, conn); f.Type != "sync" || f.Sync == nil || !f.Sync.Initial {
		t.Errorf("first frame = %+v; want an initial sync", f)
	}
	k.sendFrame(t, conn, map[string]string{"type": "send", "conversation_id": g.ID, "client_msg_id": "ws-1", "text": "从 WebSocket 发出"})
	for {
		f := k.readFrame(t, conn)
		if f.Type == "ack" {
			if f.ClientMsgID != "ws-1" || !f.Created || f.Message == nil || f.Message.Text != "从 WebSocket 发出" {
				t.Errorf("ack = %+v; want the stored message for ws-1", f)
			}
			break
		}
	}
	k.sendFrame(t, conn, map[string]string{"type": "send", "conversation_id": g.ID, "client_msg_id": "ws-2", "text": "   "})
	for {
		f := k.readFrame(t, conn)
		if f.Type == "error" {
			if f.ClientMsgID != "ws-2" || f.Error == nil || f.Error.Code != chatvault.EINVALID || f.Error.Field != "text" {
				t.Errorf("error frame = %+v; want invalid text for ws-2", f)
			}
			break
		}
	}
	// Browsers pass the token in the query.
	conn = k.dialWS(t, ts, alice.Token, true)
	if f := k.readFrame(t, conn); f.Type != "sync" {
		t.Errorf("first frame = %+v; want sync", f)
	}
}

// retentionPolicy is a valid policy body for PUT /api/v1/admin/retention/policy.
func retentionPolicy(changes map[string]any) map[string]any {
	p := map[string]any{"default_days": 30, "min_days": 0, "max_days": 0, "important_days": 365, "mode": "org",
		"purge_grace_days": 7, "preserve_recalls": false, "recall_window_seconds": 0, "reason": "合规要求"}
	for k, v := range changes {
		p[k] = v
	}
	return p
}

// merged is a copy of a with b's entries added.
func merged(a, b map[string]any) map[string]any {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

func contractRetention(t *testing.T, c *contract) {
	ts, k := c.serve(t)
	admin := ts.adminToken
	alice, bob, carol := ts.newUser("alice"), ts.newUser("bob"), ts.newUser("carol")
	var officerUser chatvault.User
	ts.must(http.StatusCreated, "POST", "/api/v1/admin/users", admin, map[string]any{
		"username": "officer", "password": "password-officer", "roles": []string{"compliance_officer"}}).decode(t, &officerUser)
	officer := ts.login("officer", "password-officer", "").Token
	g := ts.group(alice, "留存", false, bob)
	var d conversation
	ts.must(http.StatusCreated, "POST", "/api/v1/conversations", bob.Token, map[string]any{"type": "direct", "members": []string{carol.ID}}).decode(t, &d)
	msgURL := func(convID, msgID string) string { return "/api/v1/conversations/" + convID + "/messages/" + msgID }
	admURL := func(convID, msgID string) string {
		return "/api/v1/admin/conversations/" + convID + "/messages/" + msgID + "/important"
	}

	// The policy: the default one, replaced, and one that does not hold together.
	var pol chatvault.Policy
	ts.must(http.StatusOK, "GET", "/api/v1/admin/retention/policy", admin, nil).decode(t, &pol)
	if pol.DefaultDays != 180 || pol.GraceDays != 7 || pol.Locked {
		t.Errorf("default policy = %+v; want 180 days, 7 days' grace, unlocked", pol)
	}
	ts.must(http.StatusOK, "PUT", "/api/v1/admin/retention/policy", admin, retentionPolicy(nil)).decode(t, &pol)
	if pol.DefaultDays != 30 || pol.ImportantDays != 365 || pol.UpdatedBy == "" {
		t.Errorf("policy = %+v; want 30 days, important 365, updated_by set", pol)
	}
	wantError(t, ts.must(http.StatusBadRequest, "PUT", "/api/v1/admin/retention/policy", admin,
		retentionPolicy(map[string]any{"min_days": 60, "max_days": 30})), chatvault.EINVALID, "min_days")
	wantError(t, ts.must(http.StatusBadRequest, "PUT", "/api/v1/admin/retention/policy", admin,
		retentionPolicy(map[string]any{"default_days": 0, "max_days": 400})), chatvault.EINVALID, "default_days")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "PUT", "/api/v1/admin/retention/policy", admin,
			retentionPolicy(map[string]any{"mode": "sometimes"})), chatvault.EINVALID, "mode")
		wantError(t, ts.must(http.StatusBadRequest, "PUT", "/api/v1/admin/retention/policy", admin,
			retentionPolicy(map[string]any{"default_days": -1})), chatvault.EINVALID, "default_days")
		wantError(t, ts.must(http.StatusBadRequest, "PUT", "/api/v1/admin/retention/policy", admin,
			retentionPolicy(map[string]any{"colour": "blue"})), chatvault.EINVALID, "colour")
	})

	// Importance rules.
	var rule, other chatvault.ImportantRule
	ts.must(http.StatusCreated, "POST", "/api/v1/admin/retention/rules", admin, map[string]any{"pattern": "合同"}).decode(t, &rule)
	ts.must(http.StatusCreated, "POST", "/api/v1/admin/retention/rules", admin, map[string]any{"pattern": "^INV-[0-9]+$", "regex": true}).decode(t, &other)
	ts.must(http.StatusNoContent, "DELETE", "/api/v1/admin/retention/rules/"+other.ID, admin, nil)
	wantError(t, ts.must(http.StatusNotFound, "DELETE", "/api/v1/admin/retention/rules/"+other.ID, admin, nil), chatvault.ENOTFOUND, "")
	wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/retention/rules", admin,
		map[string]any{"pattern": "(", "regex": true}), chatvault.EINVALID, "pattern")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/retention/rules", admin, map[string]any{"pattern": ""}), chatvault.EINVALID, "pattern")
	})
	var rules struct {
		Rules []chatvault.ImportantRule `json:"rules"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/retention/rules", admin, nil).decode(t, &rules)
	if len(rules.Rules) != 1 || rules.Rules[0].ID != rule.ID {
		t.Errorf("rules = %+v; want only %s", rules.Rules, rule.ID)
	}

	// Messages: plain, matched by the rule, flagged by the admin, starred and unstarred by a member.
	var initial chat.SyncResult
	ts.must(http.StatusOK, "GET", "/api/v1/sync", bob.Token, nil).decode(t, &initial)
	m1 := ts.send(alice, g.ID, "很久以前的消息")
	m2 := ts.send(bob, g.ID, "合同第三条已签")
	m3 := ts.send(alice, g.ID, "会议纪要")
	m4 := ts.send(bob, g.ID, "bob 的旧消息")
	ts.send(carol, d.ID, "私聊")
	if m1.Important || !m2.Important {
		t.Errorf("important = %v, %v; want only the message matching the rule", m1.Important, m2.Important)
	}
	var starred chatvault.Message
	ts.must(http.StatusOK, "PUT", msgURL(g.ID, m1.ID)+"/star", bob.Token, nil).decode(t, &starred)
	if !starred.Important || starred.ID != m1.ID {
		t.Errorf("starred = %+v; want m1, important", starred)
	}
	ts.must(http.StatusOK, "PUT", msgURL(g.ID, m1.ID)+"/star", bob.Token, nil)
	ts.must(http.StatusOK, "DELETE", msgURL(g.ID, m1.ID)+"/star", bob.Token, nil).decode(t, &starred)
	if starred.Important {
		t.Errorf("unstarred = %+v; want not important", starred)
	}
	wantError(t, ts.must(http.StatusNotFound, "PUT", msgURL(g.ID, uuid.NewString())+"/star", bob.Token, nil), chatvault.ENOTFOUND, "")
	wantError(t, ts.must(http.StatusNotFound, "PUT", msgURL(g.ID, m1.ID)+"/star", carol.Token, nil), chatvault.ENOTFOUND, "")
	m5 := ts.send(alice, g.ID, "发错了")
	ts.must(http.StatusOK, "POST", msgURL(g.ID, m5.ID)+"/recall", alice.Token, nil)
	wantError(t, ts.must(http.StatusConflict, "PUT", msgURL(g.ID, m5.ID)+"/star", bob.Token, nil), chatvault.ECONFLICT, "")
	wantError(t, ts.must(http.StatusConflict, "DELETE", msgURL(g.ID, m5.ID)+"/star", bob.Token, nil), chatvault.ECONFLICT, "")
	var flag struct {
		MessageID string `json:"message_id"`
		Important bool   `json:"important"`
	}
	ts.must(http.StatusOK, "PUT", admURL(g.ID, m3.ID), admin, map[string]bool{"important": true}).decode(t, &flag)
	if flag.MessageID != m3.ID || !flag.Important {
		t.Errorf("flag = %+v; want m3 important", flag)
	}
	wantError(t, ts.must(http.StatusNotFound, "PUT", admURL(g.ID, uuid.NewString()), admin, map[string]bool{"important": true}), chatvault.ENOTFOUND, "")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "PUT", admURL(g.ID, m3.ID), admin, map[string]string{"important": "yes"}), chatvault.EINVALID, "important")
	})

	// 40 days on, the 30-day policy lets the plain messages and the recall go; the important ones
	// stay. A recall the org does not preserve is destroyed directly, not expired first.
	ts.clock.Advance(40 * 24 * time.Hour)
	at := url.QueryEscape(ts.clock.Now().Format(time.RFC3339))
	var prev retention.Preview
	ts.must(http.StatusOK, "GET", "/api/v1/admin/retention/preview?at="+at, admin, nil).decode(t, &prev)
	if prev.Proposed || prev.Totals["expire"] != 3 || prev.Totals["destroy"] != 1 || len(prev.Conversations) != 2 {
		t.Errorf("preview = %+v; want 3 to expire (m1, m4, the direct message) and the recall destroyed, in 2 conversations", prev)
	}
	for _, cp := range prev.Conversations {
		if cp.ConversationID == g.ID && (cp.RetentionDays != 30 || cp.Expire.Count != 2 || cp.Destroy.Count != 1) {
			t.Errorf("preview of the group = %+v / %+v; want 30 days, 2 to expire, the recall to destroy", cp.Expire, cp.Destroy)
		}
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/retention/preview?at=2027-06-30", admin, nil)
	ts.must(http.StatusOK, "GET", "/api/v1/admin/retention/preview", admin, nil)
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "GET", "/api/v1/admin/retention/preview?at=soon", admin, nil), chatvault.EINVALID, "at")
	})
	ts.must(http.StatusOK, "POST", "/api/v1/admin/retention/preview", admin, map[string]any{
		"at": ts.clock.Now().Add(400 * 24 * time.Hour).Format(time.RFC3339), "policy": retentionPolicy(map[string]any{"default_days": 10})}).decode(t, &prev)
	if !prev.Proposed || prev.Policy.DefaultDays != 10 || prev.Totals["destroy"] != 6 {
		t.Errorf("proposed preview totals = %v; want all 6 messages destroyed", prev.Totals)
	}
	wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/retention/preview", admin, map[string]any{
		"policy": retentionPolicy(map[string]any{"min_days": 60, "max_days": 30})}), chatvault.EINVALID, "min_days")
	k.breaking(func() {
		ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/retention/preview", admin, map[string]any{"at": "2026-01-01"})
	})

	// Runs: a dry run changes nothing; a real one expires, destroys the recall, and tells readers.
	var run chatvault.PurgeRun
	ts.must(http.StatusOK, "POST", "/api/v1/admin/retention/run", admin, map[string]bool{"dry_run": true}).decode(t, &run)
	if !run.DryRun || run.Totals["expired"] != 3 || run.Totals["destroyed"] != 1 {
		t.Errorf("dry run totals = %v; want what the real run does now: 3 expired, 1 (the recall) destroyed", run.Totals)
	}
	ts.must(http.StatusOK, "GET", msgURL(g.ID, m1.ID), bob.Token, nil)
	ts.must(http.StatusOK, "POST", "/api/v1/admin/retention/run", admin, nil).decode(t, &run)
	if run.DryRun || run.Totals["expired"] != 3 || run.Totals["destroyed"] != 1 || run.FinishedAt == nil {
		t.Errorf("run = %+v; want 3 expired, 1 destroyed, finished", run)
	}
	// Expired messages read as purged tombstones for everyone; the important ones stay live.
	for _, m := range []chatvault.Message{m1, m4, m2, m3} {
		var got chatvault.Message
		ts.must(http.StatusOK, "GET", msgURL(g.ID, m.ID), alice.Token, nil).decode(t, &got)
		if gone := m.ID == m1.ID || m.ID == m4.ID; gone != (got.State == chatvault.StatePurged) || gone != (got.Text == "") {
			t.Errorf("after the run seq %d = %s %q; want purged without text: %v", got.Seq, got.State, got.Text, gone)
		}
	}
	var changes chat.SyncResult
	ts.must(http.StatusOK, "GET", "/api/v1/sync?since="+url.QueryEscape(initial.Cursor), bob.Token, nil).decode(t, &changes)
	if !slices.ContainsFunc(changes.Events, func(e chatvault.Event) bool {
		return e.Kind == chatvault.EventPurged && e.ConversationID == g.ID && e.FromSeq >= 1 && e.Seq >= e.FromSeq
	}) {
		t.Errorf("events after the run = %+v; want messages_purged for the group", changes.Events)
	}
	var runs struct {
		Runs []chatvault.PurgeRun `json:"runs"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/retention/runs", admin, nil).decode(t, &runs)
	if len(runs.Runs) != 1 || runs.Runs[0].ID != run.ID {
		t.Errorf("runs = %+v; want the one real run %s", runs.Runs, run.ID)
	}

	// Restore brings the expired messages back within the grace window.
	var restored struct {
		Restored int `json:"restored"`
	}
	ts.must(http.StatusOK, "POST", "/api/v1/admin/retention/restore", admin, map[string]any{
		"conversation_id": g.ID, "from_seq": 1, "to_seq": m5.Seq, "reason": "误删"}).decode(t, &restored)
	if restored.Restored != 2 {
		t.Errorf("restored = %d; want 2 (m1, m4; the recall is destroyed)", restored.Restored)
	}
	var back chatvault.Message
	ts.must(http.StatusOK, "GET", msgURL(g.ID, m1.ID), bob.Token, nil).decode(t, &back)
	if back.State != chatvault.StateLive || back.Text != m1.Text {
		t.Errorf("restored m1 = %+v; want it live with its text", back)
	}
	wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/retention/restore", admin, map[string]any{
		"conversation_id": g.ID, "from_seq": 5, "to_seq": 2}), chatvault.EINVALID, "from_seq")
	wantError(t, ts.must(http.StatusNotFound, "POST", "/api/v1/admin/retention/restore", admin, map[string]any{
		"conversation_id": uuid.NewString(), "from_seq": 1, "to_seq": 2}), chatvault.ENOTFOUND, "")
	k.breaking(func() {
		ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/retention/restore", admin, map[string]any{"conversation_id": g.ID, "from_seq": 0, "to_seq": 2})
	})

	// A conversation's override: forever, then cleared.
	var override struct {
		ConversationID string `json:"conversation_id"`
		Days           *int   `json:"days"`
	}
	ts.must(http.StatusOK, "PUT", "/api/v1/admin/conversations/"+g.ID+"/retention", admin, map[string]any{"days": 0, "reason": "诉讼"}).decode(t, &override)
	if override.ConversationID != g.ID || override.Days == nil || *override.Days != 0 {
		t.Errorf("override = %+v; want 0 (forever)", override)
	}
	ts.must(http.StatusOK, "PUT", "/api/v1/admin/conversations/"+g.ID+"/retention", admin, map[string]any{"days": nil}).decode(t, &override)
	if override.Days != nil {
		t.Errorf("cleared override = %+v; want null", override)
	}
	wantError(t, ts.must(http.StatusNotFound, "PUT", "/api/v1/admin/conversations/"+uuid.NewString()+"/retention", admin, map[string]any{"days": 30}), chatvault.ENOTFOUND, "")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "PUT", "/api/v1/admin/conversations/"+g.ID+"/retention", admin, map[string]any{"days": -1}), chatvault.EINVALID, "days")
	})

	// Legal holds, placed and released by the compliance officer.
	var hold chatvault.Hold
	ts.must(http.StatusCreated, "POST", "/api/v1/compliance/holds", officer, map[string]any{
		"name": "张三诉讼", "reason": "counsel ref 2026-113", "custodians": []string{carol.ID}, "from": "2025-01-01"}).decode(t, &hold)
	if hold.ID == "" || hold.CreatedBy != officerUser.ID || !hold.Active() {
		t.Errorf("hold = %+v; want an active hold by the officer", hold)
	}
	wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/compliance/holds", officer, map[string]any{
		"name": "x", "reason": "y", "conversations": []string{uuid.NewString()}}), chatvault.EINVALID, "conversations")
	wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/compliance/holds", officer, map[string]any{
		"name": "x", "reason": "y", "from": "2026-02-01", "to": "2026-01-01"}), chatvault.EINVALID, "to")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/compliance/holds", officer, map[string]any{"name": "x"}), chatvault.EINVALID, "reason")
	})
	var holds struct {
		Holds []chatvault.Hold `json:"holds"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/compliance/holds", officer, nil).decode(t, &holds)
	if len(holds.Holds) != 1 || holds.Holds[0].ID != hold.ID {
		t.Errorf("holds = %+v; want %s", holds.Holds, hold.ID)
	}

	// Batch deletes: preview, then confirm once with the token. Held messages are refused.
	var dp retention.DeletionPreview
	ts.must(http.StatusOK, "POST", "/api/v1/admin/deletions/preview", admin, map[string]any{"user_id": carol.ID, "reason": "erasure request"}).decode(t, &dp)
	if dp.Totals["delete"] != 0 || dp.Totals["held"] != 1 {
		t.Errorf("erasure preview of carol under a hold = %+v; want 1 held, nothing to delete", dp.Totals)
	}
	ts.must(http.StatusOK, "POST", "/api/v1/admin/deletions/preview", admin, map[string]any{
		"user_id": bob.ID, "reason": "GDPR art. 17"}).decode(t, &dp)
	if dp.Totals["delete"] != 2 || len(dp.Token) != 32 || dp.Filter.SenderID != bob.ID {
		t.Errorf("erasure preview of bob = %+v; want 2 to delete and a token", dp)
	}
	var res retention.DeletionResult
	ts.must(http.StatusOK, "POST", "/api/v1/admin/deletions/"+dp.Token+"/confirm", admin, nil).decode(t, &res)
	if res.Deleted != 2 {
		t.Errorf("erasure = %+v; want 2 deleted", res)
	}
	if m := ts.history(alice, g.ID, ""); slices.ContainsFunc(m.Messages, func(m chatvault.Message) bool {
		return m.SenderID == bob.ID && m.State != chatvault.StatePurged
	}) {
		t.Errorf("after the erasure alice still sees bob's messages: %+v", m.Messages)
	}
	wantError(t, ts.must(http.StatusNotFound, "POST", "/api/v1/admin/deletions/"+dp.Token+"/confirm", admin, nil), chatvault.ENOTFOUND, "")
	wantError(t, ts.must(http.StatusNotFound, "POST", "/api/v1/admin/deletions/0123456789abcdef0123456789abcdef/confirm", admin, nil), chatvault.ENOTFOUND, "")
	wantError(t, ts.must(http.StatusConflict, "PUT", admURL(g.ID, m2.ID), admin, map[string]bool{"important": false}), chatvault.ECONFLICT, "")
	wantError(t, ts.must(http.StatusNotFound, "POST", "/api/v1/admin/deletions/preview", admin, map[string]any{"conversation_id": uuid.NewString()}), chatvault.ENOTFOUND, "")
	wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/deletions/preview", admin, map[string]any{
		"from": "2026-03-01", "to": "2026-02-01"}), chatvault.EINVALID, "to")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/deletions/preview", admin, map[string]any{"reason": "everything"}), chatvault.EINVALID, "conversation_id")
	})

	// Releasing the hold lets carol's message go.
	ts.must(http.StatusOK, "POST", "/api/v1/compliance/holds/"+hold.ID+"/release", officer, map[string]string{"reason": "case closed"}).decode(t, &hold)
	if hold.Active() || hold.ReleasedBy != officerUser.ID {
		t.Errorf("released hold = %+v; want released by the officer", hold)
	}
	wantError(t, ts.must(http.StatusNotFound, "POST", "/api/v1/compliance/holds/"+hold.ID+"/release", officer, map[string]string{"reason": "again"}), chatvault.ENOTFOUND, "")
	wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/compliance/holds/"+hold.ID+"/release", officer, map[string]string{"reason": "  "}), chatvault.EINVALID, "reason")
	ts.must(http.StatusOK, "POST", "/api/v1/admin/deletions/preview", admin, map[string]any{"user_id": carol.ID}).decode(t, &dp)
	if dp.Totals["delete"] != 1 || dp.Totals["held"] != 0 {
		t.Errorf("erasure preview of carol after the release = %+v; want 1 to delete", dp.Totals)
	}

	// The audit log, for admins and compliance officers.
	var audit struct {
		Entries []chatvault.AuditEntry `json:"entries"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/audit", admin, nil).decode(t, &audit)
	if !slices.ContainsFunc(audit.Entries, func(e chatvault.AuditEntry) bool { return e.Action == "erasure.execute" && e.Outcome == "ok" }) {
		t.Errorf("audit = %+v; want the erasure", audit.Entries)
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/audit?limit=2", officer, nil).decode(t, &audit)
	if len(audit.Entries) != 2 {
		t.Errorf("audit?limit=2 = %d entries; want 2", len(audit.Entries))
	}
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "GET", "/api/v1/admin/audit?limit=1001", admin, nil), chatvault.EINVALID, "limit")
		wantError(t, ts.must(http.StatusBadRequest, "GET", "/api/v1/admin/audit?limit=all", admin, nil), chatvault.EINVALID, "limit")
	})

	// A member's own window: none, 90 days, forever, cleared.
	var mine struct {
		Days *int `json:"days"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/me/retention", bob.Token, nil).decode(t, &mine)
	if mine.Days != nil {
		t.Errorf("initial window = %d; want null", *mine.Days)
	}
	ts.must(http.StatusOK, "PUT", "/api/v1/me/retention", bob.Token, map[string]any{"days": 90})
	ts.must(http.StatusOK, "GET", "/api/v1/me/retention", bob.Token, nil).decode(t, &mine)
	var me chatvault.User
	ts.must(http.StatusOK, "GET", "/api/v1/me", bob.Token, nil).decode(t, &me)
	if mine.Days == nil || *mine.Days != 90 || me.RetentionDays == nil || *me.RetentionDays != 90 {
		t.Errorf("window = %v, user %v; want 90", mine.Days, me.RetentionDays)
	}
	ts.must(http.StatusOK, "PUT", "/api/v1/me/retention", bob.Token, map[string]any{"days": 0})
	ts.must(http.StatusOK, "PUT", "/api/v1/me/retention", bob.Token, map[string]any{"days": nil}).decode(t, &mine)
	if mine.Days != nil {
		t.Errorf("cleared window = %d; want null", *mine.Days)
	}
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "PUT", "/api/v1/me/retention", bob.Token, map[string]any{"days": -1}), chatvault.EINVALID, "days")
		wantError(t, ts.must(http.StatusBadRequest, "PUT", "/api/v1/me/retention", bob.Token, map[string]any{"days": "forever"}), chatvault.EINVALID, "days")
	})

	// Members may not manage retention, holds or read the audit log; admins may not manage holds;
	// compliance officers may not manage retention.
	policy := retentionPolicy(nil)
	for _, call := range []struct {
		token, method, path string
		body                any
	}{
		{bob.Token, "GET", "/api/v1/admin/retention/policy", nil},
		{bob.Token, "PUT", "/api/v1/admin/retention/policy", policy},
		{bob.Token, "POST", "/api/v1/admin/retention/lock", map[string]string{"reason": "mine now"}},
		{bob.Token, "GET", "/api/v1/admin/retention/preview", nil},
		{bob.Token, "POST", "/api/v1/admin/retention/preview", map[string]any{"policy": policy}},
		{bob.Token, "POST", "/api/v1/admin/retention/run", nil},
		{bob.Token, "GET", "/api/v1/admin/retention/runs", nil},
		{bob.Token, "POST", "/api/v1/admin/retention/restore", map[string]any{"conversation_id": g.ID, "from_seq": 1, "to_seq": 1}},
		{bob.Token, "GET", "/api/v1/admin/retention/rules", nil},
		{bob.Token, "POST", "/api/v1/admin/retention/rules", map[string]any{"pattern": "x"}},
		{bob.Token, "DELETE", "/api/v1/admin/retention/rules/" + rule.ID, nil},
		{bob.Token, "PUT", "/api/v1/admin/conversations/" + g.ID + "/retention", map[string]any{"days": 0}},
		{bob.Token, "PUT", admURL(g.ID, m3.ID), map[string]bool{"important": false}},
		{bob.Token, "POST", "/api/v1/admin/deletions/preview", map[string]any{"conversation_id": g.ID}},
		{bob.Token, "POST", "/api/v1/admin/deletions/" + strings.Repeat("ab", 16) + "/confirm", nil},
		{bob.Token, "GET", "/api/v1/admin/audit", nil},
		{bob.Token, "GET", "/api/v1/compliance/holds", nil},
		{bob.Token, "POST", "/api/v1/compliance/holds", map[string]any{"name": "x", "reason": "y"}},
		{bob.Token, "POST", "/api/v1/compliance/holds/" + hold.ID + "/release", map[string]string{"reason": "y"}},
		{admin, "GET", "/api/v1/compliance/holds", nil},
		{admin, "POST", "/api/v1/compliance/holds", map[string]any{"name": "x", "reason": "y"}},
		{officer, "GET", "/api/v1/admin/retention/policy", nil},
		{officer, "POST", "/api/v1/admin/deletions/preview", map[string]any{"conversation_id": g.ID}},
	} {
		wantError(t, ts.must(http.StatusForbidden, call.method, call.path, call.token, call.body), chatvault.EFORBIDDEN, "")
	}
}

// contractRetentionLock locks a policy, in a server of its own since there is no unlock.
func contractRetentionLock(t *testing.T, c *contract) {
	ts, k := c.serve(t)
	admin := ts.adminToken
	alice := ts.newUser("alice")
	g := ts.group(alice, "锁定", false)
	ts.send(alice, g.ID, "要保留的消息")
	ts.must(http.StatusOK, "PUT", "/api/v1/admin/retention/policy", admin, retentionPolicy(map[string]any{"default_days": 90, "min_days": 30}))
	ts.clock.Advance(24 * time.Hour)
	var dp retention.DeletionPreview
	ts.must(http.StatusOK, "POST", "/api/v1/admin/deletions/preview", admin, map[string]any{"conversation_id": g.ID}).decode(t, &dp)
	if dp.Totals["too_young"] != 1 || dp.Totals["delete"] != 0 {
		t.Errorf("deletion preview = %+v; want the one message refused as younger than min_days", dp.Totals)
	}

	wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/retention/lock", admin, map[string]string{"reason": "  "}), chatvault.EINVALID, "reason")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/retention/lock", admin, map[string]string{}), chatvault.EINVALID, "reason")
	})
	var pol chatvault.Policy
	ts.must(http.StatusOK, "POST", "/api/v1/admin/retention/lock", admin, map[string]string{"reason": "SEC 17a-4"}).decode(t, &pol)
	if !pol.Locked || pol.LockedAt == nil {
		t.Errorf("locked policy = %+v; want locked with locked_at", pol)
	}
	ts.must(http.StatusOK, "POST", "/api/v1/admin/retention/lock", admin, map[string]string{"reason": "again"})

	// Only longer from now on; refusals are audited.
	for _, change := range []map[string]any{
		{"default_days": 60}, {"min_days": 10}, {"purge_grace_days": 1}, {"mode": "user_choice"}, {"default_days": 90, "max_days": 400},
	} {
		wantError(t, ts.must(http.StatusForbidden, "PUT", "/api/v1/admin/retention/policy", admin,
			retentionPolicy(merged(map[string]any{"default_days": 90, "min_days": 30, "reason": "shorten"}, change))), chatvault.EFORBIDDEN, "")
	}
	ts.must(http.StatusOK, "PUT", "/api/v1/admin/retention/policy", admin, retentionPolicy(map[string]any{"default_days": 365, "min_days": 30})).decode(t, &pol)
	if !pol.Locked || pol.DefaultDays != 365 {
		t.Errorf("lengthened policy = %+v; want locked, 365 days", pol)
	}
	wantError(t, ts.must(http.StatusForbidden, "PUT", "/api/v1/admin/conversations/"+g.ID+"/retention", admin, map[string]any{"days": 30}), chatvault.EFORBIDDEN, "")
	ts.must(http.StatusOK, "PUT", "/api/v1/admin/conversations/"+g.ID+"/retention", admin, map[string]any{"days": 0})

	// Batch deletes are refused entirely, a pending one included.
	wantError(t, ts.must(http.StatusForbidden, "POST", "/api/v1/admin/deletions/preview", admin, map[string]any{"conversation_id": g.ID}), chatvault.EFORBIDDEN, "")
	wantError(t, ts.must(http.StatusForbidden, "POST", "/api/v1/admin/deletions/"+dp.Token+"/confirm", admin, nil), chatvault.EFORBIDDEN, "")

	// A run with nothing to do still certifies it: empty lists, not nulls.
	ts.clock.Advance(400 * 24 * time.Hour)
	var run chatvault.PurgeRun
	ts.must(http.StatusOK, "POST", "/api/v1/admin/retention/run", admin, map[string]bool{"dry_run": false}).decode(t, &run)
	if !run.Policy.Locked || len(run.Items) != 0 {
		t.Errorf("run under the lock = %+v; want nothing done", run)
	}

	var audit struct {
		Entries []chatvault.AuditEntry `json:"entries"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/audit?limit=1000", admin, nil).decode(t, &audit)
	refused := 0
	for _, e := range audit.Entries {
		if e.Action == "retention.policy.update" && strings.HasPrefix(e.Outcome, "refused") {
			refused++
		}
	}
	if refused != 5 {
		t.Errorf("audit has %d refused policy updates; want 5", refused)
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
