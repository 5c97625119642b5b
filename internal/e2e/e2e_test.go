// Package e2e runs README's first command (testdata/run-local.sh: the
// simulator and cmd/caddy with Caddyfile.example, as is) and sends the
// page's example request through it, the way a new user would with curl.
package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
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

	// The legacy query parameter works too, and the access log of
	// Caddyfile.example keeps the token out, wherever it came from.
	req, _ = http.NewRequest(http.MethodPut, gateway+"/uapi/extensions/@me/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq?accessRequestToken=Bearer%20"+tok.AccessToken, strings.NewReader(body))
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("query token: %d, want 200", res.StatusCode)
	}
	var logged []byte
	waitUntil := time.Now().Add(5 * time.Second)
	for {
		logged, _ = os.ReadFile(logs.Name())
		if strings.Count(string(logged), `"status":200`) >= 2 || time.Now().After(waitUntil) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(string(logged), "phoneCallEvents") {
		t.Error("no access log lines for the requests")
	}
	if strings.Contains(string(logged), tok.AccessToken) {
		t.Error("the token appears in the stack's logs")
	}
}
