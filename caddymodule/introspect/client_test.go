package introspect

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testID     = "gate way:1/é+%"
	testSecret = "s3cr&t=:+ /%é"
	testToken  = "tok+en/with=special&chars~ü"
)

// seen is what the test server observed about one request.
type seen struct {
	method, path, contentType, accept string
	rawAuth                           string
	id, secret                        string
	basicOK                           bool
	form                              url.Values
}

// newServer starts a loopback server answering status and body, and
// records each request.
func newServer(t *testing.T, status int, body string) (*httptest.Server, func() seen) {
	t.Helper()
	var mu sync.Mutex
	var last seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s seen
		s.method, s.path = r.Method, r.URL.Path
		s.contentType, s.accept = r.Header.Get("Content-Type"), r.Header.Get("Accept")
		s.rawAuth = r.Header.Get("Authorization")
		s.id, s.secret, s.basicOK = r.BasicAuth()
		_ = r.ParseForm()
		s.form = r.PostForm
		mu.Lock()
		last = s
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, func() seen { mu.Lock(); defer mu.Unlock(); return last }
}

func newTestClient(t *testing.T, endpoint string, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{Endpoint: endpoint, ClientID: testID, ClientSecret: testSecret}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestRequestShape(t *testing.T) {
	srv, last := newServer(t, 200, `{"active":true}`)
	c := newTestClient(t, srv.URL+"/oauth/introspect", nil)
	if _, err := c.Introspect(context.Background(), testToken); err != nil {
		t.Fatal(err)
	}
	s := last()
	if s.method != http.MethodPost || s.path != "/oauth/introspect" {
		t.Errorf("request %s %s", s.method, s.path)
	}
	if s.contentType != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type %q", s.contentType)
	}
	if s.accept != "application/json" {
		t.Errorf("Accept %q", s.accept)
	}
	if !s.basicOK {
		t.Fatalf("no basic auth: %q", s.rawAuth)
	}
	// RFC 6749 §2.3.1: each part form-url-encoded before Basic.
	wantRaw := "Basic " + base64.StdEncoding.EncodeToString(
		[]byte(url.QueryEscape(testID)+":"+url.QueryEscape(testSecret)))
	if s.rawAuth != wantRaw {
		t.Errorf("Authorization %q, want %q", s.rawAuth, wantRaw)
	}
	id, err1 := url.QueryUnescape(s.id)
	secret, err2 := url.QueryUnescape(s.secret)
	if err1 != nil || err2 != nil || id != testID || secret != testSecret {
		t.Errorf("decoded credentials %q %q (%v %v)", id, secret, err1, err2)
	}
	if got := s.form.Get("token"); got != testToken {
		t.Errorf("form token %q", got)
	}
	if got := s.form.Get("token_type_hint"); got != "access_token" {
		t.Errorf("token_type_hint %q", got)
	}
}

func TestAnswers(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		userClaim string
		want      Claims
	}{
		{"inactive", `{"active":false,"sub":"x","scope":"uapi"}`, "", Claims{}},
		{"inactive only", `{"active":false}`, "", Claims{}},
		{"active minimal", `{"active":true}`, "", Claims{Active: true}},
		{"full", `{"active":true,"exp":1900000000,"nbf":1600000000,"scope":"uapi  uapi.admin","sub":"1001","client_id":"app","extra":{"a":[1,2,{"b":null}]}}`, "",
			Claims{Active: true, Exp: 1900000000, Nbf: 1600000000, Scopes: []string{"uapi", "uapi.admin"}, User: "1001"}},
		{"float exp truncated", `{"active":true,"exp":1900000000.9,"nbf":1.6e9}`, "", Claims{Active: true, Exp: 1900000000, Nbf: 1600000000}},
		{"scope array", `{"active":true,"scope":["uapi","uapi.admin"]}`, "", Claims{Active: true, Scopes: []string{"uapi", "uapi.admin"}}},
		{"scope empty", `{"active":true,"scope":""}`, "", Claims{Active: true}},
		{"numeric sub", `{"active":true,"sub":1001}`, "", Claims{Active: true, User: "1001"}},
		{"big numeric sub", `{"active":true,"sub":123456789012345678901234567890}`, "", Claims{Active: true, User: "123456789012345678901234567890"}},
		{"exponent sub", `{"active":true,"sub":1.001e3}`, "", Claims{Active: true, User: "1001"}},
		{"fraction sub", `{"active":true,"sub":12e-1}`, "", Claims{Active: true, User: "1.2"}},
		{"null sub", `{"active":true,"sub":null}`, "", Claims{Active: true}},
		{"custom claim", `{"active":true,"sub":"abc","uid":"42"}`, "uid", Claims{Active: true, User: "42"}},
		{"custom numeric claim", `{"active":true,"sub":"abc","user_id":7}`, "user_id", Claims{Active: true, User: "7"}},
		{"custom claim absent", `{"active":true,"sub":"abc"}`, "uid", Claims{Active: true}},
		{"refresh token_type", `{"active":true,"token_type":"Refresh_Token","sub":"1"}`, "", Claims{}},
		{"refresh token_use", `{"active":true,"token_use":"refresh_token","sub":"1"}`, "", Claims{}},
		{"access token_type", `{"active":true,"token_type":"Bearer","sub":"1"}`, "", Claims{Active: true, User: "1"}},
		{"exp zero is expired", `{"active":true,"exp":0}`, "", Claims{}},
		{"exp null is absent", `{"active":true,"exp":null}`, "", Claims{Active: true}},
		{"duplicate keeps last", `{"active":false,"active":true}`, "", Claims{Active: true}},
		// A user claim of another type is "no user", said once, never 503.
		{"sub object", `{"active":true,"sub":{"id":1}}`, "", Claims{Active: true, UserIgnored: true}},
		{"sub bool", `{"active":true,"sub":true}`, "", Claims{Active: true, UserIgnored: true}},
		{"sub huge exponent", `{"active":true,"sub":1e999999999}`, "", Claims{Active: true, UserIgnored: true}},
		{"claim ext object", `{"active":true,"ext":{"uid":42}}`, "ext", Claims{Active: true, UserIgnored: true}},
		// A dotted claim is a path into nested objects (Ory Hydra's ext).
		{"ext.uid", `{"active":true,"sub":"abc","ext":{"uid":42}}`, "ext.uid", Claims{Active: true, User: "42"}},
		{"ext.uid string", `{"active":true,"ext":{"uid":"0042","x":1}}`, "ext.uid", Claims{Active: true, User: "0042"}},
		{"ext.a.b", `{"active":true,"ext":{"a":{"b":"7"}}}`, "ext.a.b", Claims{Active: true, User: "7"}},
		{"ext.uid missing", `{"active":true,"ext":{"id":42}}`, "ext.uid", Claims{Active: true}},
		{"ext not object", `{"active":true,"ext":"42"}`, "ext.uid", Claims{Active: true}},
		{"ext.uid object", `{"active":true,"ext":{"uid":{"n":1}}}`, "ext.uid", Claims{Active: true, UserIgnored: true}},
		{"exact dotted name wins", `{"active":true,"ext.uid":"9","ext":{"uid":42}}`, "ext.uid", Claims{Active: true, User: "9"}},
		{"exact dotted name after", `{"active":true,"ext":{"uid":42},"ext.uid":"9"}`, "ext.uid", Claims{Active: true, User: "9"}},
		// aud, iss, iat.
		{"aud string", `{"active":true,"aud":"https://uapi.example","iss":"https://idp.example","iat":1600000000}`, "",
			Claims{Active: true, Aud: []string{"https://uapi.example"}, Iss: "https://idp.example", Iat: 1600000000}},
		{"aud array", `{"active":true,"aud":["a","b"]}`, "", Claims{Active: true, Aud: []string{"a", "b"}}},
		{"aud number", `{"active":true,"aud":5,"iss":7}`, "", Claims{Active: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newServer(t, 200, tt.body)
			c := newTestClient(t, srv.URL, func(c *Config) { c.UserClaim = tt.userClaim })
			got, err := c.Introspect(context.Background(), testToken)
			if err != nil {
				t.Fatalf("Introspect: %v", err)
			}
			if got.Active != tt.want.Active || got.Exp != tt.want.Exp || got.Nbf != tt.want.Nbf ||
				got.User != tt.want.User || !slices.Equal(got.Scopes, tt.want.Scopes) || got.Iat != tt.want.Iat ||
				!slices.Equal(got.Aud, tt.want.Aud) || got.Iss != tt.want.Iss || got.UserIgnored != tt.want.UserIgnored ||
				got.UserMissing != (tt.want.Active && tt.want.User == "" && !tt.want.UserIgnored) {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

// checkUnavailable asserts err wraps ErrUnavailable and leaks nothing.
func checkUnavailable(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	msg := err.Error()
	for _, secret := range []string{testToken, url.QueryEscape(testToken), testSecret, url.QueryEscape(testSecret)} {
		if strings.Contains(msg, secret) {
			t.Fatalf("error %q leaks %q", msg, secret)
		}
	}
}

func TestMalformedAndFailures(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"500", 500, `{"active":true}`},
		{"503", 503, ``},
		{"401", 401, `{"error":"invalid_client"}`},
		{"400", 400, `{"error":"invalid_request"}`},
		{"302", 302, ``},
		{"garbage", 200, `<html>` + testToken + `</html>`},
		{"empty", 200, ``},
		{"array", 200, `[{"active":true}]`},
		{"truncated", 200, `{"active":true`},
		{"trailing data", 200, `{"active":true} {}`},
		{"no active", 200, `{"sub":"1"}`},
		{"active string", 200, `{"active":"true"}`},
		{"active number", 200, `{"active":1}`},
		{"active null", 200, `{"active":null}`},
		{"exp string", 200, `{"active":true,"exp":"1900000000"}`},
		{"exp huge", 200, `{"active":true,"exp":1e300}`},
		{"nbf bool", 200, `{"active":true,"nbf":true}`},
		{"scope number", 200, `{"active":true,"scope":5}`},
		{"scope mixed array", 200, `{"active":true,"scope":["a",1]}`},
		{"iat string", 200, `{"active":true,"iat":"now"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newServer(t, tt.status, tt.body)
			c := newTestClient(t, srv.URL, nil)
			got, err := c.Introspect(context.Background(), testToken)
			if got != nil {
				t.Errorf("claims %+v with error", *got)
			}
			checkUnavailable(t, err)
			// A 4xx is the endpoint refusing the gateway: a configuration
			// fault, told apart from an outage.
			if refused := tt.status >= 400 && tt.status < 500; errors.Is(err, ErrRefused) != refused {
				t.Errorf("errors.Is(err, ErrRefused) = %v for status %d", !refused, tt.status)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	body := `{"active":true,"pad":"` + strings.Repeat("x", maxBody) + `"}`
	srv, _ := newServer(t, 200, body)
	c := newTestClient(t, srv.URL, nil)
	_, err := c.Introspect(context.Background(), testToken)
	checkUnavailable(t, err)
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release) // runs before srv.Close: unblock the handler
	c := newTestClient(t, srv.URL, func(c *Config) { c.Timeout = 100 * time.Millisecond })
	start := time.Now()
	_, err := c.Introspect(context.Background(), testToken)
	checkUnavailable(t, err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want it to wrap context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestCallerContextCanceled(t *testing.T) {
	srv, _ := newServer(t, 200, `{"active":true}`)
	c := newTestClient(t, srv.URL, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Introspect(ctx, testToken)
	checkUnavailable(t, err)
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	c := newTestClient(t, "http://"+addr+"/introspect", nil)
	_, err = c.Introspect(context.Background(), testToken)
	checkUnavailable(t, err)
}

func TestEmptyTokenIsInactiveWithoutCall(t *testing.T) {
	var called atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called.Store(true) }))
	defer srv.Close()
	c := newTestClient(t, srv.URL, nil)
	got, err := c.Introspect(context.Background(), "")
	if err != nil || got == nil || got.Active || called.Load() {
		t.Fatalf("got %+v, %v, called %v", got, err, called.Load())
	}
}

func TestConnectionReuse(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]bool{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		_, _ = io.WriteString(w, `{"active":true}`)
	}))
	srv.Start()
	defer srv.Close()
	c := newTestClient(t, srv.URL, nil)
	for range 5 {
		if _, err := c.Introspect(context.Background(), testToken); err != nil {
			t.Fatal(err)
		}
	}
	if len(conns) != 1 {
		t.Errorf("%d connections for 5 sequential calls", len(conns))
	}
}

func TestNewClientValidation(t *testing.T) {
	bad := []Config{
		{Endpoint: "", ClientID: "a"},
		{Endpoint: "/oauth/introspect", ClientID: "a"},
		{Endpoint: "ftp://idp/introspect", ClientID: "a"},
		{Endpoint: "http:///introspect", ClientID: "a"},
		{Endpoint: "http://u:p@idp/introspect", ClientID: "a"},
		{Endpoint: "http://idp/introspect#x", ClientID: "a"},
		{Endpoint: "http://idp/introspect", ClientID: ""},
		{Endpoint: "http://[::1/introspect", ClientID: "a"},
	}
	for _, cfg := range bad {
		if _, err := NewClient(cfg); err == nil {
			t.Errorf("NewClient(%+v): no error", cfg)
		} else if strings.Contains(err.Error(), "p@") {
			t.Errorf("error leaks user info: %v", err)
		}
	}
	c, err := NewClient(Config{Endpoint: "https://idp.example/oauth/introspect", ClientID: "gw"})
	if err != nil {
		t.Fatal(err)
	}
	if c.userClaim != DefaultUserClaim || c.timeout != DefaultTimeout {
		t.Errorf("defaults: %q %v", c.userClaim, c.timeout)
	}
}

func TestPlainDecimal(t *testing.T) {
	for in, want := range map[string]string{
		"0": "0", "-0": "0", "1001": "1001", "-12": "-12", "1.5": "1.5", "1.50": "1.5",
		"1e3": "1000", "1.001e3": "1001", "12e-1": "1.2", "5E-3": "0.005", "0.000": "0",
		"1.0E+2": "100",
	} {
		got, err := plainDecimal(in)
		if err != nil || got != want {
			t.Errorf("plainDecimal(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// ValidFor: exp without leeway, nbf and iat with it, aud and iss when set.
func TestValidFor(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k := &Checks{Leeway: 5 * time.Second, Audiences: []string{"https://uapi.example"}, Issuers: []string{"https://idp.example"}}
	good := Claims{Active: true, Exp: now.Unix() + 60, Aud: []string{"other", "https://uapi.example"}, Iss: "https://idp.example"}
	for _, tc := range []struct {
		name   string
		change func(*Claims)
		want   bool
	}{
		{"good", func(*Claims) {}, true},
		{"inactive", func(c *Claims) { c.Active = false }, false},
		{"exp now", func(c *Claims) { c.Exp = now.Unix() }, false},
		{"exp in 1s", func(c *Claims) { c.Exp = now.Unix() + 1 }, true},
		{"nbf within leeway", func(c *Claims) { c.Nbf = now.Unix() + 5 }, true},
		{"nbf beyond leeway", func(c *Claims) { c.Nbf = now.Unix() + 6 }, false},
		{"iat within leeway", func(c *Claims) { c.Iat = now.Unix() + 2 }, true},
		{"iat beyond leeway", func(c *Claims) { c.Iat = now.Unix() + 60 }, false},
		{"other audience", func(c *Claims) { c.Aud = []string{"https://billing.example"} }, false},
		{"no audience", func(c *Claims) { c.Aud = nil }, false},
		{"other issuer", func(c *Claims) { c.Iss = "https://evil.example" }, false},
		{"no issuer", func(c *Claims) { c.Iss = "" }, false},
	} {
		c := good
		tc.change(&c)
		if got := c.ValidFor(now, k); got != tc.want {
			t.Errorf("%s: ValidFor = %v, want %v", tc.name, got, tc.want)
		}
	}
	// Without audiences and issuers, and without leeway, as before.
	c := Claims{Active: true, Nbf: now.Unix() + 1, Aud: []string{"x"}}
	if c.ValidFor(now, nil) || !c.ValidFor(now, &Checks{Leeway: time.Second}) {
		t.Error("nbf one second ahead: refused without leeway, accepted with 1s")
	}
}
