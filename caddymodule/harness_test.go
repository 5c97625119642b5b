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
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/testservers"

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

func freePort(t testing.TB) int { return testservers.FreePort(t) }

const pageAnswer = testservers.PageAnswer

// stack is one gateway under test with its identity provider and backend.
type stack struct {
	t       *testing.T
	tester  *caddytest.Tester
	idp     *testservers.IdP
	backend *testservers.Backend
	base    string // http://127.0.0.1:port
}

// gatewayConfig is the Caddyfile of a stack; extra goes into the
// voipnow_pce block.
func gatewayConfig(port int, idp, backend, extra string) string {
	return globalOptions() + siteBlock(port, idp, backend, "required_scopes uapi\n\t\tadmin_scopes uapi.admin\n\t\t"+extra)
}

func globalOptions() string {
	return fmt.Sprintf("{\n\tadmin %s\n\tauto_https off\n\tgrace_period 1ns\n}\n", adminAddr)
}

// siteBlock is one gateway site on port; extra goes into the voipnow_pce
// block.
func siteBlock(port int, idp, backend, extra string) string {
	return fmt.Sprintf(`
http://127.0.0.1:%d {
	voipnow_pce {
		introspection_url %s
		client_id gateway
		client_secret s3cret
		introspection_timeout 300ms
		%s
	}
	reverse_proxy %s
}
`, port, idp, extra, backend)
}

// newStack loads a gateway in front of a fresh identity provider and
// backend; extra goes into the voipnow_pce block.
func newStack(t *testing.T, extra string) *stack {
	t.Helper()
	s := &stack{t: t, idp: testservers.NewIdP(t), backend: testservers.NewBackend(t)}
	port := freePort(t)
	s.base = fmt.Sprintf("http://127.0.0.1:%d", port)
	s.tester = newTesterFor(t, gatewayConfig(port, s.idp.URL(), s.backend.Addr, extra))
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
	if got := s.backend.Take(); len(got) != 0 {
		s.t.Errorf("a rejected request reached the backend: %s %s %q", got[0].Method, got[0].RequestURI, got[0].Body)
	}
}

// expectForwarded checks that exactly one request reached the backend and
// returns it.
func (s *stack) expectForwarded(res response) testservers.Recorded {
	s.t.Helper()
	got := s.backend.Take()
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
