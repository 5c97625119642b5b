// Package testservers holds the real loopback servers the integration
// tests put around the gateway: an RFC 7662 introspection endpoint whose
// answers a test sets per token, and a legacy backend that records what
// reaches it.
package testservers

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The gateway's client credentials at the IdP.
const (
	ClientID     = "gateway"
	ClientSecret = "s3cret"
)

// Serve runs h on a fresh loopback port until the test ends and returns
// its address.
func Serve(t testing.TB, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

// FreePort returns a loopback port nobody listens on right now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Modes of the IdP.
const (
	Answer int32 = iota // answer as set
	Fail                // answer 500
	Hang                // answer nothing until the test ends
	Busy                // answer 429 with Retry-After: 17
)

// IdP is a real RFC 7662 endpoint on loopback that counts its calls.
type IdP struct {
	Addr  string
	Calls atomic.Int64
	Mode  atomic.Int32
	// Delay, in nanoseconds, is how long each answer waits.
	Delay atomic.Int64

	tls     bool
	mu      sync.Mutex
	answers map[string]map[string]any
	release chan struct{}
}

// NewIdP starts an IdP for the test.
func NewIdP(t testing.TB) *IdP {
	idp := &IdP{answers: map[string]map[string]any{}, release: make(chan struct{})}
	t.Cleanup(func() { close(idp.release) })
	idp.Addr = Serve(t, http.HandlerFunc(idp.serveHTTP))
	return idp
}

// NewTLSIdP starts an IdP for the test that speaks TLS with cert; with
// clientCAs set it requires a client certificate from them.
func NewTLSIdP(t testing.TB, cert tls.Certificate, clientCAs *x509.CertPool) *IdP {
	idp := &IdP{answers: map[string]map[string]any{}, release: make(chan struct{}), tls: true}
	t.Cleanup(func() { close(idp.release) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	if clientCAs != nil {
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, clientCAs
	}
	srv := &http.Server{Handler: http.HandlerFunc(idp.serveHTTP), ReadHeaderTimeout: 5 * time.Second, TLSConfig: cfg,
		ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	idp.Addr = l.Addr().String()
	return idp
}

// URL is the introspection endpoint.
func (idp *IdP) URL() string {
	if idp.tls {
		return "https://" + idp.Addr + "/introspect"
	}
	return "http://" + idp.Addr + "/introspect"
}

// Grant makes token active with scope and sub for an hour.
func (idp *IdP) Grant(token, scope, sub string) {
	idp.Set(token, map[string]any{"active": true, "scope": scope, "sub": sub, "exp": time.Now().Add(time.Hour).Unix()})
}

// Set sets the answer for token; unknown tokens are inactive.
func (idp *IdP) Set(token string, answer map[string]any) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.answers[token] = answer
}

func (idp *IdP) serveHTTP(w http.ResponseWriter, r *http.Request) {
	idp.Calls.Add(1)
	switch idp.Mode.Load() {
	case Fail:
		http.Error(w, "down", http.StatusInternalServerError)
		return
	case Busy:
		w.Header().Set("Retry-After", "17")
		http.Error(w, `{"error":"slow_down"}`, http.StatusTooManyRequests)
		return
	case Hang:
		select {
		case <-idp.release:
		case <-r.Context().Done():
		}
		return
	}
	if d := time.Duration(idp.Delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	id, secret, ok := r.BasicAuth()
	if !ok && r.Header.Get("Authorization") == "" {
		// client_secret_post
		_ = r.ParseForm()
		id, secret, ok = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret"), r.PostForm.Has("client_id")
	}
	if r.Method != http.MethodPost || !ok || id != ClientID || secret != ClientSecret {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	_ = r.ParseForm()
	idp.mu.Lock()
	answer, found := idp.answers[r.PostForm.Get("token")]
	idp.mu.Unlock()
	if !found {
		answer = map[string]any{"active": false}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(answer)
}

// Recorded is one request as the backend received it.
type Recorded struct {
	Method     string
	RequestURI string
	Header     http.Header
	Body       []byte
	// Trailer holds the trailers that came after the body.
	Trailer http.Header
	// TransferEncoding is the request's transfer coding (chunked or none).
	TransferEncoding []string
}

// Backend is a legacy backend on loopback that records what reaches it and
// answers with a fixed response.
type Backend struct {
	Addr string

	mu     sync.Mutex
	got    []Recorded
	status int
	ctype  string
	body   string
}

// PageAnswer is the page's documented 200 answer.
const PageAnswer = `{
  "type": "0",
  "id": "NqeyDRqo4FtabmFj8gNWq3hsiGNYyq",
  "method": "1",
  "note": "I want to use POST for my event",
  "url": "http://myevent.com/SaveMyPhoneCallDetails",
  "status": "1",
  "modified":"2012-07-10T18:16:12+03:00",
  "links": {"self":"https://x.x.x.x/uapi/extensions/@me/0003*210/phoneCallEvents/MyPhoneCallEvent"}
 }`

// NewBackend starts a Backend answering 200 with PageAnswer.
func NewBackend(t testing.TB) *Backend {
	b := &Backend{status: http.StatusOK, ctype: "application/json", body: PageAnswer}
	b.Addr = Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.got = append(b.got, Recorded{Method: r.Method, RequestURI: r.RequestURI, Header: r.Header.Clone(), Body: body,
			Trailer: r.Trailer.Clone(), TransferEncoding: r.TransferEncoding})
		status, ctype, answer := b.status, b.ctype, b.body
		b.mu.Unlock()
		if ctype != "" {
			w.Header().Set("Content-Type", ctype)
		}
		w.Header().Set("X-Backend", "legacy")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	return b
}

// Answer sets the backend's response.
func (b *Backend) Answer(status int, ctype, body string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.status, b.ctype, b.body = status, ctype, body
}

// Take returns and forgets what reached the backend.
func (b *Backend) Take() []Recorded {
	b.mu.Lock()
	defer b.mu.Unlock()
	got := b.got
	b.got = nil
	return got
}
