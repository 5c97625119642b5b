package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuf collects the standard logger's output for the whole test binary.
var logBuf = &syncBuffer{}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestMain(m *testing.M) {
	log.SetOutput(logBuf)
	os.Exit(m.Run())
}

var testClients = map[string]string{"gateway": "gateway-secret", "app": "app-secret"}

func post(t *testing.T, u string, form url.Values, id, secret string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(id, secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func decode(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("decoding answer: %v", err)
	}
	return m
}

func issue(t *testing.T, base string, form url.Values) string {
	t.Helper()
	resp := post(t, base+"/oauth/token", form, "app", "app-secret")
	if resp.StatusCode != 200 {
		t.Fatalf("token: status %d", resp.StatusCode)
	}
	m := decode(t, resp)
	tok, _ := m["access_token"].(string)
	return tok
}

func introspect(t *testing.T, base, tok string) map[string]any {
	t.Helper()
	resp := post(t, base+"/oauth/introspect", url.Values{"token": {tok}}, "gateway", "gateway-secret")
	if resp.StatusCode != 200 {
		t.Fatalf("introspect: status %d", resp.StatusCode)
	}
	return decode(t, resp)
}

func TestIDPLifecycle(t *testing.T) {
	srv := httptest.NewServer(newIDP(testClients))
	defer srv.Close()

	resp := post(t, srv.URL+"/oauth/token", url.Values{
		"grant_type": {"client_credentials"}, "scope": {"uapi uapi.admin"}, "sub": {"42"}, "expires_in": {"120"},
	}, "app", "app-secret")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("token: %d %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	m := decode(t, resp)
	tok, _ := m["access_token"].(string)
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`).MatchString(tok) {
		t.Fatalf("token %q is not 32 bytes base64url", tok)
	}
	if m["token_type"] != "Bearer" || m["expires_in"] != 120.0 || m["scope"] != "uapi uapi.admin" {
		t.Errorf("token answer %v", m)
	}

	before := time.Now().Unix()
	in := introspect(t, srv.URL, tok)
	if in["active"] != true || in["sub"] != "42" || in["scope"] != "uapi uapi.admin" ||
		in["client_id"] != "app" || in["token_type"] != "Bearer" {
		t.Errorf("introspect %v", in)
	}
	if exp, _ := in["exp"].(float64); int64(exp) < before+119 || int64(exp) > before+122 {
		t.Errorf("exp %v", in["exp"])
	}
	if _, ok := in["iat"].(float64); !ok {
		t.Errorf("iat %v", in["iat"])
	}

	if r := post(t, srv.URL+"/oauth/revoke", url.Values{"token": {tok}}, "app", "app-secret"); r.StatusCode != 200 {
		t.Fatalf("revoke: %d", r.StatusCode)
	}
	if in := introspect(t, srv.URL, tok); len(in) != 1 || in["active"] != false {
		t.Errorf("after revoke: %v", in)
	}
	if in := introspect(t, srv.URL, "unknown"); len(in) != 1 || in["active"] != false {
		t.Errorf("unknown: %v", in)
	}

	if strings.Contains(logBuf.String(), tok) || strings.Contains(logBuf.String(), "secret") {
		t.Errorf("log leaks a token or secret:\n%s", logBuf.String())
	}
}

func TestIDPDefaultsAndGrants(t *testing.T) {
	srv := httptest.NewServer(newIDP(testClients))
	defer srv.Close()

	// Client auth by form fields, defaults.
	resp := post(t, srv.URL+"/oauth/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {"app"}, "client_secret": {"app-secret"},
	}, "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("form auth: %d", resp.StatusCode)
	}
	m := decode(t, resp)
	if m["scope"] != "uapi" || m["expires_in"] != 3600.0 {
		t.Errorf("defaults %v", m)
	}
	if in := introspect(t, srv.URL, m["access_token"].(string)); in["sub"] != "1001" {
		t.Errorf("default sub %v", in["sub"])
	}

	// Password grant: the username is the sub.
	tok := issue(t, srv.URL, url.Values{"grant_type": {"password"}, "username": {"2002"}, "password": {"x"}})
	if in := introspect(t, srv.URL, tok); in["sub"] != "2002" || in["active"] != true {
		t.Errorf("password grant %v", in)
	}

	for _, tc := range []struct {
		form url.Values
		want int
		code string
	}{
		{url.Values{"grant_type": {"authorization_code"}}, 400, "unsupported_grant_type"},
		{url.Values{}, 400, "invalid_request"},
		{url.Values{"grant_type": {"password"}}, 400, "invalid_request"},
		{url.Values{"grant_type": {"client_credentials"}, "expires_in": {"-1"}}, 400, "invalid_request"},
	} {
		r := post(t, srv.URL+"/oauth/token", tc.form, "app", "app-secret")
		if r.StatusCode != tc.want || decode(t, r)["error"] != tc.code {
			t.Errorf("%v: status %d", tc.form, r.StatusCode)
		}
	}
}

func TestIDPExpiry(t *testing.T) {
	p := &idp{clients: testClients, tokens: map[string]*issued{}, now: time.Now}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/oauth/token":
			p.token(w, r)
		default:
			p.introspect(w, r)
		}
	}))
	defer srv.Close()
	tok := issue(t, srv.URL, url.Values{"grant_type": {"client_credentials"}, "expires_in": {"60"}})
	p.mu.Lock()
	p.now = func() time.Time { return time.Now().Add(61 * time.Second) }
	p.mu.Unlock()
	if in := introspect(t, srv.URL, tok); in["active"] != false {
		t.Errorf("expired token: %v", in)
	}
}

func TestIDPClientAuth(t *testing.T) {
	srv := httptest.NewServer(newIDP(testClients))
	defer srv.Close()
	tok := issue(t, srv.URL, url.Values{"grant_type": {"client_credentials"}})

	for _, tc := range []struct{ path, id, secret string }{
		{"/oauth/introspect", "gateway", "wrong"},
		{"/oauth/introspect", "nobody", "gateway-secret"},
		{"/oauth/introspect", "", ""},
		{"/oauth/token", "app", "wrong"},
		{"/oauth/revoke", "app", "wrong"},
	} {
		form := url.Values{"token": {tok}, "grant_type": {"client_credentials"}}
		r := post(t, srv.URL+tc.path, form, tc.id, tc.secret)
		if r.StatusCode != 401 || r.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s as %q/%q: status %d", tc.path, tc.id, tc.secret, r.StatusCode)
			continue
		}
		if m := decode(t, r); m["error"] != "invalid_client" {
			t.Errorf("%s: error %v", tc.path, m)
		}
	}
	// Introspection requires Basic: form credentials are not enough.
	r := post(t, srv.URL+"/oauth/introspect", url.Values{
		"token": {tok}, "client_id": {"gateway"}, "client_secret": {"gateway-secret"},
	}, "", "")
	if r.StatusCode != 401 {
		t.Errorf("introspect with form credentials: %d", r.StatusCode)
	}
	// Basic with RFC 6749 form-url-encoding of special characters.
	special := map[string]string{"g w": "s+e%c:r"}
	srv2 := httptest.NewServer(newIDP(special))
	defer srv2.Close()
	r = post(t, srv2.URL+"/oauth/token", url.Values{"grant_type": {"client_credentials"}},
		url.QueryEscape("g w"), url.QueryEscape("s+e%c:r"))
	if r.StatusCode != 200 {
		t.Errorf("encoded basic credentials: %d", r.StatusCode)
	}
}

func TestBackendPageExample(t *testing.T) {
	srv := httptest.NewServer(newBackend())
	defer srv.Close()
	body := `{"method": "1", "note": "I want to use POST for my event"}`
	req, _ := http.NewRequest(http.MethodPut,
		srv.URL+"/uapi/extensions/@me/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq",
		strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer should-not-be-logged")
	req.Host = "uapi.voipnow.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	// All members, in the page's order.
	re := regexp.MustCompile(`^\{"type":"0","id":"NqeyDRqo4FtabmFj8gNWq3hsiGNYyq","method":"1",` +
		`"note":"I want to use POST for my event","url":"http://myevent.com/SaveMyPhoneCallDetails",` +
		`"status":"1","modified":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d)",` +
		`"links":\{"self":"https://uapi.voipnow.com/uapi/extensions/@me/0003\*210/phoneCallEvents/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"\}\}\n$`)
	m := re.FindSubmatch(raw)
	if m == nil {
		t.Fatalf("answer does not match the page:\n%s", raw)
	}
	if ts, err := time.Parse(time.RFC3339, string(m[1])); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("modified %s: %v", m[1], err)
	}
	if strings.Contains(logBuf.String(), "should-not-be-logged") {
		t.Error("the Authorization header was logged")
	}
	if !strings.Contains(logBuf.String(), "backend: PUT /uapi/extensions/@me/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq") {
		t.Errorf("request line not logged:\n%s", logBuf.String())
	}

	// GET returns the stored event.
	resp2, err := http.Get(srv.URL + "/uapi/extensions/@me/0003%2A210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	var ev phoneCallEvent
	if err := json.NewDecoder(resp2.Body).Decode(&ev); err != nil || resp2.StatusCode != 200 ||
		ev.Method != "1" || ev.Note != "I want to use POST for my event" || ev.Status != "1" {
		t.Errorf("GET: %d %+v %v", resp2.StatusCode, ev, err)
	}
}

func doJSON(t *testing.T, method, u, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("%s %s: not JSON: %v", method, u, err)
	}
	return resp.StatusCode, m
}

func errorCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	if msg, _ := e["message"].(string); msg == "" {
		return "no message"
	}
	return c
}

func TestBackendErrorsAndCreate(t *testing.T) {
	srv := httptest.NewServer(newBackend())
	defer srv.Close()
	base := srv.URL + "/uapi/extensions/1001/210/phoneCallEvents/1/abc123"

	if st, m := doJSON(t, http.MethodGet, base, ""); st != 404 || errorCode(m) != "pce_not_found" {
		t.Errorf("GET unknown: %d %v", st, m)
	}
	for _, u := range []string{srv.URL + "/", srv.URL + "/uapi/other", srv.URL + "/uapi/extensions/1/2/phoneCallEvents/0/abc/extra"} {
		if st, m := doJSON(t, http.MethodGet, u, ""); st != 404 || errorCode(m) != "not_found" {
			t.Errorf("GET %s: %d %v", u, st, m)
		}
	}
	if st, m := doJSON(t, http.MethodDelete, base, ""); st != 404 || errorCode(m) != "pce_not_found" {
		t.Errorf("DELETE: %d %v", st, m)
	}
	for body, code := range map[string]string{
		`[1]`:            "payload_invalid",
		`{`:              "payload_invalid",
		`{"type":"0"}`:   "pce_type_invalid",
		`{"id":"other"}`: "pce_id_invalid",
		`{"note":null}`:  "pce_note_invalid",
		`{"status":1}`:   "pce_status_invalid",
	} {
		if st, m := doJSON(t, http.MethodPut, base, body); st != 400 || errorCode(m) != code {
			t.Errorf("PUT %s: %d %v, want %s", body, st, m, code)
		}
	}

	// A new event gets the defaults; a trailing slash is accepted.
	st, m := doJSON(t, http.MethodPut, base+"/", `{"type":"1","id":"abc123","url":"https://hooks.example/x","unknown":5}`)
	if st != 200 || m["type"] != "1" || m["id"] != "abc123" || m["method"] != "0" || m["note"] != "" ||
		m["url"] != "https://hooks.example/x" || m["status"] != "1" {
		t.Errorf("create: %d %v", st, m)
	}
	if st, m := doJSON(t, http.MethodGet, base, ""); st != 200 || m["url"] != "https://hooks.example/x" {
		t.Errorf("GET created: %d %v", st, m)
	}
}

func TestHealthz(t *testing.T) {
	for name, h := range map[string]http.Handler{"backend": newBackend(), "idp": newIDP(testClients)} {
		srv := httptest.NewServer(h)
		resp, err := http.Get(srv.URL + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("%s healthz: %v %v", name, resp, err)
		}
		if resp != nil {
			resp.Body.Close()
		}
		srv.Close()
	}
}

func TestRunStartsAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-backend", "127.0.0.1:0", "-idp", "127.0.0.1:0"}, pw, io.Discard)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var urls []string
	for len(urls) < 2 && sc.Scan() {
		line := sc.Text()
		_, u, ok := strings.Cut(line, " listening on ")
		if !ok || !strings.HasPrefix(line, "pce-sim: ") {
			t.Fatalf("unexpected line %q", line)
		}
		urls = append(urls, u)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if len(urls) != 2 {
		t.Fatalf("listeners: %v", urls)
	}
	for _, u := range urls {
		resp, err := http.Get(u + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s/healthz: %v %v", u, resp, err)
		}
		resp.Body.Close()
	}
	// The default clients are known to the running IdP.
	r := post(t, urls[1]+"/oauth/token", url.Values{"grant_type": {"client_credentials"}}, "app", "app-secret")
	if r.StatusCode != 200 {
		t.Errorf("token from running idp: %d", r.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop")
	}
}

func TestRunFlags(t *testing.T) {
	ctx := context.Background()
	if err := run(ctx, []string{"-backend", "", "-idp", ""}, io.Discard, io.Discard); err == nil {
		t.Error("both disabled: no error")
	}
	if err := run(ctx, []string{"-clients", "nocolon"}, io.Discard, io.Discard); err == nil {
		t.Error("bad -clients: no error")
	}
	if c, err := parseClients("gateway:gateway-secret, app:app:secret"); err != nil ||
		c["gateway"] != "gateway-secret" || c["app"] != "app:secret" {
		t.Errorf("parseClients: %v %v", c, err)
	}
}
