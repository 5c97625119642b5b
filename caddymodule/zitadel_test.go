package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/testservers"
)

// opToken asks the OP for a client_credentials token.
func opToken(t *testing.T, o *testservers.OP, id, secret, scope string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	req, _ := http.NewRequest(http.MethodPost, o.TokenURL(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token from the OP: %d %v", res.StatusCode, err)
	}
	return tok.AccessToken
}

// opRevoke revokes a token at the OP (RFC 7009).
func opRevoke(t *testing.T, o *testservers.OP, id, secret, token string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, o.RevocationURL(), strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("revocation at the OP: %d", res.StatusCode)
	}
}

// Interop with a real OAuth 2.0 server (zitadel's op package): client
// authentication, aud, iss, ext.uid, scopes, expiry and revocation at the
// provider. (Its client_credentials grant issues no refresh token; refresh
// tokens are covered by canned answers in introspect.)
func TestZitadelInterop(t *testing.T) {
	o := testservers.NewOP(t,
		testservers.OPClient{ID: "gateway", Secret: "gw-secret"},
		testservers.OPClient{ID: "gateway-post", Secret: "gw-post-secret", AuthMethod: oidc.AuthMethodPost},
		testservers.OPClient{ID: "app", Secret: "app-secret", Audience: []string{"https://uapi.example"}, UID: "42"},
		testservers.OPClient{ID: "billing", Secret: "billing-secret", Audience: []string{"https://billing.example"}, UID: "42"},
		testservers.OPClient{ID: "short", Secret: "short-secret", Audience: []string{"https://uapi.example"}, UID: "42", Lifetime: 2 * time.Second},
	)
	backend := testservers.NewBackend(t)
	numeric := "/uapi/extensions/42/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"
	for _, gw := range []struct{ id, secret, auth string }{
		{"gateway", "gw-secret", "client_secret_basic"},
	} {
		port := freePort(t)
		s := &stack{t: t, backend: backend, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
		s.tester = newTesterFor(t, globalOptions()+fmt.Sprintf(`
http://127.0.0.1:%d {
	voipnow_pce {
		introspection_url %s
		client_id %s
		client_secret %s
		client_auth %s
		required_scopes uapi
		audiences https://uapi.example
		issuers %s
		user_claim ext.uid
		negative_ttl 1s
	}
	reverse_proxy %s
}
`, port, o.IntrospectionURL(), gw.id, gw.secret, gw.auth, o.URL, backend.Addr))

		app := opToken(t, o, "app", "app-secret", "uapi")
		got := s.expectForwarded(s.put(numeric, app, `{"status":1}`))
		if got.Header.Get("Authorization") != "Bearer "+app {
			t.Errorf("%s: forwarded Authorization %q", gw.auth, got.Header.Get("Authorization"))
		}
		// ext.uid is 42, not 43.
		s.expectError(s.put("/uapi/extensions/43/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq", app, `{}`), http.StatusBadRequest, "pce_access_denied")
		// A token minted for another API.
		billing := opToken(t, o, "billing", "billing-secret", "uapi")
		s.expectError(s.put(pagePath, billing, `{}`), http.StatusUnauthorized, "access_denied")
		// A token without the required scope.
		noScope := opToken(t, o, "app", "app-secret", "other")
		s.expectError(s.put(pagePath, noScope, `{}`), http.StatusBadRequest, "pce_access_denied")
		// A refresh token offered as an access token.
		// Revoked at the provider before its first use.
		revoked := opToken(t, o, "app", "app-secret", "uapi")
		opRevoke(t, o, "app", "app-secret", revoked)
		s.expectError(s.put(pagePath, revoked, `{}`), http.StatusUnauthorized, "access_denied")
		// Expiry: the gateway caches the answer no longer than exp.
		short := opToken(t, o, "short", "short-secret", "uapi")
		s.expectForwarded(s.put(pagePath, short, `{}`))
		deadline := time.Now().Add(15 * time.Second)
		for {
			res := s.put(pagePath, short, `{}`)
			if res.Status == http.StatusUnauthorized {
				s.expectError(res, http.StatusUnauthorized, "access_denied")
				break
			}
			s.expectForwarded(res)
			if time.Now().After(deadline) {
				t.Fatalf("%s: the 2s token was still accepted after 15s", gw.auth)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	app := opToken(t, o, "app", "app-secret", "uapi")
	// zitadel's op (v3.52.0) authenticates an introspection caller by HTTP
	// Basic only (op.ClientIDFromRequest: credentials in the form leave it
	// unauthenticated, "no client credentials provided"): with
	// client_secret_post the endpoint refuses the gateway, which answers
	// 503, never "allowed". client_secret_post itself is proven against the
	// test IdP (TestIntrospectionTLSThroughCaddy).
	post := &stack{t: t, backend: backend}
	port := freePort(t)
	post.base = fmt.Sprintf("http://127.0.0.1:%d", port)
	post.tester = newTesterFor(t, globalOptions()+fmt.Sprintf(`
http://127.0.0.1:%d {
	voipnow_pce {
		introspection_url %s
		client_id gateway-post
		client_secret gw-post-secret
		client_auth client_secret_post
	}
	reverse_proxy %s
}
`, port, o.IntrospectionURL(), backend.Addr))
	post.expectError(post.put(pagePath, app, `{}`), http.StatusServiceUnavailable, "service_unavailable")
	// A gateway the OP does not know: 503 too.
	port = freePort(t)
	s := &stack{t: t, backend: backend, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	s.tester = newTesterFor(t, globalOptions()+siteBlock(port, o.IntrospectionURL(), backend.Addr, ""))
	s.expectError(s.put(pagePath, app, `{}`), http.StatusServiceUnavailable, "service_unavailable")
}
