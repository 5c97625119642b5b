package caddymodule

import (
	"net/http"
	"strings"
	"testing"

	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/pce"
)

const typePath = "/uapi/extensions/@me/0003*210/phoneCallEvents/0"

// Each operation reaches the backend as its canonical request: create and
// update with the canonical body, list and delete with none (whatever the
// client sent), the query byte for byte less the token and _method pairs.
func TestOperationsForwarded(t *testing.T) {
	s := newStack(t, "")
	grantAll(s)
	auth := "Authorization: Bearer " + goodToken
	for _, tc := range []struct {
		method, uri, body string
		header            []string
		wantMethod        string
		wantURI           string
		wantBody          string
	}{
		{http.MethodPost, collectionPath + "/", `{"status":1,"url":"https://hooks.example/x","method":"post","type":2,"links":{}}`, nil,
			http.MethodPost, collectionPath, `{"type":"2","method":"1","url":"https://hooks.example/x","status":"1"}`},
		{http.MethodGet, "/uapi/extensions/%40me/0003%2A210/phonecallevents?count=5&startIndex=10&accessRequestToken=Bearer%20" + goodToken, "", nil,
			http.MethodGet, collectionPath + "?count=5&startIndex=10", ""},
		{http.MethodGet, typePath + "/", `{"ignored":true}`, []string{"Content-Type: application/json"},
			http.MethodGet, typePath, ""},
		{http.MethodHead, pagePath, "", nil, http.MethodHead, pagePath, ""},
		{http.MethodDelete, typePath, `{"type":"0"}`, []string{"Content-Type: application/json"},
			http.MethodDelete, typePath, ""},
		{http.MethodDelete, collectionPath + "?filterBy=status;x=1", "", nil, http.MethodDelete, collectionPath + "?filterBy=status;x=1", ""},
		{http.MethodPost, collectionPath + "?_method=DELETE", `{"type":"0"}`, nil, http.MethodDelete, collectionPath, ""},
		{http.MethodPost, pagePath, `{"status":"0"}`, []string{"X-HTTP-Method-Override: PUT"}, http.MethodPut, pagePath, `{"status":"0"}`},
		{http.MethodPut, typePath + "?b=2", `{}`, []string{"X-Method-Override: DELETE", "Content-Type: text/xml"}, http.MethodDelete, typePath + "?b=2", ""},
		{http.MethodGet, collectionPath + "?x=%2F&_method=POST&y", `{"type":"0","method":"0","url":"http://e.example/"}`, nil, http.MethodPost, collectionPath + "?x=%2F&y", `{"type":"0","method":"0","url":"http://e.example/"}`},
	} {
		hdr := append([]string{auth}, tc.header...)
		if strings.Contains(tc.uri, "accessRequestToken") {
			hdr = tc.header
		}
		res := s.do(tc.method, tc.uri, tc.body, hdr...)
		got := s.expectForwarded(res)
		if got.Method != tc.wantMethod || got.RequestURI != tc.wantURI || string(got.Body) != tc.wantBody {
			t.Errorf("%s %s reached the backend as %s %s %q; want %s %s %q", tc.method, tc.uri,
				got.Method, got.RequestURI, got.Body, tc.wantMethod, tc.wantURI, tc.wantBody)
		}
		if got.Header.Get("Authorization") != "Bearer "+goodToken {
			t.Errorf("%s %s: Authorization %q", tc.method, tc.uri, got.Header.Get("Authorization"))
		}
		if tc.wantBody == "" && (got.Header.Get("Content-Type") != "" || got.Header.Get("Content-Length") != "" || len(got.Body) > 0) {
			t.Errorf("%s %s: a request without a body reached the backend with %v", tc.method, tc.uri, got.Header)
		}
		if tc.wantBody != "" && (got.Header.Get("Content-Type") != "application/json" || got.Header.Get("Content-Length") != itoa(len(tc.wantBody)) || len(got.TransferEncoding) != 0) {
			t.Errorf("%s %s: Content-Type %q, Content-Length %q, Transfer-Encoding %v", tc.method, tc.uri,
				got.Header.Get("Content-Type"), got.Header.Get("Content-Length"), got.TransferEncoding)
		}
		for name := range got.Header {
			if pce.IsOverrideHeader(name) {
				t.Errorf("%s %s: %s reached the backend", tc.method, tc.uri, name)
			}
		}
		if len(got.Trailer) != 0 {
			t.Errorf("%s %s: trailers %v reached the backend", tc.method, tc.uri, got.Trailer)
		}
		if res.Status != http.StatusOK {
			t.Errorf("%s %s: client got %d", tc.method, tc.uri, res.Status)
		}
	}
}

// Every operation authenticates first; then the method; then the path's
// positions.
func TestOperationsRefused(t *testing.T) {
	s := newStack(t, "")
	grantAll(s)
	auth := "Authorization: Bearer " + goodToken
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodDelete, http.MethodPatch, "PROPFIND"} {
		res := s.do(method, collectionPath, `{"type":"0","method":"0","url":"http://169.254.169.254/latest/meta-data/"}`)
		if res.Status != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") != `Bearer realm="uapi"` {
			t.Errorf("%s without a token: %d %v", method, res.Status, res.Header)
		}
		if got := s.backend.Take(); len(got) != 0 {
			t.Errorf("%s without a token reached the backend", method)
		}
	}
	for _, tc := range []struct {
		method, uri, allow string
	}{
		{http.MethodPatch, pagePath, "GET, HEAD, PUT, DELETE"},
		{http.MethodPost, pagePath, "GET, HEAD, PUT, DELETE"},
		{http.MethodPost, typePath, "GET, HEAD, DELETE"},
		{http.MethodPatch, collectionPath, "GET, HEAD, POST, DELETE"},
		{"PROPFIND", "/uapi/extensions/@self/x/phoneCallEvents/9", "GET, HEAD, DELETE"},
		{http.MethodTrace, pagePath, "GET, HEAD, PUT, DELETE"},
	} {
		res := s.do(tc.method, tc.uri, `{}`, auth)
		s.expectError(res, http.StatusMethodNotAllowed, "method_not_allowed")
		if res.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.uri, res.Header.Get("Allow"), tc.allow)
		}
	}
	for _, tc := range []struct {
		method, uri, body, code string
	}{
		{http.MethodGet, "/uapi/extensions/@self/210/phoneCallEvents", "", "user_invalid"},
		{http.MethodDelete, "/uapi/extensions/@me/x/phoneCallEvents", "", "extension_invalid"},
		{http.MethodGet, collectionPath + "/9", "", "pce_type_invalid"},
		{http.MethodDelete, typePath + "/a-b", "", "pce_id_invalid"},
		{http.MethodPut, collectionPath, `{}`, "pce_type_invalid"},
		{http.MethodPut, typePath, `{}`, "pce_id_invalid"},
		{http.MethodPost, "//uapi/extensions/@me/210/phoneCallEvents", `{}`, "user_invalid"},
		{http.MethodPatch, "/UAPI/extensions/@me/210/phoneCallEvents/0/x", `{}`, "user_invalid"},
		// Create's payload.
		{http.MethodPost, collectionPath, `{"method":"0","url":"http://e.example/"}`, "pcet_type_invalid"},
		{http.MethodPost, collectionPath, `{"type":"7","method":"0","url":"http://e.example/"}`, "pcet_type_invalid"},
		{http.MethodPost, collectionPath, `{"type":"0","url":"http://e.example/"}`, "pce_method_invalid"},
		{http.MethodPost, collectionPath, `{"type":"0","method":"9"}`, "pce_method_invalid"},
		{http.MethodPost, collectionPath, `{"type":"0","method":"0"}`, "pce_url_invalid"},
		{http.MethodPost, collectionPath, `{"type":"0","method":"0","url":"http://169.254.169.254/latest/meta-data/"}`, "pce_url_invalid"},
		{http.MethodPost, collectionPath, `{"type":"0","method":"0","url":"http://e.example/","id":"a_b"}`, "pce_id_invalid"},
		{http.MethodPost, collectionPath, `{"type":"0","type":"0"}`, "payload_invalid"},
		{http.MethodPost, collectionPath, `type=0&method=0`, "payload_invalid"},
		{http.MethodPost, collectionPath, `{"type":"0","method":"0","url":"http://e.example/","note":"` + strings.Repeat("n", 70000) + `"}`, "payload_too_large"},
	} {
		s.expectError(s.do(tc.method, tc.uri, tc.body, auth), statusOf(tc.code), tc.code)
	}
}

func statusOf(code string) int {
	switch code {
	case "payload_too_large":
		return http.StatusRequestEntityTooLarge
	case "method_not_allowed":
		return http.StatusMethodNotAllowed
	}
	return http.StatusBadRequest
}

// scopes adds each operation's own scopes to required_scopes.
func TestOperationScopes(t *testing.T) {
	s := newStack(t, "scopes {\n\t\t\tlist uapi.read\n\t\t\tcreate uapi.write\n\t\t\tdelete uapi.write uapi.delete\n\t\t}")
	s.idp.Grant("reader", "uapi uapi.read", "1")
	s.idp.Grant("writer", "uapi uapi.write", "1")
	s.idp.Grant("deleter", "uapi uapi.write uapi.delete", "1")
	s.idp.Grant("plain", "uapi", "1")
	create := `{"type":"0","method":"0","url":"http://e.example/"}`
	for _, tc := range []struct {
		token, method, uri, body string
		ok                       bool
	}{
		{"reader", http.MethodGet, collectionPath, "", true},
		{"writer", http.MethodGet, collectionPath, "", false},
		{"writer", http.MethodPost, collectionPath, create, true},
		{"reader", http.MethodPost, collectionPath, create, false},
		{"writer", http.MethodDelete, typePath, "", false},
		{"deleter", http.MethodDelete, typePath, "", true},
		{"plain", http.MethodPut, pagePath, "{}", true}, // update has no scopes of its own
		{"plain", http.MethodHead, pagePath, "", false},
	} {
		res := s.do(tc.method, tc.uri, tc.body, "Authorization: Bearer "+tc.token)
		if tc.ok {
			s.expectForwarded(res)
		} else if tc.method == http.MethodHead {
			if res.Status != http.StatusBadRequest || len(s.backend.Take()) != 0 {
				t.Errorf("HEAD with %s: %d", tc.token, res.Status)
			}
		} else {
			s.expectError(res, http.StatusBadRequest, "pce_access_denied")
		}
	}
}

// A form body's _method is an override, as PHP reads it: the gateway reads
// it on the resource's paths, with any set of operations owned.
func TestFormMethod(t *testing.T) {
	const form = "Content-Type: application/x-www-form-urlencoded"
	const multipartCT = "Content-Type: multipart/form-data; boundary=b"
	multipartBody := "--b\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nPUT\r\n--b--\r\n"
	v1 := newStack(t, "operations update")
	grantAll(v1)
	// A POST whose form says PUT is the update, owned.
	v1.expectError(v1.do(http.MethodPost, pagePath, "a=1&_method=PUT", form), http.StatusUnauthorized, "access_denied")
	v1.expectError(v1.do(http.MethodPost, pagePath, "%5Fmethod=put", form), http.StatusUnauthorized, "access_denied")
	v1.expectError(v1.do(http.MethodPost, pagePath, multipartBody, multipartCT), http.StatusUnauthorized, "access_denied")
	v1.expectError(v1.do(http.MethodPost, pagePath, "_method=PUT", form, "Authorization: Bearer "+goodToken), http.StatusBadRequest, "payload_invalid")
	// A form that disagrees with the query, or that cannot be read.
	v1.expectError(v1.do(http.MethodPost, pagePath+"?_method=GET", "_method=PUT", form, "Authorization: Bearer "+goodToken), http.StatusBadRequest, "request_invalid")
	v1.expectError(v1.do(http.MethodPost, pagePath, "--b\r\nbroken", multipartCT, "Authorization: Bearer "+goodToken), http.StatusBadRequest, "request_invalid")
	v1.expectError(v1.do(http.MethodPost, pagePath, "_method=GET&x="+strings.Repeat("a", 70000), form, "Authorization: Bearer "+goodToken), http.StatusRequestEntityTooLarge, "payload_too_large")
	// A form that names no owned operation passes through, body intact.
	res := v1.do(http.MethodPost, pagePath, "a=1&_method=GET", form)
	if got := v1.expectForwarded(res); got.Method != http.MethodPost || string(got.Body) != "a=1&_method=GET" {
		t.Errorf("form POST reached the backend as %s %q", got.Method, got.Body)
	}

	all := newStack(t, "")
	grantAll(all)
	got := all.expectForwarded(all.do(http.MethodPost, collectionPath, "_method=DELETE", form, "Authorization: Bearer "+goodToken))
	if got.Method != http.MethodDelete || len(got.Body) != 0 {
		t.Errorf("POST with a DELETE form reached the backend as %s %q", got.Method, got.Body)
	}
}

// The disguised paths, through Caddy: refused with the first
// faulty position's code, for every method and whatever operations says
// (a narrow set too: found by probing a build), never forwarded.
func TestDisguisedPathsRefused(t *testing.T) {
	for _, extra := range []string{"", "operations update", "operations list delete"} {
		s := newStack(t, extra)
		grantAll(s)
		auth := "Authorization: Bearer " + goodToken
		for _, tc := range []struct{ uri, code string }{
			{"/uapi/index.php/extensions/@me/0003*210/phoneCallEvents/0/x", "user_invalid"},
			{"/uapi.php/extensions/@me/0003*210/phoneCallEvents/0/x", "user_invalid"},
			{"/index.php/uapi/extensions/@me/0003*210/phoneCallEvents/0/x", "user_invalid"},
			{"/uapi/index.php?_url=/extensions/@me/0003*210/phoneCallEvents/0/x", "user_invalid"},
			{"/uapi/index.php?/extensions/@me/0003*210/phoneCallEvents/0/x", "user_invalid"},
			{"/uapi/extensions/@me/0003*210%252FphoneCallEvents%252F0%252Fx", "extension_invalid"},
			{"/uapi/extensions/@me/0003*210%C0%AFphoneCallEvents%C0%AF0%C0%AFx", "extension_invalid"},
			{"/uapi/extensions/@me/0003*210/phoneCallEvents%09/0/x", "pce_type_invalid"},
			{"/uapi/extensions/@me/0003*210/phoneCallEvents.json/0/x", "pce_type_invalid"},
			{"/uapi/extensions/@me/0003*210/phoneCallEvent%C5%BF/0/x", "pce_type_invalid"},
			{"/uapi/extens%C4%B1ons/@me/0003*210/phoneCallEvents/0/x", "user_invalid"},
		} {
			for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
				s.expectError(s.do(method, tc.uri, `{}`, auth), http.StatusBadRequest, tc.code)
				s.expectError(s.do(method, tc.uri, `{}`), http.StatusUnauthorized, "access_denied")
			}
		}
	}
}
