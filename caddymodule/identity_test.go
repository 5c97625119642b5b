package caddymodule

import (
	"net/http"
	"testing"
	"time"
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
