// Package e2e runs README's first command (testdata/run-local.sh: the
// simulator and cmd/caddy with Caddyfile.example, as is) and sends the
// page's example request through it, the way a new user would with curl.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	gateway = "http://127.0.0.1:8080"
	idp     = "http://127.0.0.1:9096"
)

func TestLocalStackServesThePageExample(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:8080", "127.0.0.1:9080", "127.0.0.1:9096", "127.0.0.1:2019"} {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			t.Fatalf("%s is taken by another program: the local stack needs it", addr)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "testdata/run-local.sh")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PCE_CLIENT_SECRET=gateway-secret")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logs, err := os.Create(filepath.Join(t.TempDir(), "stack.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			t.Logf("stack output:\n%s", b)
		}
	})

	// The script builds first; wait for the gateway to answer.
	deadline := time.Now().Add(7 * time.Minute)
	for {
		res, err := http.Get(gateway + "/healthz-probe")
		if err == nil {
			res.Body.Close()
			if c, err := net.DialTimeout("tcp", "127.0.0.1:9096", time.Second); err == nil {
				c.Close()
				break
			}
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			t.Fatal("the local stack did not come up")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A token from the simulator, as README shows with curl.
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"uapi"}}
	req, _ := http.NewRequest(http.MethodPost, idp+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("app", "app-secret")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("no token from the simulator: %d %v", res.StatusCode, err)
	}

	// The page's example request.
	body := "{\n  \"method\": \"1\",\n  \"note\": \"I want to use POST for my event\"\n}"
	req, _ = http.NewRequest(http.MethodPut, gateway+"/uapi/extensions/@me/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("page example: %d %s", res.StatusCode, raw)
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("answer %s: %v", raw, err)
	}
	want := map[string]string{"type": "0", "id": "NqeyDRqo4FtabmFj8gNWq3hsiGNYyq", "method": "1",
		"note": "I want to use POST for my event", "url": "http://myevent.com/SaveMyPhoneCallDetails", "status": "1"}
	for k, v := range want {
		if ev[k] != v {
			t.Errorf("answer %s = %v, want %q (whole answer %s)", k, ev[k], v, raw)
		}
	}
	if _, ok := ev["modified"].(string); !ok {
		t.Errorf("answer lacks modified: %s", raw)
	}
	if _, ok := ev["links"].(map[string]any); !ok {
		t.Errorf("answer lacks links: %s", raw)
	}

	// And without a token, the documented 401.
	req, _ = http.NewRequest(http.MethodPut, gateway+"/uapi/extensions/@me/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq", strings.NewReader(body))
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", res.StatusCode)
	}

	// The walk README shows: create, list, update, delete.
	call := func(method, uri, body string, wantStatus int) []byte {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, gateway+uri, rd)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		if res.StatusCode != wantStatus {
			t.Fatalf("%s %s: %d %s, want %d", method, uri, res.StatusCode, raw, wantStatus)
		}
		return raw
	}
	const coll = "/uapi/extensions/@me/0003*210/phoneCallEvents"
	var created struct {
		ID, Type, URL string
	}
	raw = call(http.MethodPost, coll, `{"type":1,"method":"POST","url":"https://hooks.example.com/calls","note":"walk"}`, http.StatusOK)
	if err := json.Unmarshal(raw, &created); err != nil || created.ID == "" || created.Type != "1" {
		t.Fatalf("create answered %s (%v)", raw, err)
	}
	var list struct {
		TotalResults int `json:"totalResults"`
		Entry        []struct{ ID string }
	}
	raw = call(http.MethodGet, coll+"/1?count=5", "", http.StatusOK)
	if err := json.Unmarshal(raw, &list); err != nil || list.TotalResults != 1 || len(list.Entry) != 1 || list.Entry[0].ID != created.ID {
		t.Fatalf("list answered %s (%v)", raw, err)
	}
	call(http.MethodPut, coll+"/1/"+created.ID, `{"status":0}`, http.StatusOK)
	raw = call(http.MethodDelete, coll+"/1/"+created.ID, "", http.StatusOK)
	if !strings.Contains(string(raw), created.ID) {
		t.Errorf("delete answered %s", raw)
	}
	call(http.MethodGet, coll+"/1/"+created.ID, "", http.StatusNotFound)
	// The create the issue found walking past the webhook guard.
	call(http.MethodPost, coll, `{"type":"0","method":"9","url":"http://169.254.169.254/latest/meta-data/"}`, http.StatusBadRequest)
	call(http.MethodPost, coll, `{"type":"0","method":"0","url":"http://169.254.169.254/latest/meta-data/"}`, http.StatusBadRequest)

	// The legacy query parameter works too, in every spelling the gateway
	// accepts, and the access log of Caddyfile.example keeps the token out,
	// wherever it came from.
	spellings := []string{"accessRequestToken", "accessrequesttoken", "ACCESSREQUESTTOKEN", "accessRequestToken[]",
		"%20accessRequestToken", "+accessRequestToken", "accessRequest%54oken", "%61ccessRequestToken",
		"accessRequestToken%00x", "accessRequestToken%5B%5D"}
	for _, name := range spellings {
		for _, sep := range []string{"?", "?a=1&", "?a=1;"} {
			uri := gateway + "/uapi/extensions/@me/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq" + sep + name + "=Bearer%20" + tok.AccessToken
			req, _ = http.NewRequest(http.MethodPut, uri, strings.NewReader(body))
			res, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Errorf("query token %s%s: %d, want 200", sep, name, res.StatusCode)
			}
		}
	}
	wantLines := 2 + 6 + 3*len(spellings)
	var logged []byte
	waitUntil := time.Now().Add(10 * time.Second)
	for {
		logged, _ = os.ReadFile(logs.Name())
		if strings.Count(string(logged), `"uri":"/uapi/`) >= wantLines || time.Now().After(waitUntil) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := strings.Count(string(logged), `"uri":"/uapi/`); n < wantLines {
		t.Errorf("%d access log lines for the requests, want at least %d", n, wantLines)
	}
	if strings.Contains(string(logged), tok.AccessToken) {
		t.Error("the token appears in the stack's logs")
	}

	// A client dripping its body, one byte every 2s, is cut off by
	// Caddyfile.example's read_body timeout instead of holding the
	// connection for the whole body (2 minutes here) and being forwarded.
	status, elapsed := slowDrip(t, "127.0.0.1:8080", tok.AccessToken, body, 2*time.Second)
	t.Logf("slow-drip client: %q after %s", status, elapsed.Round(100*time.Millisecond))
	if strings.Contains(status, " 200 ") {
		t.Errorf("a slow-drip update was answered %q: forwarded", status)
	}
	if elapsed > time.Minute {
		t.Errorf("a slow-drip client held the connection for %s", elapsed)
	}
}

// slowDrip sends an update whose body comes one byte every gap and
// returns the status line the gateway answered (or "" when it closed
// the connection) and when.
func slowDrip(t *testing.T, addr, token, body string, gap time.Duration) (string, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	head := "PUT /uapi/extensions/@me/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq HTTP/1.1\r\n" +
		"Host: 127.0.0.1:8080\r\nAuthorization: Bearer " + token + "\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := c.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := range len(body) {
			if _, err := c.Write([]byte{body[i]}); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(gap):
			}
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Minute))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), time.Since(start)
}
