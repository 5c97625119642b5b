package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
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
// provider. (Its client_credentials grant issues no refresh token: refresh
// tokens are in TestZitadelRefreshTokens.)
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

// opIntrospect asks the OP's introspection endpoint about a token, as the
// gateway does, and returns the raw answer.
func opIntrospect(t *testing.T, o *testservers.OP, id, secret, token string) (string, map[string]any) {
	t.Helper()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, _ := http.NewRequest(http.MethodPost, o.IntrospectionURL(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	if res.StatusCode != http.StatusOK || json.Unmarshal(b, &m) != nil {
		t.Fatalf("introspection at the OP: %d %s", res.StatusCode, b)
	}
	return string(b), m
}

// opRevokeHint revokes a token at the OP with a token_type_hint ("" for
// none).
func opRevokeHint(t *testing.T, o *testservers.OP, id, secret, token, hint string) {
	t.Helper()
	form := url.Values{"token": {token}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	req, _ := http.NewRequest(http.MethodPost, o.RevocationURL(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("revocation at the OP: %d %s", res.StatusCode, b)
	}
}

// expectInvalidToken checks the gateway's answer to a token it does not
// take: 401 access_denied, with error="invalid_token" in the challenge.
func (s *stack) expectInvalidToken(res response) {
	s.t.Helper()
	s.expectError(res, http.StatusUnauthorized, "access_denied")
	if got := res.Header.Get("WWW-Authenticate"); !strings.Contains(got, `realm="uapi"`) || !strings.Contains(got, `error="invalid_token"`) {
		s.t.Errorf("WWW-Authenticate %q", got)
	}
}

// expectOK checks that the request reached the backend and the client got
// the backend's 200.
func (s *stack) expectOK(res response, token string) {
	s.t.Helper()
	got := s.expectForwarded(res)
	if res.Status != http.StatusOK {
		s.t.Errorf("status %d, want the backend's 200 (body %s)", res.Status, res.Body)
	}
	if got.Header.Get("Authorization") != "Bearer "+token {
		s.t.Errorf("forwarded Authorization %q", got.Header.Get("Authorization"))
	}
}

// active reports the "active" member of an introspection answer.
func active(m map[string]any) bool { v, _ := m["active"].(bool); return v }

// Refresh tokens of a real OAuth 2.0 server (zitadel's op, with the
// authorization code grant of our test storage: the login page logs
// testservers.OPUser in, ext.uid 42), through the gateway:
//   - the code flow's access token is taken, with its scopes and user;
//   - its refresh token, offered as a bearer token, is refused as the
//     README says for an inactive token (401 access_denied,
//     error="invalid_token"), whatever op answers for it at introspection:
//     {"active":false} as it is, or active with token_type refresh_token,
//     or token_type Bearer and token_use refresh_token (Ory Hydra);
//   - refreshing at the token endpoint gives an access token that works;
//     rotation makes the old refresh token and the access token issued with
//     it unusable at the OP; the gateway still takes that access token
//     while its answer is cached (README, "Revocation": revoke at the
//     provider and purge the gateway's caches);
//   - revoking the refresh token at the OP's /revoke ends the refresh
//     token and the access token issued with it; one the gateway never saw
//     is refused at once;
//   - offline_access: no refresh token without it, nor for a client
//     without the refresh_token grant.
func TestZitadelRefreshTokens(t *testing.T) {
	uapi := []string{"https://uapi.example"}
	cb := []string{"http://127.0.0.1/callback"}
	o := testservers.NewOP(t,
		testservers.OPClient{ID: "gateway", Secret: "gw-secret"},
		testservers.OPClient{ID: "web", Secret: "web-secret", Audience: uapi, RedirectURIs: cb},
		testservers.OPClient{ID: "web-typed", Secret: "typed-secret", Audience: uapi, RedirectURIs: cb, RefreshIntrospection: testservers.RefreshAsTokenType},
		testservers.OPClient{ID: "web-hydra", Secret: "hydra-secret", Audience: uapi, RedirectURIs: cb, RefreshIntrospection: testservers.RefreshAsTokenUse},
		testservers.OPClient{ID: "web-norefresh", Secret: "noref-secret", Audience: uapi, RedirectURIs: cb, GrantTypes: []oidc.GrantType{oidc.GrantTypeCode}},
	)
	backend := testservers.NewBackend(t)
	port := freePort(t)
	s := &stack{t: t, backend: backend, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	// max_ttl is the default, 5 minutes: a positive answer stays cached for
	// the whole test unless purged.
	s.tester = newTesterFor(t, globalOptions()+fmt.Sprintf(`
http://127.0.0.1:%d {
	voipnow_pce {
		introspection_url %s
		client_id gateway
		client_secret gw-secret
		required_scopes uapi
		audiences https://uapi.example
		issuers %s
		user_claim ext.uid
		negative_ttl 1s
	}
	reverse_proxy %s
}
`, port, o.IntrospectionURL(), o.URL, backend.Addr))
	numeric := "/uapi/extensions/" + testservers.OPUserUID + "/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"
	other := "/uapi/extensions/43/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"
	introspect := func(token string) (string, map[string]any) {
		t.Helper()
		return opIntrospect(t, o, "gateway", "gw-secret", token)
	}
	purge := func(token string) {
		t.Helper()
		if res, body := adminPost(t, "/voipnow_pce/revoke", `{"token":"`+token+`"}`); res.StatusCode != http.StatusOK || !strings.Contains(body, `"memory":1`) {
			t.Fatalf("purge at the gateway: %d %s", res.StatusCode, body)
		}
	}

	// The code flow's tokens.
	access1, refresh1 := o.CodeFlowTokens(t, "web", "web-secret", "openid", "offline_access", "uapi")
	if refresh1 == "" {
		t.Fatal("no refresh token with offline_access")
	}
	raw, m := introspect(access1)
	if !active(m) || m["sub"] != testservers.OPUser || m["scope"] != "openid offline_access uapi" || m["client_id"] != "web" {
		t.Fatalf("the code flow's access token at the OP: %s", raw)
	}
	s.expectOK(s.put(numeric, access1, `{"status":1}`), access1)
	s.expectOK(s.put(pagePath, access1, `{}`), access1)
	// Its user is 42, not 43.
	s.expectError(s.put(other, access1, `{}`), http.StatusBadRequest, "pce_access_denied")
	// A code flow token without the required scope.
	noUAPI, _ := o.CodeFlowTokens(t, "web", "web-secret", "openid")
	s.expectError(s.put(pagePath, noUAPI, `{}`), http.StatusBadRequest, "pce_access_denied")

	// The refresh token offered as an access token. op decodes tokens into
	// "id:subject" (or verifies a JWT) before it asks the storage; a
	// refresh token it cannot decode is {"active":false} at once.
	raw, m = introspect(refresh1)
	if strings.TrimSpace(raw) != `{"active":false}` {
		t.Errorf("introspection of a refresh token at the OP: %s", raw)
	}
	t.Logf("op's introspection of a refresh token: %s", strings.TrimSpace(raw))
	s.expectInvalidToken(s.put(numeric, refresh1, `{}`))
	s.expectInvalidToken(s.put(numeric, refresh1, `{}`)) // cached negative
	// Servers that answer active for a refresh token, saying what it is:
	// the gateway refuses it all the same.
	for _, c := range []struct{ id, secret, claim string }{
		{"web-typed", "typed-secret", `"token_type":"refresh_token"`},
		{"web-hydra", "hydra-secret", `"token_use":"refresh_token"`},
	} {
		acc, ref := o.CodeFlowTokens(t, c.id, c.secret, "openid", "offline_access", "uapi")
		raw, m := introspect(ref)
		if !active(m) || m["scope"] != "openid offline_access uapi" || m["iss"] != o.URL || !strings.Contains(raw, c.claim) || !strings.Contains(raw, `"ext":{"uid":"42"}`) {
			t.Errorf("%s: introspection of its refresh token at the OP: %s", c.id, raw)
		}
		t.Logf("%s: introspection of its refresh token: %s", c.id, strings.TrimSpace(raw))
		s.expectInvalidToken(s.put(numeric, ref, `{}`))
		s.expectOK(s.put(numeric, acc, `{}`), acc)
	}

	// Presenting it to the gateway did not use it up: refresh.
	status, ans := o.Refresh(t, "web", "web-secret", refresh1)
	if status != http.StatusOK || ans.AccessToken == "" || ans.RefreshToken == "" || ans.RefreshToken == refresh1 || ans.AccessToken == access1 {
		t.Fatalf("refresh: %d %+v", status, ans)
	}
	access2, refresh2 := ans.AccessToken, ans.RefreshToken
	s.expectOK(s.put(numeric, access2, `{}`), access2)
	// Rotation: the old refresh token is spent...
	if status, ans := o.Refresh(t, "web", "web-secret", refresh1); status != http.StatusBadRequest || ans.Error != "invalid_grant" {
		t.Errorf("the old refresh token again: %d %+v", status, ans)
	}
	// ... and so, at the OP, is the access token issued with it.
	if raw, m := introspect(access1); active(m) {
		t.Errorf("the access token of a rotated refresh token at the OP: %s", raw)
	}
	// The gateway still takes it from its cache (max_ttl), until purged.
	s.expectOK(s.put(numeric, access1, `{}`), access1)
	purge(access1)
	s.expectInvalidToken(s.put(numeric, access1, `{}`))
	// Another client cannot use the refresh token.
	if status, ans := o.Refresh(t, "gateway", "gw-secret", refresh2); status != http.StatusBadRequest || ans.Error != "invalid_grant" {
		t.Errorf("web's refresh token presented by the gateway client: %d %+v", status, ans)
	}

	// A refresh asking for fewer scopes: its access token has only those;
	// the new refresh token keeps the granted ones.
	status, ans = o.Refresh(t, "web", "web-secret", refresh2, "openid")
	if status != http.StatusOK || ans.Scope != "openid" {
		t.Fatalf("refresh for openid: %d %+v", status, ans)
	}
	s.expectError(s.put(numeric, ans.AccessToken, `{}`), http.StatusBadRequest, "pce_access_denied")
	status, ans = o.Refresh(t, "web", "web-secret", ans.RefreshToken)
	if status != http.StatusOK || ans.Scope != "openid offline_access uapi" {
		t.Fatalf("refresh for the granted scopes: %d %+v", status, ans)
	}
	access4, refresh4 := ans.AccessToken, ans.RefreshToken
	s.expectOK(s.put(numeric, access4, `{}`), access4)

	// Revocation of the refresh token at the OP (no token_type_hint: op
	// tries it as a refresh token first).
	opRevokeHint(t, o, "web", "web-secret", refresh4, "")
	if status, ans := o.Refresh(t, "web", "web-secret", refresh4); status != http.StatusBadRequest || ans.Error != "invalid_grant" {
		t.Errorf("a revoked refresh token: %d %+v", status, ans)
	}
	// The access token issued with it is inactive at the OP; the gateway
	// takes it from its cache until purged.
	if raw, m := introspect(access4); active(m) {
		t.Errorf("the access token of a revoked refresh token at the OP: %s", raw)
	}
	s.expectOK(s.put(numeric, access4, `{}`), access4)
	purge(access4)
	s.expectInvalidToken(s.put(numeric, access4, `{}`))
	// One the gateway never saw is refused at once; with the hint too.
	access5, refresh5 := o.CodeFlowTokens(t, "web", "web-secret", "openid", "offline_access", "uapi")
	opRevokeHint(t, o, "web", "web-secret", refresh5, "refresh_token")
	s.expectInvalidToken(s.put(numeric, access5, `{}`))
	// A refresh token revoked by another client stays.
	access6, refresh6 := o.CodeFlowTokens(t, "web", "web-secret", "openid", "offline_access", "uapi")
	req, _ := http.NewRequest(http.MethodPost, o.RevocationURL(), strings.NewReader(url.Values{"token": {refresh6}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("web-hydra", "hydra-secret")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("web's refresh token revoked by web-hydra: %d", res.StatusCode)
	}
	s.expectOK(s.put(numeric, access6, `{}`), access6)
	if status, ans := o.Refresh(t, "web", "web-secret", refresh6); status != http.StatusOK {
		t.Errorf("refresh after another client's revocation: %d %+v", status, ans)
	}

	// offline_access: op issues a refresh token only when it is asked for
	// and the client has the refresh_token grant.
	acc, ref := o.CodeFlowTokens(t, "web", "web-secret", "openid", "uapi")
	if ref != "" {
		t.Errorf("a refresh token without offline_access")
	}
	s.expectOK(s.put(numeric, acc, `{}`), acc)
	acc, ref = o.CodeFlowTokens(t, "web-norefresh", "noref-secret", "openid", "offline_access", "uapi")
	if ref != "" {
		t.Errorf("a refresh token for a client without the refresh_token grant")
	}
	s.expectOK(s.put(numeric, acc, `{}`), acc)
}
