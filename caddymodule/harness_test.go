package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"

	// The standard modules, reverse_proxy first of all.
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// adminAddr is where the Caddy under test listens for its admin API: a
// free port, not caddytest's usual 2999, because Caddy listens with
// SO_REUSEPORT and two test processes on one port would share requests.
var adminAddr string

// TestMain starts Caddy in this process before the tests, so that
// caddytest finds it running and never skips a test for want of it.
func TestMain(m *testing.M) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	adminAddr = "localhost:" + strconv.Itoa(port)
	caddytest.Default.AdminPort = port
	caddytest.Default.Certificates = nil
	cfg := []byte(`{"admin":{"listen":"` + adminAddr + `"}}`)
	if err := caddy.Load(cfg, true); err != nil {
		fmt.Fprintln(os.Stderr, "starting Caddy for the tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = caddy.Stop()
	os.Exit(code)
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serve runs h on a fresh loopback port until the test ends.
func serve(t testing.TB, h http.Handler) string {
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

// fakeIdP is a real RFC 7662 endpoint on loopback whose answers the test
// sets per token, and which counts the calls it gets.
type fakeIdP struct {
	addr    string
	calls   atomic.Int64
	mode    atomic.Int32 // 0 answer, 1 answer 500, 2 hang until the test ends
	mu      sync.Mutex
	answers map[string]map[string]any
	release chan struct{}
}

const (
	idpAnswer = iota
	idpFail
	idpHang
)

func newIdP(t testing.TB) *fakeIdP {
	idp := &fakeIdP{answers: map[string]map[string]any{}, release: make(chan struct{})}
	t.Cleanup(func() { close(idp.release) })
	idp.addr = serve(t, http.HandlerFunc(idp.serveHTTP))
	return idp
}

func (idp *fakeIdP) url() string { return "http://" + idp.addr + "/introspect" }

// grant makes token active with the given scope and user for an hour.
func (idp *fakeIdP) grant(token, scope, sub string) {
	idp.set(token, map[string]any{"active": true, "scope": scope, "sub": sub, "exp": time.Now().Add(time.Hour).Unix()})
}

func (idp *fakeIdP) set(token string, answer map[string]any) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.answers[token] = answer
}

func (idp *fakeIdP) serveHTTP(w http.ResponseWriter, r *http.Request) {
	idp.calls.Add(1)
	switch idp.mode.Load() {
	case idpFail:
		http.Error(w, "down", http.StatusInternalServerError)
		return
	case idpHang:
		select {
		case <-idp.release:
		case <-r.Context().Done():
		}
		return
	}
	id, secret, ok := r.BasicAuth()
	if r.Method != http.MethodPost || !ok || id != "gateway" || secret != "s3cret" {
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

// recorded is one request as the backend received it.
type recorded struct {
	Method     string
	RequestURI string
	Header     http.Header
	Body       []byte
}

// recorder is a legacy backend on loopback that records what reaches it
// and answers with a fixed response.
type recorder struct {
	addr   string
	mu     sync.Mutex
	got    []recorded
	status int
	ctype  string
	body   string
}

func newRecorder(t testing.TB) *recorder {
	rec := &recorder{status: http.StatusOK, ctype: "application/json", body: pageAnswer}
	rec.addr = serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.got = append(rec.got, recorded{Method: r.Method, RequestURI: r.RequestURI, Header: r.Header.Clone(), Body: body})
		status, ctype, answer := rec.status, rec.ctype, rec.body
		rec.mu.Unlock()
		if ctype != "" {
			w.Header().Set("Content-Type", ctype)
		}
		w.Header().Set("X-Backend", "legacy")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	return rec
}

func (rec *recorder) answer(status int, ctype, body string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.status, rec.ctype, rec.body = status, ctype, body
}

// take returns and forgets what reached the backend.
func (rec *recorder) take() []recorded {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	got := rec.got
	rec.got = nil
	return got
}

// pageAnswer is the page's documented 200 answer.
const pageAnswer = `{
  "type": "0",
  "id": "NqeyDRqo4FtabmFj8gNWq3hsiGNYyq",
  "method": "1",
  "note": "I want to use POST for my event",
  "url": "http://myevent.com/SaveMyPhoneCallDetails",
  "status": "1",
  "modified":"2012-07-10T18:16:12+03:00",
  "links": {"self":"https://x.x.x.x/uapi/extensions/@me/0003*210/phoneCallEvents/MyPhoneCallEvent"}
 }`

// stack is one gateway under test with its identity provider and backend.
type stack struct {
	t       *testing.T
	tester  *caddytest.Tester
	idp     *fakeIdP
	backend *recorder
	base    string // http://127.0.0.1:port
}

// gatewayConfig is the Caddyfile of a stack; extra goes into the
// voipnow_pce block.
func gatewayConfig(port int, idp, backend, extra string) string {
	return fmt.Sprintf(`{
	admin %s
	auto_https off
	grace_period 1ns
}

http://127.0.0.1:%d {
	voipnow_pce {
		introspection_url %s
		client_id gateway
		client_secret s3cret
		introspection_timeout 300ms
		required_scopes uapi
		admin_scopes uapi.admin
		%s
	}
	reverse_proxy %s
}
`, adminAddr, port, idp, extra, backend)
}

// newStack loads a gateway in front of a fresh identity provider and
// backend; extra goes into the voipnow_pce block.
func newStack(t *testing.T, extra string) *stack {
	t.Helper()
	s := &stack{t: t, idp: newIdP(t), backend: newRecorder(t)}
	port := freePort(t)
	s.base = fmt.Sprintf("http://127.0.0.1:%d", port)
	s.tester = newTesterFor(t, gatewayConfig(port, s.idp.url(), s.backend.addr, extra))
	return s
}

// newTesterFor loads a Caddyfile into the Caddy under test.
func newTesterFor(t *testing.T, caddyfile string) *caddytest.Tester {
	t.Helper()
	tester := caddytest.NewTester(t)
	tester.InitServer(caddyfile, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return tester
}

func itoa(n int) string { return strconv.Itoa(n) }

// response is what the client got.
type response struct {
	Status int
	Header http.Header
	Body   string
}

// do sends a request to the gateway. headers are "Name: value" lines.
func (s *stack) do(method, uri, body string, headers ...string) response {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.base+uri, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	res, err := s.tester.Client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, uri, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{Status: res.StatusCode, Header: res.Header, Body: string(b)}
}

// put sends a PUT with the bearer token (none when token is "").
func (s *stack) put(uri, token, body string, headers ...string) response {
	s.t.Helper()
	if token != "" {
		headers = append(headers, "Authorization: Bearer "+token)
	}
	return s.do(http.MethodPut, uri, body, headers...)
}

// expectError checks a gateway answer: status, code, the error body's
// shape, and that nothing reached the backend.
func (s *stack) expectError(res response, status int, code string) {
	s.t.Helper()
	if res.Status != status {
		s.t.Errorf("status %d, want %d (body %s)", res.Status, status, res.Body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		s.t.Errorf("Content-Type %q, want application/json", ct)
	}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(res.Body), &body); err != nil {
		s.t.Errorf("error body %q is not the UAPI shape: %v", res.Body, err)
	}
	if body.Error.Code != code || body.Error.Message == "" {
		s.t.Errorf("error code %q (message %q), want %q", body.Error.Code, body.Error.Message, code)
	}
	if got := s.backend.take(); len(got) != 0 {
		s.t.Errorf("a rejected request reached the backend: %s %s %q", got[0].Method, got[0].RequestURI, got[0].Body)
	}
}

// expectForwarded checks that exactly one request reached the backend and
// returns it.
func (s *stack) expectForwarded(res response) recorded {
	s.t.Helper()
	got := s.backend.take()
	if len(got) != 1 {
		s.t.Fatalf("%d requests reached the backend, want 1 (client got %d %s)", len(got), res.Status, res.Body)
	}
	return got[0]
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func jsonEqual(t testing.TB, got []byte, want string) {
	t.Helper()
	if !bytes.Equal(got, []byte(want)) {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
}
