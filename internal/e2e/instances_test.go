package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/redistest"
	"github.com/voipnow-pce/caddy-voipnow-pce/internal/testservers"
)

var (
	buildOnce sync.Once
	caddyBin  string
	buildErr  error
)

// caddyBinary builds ./cmd/caddy once per test run.
func caddyBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pce-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		caddyBin = filepath.Join(dir, "caddy")
		out, err := exec.Command("go", "build", "-o", caddyBin, "../../cmd/caddy").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return caddyBin
}

// instance is one gateway process.
type instance struct {
	base, admin string
}

// startInstance runs cmd/caddy with a gateway on a free port, sharing the
// given Redis, in front of backend.
func startInstance(t *testing.T, idp *testservers.IdP, backend *testservers.Backend, redisURL string, extra ...string) instance {
	t.Helper()
	port, admin := testservers.FreePort(t), testservers.FreePort(t)
	cfg := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	grace_period 1ns
}
http://127.0.0.1:%d {
	voipnow_pce {
		introspection_url %s
		client_id %s
		client_secret %s
		required_scopes uapi
		cache redis %s
		%s
	}
	reverse_proxy %s
}
`, admin, port, idp.URL(), testservers.ClientID, testservers.ClientSecret, redisURL, strings.Join(extra, "\n\t\t"), backend.Addr)
	dir := t.TempDir()
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, caddyBinary(t), "run", "--config", file, "--adapter", "caddyfile")
	logs, _ := os.Create(filepath.Join(dir, "caddy.log"))
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			t.Logf("instance on :%d logged:\n%s", port, b)
		}
	})
	in := instance{base: fmt.Sprintf("http://127.0.0.1:%d", port), admin: fmt.Sprintf("http://127.0.0.1:%d", admin)}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(in.admin + "/config/")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return in
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance on :%d did not start", port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const eventPath = "/uapi/extensions/@me/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"

func put(t *testing.T, base, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, base+eventPath, strings.NewReader(`{"method":"1"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// putFromBoth sends 64 concurrent PUTs with token, alternately to a and b,
// and returns their statuses.
func putFromBoth(t *testing.T, a, b instance, token string) []int {
	t.Helper()
	var wg sync.WaitGroup
	statuses := make([]int, 64)
	for i := range statuses {
		base := a.base
		if i%2 == 1 {
			base = b.base
		}
		wg.Go(func() { statuses[i] = put(t, base, token) })
	}
	wg.Wait()
	return statuses
}

// Two gateway processes sharing one Redis: a fresh token hit on both at
// once costs one introspection call, and a revocation on one is honoured
// by the other within a second.
func TestTwoInstancesShareRedis(t *testing.T) {
	rs := redistest.Start(t)
	idp := testservers.NewIdP(t)
	backend := testservers.NewBackend(t)
	a := startInstance(t, idp, backend, rs.URL())
	b := startInstance(t, idp, backend, rs.URL())

	const token = "tok-shared-1"
	idp.Grant(token, "uapi", "1001")
	for i, st := range putFromBoth(t, a, b, token) {
		if st != http.StatusOK {
			t.Fatalf("request %d: status %d", i, st)
		}
	}
	if n := idp.Calls.Load(); n != 1 {
		t.Errorf("64 concurrent requests over two instances made %d introspection calls, want 1", n)
	}

	// Revoke on A; B must stop accepting it from its caches within 1s.
	idp.Set(token, map[string]any{"active": false})
	res, err := http.Post(a.admin+"/voipnow_pce/revoke", "application/json", strings.NewReader(`{"token":"`+token+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d %s", res.StatusCode, body)
	}
	answered := time.Now()
	for put(t, b.base, token) != http.StatusUnauthorized {
		if time.Since(answered) > time.Second {
			t.Fatal("instance B still accepted the revoked token a second after the revocation's answer")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := put(t, a.base, token); st != http.StatusUnauthorized {
		t.Errorf("instance A accepted the revoked token: %d", st)
	}
}

// Two gateway processes, the identity provider slow (100ms, 400ms, 1.5s,
// with introspection_timeout 3s): a fresh token sent by 64 clients over
// both costs one call, for as long as the first instance's call lasts.
func TestTwoInstancesCoalesceSlowIntrospection(t *testing.T) {
	rs := redistest.Start(t)
	idp := testservers.NewIdP(t)
	backend := testservers.NewBackend(t)
	a := startInstance(t, idp, backend, rs.URL(), "introspection_timeout 3s")
	b := startInstance(t, idp, backend, rs.URL(), "introspection_timeout 3s")
	for _, delay := range []time.Duration{100 * time.Millisecond, 400 * time.Millisecond, 1500 * time.Millisecond} {
		token := fmt.Sprintf("tok-slow-%d", delay.Milliseconds())
		idp.Grant(token, "uapi", "1001")
		idp.Delay.Store(int64(delay))
		before := idp.Calls.Load()
		for i, st := range putFromBoth(t, a, b, token) {
			if st != http.StatusOK {
				t.Fatalf("endpoint %s slow, request %d: status %d", delay, i, st)
			}
		}
		if n := idp.Calls.Load() - before; n != 1 {
			t.Errorf("endpoint %s slow: 64 requests over two instances made %d introspection calls, want 1", delay, n)
		}
	}
}

// The Caddy build carries both modules, as README's list-modules line says.
func TestListModules(t *testing.T) {
	out, err := exec.Command(caddyBinary(t), "list-modules").CombinedOutput()
	if err != nil {
		t.Fatalf("caddy list-modules: %v\n%s", err, out)
	}
	for _, id := range []string{"http.handlers.voipnow_pce", "admin.api.voipnow_pce", "http.handlers.reverse_proxy"} {
		if !strings.Contains(string(out), id+"\n") {
			t.Errorf("caddy list-modules lacks %s", id)
		}
	}
}
