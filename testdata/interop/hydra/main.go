// Command interop runs the voipnow_pce gateway (cmd/caddy) against a real
// Ory Hydra v2.3.0 and the simulated legacy backend (cmd/pce-sim, backend
// only), all on free loopback ports, and prints a results table. It is run
// by testdata/interop/hydra.sh, which builds the three binaries first.
//
//	go run . -hydra BIN -caddy BIN -pcesim BIN [-work DIR] [-out FILE]
//
// Exit status: 0 when every check passed, 1 when one failed, 2 when the
// stack could not be set up.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	uapiAud    = "https://uapi.example"
	billingAud = "https://billing.example"
	// The page's example request (README, "An example session").
	pagePath = "/uapi/extensions/@me/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"
	pageBody = `{"method": "1", "note": "I want to use POST for my event"}`
	// The same event for a numeric userId: the token's user must be 123.
	user123Path = "/uapi/extensions/123/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"
	user124Path = "/uapi/extensions/124/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"
	user999Path = "/uapi/extensions/999/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"
	// The gateway's cache lifetimes in this run (short, so that the run
	// shows them end to end).
	maxTTL = 15 * time.Second
	// The short-lived client's access token lifespan.
	shortLifespan = 10 * time.Second
)

var (
	hydraBin  = flag.String("hydra", "", "hydra binary")
	caddyBin  = flag.String("caddy", "", "cmd/caddy binary")
	pcesimBin = flag.String("pcesim", "", "cmd/pce-sim binary")
	workDir   = flag.String("work", "", "directory for configs and logs (default: a new temp dir)")
	outFile   = flag.String("out", "", "also write the results table (Markdown) to this file")
)

// ---------------------------------------------------------------- results

type result struct {
	check, expected, got string
	ok                   bool
}

var results []result

func record(check, expected, got string, ok bool) {
	results = append(results, result{check, expected, got, ok})
	mark := "ok"
	if !ok {
		mark = "FAIL"
	}
	log.Printf("%-4s %s: %s", mark, check, got)
}

func table() string {
	var b strings.Builder
	b.WriteString("| # | check | expected | got | ok |\n|---|---|---|---|---|\n")
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for i, r := range results {
		ok := "yes"
		if !r.ok {
			ok = "**NO**"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s |\n", i+1, esc(r.check), esc(r.expected), esc(r.got), ok)
	}
	return b.String()
}

// ---------------------------------------------------------------- processes

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

var (
	procsMu sync.Mutex
	procs   []*proc
)

func start(name string, env []string, bin string, args ...string) *proc {
	logf, err := os.Create(filepath.Join(*workDir, name+".log"))
	if err != nil {
		fatal("%s: %v", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fatal("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	procsMu.Lock()
	procs = append(procs, p)
	procsMu.Unlock()
	log.Printf("started %s (pid %d), log %s", name, cmd.Process.Pid, logf.Name())
	return p
}

// stopAll ends every process this program started, by its own pid (and
// process group, which is its own), TERM first, then KILL.
func stopAll() {
	procsMu.Lock()
	defer procsMu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		select {
		case <-p.done:
			continue
		default:
		}
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		log.Printf("stopped %s", p.name)
	}
	procs = nil
}

func fatal(format string, args ...any) {
	log.Printf("SETUP FAILED: "+format, args...)
	stopAll()
	if len(results) > 0 {
		fmt.Print("\n" + table())
	}
	os.Exit(2)
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitHTTP(name, u string, want int, p *proc) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if p != nil {
			select {
			case <-p.done:
				fatal("%s exited early; see %s.log", name, name)
			default:
			}
		}
		res, err := http.Get(u)
		if err == nil {
			res.Body.Close()
			if want == 0 || res.StatusCode == want {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	fatal("%s not ready at %s after 60s", name, u)
}

// ---------------------------------------------------------------- HTTP helpers

type answer struct {
	Status int
	Header http.Header
	Body   []byte
}

func (a answer) json() map[string]any {
	var m map[string]any
	json.Unmarshal(a.Body, &m)
	return m
}

// code is the gateway's (or the backend's) error code, if the answer is
// an error in the legacy shape.
func (a answer) code() string {
	if e, ok := a.json()["error"].(map[string]any); ok {
		if c, ok := e["code"].(string); ok {
			return c
		}
	}
	return ""
}

func (a answer) short() string {
	if c := a.code(); c != "" {
		return fmt.Sprintf("%d %s", a.Status, c)
	}
	return fmt.Sprint(a.Status)
}

var noRedirect = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func do(c *http.Client, method, u string, hdr map[string]string, body io.Reader) answer {
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		fatal("%s %s: %v", method, u, err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	if err != nil {
		return answer{Status: -1, Body: []byte(err.Error())}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{res.StatusCode, res.Header, b}
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

// ---------------------------------------------------------------- backend recorder

// seen is one request that reached the backend through the recorder.
type seen struct {
	Method, Path, Auth, User, Scope string
	Status                          int
}

type recorder struct {
	mu   sync.Mutex
	reqs []seen
}

func (r *recorder) count() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.reqs) }

func (r *recorder) since(n int) []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seen(nil), r.reqs[n:]...)
}

// ---------------------------------------------------------------- main

type stack struct {
	gw, gwPost, hydraPublic, hydraAdmin, caddyAdmin, hook string
	rec                                                   *recorder
	clients                                               map[string]client
	hookCalls                                             chan string
	iss                                                   string
}

type client struct{ id, secret string }

func main() {
	flag.Parse()
	log.SetFlags(log.Ltime)
	if *hydraBin == "" || *caddyBin == "" || *pcesimBin == "" {
		fmt.Fprintln(os.Stderr, "need -hydra, -caddy and -pcesim")
		os.Exit(2)
	}
	if *workDir == "" {
		d, err := os.MkdirTemp("", "pce-hydra-interop-")
		if err != nil {
			log.Fatal(err)
		}
		*workDir = d
	}
	if err := os.MkdirAll(*workDir, 0o755); err != nil {
		log.Fatal(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; log.Print("interrupted"); stopAll(); os.Exit(130) }()
	defer stopAll()

	s := setup()
	began := time.Now()
	s.run()
	stopAll()

	t := table()
	failed := 0
	for _, r := range results {
		if !r.ok {
			failed++
		}
	}
	summary := fmt.Sprintf("%d checks, %d failed (checks took %s)", len(results), failed, time.Since(began).Round(time.Second))
	fmt.Print("\n" + t + "\n" + summary + "\n")
	if *outFile != "" {
		os.WriteFile(*outFile, []byte(t+"\n"+summary+"\n"), 0o644)
	}
	if failed > 0 {
		os.Exit(1)
	}
}

func setup() *stack {
	s := &stack{rec: &recorder{}, clients: map[string]client{}, hookCalls: make(chan string, 100)}

	// The simulated legacy backend, alone (-idp "": no identity provider).
	simPort := freePort()
	sim := start("pce-sim", nil, *pcesimBin, "-backend", fmt.Sprintf("127.0.0.1:%d", simPort), "-idp", "")
	waitHTTP("pce-sim", fmt.Sprintf("http://127.0.0.1:%d/", simPort), 0, sim)

	// The recorder between the gateway and the backend: what reaches the
	// backend, with the user and scope the gateway forwards (header_up).
	simURL, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", simPort))
	rp := httputil.NewSingleHostReverseProxy(simURL)
	rp.ModifyResponse = func(res *http.Response) error {
		r := res.Request
		s.rec.mu.Lock()
		s.rec.reqs = append(s.rec.reqs, seen{r.Method, r.URL.EscapedPath(), r.Header.Get("Authorization"),
			r.Header.Get("X-Pce-User"), r.Header.Get("X-Pce-Scope"), res.StatusCode})
		s.rec.mu.Unlock()
		return nil
	}
	recURL := serve(rp)

	// Hydra's token hook, and the login/consent/callback URLs Hydra sends
	// the browser to (never fetched: the flow is driven by hand).
	mux := http.NewServeMux()
	mux.HandleFunc("/token-hook", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Request struct {
				ClientID   string   `json:"client_id"`
				GrantTypes []string `json:"grant_types"`
			} `json:"request"`
		}
		json.NewDecoder(r.Body).Decode(&in)
		s.hookCalls <- in.Request.ClientID + " " + strings.Join(in.Request.GrantTypes, ",")
		if in.Request.ClientID != s.clients["hook"].id {
			w.WriteHeader(http.StatusNoContent) // keep the session as it is
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"session":{"access_token":{"uid":123}}}`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "interop\n") })
	s.hook = serve(mux)

	// Hydra: DSN=memory, public and admin on their own ports.
	s.hydraPublic, s.hydraAdmin = startHydra("hydra", fmt.Sprintf(`  login: %s/login
  consent: %s/consent
oauth2:
  token_hook: %s/token-hook
`, s.hook, s.hook, s.hook))

	// The clients (admin API).
	cc := func(name, scope string, aud ...string) {
		s.createClient(name, map[string]any{
			"client_name": name, "grant_types": []string{"client_credentials"},
			"scope": scope, "audience": aud, "token_endpoint_auth_method": "client_secret_basic",
		})
	}
	cc("app", "uapi", uapiAud)            // the ordinary API client
	cc("billing", "uapi", billingAud)     // allowed another API's audience only
	cc("hook", "uapi", uapiAud)           // the token hook gives it uid 123
	cc("short", "uapi", uapiAud)          // short-lived access tokens
	cc("wild", "uapi uapi.*", uapiAud)    // a wildcard scope
	s.createClient("web", map[string]any{ // authorization code + refresh
		"client_name": "web", "grant_types": []string{"authorization_code", "refresh_token"},
		"response_types": []string{"code"}, "scope": "uapi offline_access", "audience": []string{uapiAud},
		"redirect_uris": []string{s.hook + "/callback"}, "token_endpoint_auth_method": "client_secret_basic",
	})
	ls := do(http.DefaultClient, "PUT", s.hydraAdmin+"/admin/clients/"+s.clients["short"].id+"/lifespans",
		map[string]string{"Content-Type": "application/json"},
		jsonBody(map[string]string{"client_credentials_grant_access_token_lifespan": shortLifespan.String()}))
	if ls.Status != 200 {
		fatal("PUT lifespans: %d %s", ls.Status, ls.Body)
	}

	// Hydra's iss, as its introspection says it, for `issuers`.
	tok := s.ccToken("app", "uapi", uapiAud)
	in := s.introspect(tok.token, nil)
	iss, _ := in["iss"].(string)
	if iss == "" {
		fatal("introspection has no iss: %v", in)
	}
	s.iss = iss
	log.Printf("hydra iss %q; introspection of a client_credentials token: %s", iss, mustJSON(in))

	// The gateway. Its client_id/secret are not a Hydra client: Hydra's
	// admin introspection does not authenticate callers.
	gwPort, admPort, postPort := freePort(), freePort(), freePort()
	s.gw = fmt.Sprintf("http://127.0.0.1:%d", gwPort)
	s.gwPost = fmt.Sprintf("http://127.0.0.1:%d", postPort)
	s.caddyAdmin = fmt.Sprintf("http://127.0.0.1:%d", admPort)
	caddyfile := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}

http://127.0.0.1:%d {
	bind 127.0.0.1
	voipnow_pce {
		introspection_url %s/admin/oauth2/introspect
		client_id not-a-hydra-client
		client_secret hydra-checks-nothing
		required_scopes uapi
		admin_scopes uapi.admin
		audiences %s
		issuers %s
		user_claim ext.uid
		cache memory
		max_ttl %s
		negative_ttl 1s
	}
	reverse_proxy %s {
		header_up X-Pce-User {http.auth.user.id}
		header_up X-Pce-Scope {http.auth.user.scope}
	}
}

# The same, with client_secret_post and other made-up credentials.
http://127.0.0.1:%d {
	bind 127.0.0.1
	voipnow_pce {
		introspection_url %s/admin/oauth2/introspect
		client_id another-made-up-client
		client_secret another-made-up-secret
		client_auth client_secret_post
		required_scopes uapi
		audiences %s
		issuers %s
		user_claim ext.uid
	}
	reverse_proxy %s
}
`, admPort, gwPort, s.hydraAdmin, uapiAud, iss, maxTTL, strings.TrimPrefix(recURL, "http://"),
		postPort, s.hydraAdmin, uapiAud, iss, strings.TrimPrefix(recURL, "http://"))
	cfPath := filepath.Join(*workDir, "Caddyfile")
	os.WriteFile(cfPath, []byte(caddyfile), 0o644)
	home := filepath.Join(*workDir, "caddy-home")
	os.MkdirAll(home, 0o755)
	cd := start("caddy", []string{"HOME=" + home, "XDG_DATA_HOME=" + home, "XDG_CONFIG_HOME=" + home},
		*caddyBin, "run", "--config", cfPath, "--adapter", "caddyfile")
	waitHTTP("caddy", s.caddyAdmin+"/config/", 200, cd)
	waitHTTP("caddy", s.gw+"/", 0, cd)
	log.Printf("stack up: gateway %s, caddy admin %s, hydra public %s admin %s, backend via %s, hook %s",
		s.gw, s.caddyAdmin, s.hydraPublic, s.hydraAdmin, recURL, s.hook)
	return s
}

// startHydra starts `hydra serve all --dev` with DSN=memory on two free
// loopback ports; extra is appended to the config (its first lines belong
// to urls:).
func startHydra(name, extra string) (public, admin string) {
	pub, adm := freePort(), freePort()
	public = fmt.Sprintf("http://127.0.0.1:%d", pub)
	admin = fmt.Sprintf("http://127.0.0.1:%d", adm)
	cfg := fmt.Sprintf(`dsn: memory
log:
  level: info
  leak_sensitive_values: false
serve:
  public: {host: 127.0.0.1, port: %d}
  admin: {host: 127.0.0.1, port: %d}
secrets:
  system: [interop-system-secret-0123456789]
urls:
  self:
    issuer: %s
`, pub, adm, public) + extra
	cfgPath := filepath.Join(*workDir, name+".yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	hy := start(name, []string{"DSN=memory"}, *hydraBin, "serve", "all", "--dev", "--config", cfgPath)
	waitHTTP(name, admin+"/health/ready", 200, hy)
	waitHTTP(name, public+"/health/ready", 200, hy)
	if v := do(http.DefaultClient, "GET", admin+"/version", nil, nil); v.Status == 200 {
		log.Printf("%s /version: %s", name, bytes.TrimSpace(v.Body))
	}
	return public, admin
}

func serve(h http.Handler) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal("listen: %v", err)
	}
	go http.Serve(l, h)
	return "http://" + l.Addr().String()
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func (s *stack) createClient(name string, body map[string]any) {
	a := do(http.DefaultClient, "POST", s.hydraAdmin+"/admin/clients",
		map[string]string{"Content-Type": "application/json"}, jsonBody(body))
	m := a.json()
	id, _ := m["client_id"].(string)
	secret, _ := m["client_secret"].(string)
	if a.Status != 201 || id == "" || secret == "" {
		fatal("create client %s: %d %s", name, a.Status, a.Body)
	}
	s.clients[name] = client{id, secret}
}

type token struct {
	token, refresh, scope string
	expiresIn             float64
	status                int
	raw                   string
	at                    time.Time
}

func (s *stack) tokenRequest(c client, form url.Values) token {
	at := time.Now()
	req, _ := http.NewRequest("POST", s.hydraPublic+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fatal("token: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var t struct {
		AccessToken  string  `json:"access_token"`
		RefreshToken string  `json:"refresh_token"`
		Scope        string  `json:"scope"`
		ExpiresIn    float64 `json:"expires_in"`
	}
	json.Unmarshal(b, &t)
	return token{t.AccessToken, t.RefreshToken, t.Scope, t.ExpiresIn, res.StatusCode, string(b), at}
}

// ccToken is a client_credentials token; empty scope or audience leave
// the parameter out.
func (s *stack) ccToken(name, scope, audience string) token {
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	if audience != "" {
		form.Set("audience", audience)
	}
	t := s.tokenRequest(s.clients[name], form)
	if t.status != 200 || t.token == "" {
		fatal("client_credentials token for %s (scope %q, audience %q): %d %s", name, scope, audience, t.status, t.raw)
	}
	return t
}

// introspect asks Hydra's admin endpoint directly; auth is nil (no
// credentials) or id, secret for HTTP Basic.
func (s *stack) introspect(tok string, auth []string) map[string]any {
	a := s.introspectRaw(s.hydraAdmin+"/admin/oauth2/introspect", tok, auth)
	if a.Status != 200 {
		fatal("introspection: %d %s", a.Status, a.Body)
	}
	return a.json()
}

func (s *stack) introspectRaw(u, tok string, auth []string) answer {
	req, _ := http.NewRequest("POST", u, strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != nil {
		req.SetBasicAuth(auth[0], auth[1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{Status: -1, Body: []byte(err.Error())}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{res.StatusCode, res.Header, b}
}

func (s *stack) revokeAtHydra(name, tok string) int {
	req, _ := http.NewRequest("POST", s.hydraPublic+"/oauth2/revoke", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	c := s.clients[name]
	req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	res.Body.Close()
	return res.StatusCode
}

func (s *stack) revokeAtGateway(tok string) answer {
	return do(http.DefaultClient, "POST", s.caddyAdmin+"/voipnow_pce/revoke",
		map[string]string{"Content-Type": "application/json"}, jsonBody(map[string]string{"token": tok}))
}

// put sends an update through the gateway and returns its answer and the
// requests that reached the backend meanwhile.
func (s *stack) put(path, tok, body string) (answer, []seen) {
	n := s.rec.count()
	hdr := map[string]string{}
	if tok != "" {
		hdr["Authorization"] = "Bearer " + tok
	}
	a := do(http.DefaultClient, "PUT", s.gw+path, hdr, strings.NewReader(body))
	return a, s.rec.since(n)
}

func active(m map[string]any) bool { b, _ := m["active"].(bool); return b }

// forwarded: the gateway's answer is the backend's, for one request that
// reached it with the token.
func forwarded(a answer, got []seen, tok string) bool {
	return len(got) == 1 && got[0].Status == a.Status && got[0].Auth == "Bearer "+tok
}

func describe(a answer, got []seen) string {
	s := a.short()
	if len(got) == 0 {
		return s + "; backend not reached"
	}
	parts := []string{}
	for _, g := range got {
		p := fmt.Sprintf("backend saw %s %s (%d)", g.Method, g.Path, g.Status)
		if g.User != "" {
			p += ", X-Pce-User " + g.User
		}
		parts = append(parts, p)
	}
	return s + "; " + strings.Join(parts, "; ")
}

// ---------------------------------------------------------------- the checks

func (s *stack) run() {
	s.checkPageExample()
	s.checkScopes()
	s.checkAudiences()
	s.checkUserClaim()
	s.checkWildcard()
	s.checkIntrospectionUnauthenticated()
	s.checkRevocation()
	s.checkCodeFlow()
	s.checkExpiry()
}

func (s *stack) checkPageExample() {
	t := s.ccToken("app", "uapi", uapiAud)
	a, got := s.put(pagePath, t.token, pageBody)
	ok := a.Status == 200 && forwarded(a, got, t.token) && got[0].Method == "PUT" &&
		strings.Contains(string(a.Body), `"note":"I want to use POST for my event"`)
	record("page example (PUT update), client_credentials token scope=uapi audience=uapi", "200, reached the backend",
		describe(a, got), ok)
	// The token hook was called for every grant; not asked to change this
	// client's session (204), so no ext.
	in := s.introspect(t.token, nil)
	_, hasExt := in["ext"]
	record("introspection of that token at Hydra", "active, scope uapi, aud [uapi], token_use access_token, iss = issuer",
		fmt.Sprintf("active=%v scope=%q aud=%v token_use=%v iss=%v ext=%v", in["active"], in["scope"], in["aud"], in["token_use"], in["iss"], in["ext"]),
		active(in) && in["scope"] == "uapi" && fmt.Sprint(in["aud"]) == "["+uapiAud+"]" && in["token_use"] == "access_token" && !hasExt)
}

func (s *stack) checkScopes() {
	// No scope= at all: Hydra grants none (default_grant_allowed_scope is off).
	t := s.ccToken("app", "", uapiAud)
	a, got := s.put(pagePath, t.token, pageBody)
	record("token asked without scope= (client allowed uapi)", "Hydra grants no scope; gateway 400 pce_access_denied, backend not reached",
		fmt.Sprintf("Hydra scope=%q; gateway %s", t.scope, describe(a, got)),
		t.scope == "" && a.Status == 400 && a.code() == "pce_access_denied" && len(got) == 0)
	// A scope the client is not allowed: Hydra refuses to mint it.
	bad := s.tokenRequest(s.clients["app"], url.Values{"grant_type": {"client_credentials"}, "scope": {"uapi uapi.admin"}, "audience": {uapiAud}})
	record("client allowed `uapi` asks scope=uapi uapi.admin", "Hydra refuses (invalid_scope)",
		fmt.Sprintf("%d %s", bad.status, errField(bad.raw)), bad.status == 400 && errField(bad.raw) == "invalid_scope")
}

func errField(raw string) string {
	var m struct {
		Error string `json:"error"`
	}
	json.Unmarshal([]byte(raw), &m)
	return m.Error
}

func (s *stack) checkAudiences() {
	t := s.ccToken("billing", "uapi", billingAud)
	a, got := s.put(pagePath, t.token, pageBody)
	record("token for aud https://billing.example, gateway `audiences https://uapi.example`", "401 access_denied, backend not reached",
		describe(a, got), a.Status == 401 && a.code() == "access_denied" && len(got) == 0)
	// No audience= : Hydra grants an empty aud.
	t = s.ccToken("app", "uapi", "")
	in := s.introspect(t.token, nil)
	a, got = s.put(pagePath, t.token, pageBody)
	record("token asked without audience= (client allowed uapi aud)", "Hydra grants aud []; gateway 401 access_denied",
		fmt.Sprintf("Hydra aud=%v; gateway %s", in["aud"], describe(a, got)),
		a.Status == 401 && a.code() == "access_denied" && len(got) == 0 && fmt.Sprint(in["aud"]) == "[]")
	// A client asking an audience it is not allowed: Hydra refuses.
	bad := s.tokenRequest(s.clients["billing"], url.Values{"grant_type": {"client_credentials"}, "scope": {"uapi"}, "audience": {uapiAud}})
	record("billing client asks audience=https://uapi.example", "Hydra refuses to mint it (400)",
		fmt.Sprintf("%d %s", bad.status, errField(bad.raw)), bad.status == 400)
}

func (s *stack) drainHook() []string {
	var out []string
	for {
		select {
		case c := <-s.hookCalls:
			out = append(out, c)
		default:
			return out
		}
	}
}

func (s *stack) checkUserClaim() {
	s.drainHook()
	t := s.ccToken("hook", "uapi", uapiAud)
	calls := s.drainHook()
	in := s.introspect(t.token, nil)
	ext, _ := in["ext"].(map[string]any)
	record("token hook (oauth2.token_hook) on client_credentials", "hook called; introspection ext.uid = 123",
		fmt.Sprintf("hook calls %v; ext=%v", calls, mustJSON(ext)), len(calls) == 1 && fmt.Sprint(ext["uid"]) == "123")
	a, got := s.put(user123Path, t.token, pageBody)
	record("user_claim ext.uid: PUT on userId 123 with the uid-123 token", "200, backend saw /uapi/extensions/123/..., X-Pce-User 123",
		describe(a, got), a.Status == 200 && forwarded(a, got, t.token) &&
			strings.HasPrefix(got[0].Path, "/uapi/extensions/123/") && got[0].User == "123")
	a, got = s.put(user124Path, t.token, pageBody)
	record("user_claim ext.uid: PUT on userId 124 with the uid-123 token", "400 pce_access_denied, backend not reached",
		describe(a, got), a.Status == 400 && a.code() == "pce_access_denied" && len(got) == 0)
	plain := s.ccToken("app", "uapi", uapiAud)
	a, got = s.put(user123Path, plain.token, pageBody)
	record("token without ext.uid on userId 123", "400 pce_access_denied (no user: only @me)",
		describe(a, got), a.Status == 400 && a.code() == "pce_access_denied" && len(got) == 0)
}

func (s *stack) checkWildcard() {
	t := s.tokenRequest(s.clients["wild"], url.Values{"grant_type": {"client_credentials"}, "scope": {"uapi uapi.admin"}, "audience": {uapiAud}})
	record("wildcard scope strategy (default): client allowed `uapi uapi.*` asks scope=uapi uapi.admin", "Hydra grants uapi.admin",
		fmt.Sprintf("%d scope=%q", t.status, t.scope), t.status == 200 && t.scope == "uapi uapi.admin")
	if t.token == "" {
		return
	}
	a, got := s.put(user999Path, t.token, pageBody)
	record("that token (admin_scopes uapi.admin) on userId 999", "forwarded: it acts as an administrator for any user",
		describe(a, got), a.Status == 200 && forwarded(a, got, t.token))
	t2 := s.tokenRequest(s.clients["wild"], url.Values{"grant_type": {"client_credentials"}, "scope": {"uapi uapi.anything.at.all"}, "audience": {uapiAud}})
	record("client allowed `uapi.*` asks scope=uapi.anything.at.all", "Hydra grants it (`*` matches the rest)",
		fmt.Sprintf("%d scope=%q", t2.status, t2.scope), t2.status == 200 && strings.Contains(t2.scope, "uapi.anything.at.all"))

	// The remedy: a second Hydra with strategies.scope exact.
	pub, adm := startHydra("hydra-exact", "strategies:\n  scope: exact\n")
	e := &stack{hydraPublic: pub, hydraAdmin: adm, clients: map[string]client{}}
	e.createClient("wild", map[string]any{"client_name": "wild", "grant_types": []string{"client_credentials"},
		"scope": "uapi uapi.*", "audience": []string{uapiAud}, "token_endpoint_auth_method": "client_secret_basic"})
	x := e.tokenRequest(e.clients["wild"], url.Values{"grant_type": {"client_credentials"}, "scope": {"uapi uapi.admin"}, "audience": {uapiAud}})
	x2 := e.tokenRequest(e.clients["wild"], url.Values{"grant_type": {"client_credentials"}, "scope": {"uapi"}, "audience": {uapiAud}})
	record("Hydra with `strategies.scope: exact`, same client asks scope=uapi uapi.admin", "Hydra refuses (invalid_scope); scope=uapi still granted",
		fmt.Sprintf("%d %s; scope=uapi: %d %q", x.status, errField(x.raw), x2.status, x2.scope),
		x.status == 400 && errField(x.raw) == "invalid_scope" && x2.status == 200 && x2.scope == "uapi")
}

func (s *stack) checkIntrospectionUnauthenticated() {
	t := s.ccToken("app", "uapi", uapiAud)
	none := s.introspectRaw(s.hydraAdmin+"/admin/oauth2/introspect", t.token, nil)
	wrong := s.introspectRaw(s.hydraAdmin+"/admin/oauth2/introspect", t.token, []string{"nobody", "wrong-secret"})
	record("Hydra admin introspection with no client credentials", "answered (200, active true): unauthenticated",
		fmt.Sprintf("%d active=%v", none.Status, none.json()["active"]), none.Status == 200 && active(none.json()))
	record("Hydra admin introspection with wrong HTTP Basic credentials", "answered (200, active true): credentials ignored",
		fmt.Sprintf("%d active=%v", wrong.Status, wrong.json()["active"]), wrong.Status == 200 && active(wrong.json()))
	pub := s.introspectRaw(s.hydraPublic+"/oauth2/introspect", t.token, []string{s.clients["app"].id, s.clients["app"].secret})
	pub2 := s.introspectRaw(s.hydraPublic+"/admin/oauth2/introspect", t.token, nil)
	record("introspection on Hydra's public port", "not served (404): admin port only",
		fmt.Sprintf("/oauth2/introspect %d, /admin/oauth2/introspect %d", pub.Status, pub2.Status), pub.Status == 404 && pub2.Status == 404)
	n := 0
	for _, r := range results {
		if r.ok && strings.HasPrefix(r.got, "200;") {
			n++
		}
	}
	record("the gateway's client_id/secret (`not-a-hydra-client`, client_secret_basic) are no Hydra client", "its introspections succeed anyway",
		fmt.Sprintf("%d requests forwarded so far with valid tokens", n), n >= 3)
	n0 := s.rec.count()
	a := do(http.DefaultClient, "PUT", s.gwPost+pagePath, map[string]string{"Authorization": "Bearer " + t.token}, strings.NewReader(pageBody))
	got := s.rec.since(n0)
	record("a second site: `client_auth client_secret_post`, made-up credentials, page example", "200 (Hydra takes either form, checks neither)",
		describe(a, got), a.Status == 200 && forwarded(a, got, t.token))
}

func (s *stack) checkRevocation() {
	// Revoked at Hydra before its first use: refused.
	t := s.ccToken("app", "uapi", uapiAud)
	st := s.revokeAtHydra("app", t.token)
	a, got := s.put(pagePath, t.token, pageBody)
	record("revoked at Hydra (POST /oauth2/revoke) before first use", "Hydra 200; gateway 401 access_denied",
		fmt.Sprintf("Hydra %d; gateway %s", st, describe(a, got)), st == 200 && a.Status == 401 && a.code() == "access_denied" && len(got) == 0)

	// Used (cached), revoked at Hydra, no purge: the cache answers until
	// its entry lives out (max_ttl here).
	t = s.ccToken("app", "uapi", uapiAud)
	a1, _ := s.put(pagePath, t.token, pageBody)
	cachedAt := time.Now()
	st = s.revokeAtHydra("app", t.token)
	hydraSays := active(s.introspect(t.token, nil))
	a2, _ := s.put(pagePath, t.token, pageBody)
	var refusedAfter time.Duration
	for time.Since(cachedAt) < maxTTL+5*time.Second {
		a, _ := s.put(pagePath, t.token, pageBody)
		if a.Status == 401 {
			refusedAfter = time.Since(cachedAt)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	record(fmt.Sprintf("used once, then revoked at Hydra, no gateway purge (max_ttl %s)", maxTTL),
		fmt.Sprintf("Hydra inactive; gateway 200 from its cache until the entry ends (≤ max_ttl %s), then 401", maxTTL),
		fmt.Sprintf("first use %d; Hydra %d, active=%v; right after: %d; 401 after %.1fs", a1.Status, st, hydraSays, a2.Status, refusedAfter.Seconds()),
		a1.Status == 200 && st == 200 && !hydraSays && a2.Status == 200 && refusedAfter > 0 && refusedAfter <= maxTTL+time.Second)

	// Used, revoked at Hydra, then pushed to the gateway's admin endpoint.
	t = s.ccToken("app", "uapi", uapiAud)
	a1, _ = s.put(pagePath, t.token, pageBody)
	st = s.revokeAtHydra("app", t.token)
	rv := s.revokeAtGateway(t.token)
	a2, got = s.put(pagePath, t.token, pageBody)
	record("used once, revoked at Hydra, then POST /voipnow_pce/revoke on Caddy's admin API", "admin 200 memory:1; gateway 401 at once",
		fmt.Sprintf("first use %d; Hydra %d; admin %d %s; then %s", a1.Status, st, rv.Status, bytes.TrimSpace(rv.Body), describe(a2, got)),
		a1.Status == 200 && st == 200 && rv.Status == 200 && rv.json()["memory"] == float64(1) && a2.Status == 401 && len(got) == 0)
}

// codeFlow drives the authorization code flow by hand: Hydra's login and
// consent challenges accepted through the admin API.
func (s *stack) codeFlow() (token, error) {
	jar, _ := cookiejar.New(nil)
	br := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	web := s.clients["web"]
	redirect := s.hook + "/callback"
	q := url.Values{"client_id": {web.id}, "response_type": {"code"}, "scope": {"uapi offline_access"},
		"audience": {uapiAud}, "redirect_uri": {redirect}, "state": {"interop-state-0123"}}
	loc := s.hydraPublic + "/oauth2/auth?" + q.Encode()
	follow := func(u string) (*url.URL, error) {
		a := do(br, "GET", u, nil, nil)
		if a.Status != 302 && a.Status != 303 {
			return nil, fmt.Errorf("GET %s: %d %s", u, a.Status, a.Body)
		}
		return url.Parse(a.Header.Get("Location"))
	}
	accept := func(kind, challenge string, body any) (string, error) {
		u := fmt.Sprintf("%s/admin/oauth2/auth/requests/%s/accept?%s_challenge=%s", s.hydraAdmin, kind, kind, url.QueryEscape(challenge))
		a := do(http.DefaultClient, "PUT", u, map[string]string{"Content-Type": "application/json"}, jsonBody(body))
		r, _ := a.json()["redirect_to"].(string)
		if a.Status != 200 || r == "" {
			return "", fmt.Errorf("accept %s: %d %s", kind, a.Status, a.Body)
		}
		return r, nil
	}
	l, err := follow(loc)
	if err != nil {
		return token{}, err
	}
	lc := l.Query().Get("login_challenge")
	if lc == "" {
		return token{}, fmt.Errorf("no login_challenge in %s", l)
	}
	next, err := accept("login", lc, map[string]any{"subject": "user-123"})
	if err != nil {
		return token{}, err
	}
	c, err := follow(next)
	if err != nil {
		return token{}, err
	}
	cc := c.Query().Get("consent_challenge")
	if cc == "" {
		return token{}, fmt.Errorf("no consent_challenge in %s", c)
	}
	next, err = accept("consent", cc, map[string]any{
		"grant_scope": []string{"uapi", "offline_access"}, "grant_access_token_audience": []string{uapiAud},
		"session": map[string]any{"access_token": map[string]any{"uid": 123}},
	})
	if err != nil {
		return token{}, err
	}
	cb, err := follow(next)
	if err != nil {
		return token{}, err
	}
	code := cb.Query().Get("code")
	if code == "" || !strings.HasPrefix(cb.String(), redirect) {
		return token{}, fmt.Errorf("no code in %s", cb)
	}
	t := s.tokenRequest(web, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}})
	if t.status != 200 || t.token == "" || t.refresh == "" {
		return t, fmt.Errorf("code exchange: %d %s", t.status, t.raw)
	}
	return t, nil
}

func (s *stack) checkCodeFlow() {
	t, err := s.codeFlow()
	record("authorization code flow by hand (login + consent accepted via admin API, grant_scope uapi offline_access, session.access_token.uid 123)",
		"access and refresh token", fmt.Sprintf("scope=%q refresh token %v; err %v", t.scope, t.refresh != "", err), err == nil)
	if err != nil {
		return
	}
	a, got := s.put(user123Path, t.token, pageBody)
	record("code-flow access token on userId 123 (ext.uid from the consent session)", "200, backend saw X-Pce-User 123",
		describe(a, got), a.Status == 200 && forwarded(a, got, t.token) && got[0].User == "123")
	rin := s.introspect(t.refresh, nil)
	a, got = s.put(pagePath, t.refresh, pageBody)
	record("refresh token presented as a bearer token", "401 access_denied (Hydra says token_use refresh_token)",
		fmt.Sprintf("Hydra active=%v token_use=%v; gateway %s", rin["active"], rin["token_use"], describe(a, got)),
		a.Status == 401 && a.code() == "access_denied" && len(got) == 0 && rin["token_use"] == "refresh_token")

	web := s.clients["web"]
	r := s.tokenRequest(web, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {t.refresh}})
	if r.status != 200 || r.token == "" {
		record("refresh", "new access token", fmt.Sprintf("%d %s", r.status, r.raw), false)
		return
	}
	a, got = s.put(user123Path, r.token, pageBody)
	record("refreshed access token", "200, X-Pce-User 123", describe(a, got),
		a.Status == 200 && forwarded(a, got, r.token) && got[0].User == "123")

	oldIn := s.introspect(t.token, nil)
	a, _ = s.put(pagePath, t.token, pageBody)
	record("old access token after refresh", "Hydra: inactive (rotation revokes it); gateway: 200 from its cache (used before)",
		fmt.Sprintf("Hydra active=%v; gateway %s", oldIn["active"], a.short()), !active(oldIn) && a.Status == 200)
	rv := s.revokeAtGateway(t.token)
	a, _ = s.put(pagePath, t.token, pageBody)
	record("old access token after POST /voipnow_pce/revoke", "401 access_denied",
		fmt.Sprintf("admin %d; gateway %s", rv.Status, a.short()), rv.Status == 200 && a.Status == 401)

	// Reuse of the rotated refresh token: Hydra treats it as theft and
	// revokes the whole chain, the new access token included.
	reuse := s.tokenRequest(web, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {t.refresh}})
	newIn := s.introspect(r.token, nil)
	a, _ = s.put(user123Path, r.token, pageBody)
	record("old refresh token used again (reuse detection)", "Hydra 400 invalid_grant and revokes the chain; gateway: cached 200 for the new token until purged",
		fmt.Sprintf("Hydra %d %s; new access token Hydra active=%v, gateway %s", reuse.status, errField(reuse.raw), newIn["active"], a.short()),
		reuse.status == 400 && !active(newIn) && a.Status == 200)
	s.revokeAtGateway(r.token)
	a, _ = s.put(user123Path, r.token, pageBody)
	record("that new access token after POST /voipnow_pce/revoke", "401 access_denied", a.short(), a.Status == 401)
}

func (s *stack) checkExpiry() {
	t := s.ccToken("short", "uapi", uapiAud)
	in := s.introspect(t.token, nil)
	expF, _ := in["exp"].(float64)
	exp := time.Unix(int64(expF), 0)
	a, got := s.put(pagePath, t.token, pageBody)
	first := describe(a, got)
	firstOK := a.Status == 200 && forwarded(a, got, t.token)
	var lastOK, firstRefused time.Time
	var afterRefusal []int
	for time.Now().Before(exp.Add(4 * time.Second)) {
		a, _ := s.put(pagePath, t.token, pageBody)
		now := time.Now()
		switch {
		case a.Status == 200 && firstRefused.IsZero():
			lastOK = now
		case a.Status == 401 && firstRefused.IsZero():
			firstRefused = now
		case !firstRefused.IsZero():
			afterRefusal = append(afterRefusal, a.Status)
		}
		time.Sleep(250 * time.Millisecond)
	}
	after := active(s.introspect(t.token, nil))
	stillOK := false
	for _, st := range afterRefusal {
		if st != 401 {
			stillOK = true
		}
	}
	rel := func(x time.Time) string {
		if x.IsZero() {
			return "never"
		}
		return fmt.Sprintf("exp%+.1fs", x.Sub(exp).Seconds())
	}
	record(fmt.Sprintf("token with a %s lifespan (PUT /admin/clients/{id}/lifespans), expires_in %v", shortLifespan, t.expiresIn),
		"200 until exp, 401 from exp (cache capped at exp - skew, max_ttl 15s ignored)",
		fmt.Sprintf("first %s; last 200 at %s, first 401 at %s; later: all 401 %v; Hydra active after: %v", first, rel(lastOK), rel(firstRefused), !stillOK, after),
		firstOK && !lastOK.IsZero() && !firstRefused.IsZero() && lastOK.Before(exp.Add(time.Second)) &&
			firstRefused.After(exp.Add(-time.Second)) && firstRefused.Before(exp.Add(2*time.Second)) && !stillOK && !after)
}
