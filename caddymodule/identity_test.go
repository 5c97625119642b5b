package caddymodule

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/testservers"
)

// audiences, issuers, leeway and a dotted user_claim, through Caddy, with
// canned introspection answers shaped as Ory Hydra sends them.
func TestIdentityChecks(t *testing.T) {
	s := newStack(t, "audiences https://uapi.example\n\t\tissuers https://idp.example\n\t\tuser_claim ext.uid")
	now := time.Now().Unix()
	answer := func(change func(map[string]any)) map[string]any {
		a := map[string]any{"active": true, "scope": "uapi", "sub": "app", "exp": now + 3600, "iat": now, "nbf": now,
			"aud": []string{"https://uapi.example"}, "iss": "https://idp.example", "ext": map[string]any{"uid": 42}}
		change(a)
		return a
	}
	s.idp.Set("good", answer(func(map[string]any) {}))
	s.idp.Set("aud-string", answer(func(a map[string]any) { a["aud"] = "https://uapi.example" }))
	s.idp.Set("aud-other", answer(func(a map[string]any) { a["aud"] = []string{"https://billing.example"} }))
	s.idp.Set("aud-none", answer(func(a map[string]any) { delete(a, "aud") }))
	s.idp.Set("iss-other", answer(func(a map[string]any) { a["iss"] = "https://evil.example" }))
	s.idp.Set("nbf-ahead-3s", answer(func(a map[string]any) { a["nbf"], a["iat"] = now+3, now+3 }))
	s.idp.Set("nbf-ahead-60s", answer(func(a map[string]any) { a["nbf"] = now + 60 }))
	s.idp.Set("iat-ahead-60s", answer(func(a map[string]any) { a["iat"] = now + 60 }))
	s.idp.Set("uid-object", answer(func(a map[string]any) { a["ext"] = map[string]any{"uid": map[string]any{"n": 42}} }))
	s.idp.Set("uid-string", answer(func(a map[string]any) { a["ext"] = map[string]any{"uid": "0042"} }))
	numeric := "/uapi/extensions/42/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"
	for _, tok := range []string{"good", "aud-string", "nbf-ahead-3s", "uid-string"} {
		s.expectForwarded(s.put(numeric, tok, `{}`))
	}
	for _, tok := range []string{"aud-other", "aud-none", "iss-other", "nbf-ahead-60s", "iat-ahead-60s"} {
		res := s.put(pagePath, tok, `{}`)
		s.expectError(res, http.StatusUnauthorized, "access_denied")
		if res.Header.Get("WWW-Authenticate") != challengeInvalidToken {
			t.Errorf("%s: WWW-Authenticate %q", tok, res.Header.Get("WWW-Authenticate"))
		}
	}
	// A user claim of another type: no user, never a 503. @me is the
	// token's own; a numeric userId is someone else's.
	s.expectForwarded(s.put(pagePath, "uid-object", `{}`))
	s.expectError(s.put(numeric, "uid-object", `{}`), http.StatusBadRequest, "pce_access_denied")
	// ext.uid 42 is not user 43.
	s.expectError(s.put("/uapi/extensions/43/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq", "good", `{}`), http.StatusBadRequest, "pce_access_denied")
}

// Without audiences or issuers, aud and iss are not looked at; leeway 0s
// turns the leeway off.
func TestIdentityDefaults(t *testing.T) {
	s := newStack(t, "leeway 0s")
	now := time.Now().Unix()
	s.idp.Set("billing", map[string]any{"active": true, "scope": "uapi", "sub": "1", "exp": now + 3600, "aud": "https://billing.example"})
	s.idp.Set("ahead", map[string]any{"active": true, "scope": "uapi", "sub": "1", "exp": now + 3600, "nbf": now + 2})
	s.expectForwarded(s.put(pagePath, "billing", `{}`))
	s.expectError(s.put(pagePath, "ahead", `{}`), http.StatusUnauthorized, "access_denied")
}

// The endpoint answering 429 with Retry-After: the gateway's 503 carries
// that delay; without one, the default.
func TestIntrospectionBusy(t *testing.T) {
	s := newStack(t, "")
	grantAll(s)
	s.idp.Mode.Store(testservers.Busy)
	res := s.put(pagePath, goodToken, `{}`)
	s.expectError(res, http.StatusServiceUnavailable, "service_unavailable")
	if got := res.Header.Get("Retry-After"); got != "17" {
		t.Errorf("Retry-After %q, want the endpoint's 17", got)
	}
	s.idp.Mode.Store(testservers.Fail)
	res = s.put(pagePath, userToken, `{}`)
	s.expectError(res, http.StatusServiceUnavailable, "service_unavailable")
	if got := res.Header.Get("Retry-After"); got != defaultRetryAfter {
		t.Errorf("Retry-After %q, want the default %s", got, defaultRetryAfter)
	}
}

// introspection_tls and client_auth through Caddy: a private CA, a client
// certificate the endpoint requires, the secret in the form.
func TestIntrospectionTLSThroughCaddy(t *testing.T) {
	ca := testservers.NewCA(t, "idp-ca")
	server, client := ca.Issue(t, "idp"), ca.Issue(t, "gateway")
	dir := t.TempDir()
	caFile := testservers.WriteFile(t, dir, "ca.pem", ca.PEM)
	certFile := testservers.WriteFile(t, dir, "gw.pem", client.CertPEM)
	// Not *.key or *.crt: caddytest rewrites such paths in a config.
	keyFile := testservers.WriteFile(t, dir, "gw-key.pem", client.KeyPEM)
	idp := testservers.NewTLSIdP(t, server.TLS, ca.Pool())
	idp.Grant(goodToken, "uapi", "1001")
	backend := testservers.NewBackend(t)
	for _, auth := range []string{"client_secret_basic", "client_secret_post"} {
		port := freePort(t)
		s := &stack{t: t, idp: idp, backend: backend, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
		s.tester = newTesterFor(t, gatewayConfig(port, idp.URL(), backend.Addr,
			"client_auth "+auth+"\n\t\tintrospection_tls {\n\t\t\tca "+caFile+"\n\t\t\tclient_cert "+certFile+" "+keyFile+"\n\t\t}"))
		s.expectForwarded(s.put(pagePath, goodToken, `{}`))
	}
	// Without the client certificate the endpoint refuses the handshake:
	// no answer, 503.
	port := freePort(t)
	s := &stack{t: t, idp: idp, backend: backend, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	s.tester = newTesterFor(t, gatewayConfig(port, idp.URL(), backend.Addr, "introspection_tls {\n\t\t\tca "+caFile+"\n\t\t}"))
	s.expectError(s.put(pagePath, userToken, `{}`), http.StatusServiceUnavailable, "service_unavailable")

	// The files are read at load; a wrong one is refused, naming the subdirective.
	notPEM := testservers.WriteFile(t, dir, "junk.pem", []byte("not a certificate"))
	for _, tc := range []struct{ block, want string }{
		{"introspection_tls {\n\t\t\tca " + filepath.Join(dir, "missing.pem") + "\n\t\t}", "introspection_tls: ca:"},
		{"introspection_tls {\n\t\t\tca " + notPEM + "\n\t\t}", "introspection_tls: ca: no PEM certificate"},
		{"introspection_tls {\n\t\t\tclient_cert " + certFile + " " + caFile + "\n\t\t}", "introspection_tls: client_cert:"},
		{"client_auth private_key_jwt", "client_auth"},
	} {
		caddytest.AssertLoadError(t, gatewayConfig(freePort(t), idp.URL(), backend.Addr, tc.block), "caddyfile", tc.want)
	}
	caddytest.AssertLoadError(t, gatewayConfig(freePort(t), "http://127.0.0.1:1/introspect", backend.Addr,
		"introspection_tls {\n\t\t\tca "+caFile+"\n\t\t}"), "caddyfile", "introspection_tls: needs an https introspection_url")
}

// shieldConfig is a gateway that takes the client address from
// X-Forwarded-For (loopback is a trusted proxy), so that one test can
// speak from many addresses.
func shieldStack(t *testing.T, extra string) *stack {
	t.Helper()
	s := &stack{t: t, idp: testservers.NewIdP(t), backend: testservers.NewBackend(t)}
	port := freePort(t)
	s.base = fmt.Sprintf("http://127.0.0.1:%d", port)
	global := fmt.Sprintf("{\n\tadmin %s\n\tauto_https off\n\tgrace_period 1ns\n\tservers {\n\t\ttrusted_proxies static 127.0.0.0/8\n\t\tclient_ip_headers X-Forwarded-For\n\t}\n}\n", adminAddr)
	site := siteBlock(port, s.idp.URL(), s.backend.Addr, "required_scopes uapi\n\t\t"+extra)
	// Calls that hold their slot far longer than a waiter waits for one.
	site = strings.Replace(site, "introspection_timeout 300ms", "introspection_timeout 3s", 1)
	s.tester = newTesterFor(t, global+site)
	return s
}

// A flood of random tokens from one address reaches the endpoint at most
// miss_budget times and gets 429s with Retry-After; that address's cached
// token, and every other address, still get through; hits (negative ones
// too) never spend the budget.
func TestMissBudget(t *testing.T) {
	s := shieldStack(t, "miss_budget 5 1m")
	s.idp.Grant(goodToken, "uapi", "1001")
	s.idp.Grant(userToken, "uapi", "42")
	flooder, other := "X-Forwarded-For: 203.0.113.7", "X-Forwarded-For: 198.51.100.9"
	s.expectForwarded(s.put(pagePath, goodToken, `{}`, flooder)) // cached: 1 of 5 spent
	s.expectError(s.put(pagePath, "garbage-0", `{}`, flooder), http.StatusUnauthorized, "access_denied")
	for range 10 { // a negative hit, again and again: free
		s.expectError(s.put(pagePath, "garbage-0", `{}`, flooder), http.StatusUnauthorized, "access_denied")
	}
	calls := s.idp.Calls.Load()
	var limited int
	for i := 1; i <= 40; i++ {
		res := s.put(pagePath, fmt.Sprintf("garbage-%d", i), `{}`, flooder)
		switch res.Status {
		case http.StatusTooManyRequests:
			s.expectError(res, http.StatusTooManyRequests, "too_many_requests")
			if ra := res.Header.Get("Retry-After"); ra == "" || ra == "0" {
				t.Errorf("429 with Retry-After %q", ra)
			}
			limited++
		case http.StatusUnauthorized:
			s.expectError(res, http.StatusUnauthorized, "access_denied")
		default:
			t.Errorf("garbage token: %d %s", res.Status, res.Body)
		}
	}
	if n := s.idp.Calls.Load() - calls; n != 3 || limited != 37 {
		t.Errorf("the flood made %d introspection calls (want the 3 left of 5) and got %d 429s (want 37)", n, limited)
	}
	// The flooder's cached token still works; another address is untouched.
	for range 5 {
		s.expectForwarded(s.put(pagePath, goodToken, `{}`, flooder))
	}
	s.expectForwarded(s.put(pagePath, userToken, `{}`, other))
	// IPv6 addresses share one budget per /64.
	v6 := "X-Forwarded-For: 2001:db8:1:2::1"
	for i := range 5 {
		s.expectError(s.put(pagePath, fmt.Sprintf("v6-%d", i), `{}`, v6), http.StatusUnauthorized, "access_denied")
	}
	s.expectError(s.put(pagePath, "v6-other-host", `{}`, "X-Forwarded-For: 2001:db8:1:2::ffff"), http.StatusTooManyRequests, "too_many_requests")
}

// miss_budget off: no 429, however many new tokens.
func TestMissBudgetOff(t *testing.T) {
	s := shieldStack(t, "miss_budget off")
	for i := range 80 {
		s.expectError(s.put(pagePath, fmt.Sprintf("garbage-%d", i), `{}`, "X-Forwarded-For: 203.0.113.7"), http.StatusUnauthorized, "access_denied")
	}
	if n := s.idp.Calls.Load(); n != 80 {
		t.Errorf("%d introspection calls, want 80", n)
	}
}

// max_introspections: with the endpoint hanging, no more than that many
// calls are in flight; the others get 503 after a brief wait (250ms, while
// the calls in flight hold their slots for the 3s timeout).
func TestMaxIntrospections(t *testing.T) {
	s := shieldStack(t, "max_introspections 2\n\t\tmiss_budget off")
	s.idp.Mode.Store(testservers.Hang)
	var wg sync.WaitGroup
	codes := make(chan int, 6)
	for i := range 6 {
		wg.Go(func() {
			res := s.put(pagePath, fmt.Sprintf("new-%d", i), `{}`)
			codes <- res.Status
		})
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusServiceUnavailable {
			t.Errorf("status %d, want 503", c)
		}
	}
	if n := s.idp.Calls.Load(); n != 2 {
		t.Errorf("%d introspection calls reached the hanging endpoint, want max_introspections 2", n)
	}
}
