package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/loopback"
	"github.com/voipnow-pce/caddy-voipnow-pce/internal/procs"
	"github.com/voipnow-pce/caddy-voipnow-pce/internal/resp"
)

// startRedis runs a private redis-server on a free loopback port, no
// persistence, and waits for PING.
func startRedis(ctx context.Context, cs *procs.Set, dir string) (addr string, err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis-server is not on PATH (apt-get install redis-server): %w", err)
	}
	var lastErr error
	for range 5 {
		port, err := loopback.FreePort()
		if err != nil {
			return "", err
		}
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		c, err := cs.Start("redis", filepath.Join(dir, "redis.log"), nil, bin,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir)
		if err != nil {
			return "", err
		}
		if lastErr = procs.WaitFor(ctx, c, 10*time.Second, c.Name, func() error { return resp.Ping(addr, nil) }); lastErr == nil {
			return addr, nil
		}
		c.Stop()
	}
	return "", lastErr
}

// keepCaddyfile copies target name's Caddyfile (procs.StartCaddy writes it
// to work) to out, for the reader of the results.
func keepCaddyfile(work, out, name string) {
	if b, err := os.ReadFile(filepath.Join(work, "Caddyfile."+name)); err == nil {
		_ = os.WriteFile(filepath.Join(out, "Caddyfile."+name), b, 0o644)
	}
}

// cpuProfile fetches a CPU profile of the target from Caddy's admin
// endpoint (/debug/pprof/profile) for d and writes it to path.
func cpuProfile(ctx context.Context, t *procs.Caddy, d time.Duration, path string) error {
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", t.Admin, secs), nil)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: d + 30*time.Second}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: profile: status %d", t.Name, res.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
