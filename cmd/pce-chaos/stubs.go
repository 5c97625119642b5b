package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Client credentials of the gateway at the identity provider.
const (
	gatewayClient = "gateway"
	gatewaySecret = "gateway-secret"
)

// Token kinds. The first two letters of every token the harness makes
// name its kind, so that the introspection proxy and the backend can tell
// the kind of a token they see without asking anyone.
const (
	kindValid   = "valid"     // cached tokens used all along (and revocable ones before their revocation)
	kindFresh   = "fresh"     // a new token per request pair
	kindGarbage = "garbage"   // unknown to the identity provider
	kindRevoked = "revoked"   // revoked at the identity provider and at the gateway
	kindFlood   = "flood"     // the flood client's garbage
	kindNew     = "valid-new" // revocable tokens before their revocation, first used 1.5 s earlier (not cached while the IdP fails)
)

var kinds = []string{kindValid, kindNew, kindFresh, kindGarbage, kindRevoked, kindFlood}

var prefixKind = map[string]string{"hv": kindValid, "rv": kindValid, "fr": kindFresh, "gb": kindGarbage, "fl": kindFlood}

// token is one token the identity provider issued (hot, fresh or
// revocable).
type token struct {
	value     string
	revocable bool
	exp       int64
	revokedAt atomic.Int64 // unix ns at the identity provider, 0: active
	firstOK   atomic.Int64 // unix ns of the first 200 of /voipnow_pce/revoke, 0: none yet
	calls     atomic.Int64 // introspection calls naming it
}

func randToken(prefix string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// idp is a minimal RFC 7662 introspection endpoint: tokens it issued are
// active (scope uapi, sub 1, exp in an hour) until revoked; anything else
// is inactive.
type idp struct {
	mu     sync.RWMutex
	tokens map[string]*token
}

func newIDP() *idp { return &idp{tokens: map[string]*token{}} }

func (p *idp) issue(prefix string, revocable bool) *token {
	t := &token{value: randToken(prefix), revocable: revocable, exp: time.Now().Add(time.Hour).Unix()}
	p.mu.Lock()
	p.tokens[t.value] = t
	p.mu.Unlock()
	return t
}

func (p *idp) lookup(v string) *token {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.tokens[v]
}

func (p *idp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/oauth/introspect" {
		http.NotFound(w, r)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok || id != gatewayClient || secret != gatewaySecret {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("token") == "" {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	t := p.lookup(r.PostForm.Get("token"))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if t == nil || t.revokedAt.Load() != 0 || t.exp <= time.Now().Unix() {
		_, _ = io.WriteString(w, `{"active":false}`)
		return
	}
	fmt.Fprintf(w, `{"active":true,"scope":"uapi","sub":"1","client_id":"app","token_type":"Bearer","exp":%d}`, t.exp)
}

// Fault modes of the introspection proxy.
const (
	modePass = iota
	mode503
	modeHang
	modeSlow
)

// faultProxy is the gateway's introspection_url: it forwards to the
// identity provider, or answers 503, or holds the call until the caller
// gives up, or forwards after a delay. It counts the calls it receives,
// per token kind (a revocable token counts as revoked from its revocation
// at the identity provider on).
type faultProxy struct {
	idp   *idp
	rp    *httputil.ReverseProxy
	mode  atomic.Int32
	delay time.Duration
	calls sync.Map // kind -> *atomic.Int64
}

func newFaultProxy(p *idp, target string) *faultProxy {
	u, _ := url.Parse("http://" + target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 256}
	rp.ErrorLog = log.New(io.Discard, "", 0)
	return &faultProxy{idp: p, rp: rp, delay: 1500 * time.Millisecond}
}

func (f *faultProxy) counter(kind string) *atomic.Int64 {
	c, _ := f.calls.LoadOrStore(kind, new(atomic.Int64))
	return c.(*atomic.Int64)
}

// reset zeroes the counters (a new scenario) and the mode.
func (f *faultProxy) reset() {
	f.mode.Store(modePass)
	for _, k := range kinds {
		f.counter(k).Store(0)
	}
}

func (f *faultProxy) counts() map[string]int64 {
	out := map[string]int64{}
	for _, k := range kinds {
		out[k] = f.counter(k).Load()
	}
	return out
}

func (f *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	tv := form.Get("token")
	kind := tokenKind(tv)
	if t := f.idp.lookup(tv); t != nil {
		t.calls.Add(1)
		if t.revocable {
			// Before its revocation a revocable token is asked for as a
			// fresh token (its first use is a pair of requests at once).
			kind = kindFresh
			if t.revokedAt.Load() != 0 {
				kind = kindRevoked
			}
		}
	}
	f.counter(kind).Add(1)
	switch f.mode.Load() {
	case mode503:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":"temporarily_unavailable"}`)
		return
	case modeHang:
		// Held until the gateway gives up (introspection_timeout) or the
		// fault ends.
		for f.mode.Load() == modeHang {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	case modeSlow:
		select {
		case <-r.Context().Done():
			return
		case <-time.After(f.delay):
		}
	}
	f.rp.ServeHTTP(w, r)
}

// tokenKind is a token's kind from its prefix ("garbage" for anything the
// harness did not make).
func tokenKind(v string) string {
	if len(v) >= 2 {
		if k, ok := prefixKind[v[:2]]; ok {
			return k
		}
	}
	return kindGarbage
}

// backend records every request that reaches it (the token it carries
// and when) and answers 200 with the page's JSON.
type backend struct {
	mu   sync.Mutex
	hits []backendHit
	on   atomic.Bool // record only while a gateway scenario runs
}

type backendHit struct {
	token string
	at    time.Time
}

const pageAnswer = `{"type":"0","id":"NqeyDRqo4FtabmFj8gNWq3hsiGNYyq","method":"1","note":"I want to use POST for my event","url":"http://myevent.com/SaveMyPhoneCallDetails","status":"1","modified":"2012-07-10T18:16:12+03:00","links":{"self":"https://x.x.x.x/uapi/extensions/@me/0003*210/phoneCallEvents/MyPhoneCallEvent"}}`

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && b.on.Load() {
		b.mu.Lock()
		b.hits = append(b.hits, backendHit{token: tok, at: time.Now()})
		b.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, pageAnswer)
}

// take returns the hits so far and forgets them.
func (b *backend) take() []backendHit {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.hits
	b.hits = nil
	return h
}
