package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Token defaults of the simulated identity provider.
const (
	defaultScope     = "uapi"
	defaultSub       = "1001"
	defaultExpiresIn = 3600
	maxExpiresIn     = 10 * 365 * 24 * 3600
	maxFormBody      = 64 << 10
	pruneThreshold   = 10000
)

// issued is what the identity provider remembers about a token.
type issued struct {
	scope, sub, clientID string
	iat, exp             int64
	revoked              bool
}

// idp is the simulated OAuth 2.0 authorization server.
type idp struct {
	clients map[string]string // client id -> secret
	mu      sync.Mutex
	tokens  map[string]*issued
	now     func() time.Time // read under mu
}

// newIDP returns the simulated identity provider: token issue (RFC 6749
// client_credentials and password grants), introspection (RFC 7662) and
// revocation (RFC 7009), for the given client id -> secret map.
func newIDP(clients map[string]string) http.Handler {
	p := &idp{clients: clients, tokens: map[string]*issued{}, now: time.Now}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("POST /oauth/token", p.token)
	mux.HandleFunc("POST /oauth/introspect", p.introspect)
	mux.HandleFunc("POST /oauth/revoke", p.revoke)
	return logRequests("idp", mux)
}

// oauthError answers in the RFC 6749 §5.2 error shape.
func oauthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Cache-Control", "no-store")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="pce-sim"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

// parseForm reads a bounded form body.
func parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the form body could not be parsed")
		return false
	}
	return true
}

// authClient authenticates the client by HTTP Basic (id and secret
// form-url-decoded, RFC 6749 §2.3.1) or, when allowForm, by client_id and
// client_secret form fields. It returns the client id, or "" after
// answering 401.
func (p *idp) authClient(w http.ResponseWriter, r *http.Request, allowForm bool) string {
	if id, secret, ok := r.BasicAuth(); ok {
		// Form-url-decoded as RFC 6749 says; raw as many clients send it.
		uid, err1 := url.QueryUnescape(id)
		usecret, err2 := url.QueryUnescape(secret)
		if err1 == nil && err2 == nil && p.known(uid, usecret) {
			return uid
		}
		if p.known(id, secret) {
			return id
		}
	} else if allowForm && r.PostForm.Has("client_id") {
		id := r.PostForm.Get("client_id")
		if p.known(id, r.PostForm.Get("client_secret")) {
			return id
		}
	}
	oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
	return ""
}

// known reports whether id is a known client whose secret is secret.
func (p *idp) known(id, secret string) bool {
	want, ok := p.clients[id]
	return ok && id != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(want)) == 1
}

// token issues an opaque access token.
func (p *idp) token(w http.ResponseWriter, r *http.Request) {
	if !parseForm(w, r) {
		return
	}
	clientID := p.authClient(w, r, true)
	if clientID == "" {
		return
	}
	f := r.PostForm
	sub := f.Get("sub")
	switch f.Get("grant_type") {
	case "client_credentials":
	case "password":
		if f.Get("username") == "" {
			oauthError(w, http.StatusBadRequest, "invalid_request", "username is required")
			return
		}
		if sub == "" {
			sub = f.Get("username")
		}
	case "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
		return
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "use client_credentials or password")
		return
	}
	if sub == "" {
		sub = defaultSub
	}
	scope := strings.Join(strings.Fields(f.Get("scope")), " ")
	if scope == "" {
		scope = defaultScope
	}
	expiresIn := int64(defaultExpiresIn)
	if s := f.Get("expires_in"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n > maxExpiresIn {
			oauthError(w, http.StatusBadRequest, "invalid_request", "expires_in must be a positive number of seconds")
			return
		}
		expiresIn = n
	}
	tok, err := newToken()
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "no randomness")
		return
	}
	p.mu.Lock()
	now := p.now().Unix()
	if len(p.tokens) >= pruneThreshold {
		for k, t := range p.tokens {
			if t.exp <= now {
				delete(p.tokens, k)
			}
		}
	}
	p.tokens[tok] = &issued{scope: scope, sub: sub, clientID: clientID, iat: now, exp: now + expiresIn}
	p.mu.Unlock()

	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok, "token_type": "Bearer", "expires_in": expiresIn, "scope": scope,
	})
}

// introspect answers RFC 7662 for a client authenticated by
// client_secret_basic.
func (p *idp) introspect(w http.ResponseWriter, r *http.Request) {
	if !parseForm(w, r) {
		return
	}
	if p.authClient(w, r, false) == "" {
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	p.mu.Lock()
	now := p.now().Unix()
	t, ok := p.tokens[tok]
	var info issued
	if ok {
		info = *t
	}
	p.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	if !ok || info.revoked || info.exp <= now {
		writeJSON(w, http.StatusOK, map[string]bool{"active": false})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"active": true, "scope": info.scope, "sub": info.sub, "client_id": info.clientID,
		"exp": info.exp, "iat": info.iat, "token_type": "Bearer",
	})
}

// revoke marks a token revoked (RFC 7009): 200 whether or not it was known.
func (p *idp) revoke(w http.ResponseWriter, r *http.Request) {
	if !parseForm(w, r) {
		return
	}
	if p.authClient(w, r, true) == "" {
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	p.mu.Lock()
	if t, ok := p.tokens[tok]; ok {
		t.revoked = true
	}
	p.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// newToken makes an opaque token: 32 random bytes, base64url, no padding.
func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
