package caddymodule

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/pce"
	"github.com/voipnow-pce/caddy-voipnow-pce/internal/testservers"
)

const (
	collectionPath = "/uapi/extensions/@me/0003*210/phoneCallEvents"
	pagePath       = "/uapi/extensions/@me/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"
	pageBody       = "{\n  \"method\": \"1\",\n  \"note\": \"I want to use POST for my event\"\n}"
	canonBody      = `{"method":"1","note":"I want to use POST for my event"}`
	goodToken      = "tok-good.123"
	userToken      = "tok-user-42"
	adminToken     = "tok-admin"
)

func grantAll(s *stack) {
	s.idp.Grant(goodToken, "uapi", "1001")
	s.idp.Grant(userToken, "uapi", "42")
	s.idp.Grant(adminToken, "uapi uapi.admin", "1")
}

// The page's example goes through: the backend gets the canonical request
// and the client gets the backend's answer unchanged.
func TestPageExampleIsForwarded(t *testing.T) {
	s := newStack(t, "")
	grantAll(s)
	// The page's example misspells the header "Content Type"; send none.
	res := s.put(pagePath, goodToken, pageBody, "X-Custom: kept")
	got := s.expectForwarded(res)
	if res.Status != http.StatusOK || res.Body != pageAnswer || res.Header.Get("X-Backend") != "legacy" {
		t.Errorf("client got %d %q, want the backend's answer unchanged", res.Status, res.Body)
	}
	if got.Method != http.MethodPut || got.RequestURI != pagePath {
		t.Errorf("backend got %s %s, want PUT %s", got.Method, got.RequestURI, pagePath)
	}
	jsonEqual(t, got.Body, canonBody)
	if ct := got.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("backend Content-Type %q", ct)
	}
	if cl := got.Header.Get("Content-Length"); cl != "" && cl != "55" {
		t.Errorf("backend Content-Length %q, want %d", cl, len(canonBody))
	}
	if a := got.Header.Get("Authorization"); a != "Bearer "+goodToken {
		t.Errorf("backend Authorization %q", a)
	}
	if got.Header.Get("X-Custom") != "kept" {
		t.Error("other headers must reach the backend as received")
	}
}

// The backend's 204 and its own errors go back unchanged.
func TestBackendAnswersPassUnchanged(t *testing.T) {
	s := newStack(t, "")
	grantAll(s)
	s.backend.Answer(http.StatusNoContent, "", "")
	res := s.put(pagePath, goodToken, `{}`)
	s.expectForwarded(res)
	if res.Status != http.StatusNoContent || res.Body != "" {
		t.Errorf("got %d %q, want 204 with no body", res.Status, res.Body)
	}
	legacy := `{"error":{"code":"extension_invalid","message":"from the backend"}}`
	s.backend.Answer(http.StatusBadRequest, "application/json", legacy)
	res = s.put(pagePath, goodToken, `{}`)
	s.expectForwarded(res)
	if res.Status != http.StatusBadRequest || res.Body != legacy {
		t.Errorf("got %d %q, want the backend's own error", res.Status, res.Body)
	}
}

// The URI as the backend sees it: one trailing slash dropped, escapes
// decoded once, the canonical spelling.
func TestCanonicalPath(t *testing.T) {
	s := newStack(t, "")
	grantAll(s)
	for _, tc := range []struct{ sent, want string }{
		{pagePath + "/", pagePath},
		{"/uapi/extensions/%40me/0003%2A210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq", pagePath},
		{"/uapi/extensions/@me/0003*210/phonecallevents/0/MyPhoneCallEvent", "/uapi/extensions/@me/0003*210/phoneCallEvents/0/MyPhoneCallEvent"},
		{"/uapi/extensions/@viewer/210/phoneCallEvents/2/abc?x=1&y=2", "/uapi/extensions/@viewer/210/phoneCallEvents/2/abc?x=1&y=2"},
	} {
		res := s.put(tc.sent, goodToken, `{}`)
		got := s.expectForwarded(res)
		if got.RequestURI != tc.want {
			t.Errorf("sent %s: backend got %s, want %s", tc.sent, got.RequestURI, tc.want)
		}
	}
}

// Authentication comes first and answers 401 with WWW-Authenticate.
func TestAuthentication(t *testing.T) {
	s := newStack(t, "")
	grantAll(s)
	s.idp.Set("tok-inactive", map[string]any{"active": false})
	s.idp.Set("tok-expired", map[string]any{"active": true, "scope": "uapi", "sub": "1001", "exp": time.Now().Add(-time.Minute).Unix()})

	res := s.put(pagePath, "", pageBody)
	s.expectError(res, http.StatusUnauthorized, "access_denied")
	if h := res.Header.Get("WWW-Authenticate"); h != `Bearer realm="uapi"` {
		t.Errorf("WWW-Authenticate %q without a token", h)
	}
	for _, auth := range []string{
		"Authorization: Bearer tok-unknown",
		"Authorization: Bearer tok-inactive",
		"Authorization: Bearer tok-expired",
		"Authorization: Bearer ",
		"Authorization: Bearer bad token",
	} {
		res := s.put(pagePath, "", pageBody, auth)
		s.expectError(res, http.StatusUnauthorized, "access_denied")
		if h := res.Header.Get("WWW-Authenticate"); h != `Bearer realm="uapi", error="invalid_token"` {
			t.Errorf("%s: WWW-Authenticate %q", auth, h)
		}
	}
	// A bad URI without a token is still 401: authentication wins.
	res = s.put("/uapi/extensions/@self/0003*210/phoneCallEvents/9/x", "", pageBody)
	s.expectError(res, http.StatusUnauthorized, "access_denied")
}

// The legacy query parameter carries the token; the gateway moves it into
// the Authorization header and out of the query.
func TestQueryToken(t *testing.T) {
	s := newStack(t, "")
	grantAll(s)
	res := s.put(pagePath+"?a=1&accessRequestToken=Bearer%20"+goodToken+"&b=2", "", pageBody)
	got := s.expectForwarded(res)
	if got.RequestURI != pagePath+"?a=1&b=2" {
		t.Errorf("backend got %s: the token must leave the query", got.RequestURI)
	}
	if a := got.Header.Get("Authorization"); a != "Bearer "+goodToken {
		t.Errorf("backend Authorization %q", a)
	}
	res = s.put(pagePath+"?accessRequestToken=Bearer+"+goodToken, "", pageBody)
	if got := s.expectForwarded(res); got.RequestURI != pagePath {
		t.Errorf("backend got %s", got.RequestURI)
	}
	res = s.put(pagePath+"?accessRequestToken=Bearer%20nope", "", pageBody)
	s.expectError(res, http.StatusUnauthorized, "access_denied")
	// A percent-encoded parameter name is the same parameter: read, and
	// never passed on.
	res = s.put(pagePath+"?x=%20&access%52equestToken="+goodToken, "", pageBody)
	if got := s.expectForwarded(res); got.RequestURI != pagePath+"?x=%20" || got.Header.Get("Authorization") != "Bearer "+goodToken {
		t.Errorf("backend got %s with %q", got.RequestURI, got.Header.Get("Authorization"))
	}
	// Spellings a lenient backend reads as the parameter: a second token
	// there is a second token, never passed on unchecked.
	for _, q := range []string{"a=1;accessRequestToken=Bearer+" + userToken, "+accessRequestToken=" + userToken, "accessRequestToken%5B%5D=" + userToken} {
		s.expectError(s.put(pagePath+"?"+q, goodToken, pageBody), http.StatusUnauthorized, "access_denied")
		res := s.put(pagePath+"?"+q, userToken, pageBody)
		got := s.expectForwarded(res)
		if strings.Contains(got.RequestURI, "ccessRequestToken") || strings.Contains(got.RequestURI, userToken) {
			t.Errorf("?%s reached the backend as %s", q, got.RequestURI)
		}
	}
	// Two different tokens, header and query: refused.
	res = s.put(pagePath+"?accessRequestToken="+userToken, goodToken, pageBody)
	s.expectError(res, http.StatusUnauthorized, "access_denied")
}

// Every URI check with its documented code; nothing reaches the backend.
func TestURIErrors(t *testing.T) {
	s := newStack(t, "")
	grantAll(s)
	for _, tc := range []struct{ path, code string }{
		{"/uapi/extensions/me/0003*210/phoneCallEvents/0/abc", "user_invalid"},
		{"/uapi/extensions/12a/0003*210/phoneCallEvents/0/abc", "user_invalid"},
		{"/uapi/extensions/@me/@self/phoneCallEvents/0/abc", "extension_invalid"},
		{"/uapi/extensions/@me/***/phoneCallEvents/0/abc", "extension_invalid"},
		{"/uapi/extensions/@me/0003*210/phoneCallEvents/3/abc", "pce_type_invalid"},
		{"/uapi/extensions/@me/0003*210/phoneCallEvents/0/" + strings.Repeat("a", 33), "pce_id_invalid"},
		{"/uapi/extensions/@me/0003*210/phoneCallEvents/0/a-b", "pce_id_invalid"},
		{"/uapi/extensions/@me/0003*210/phoneCallEvents/0/a%2Fb", "pce_id_invalid"},
		{"/uapi/extensions/@me/0003*210/phoneCallEvents/0/abc//", "pce_id_invalid"},
		{"/uapi/extensions/@me/0003*210/phoneCallEvents/0/%00", "pce_id_invalid"},
		{"/uapi/extensions/@me/../0003*210/phoneCallEvents/0/abc", "extension_invalid"},
		{"/uapi/extensions/../@me/0003*210/phoneCallEvents/0/abc", "user_invalid"},
		{"/uapi/extensions/./0003*210/phoneCallEvents/0/abc", "user_invalid"},
		{"//uapi/extensions/@me/0003*210/phoneCallEvents/0/abc", "user_invalid"},
		{"/uapi/extensions/@me/0003*210/phoneCallEvents%2F0/abc", "pce_type_invalid"},
		{"/uapi/extensions/@me//phoneCallEvents/0/abc", "extension_invalid"},
	} {
		res := s.put(tc.path, goodToken, `{}`)
		s.expectError(res, http.StatusBadRequest, tc.code)
	}
	// Boundaries of the id: 32 passes.
	res := s.put("/uapi/extensions/@me/210/phoneCallEvents/0/"+strings.Repeat("a", 32), goodToken, `{}`)
	s.expectForwarded(res)
}

// Scopes, the user claim and admin scopes are checked on every request.
func TestAuthorization(t *testing.T) {
	s := newStack(t, "")
	grantAll(s)
	s.idp.Grant("tok-noscope", "other", "1001")

	s.expectError(s.put(pagePath, "tok-noscope", `{}`), http.StatusBadRequest, "pce_access_denied")
	s.expectError(s.put("/uapi/extensions/43/210/phoneCallEvents/0/abc", userToken, `{}`), http.StatusBadRequest, "pce_access_denied")
	if got := s.expectForwarded(s.put("/uapi/extensions/42/210/phoneCallEvents/0/abc", userToken, `{}`)); got.RequestURI != "/uapi/extensions/42/210/phoneCallEvents/0/abc" {
		t.Errorf("backend got %s", got.RequestURI)
	}
	s.expectForwarded(s.put("/uapi/extensions/43/210/phoneCallEvents/0/abc", adminToken, `{}`))
	for _, self := range []string{"@me", "@viewer", "@owner"} {
		got := s.expectForwarded(s.put("/uapi/extensions/"+self+"/210/phoneCallEvents/1/abc", userToken, `{}`))
		if !strings.Contains(got.RequestURI, "/"+self+"/") {
			t.Errorf("%s must be forwarded as written, got %s", self, got.RequestURI)
		}
	}
}

// Payload checks, with the documented codes and the canonical body.
func TestPayload(t *testing.T) {
	s := newStack(t, "max_body 1KiB")
	grantAll(s)
	for _, tc := range []struct{ body, code string }{
		{`{"type":"1"}`, "pce_type_invalid"},
		{`{"id":"other"}`, "pce_id_invalid"},
		{`{"method":"PUT"}`, "pce_method_invalid"},
		{`{"method":null}`, "pce_method_invalid"},
		{`{"note":5}`, "pce_note_invalid"},
		{`{"url":"ftp://x.example/"}`, "pce_url_invalid"},
		{`{"url":"http://127.0.0.1/hook"}`, "pce_url_invalid"},
		{`{"url":"http://169.254.169.254/latest"}`, "pce_url_invalid"},
		{`{"status":"enabled"}`, "pce_status_invalid"},
		{`{"status":2,"method":9}`, "pce_method_invalid"},
		{`{"method":"1","method":"0"}`, "payload_invalid"},
		{`[1]`, "payload_invalid"},
		{`{"note":"a"`, "payload_invalid"},
		{"{\"note\":\"\xff\"}", "payload_invalid"},
		{``, "payload_invalid"},
	} {
		s.expectError(s.put(pagePath, goodToken, tc.body), http.StatusBadRequest, tc.code)
	}
	s.expectError(s.put(pagePath, goodToken, `{"note":"`+strings.Repeat("x", 1100)+`"}`), http.StatusRequestEntityTooLarge, "payload_too_large")

	res := s.put(pagePath, goodToken, `{"status":1,"links":{"self":"x"},"modified":"2012","url":"https://hooks.example.com/a","method":"post","type":0,"id":"NqeyDRqo4FtabmFj8gNWq3hsiGNYyq","extra":true}`)
	got := s.expectForwarded(res)
	jsonEqual(t, got.Body, `{"type":"0","id":"NqeyDRqo4FtabmFj8gNWq3hsiGNYyq","method":"1","url":"https://hooks.example.com/a","status":"1"}`)
}

// allow_private_urls lets webhooks point inside.
func TestAllowPrivateURLs(t *testing.T) {
	s := newStack(t, "allow_private_urls")
	grantAll(s)
	got := s.expectForwarded(s.put(pagePath, goodToken, `{"url":"http://10.1.2.3:8080/hook"}`))
	jsonEqual(t, got.Body, `{"url":"http://10.1.2.3:8080/hook"}`)
}

// A PUT in another letter case, or a POST that says PUT in a
// method-override header, is the update request to a lenient backend: it
// is checked, and forwarded as a plain PUT.
func TestMethodSpellings(t *testing.T) {
	s := newStack(t, "")
	grantAll(s)
	for _, tc := range []struct {
		method string
		header []string
	}{
		{"put", nil},
		{http.MethodPost, []string{"X-HTTP-Method-Override: PUT"}},
		{http.MethodPost, []string{"X-HTTP-Method: put"}},
		{http.MethodPost, []string{"X-Method-Override: Put"}},
		{http.MethodGet, []string{"X-HTTP-Method-Override: PUT"}},
	} {
		s.expectError(s.do(tc.method, pagePath, `{"method":"PUT"}`, append(tc.header, "Authorization: Bearer "+goodToken)...), http.StatusBadRequest, "pce_method_invalid")
		s.expectError(s.do(tc.method, pagePath, `{}`, tc.header...), http.StatusUnauthorized, "access_denied")
		got := s.expectForwarded(s.do(tc.method, pagePath, `{"method":"post"}`, append(tc.header, "Authorization: Bearer "+goodToken)...))
		if got.Method != http.MethodPut || got.Header.Get("X-Http-Method-Override") != "" || got.Header.Get("X-Http-Method") != "" || got.Header.Get("X-Method-Override") != "" {
			t.Errorf("%s %v reached the backend as %s with %v", tc.method, tc.header, got.Method, got.Header)
		}
		jsonEqual(t, got.Body, `{"method":"1"}`)
	}
	// Symfony's _method query parameter on a POST.
	s.expectError(s.do(http.MethodPost, pagePath+"?_method=put", `{}`), http.StatusUnauthorized, "access_denied")
	got := s.expectForwarded(s.do(http.MethodPost, pagePath+"?_method=PUT", `{}`, "Authorization: Bearer "+goodToken))
	if got.Method != http.MethodPut || got.RequestURI != pagePath {
		t.Errorf("POST ?_method=PUT reached the backend as %s %s", got.Method, got.RequestURI)
	}
	// On any method, in every spelling PHP reads as _method; the query is
	// forwarded byte for byte less those pairs.
	for _, q := range []string{"?_method=PUT", "?%5Fmethod=PUT", "?_%6Dethod=put", "?+_method=PUT", "?_method%00=PUT", "?.method=PUT", "?_method[]=PUT"} {
		s.expectError(s.do(http.MethodGet, pagePath+q, `{}`), http.StatusUnauthorized, "access_denied")
		got := s.expectForwarded(s.do(http.MethodPost, pagePath+"?x=1;y=2&"+q[1:]+"&b=%41&a", `{}`, "Authorization: Bearer "+goodToken))
		if got.Method != http.MethodPut || got.RequestURI != pagePath+"?x=1;y=2&b=%41&a" {
			t.Errorf("POST %s reached the backend as %s %s", q, got.Method, got.RequestURI)
		}
	}
	// Overrides that disagree: the backend's reading is unknown.
	for _, hdr := range [][]string{
		{"X-HTTP-Method-Override: GET", "X-HTTP-Method-Override: PUT"},
		{"X-HTTP-Method-Override: PUT, DELETE"},
		{"X-HTTP-Method: PUT", "X-Method-Override: PATCH"},
	} {
		s.expectError(s.do(http.MethodPost, pagePath, `{}`, append(hdr, "Authorization: Bearer "+goodToken)...), http.StatusBadRequest, "request_invalid")
	}
	s.expectError(s.do(http.MethodPost, pagePath+"?_method=DELETE", `{}`, "X-HTTP-Method-Override: PUT", "Authorization: Bearer "+goodToken), http.StatusBadRequest, "request_invalid")
}

// Everything that is not the resource's passes through untouched, and so
// does an OPTIONS without an override (CORS preflight).
func TestPassThrough(t *testing.T) {
	s := newStack(t, "")
	expectUntouched(t, s, []passCase{
		{http.MethodOptions, pagePath, "", nil},
		{http.MethodOptions, collectionPath, "", []string{"Origin: https://app.example", "Access-Control-Request-Method: PUT"}},
		{http.MethodPut, "/uapi/extensions/@me/0003*210/presence", `not json`, nil},
		{http.MethodPut, "/other/extensions/@me/0003*210/phoneCallEvents/0/x", `{"a":1}`, nil},
		{http.MethodDelete, "/uapi/extensions/@me/0003*210/phoneCalls?accessRequestToken=Bearer%20abc", "", []string{"X-HTTP-Method-Override: PUT"}},
	})
}

// With operations update (version 1), the other operations pass through
// untouched; a request that some reading makes an update does not.
func TestPassThroughUpdateOnly(t *testing.T) {
	s := newStack(t, "operations update")
	grantAll(s)
	expectUntouched(t, s, []passCase{
		{http.MethodGet, pagePath, "", nil},
		{http.MethodPost, collectionPath, `{"type":"0","method":"0","url":"http://10.0.0.1/"}`, nil},
		{http.MethodPost, "/uapi/extensions/@me/0003*210/phoneCallEvents/0", `{"method":"1","method":"0"}`, nil},
		{http.MethodDelete, "/uapi/extensions/@me/0003%2A210/phoneCallEvents/0/x?accessRequestToken=Bearer%20abc", "", nil},
		{http.MethodPatch, pagePath, `{}`, nil},
		{http.MethodGet, pagePath + "?_method=GET", "", nil},
	})
	s.expectError(s.do(http.MethodGet, pagePath, "{}", "X-HTTP-Method-Override: PUT"), http.StatusUnauthorized, "access_denied")
	s.expectError(s.do(http.MethodPost, pagePath+"?_method=put", "{}"), http.StatusUnauthorized, "access_denied")
	// The side door: a PUT whose override names an operation not owned.
	// Symfony reads overrides on POST only, so the backend would update,
	// unchecked: the gateway forwards it plainly, as the override says.
	for _, tc := range []struct {
		uri    string
		header []string
		want   string
	}{
		{pagePath, []string{"X-HTTP-Method-Override: GET"}, http.MethodGet},
		{pagePath, []string{"X-Method-Override: delete"}, http.MethodDelete},
		{pagePath + "?_method=GET&a=1", nil, http.MethodGet},
		{pagePath + "?%5Fmethod=PATCH", nil, http.MethodPatch},
	} {
		res := s.do(http.MethodPut, tc.uri, `{"url":"http://169.254.169.254/"}`, tc.header...)
		if res.Status != http.StatusOK {
			t.Errorf("PUT %s %v: %d %s", tc.uri, tc.header, res.Status, res.Body)
		}
		got := s.expectForwarded(res)
		if got.Method != tc.want || strings.Contains(got.RequestURI, "method") {
			t.Errorf("PUT %s %v reached the backend as %s %s", tc.uri, tc.header, got.Method, got.RequestURI)
		}
		for name := range got.Header {
			if pce.IsOverrideHeader(name) {
				t.Errorf("PUT %s %v reached the backend with %s", tc.uri, tc.header, name)
			}
		}
	}
	if n := s.idp.Calls.Load(); n != 0 {
		t.Errorf("pass-through requests made %d introspection calls", n)
	}
	// Caddy drops header names with '_' or '.' (which CGI folds onto '-')
	// before any handler runs: such an override never reaches the
	// backend, which sees a PUT, so the gateway checks the update.
	s.expectError(s.do(http.MethodPut, pagePath, "{}", "X_HTTP_METHOD: delete"), http.StatusUnauthorized, "access_denied")
	s.expectError(s.do(http.MethodPut, pagePath, "{}", "X.HTTP.Method.Override: GET"), http.StatusUnauthorized, "access_denied")
}

type passCase struct {
	method, uri, body string
	header            []string
}

// expectUntouched sends each request without a token and checks that the
// backend got it as sent, with no introspection call.
func expectUntouched(t *testing.T, s *stack, cases []passCase) {
	t.Helper()
	calls := s.idp.Calls.Load()
	for _, tc := range cases {
		res := s.do(tc.method, tc.uri, tc.body, tc.header...)
		got := s.expectForwarded(res)
		if got.Method != tc.method || got.RequestURI != tc.uri || string(got.Body) != tc.body {
			t.Errorf("%s %s %q reached the backend as %s %s %q", tc.method, tc.uri, tc.body, got.Method, got.RequestURI, got.Body)
		}
		for _, h := range tc.header {
			name, value, _ := strings.Cut(h, ":")
			if got.Header.Get(name) != strings.TrimSpace(value) {
				t.Errorf("%s %s: header %s reached the backend as %q", tc.method, tc.uri, name, got.Header.Get(name))
			}
		}
		if res.Status != http.StatusOK || res.Body != pageAnswer {
			t.Errorf("%s %s: client got %d", tc.method, tc.uri, res.Status)
		}
	}
	if n := s.idp.Calls.Load() - calls; n != 0 {
		t.Errorf("pass-through requests made %d introspection calls", n)
	}
}

// No answer from the introspection endpoint is never "allowed".
func TestIntrospectionDown(t *testing.T) {
	s := newStack(t, "")
	grantAll(s)
	s.idp.Mode.Store(testservers.Fail)
	res := s.put(pagePath, goodToken, pageBody)
	s.expectError(res, http.StatusServiceUnavailable, "service_unavailable")
	if res.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	s.idp.Mode.Store(testservers.Hang)
	start := time.Now()
	s.expectError(s.put(pagePath, userToken, pageBody), http.StatusServiceUnavailable, "service_unavailable")
	if time.Since(start) > 3*time.Second {
		t.Errorf("a hanging endpoint held the request %v, past the 300ms timeout", time.Since(start))
	}
	// Errors are not cached: the endpoint back, the token works.
	s.idp.Mode.Store(testservers.Answer)
	s.expectForwarded(s.put(pagePath, goodToken, pageBody))
}

// A backend that cannot be reached is 502 backend_unavailable.
func TestBackendDown(t *testing.T) {
	idp := testservers.NewIdP(t)
	idp.Grant(goodToken, "uapi", "1001")
	port := freePort(t)
	dead := freePort(t)
	tester := newTesterFor(t, gatewayConfig(port, idp.URL(), "127.0.0.1:"+itoa(dead), ""))
	s := &stack{t: t, tester: tester, idp: idp, backend: &testservers.Backend{}, base: "http://127.0.0.1:" + itoa(port)}
	s.expectError(s.put(pagePath, goodToken, pageBody), http.StatusBadGateway, "backend_unavailable")
}

// After the gateway moves a query token into the header, nothing of it is
// left where Caddy's logs read the request line (reverse_proxy's debug
// log of the upstream request prints RequestURI).
func TestQueryTokenLeavesNoTrace(t *testing.T) {
	idp, backend := testservers.NewIdP(t), testservers.NewBackend(t)
	idp.Grant(goodToken, "uapi", "1001")
	port := freePort(t)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	cfg := fmt.Sprintf(`{
	admin %s
	auto_https off
	grace_period 1ns
	log {
		output file %s
		level DEBUG
	}
}
http://127.0.0.1:%d {
	voipnow_pce {
		introspection_url %s
		client_id gateway
		client_secret s3cret
	}
	reverse_proxy %s
}
`, adminAddr, logFile, port, idp.URL(), backend.Addr)
	s := &stack{t: t, tester: newTesterFor(t, cfg), idp: idp, backend: backend, base: "http://127.0.0.1:" + itoa(port)}
	s.expectForwarded(s.put(pagePath+"?a=1&accessRequestToken=Bearer%20"+goodToken, "", `{}`))
	var logged []byte
	waitFor(t, "reverse_proxy's debug log of the request", 5*time.Second, func() bool {
		logged, _ = os.ReadFile(logFile)
		return bytes.Contains(logged, []byte("upstream roundtrip"))
	})
	if bytes.Contains(logged, []byte(goodToken)) {
		t.Errorf("the token is in Caddy's log:\n%s", logged)
	}
}

// rawRequest writes a request as bytes on a new connection and returns the
// status line.
func (s *stack) rawRequest(raw string) string {
	s.t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		s.t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	_, _ = io.ReadAll(res.Body)
	return res.Status
}

// No trailers and no hop-by-hop machinery reach the backend: a client's
// trailers (a second Authorization, another Content-Type, an override)
// and a Connection header naming the gateway's own headers change nothing.
func TestCanonicalRequestHeaders(t *testing.T) {
	s := newStack(t, "")
	grantAll(s)
	host := strings.TrimPrefix(s.base, "http://")
	body := `{"method":"1"}`
	st := s.rawRequest("PUT " + pagePath + " HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + goodToken +
		"\r\nTransfer-Encoding: chunked\r\nTrailer: Authorization, Content-Type, X-Http-Method-Override\r\nConnection: close\r\n\r\n" +
		fmt.Sprintf("%x\r\n%s\r\n0\r\n", len(body), body) +
		"Authorization: Bearer " + userToken + "\r\nContent-Type: text/xml\r\nX-Http-Method-Override: DELETE\r\n\r\n")
	got := s.expectForwarded(response{Status: 0, Body: st})
	if len(got.Trailer) != 0 || len(got.TransferEncoding) != 0 || got.Header.Get("Trailer") != "" {
		t.Errorf("trailers reached the backend: %v %v %v", got.Trailer, got.TransferEncoding, got.Header)
	}
	if got.Method != http.MethodPut || got.Header.Get("Authorization") != "Bearer "+goodToken || got.Header.Get("Content-Type") != "application/json" {
		t.Errorf("backend got %s %v", got.Method, got.Header)
	}
	jsonEqual(t, got.Body, body)

	for _, tc := range []struct{ uri, auth string }{
		{pagePath, "Authorization: Bearer " + goodToken + "\r\n"},
		{pagePath + "?accessRequestToken=Bearer%20" + goodToken, ""},
	} {
		st := s.rawRequest("PUT " + tc.uri + " HTTP/1.1\r\nHost: " + host + "\r\n" + tc.auth +
			"Connection: Authorization, Content-Type, Content-Length, X-Keep, close\r\nX-Keep: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\n" +
			"Content-Length: " + itoa(len(body)) + "\r\n\r\n" + body)
		got := s.expectForwarded(response{Body: st})
		if got.Header.Get("Authorization") != "Bearer "+goodToken || got.Header.Get("Content-Type") != "application/json" ||
			got.Header.Get("Content-Length") != itoa(len(body)) {
			t.Errorf("%s: the backend lost the canonical headers: %v", tc.uri, got.Header)
		}
		for _, h := range []string{"X-Keep", "Keep-Alive", "Te", "Upgrade"} {
			if got.Header.Get(h) != "" {
				t.Errorf("%s: %s reached the backend", tc.uri, h)
			}
		}
		jsonEqual(t, got.Body, body)
	}
}

// A raw '#' in the request target is request_invalid, never forwarded.
func TestRawFragmentRefused(t *testing.T) {
	s := newStack(t, "")
	grantAll(s)
	host := strings.TrimPrefix(s.base, "http://")
	for _, target := range []string{pagePath + "?a=1#frag", pagePath + "#frag"} {
		st := s.rawRequest("PUT " + target + " HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + goodToken +
			"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
		if !strings.HasPrefix(st, "400") {
			t.Errorf("%s: %s, want 400", target, st)
		}
		if got := s.backend.Take(); len(got) != 0 {
			t.Errorf("%s reached the backend as %s", target, got[0].RequestURI)
		}
	}
}
