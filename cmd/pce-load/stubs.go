package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// pageAnswer is the legacy page's documented 200 answer: what the backend
// stub returns for every request.
const pageAnswer = `{"type":"0","id":"NqeyDRqo4FtabmFj8gNWq3hsiGNYyq","method":"1","note":"I want to use POST for my event","url":"http://myevent.com/SaveMyPhoneCallDetails","status":"1","modified":"2012-07-10T18:16:12+03:00","links":{"self":"https://x.x.x.x/uapi/extensions/@me/0003*210/phoneCallEvents/MyPhoneCallEvent"}}`

// Client credentials of the gateway at the identity provider.
const (
	gatewayClient = "gateway"
	gatewaySecret = "gateway-secret"
)

// backendHandler is the legacy backend stub: it drains the body and
// answers 200 with the page's JSON.
func backendHandler(requests *atomic.Int64) http.Handler {
	body := []byte(pageAnswer)
	clen := fmt.Sprint(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{clen}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})
}

// idp is a minimal RFC 7662 introspection endpoint (the semantics of
// cmd/pce-sim's): tokens the harness issued are active, with scope uapi,
// sub 1001 and exp; anything else is inactive. It counts calls, in total
// and per token.
type idp struct {
	mu      sync.RWMutex
	tokens  map[string]*issued
	calls   atomic.Int64
	unknown atomic.Int64
}

type issued struct {
	exp, iat int64
	calls    atomic.Int64
}

func newIDP() *idp { return &idp{tokens: map[string]*issued{}} }

// issue mints n opaque tokens (32 random bytes, base64url, like pce-sim's)
// valid for ttl and registers them.
func (p *idp) issue(n int, ttl time.Duration) []string {
	out := make([]string, n)
	raw := make([]byte, 32*n)
	_, _ = rand.Read(raw)
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range out {
		out[i] = base64.RawURLEncoding.EncodeToString(raw[32*i : 32*i+32])
		p.tokens[out[i]] = &issued{iat: now.Unix(), exp: now.Add(ttl).Unix()}
	}
	return out
}

// callsFor is how many introspection calls named token.
func (p *idp) callsFor(token string) int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if t, ok := p.tokens[token]; ok {
		return t.calls.Load()
	}
	return -1
}

func (p *idp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/oauth/introspect" {
		http.NotFound(w, r)
		return
	}
	p.calls.Add(1)
	id, secret, ok := r.BasicAuth()
	if !ok || id != gatewayClient || secret != gatewaySecret {
		w.Header().Set("WWW-Authenticate", `Basic realm="pce-load"`)
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || r.PostForm.Get("token") == "" {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	p.mu.RLock()
	t, found := p.tokens[r.PostForm.Get("token")]
	p.mu.RUnlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !found || t.exp <= time.Now().Unix() {
		p.unknown.Add(1)
		_, _ = io.WriteString(w, `{"active":false}`)
		return
	}
	t.calls.Add(1)
	fmt.Fprintf(w, `{"active":true,"scope":"uapi","sub":"1001","client_id":"app","token_type":"Bearer","iat":%d,"exp":%d}`, t.iat, t.exp)
}
