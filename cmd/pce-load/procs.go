package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is one subprocess (Caddy or redis-server) that the harness owns.
// Its output goes to a log file in the work directory.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	once    sync.Once
}

// children are stopped, in reverse order of start, when the harness exits.
type children struct {
	mu   sync.Mutex
	list []*child
}

func (cs *children) start(name, logPath string, env []string, bin string, args ...string) (*child, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	cs.mu.Lock()
	cs.list = append(cs.list, c)
	cs.mu.Unlock()
	return c, nil
}

// stopAll stops every child: SIGTERM, then SIGKILL after a grace period.
func (cs *children) stopAll() {
	cs.mu.Lock()
	list := cs.list
	cs.list = nil
	cs.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop()
	}
}

func (c *child) stop() {
	c.once.Do(func() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// tail is the end of the child's log, for error messages.
func (c *child) tail() string {
	b, _ := os.ReadFile(c.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// rssKiB is the child's resident set size from /proc (Linux), 0 elsewhere.
func (c *child) rssKiB() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// moduleRoot is the directory of the go.mod of the current module.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run pce-load from inside the caddy-voipnow-pce module")
	}
	return filepath.Dir(gomod), nil
}

// buildCaddy builds ./cmd/caddy (standard modules plus voipnow_pce).
func buildCaddy(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "caddy")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/caddy: %w\n%s", err, out)
	}
	return bin, nil
}

// startRedis runs a private redis-server on a free loopback port, no
// persistence, and waits for PING.
func startRedis(ctx context.Context, cs *children, dir string) (addr string, err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis-server is not on PATH (apt-get install redis-server): %w", err)
	}
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return "", err
		}
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		c, err := cs.start("redis", filepath.Join(dir, "redis.log"), nil, bin,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir)
		if err != nil {
			return "", err
		}
		if lastErr = waitFor(ctx, c, 10*time.Second, func() error { return redisPing(addr) }); lastErr == nil {
			return addr, nil
		}
		c.stop()
	}
	return "", lastErr
}

func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("unexpected answer to PING: %q", line)
	}
	return nil
}

// waitFor polls ready until it succeeds, the child exits or within passes.
func waitFor(ctx context.Context, c *child, within time.Duration, ready func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if c.exited() {
			return fmt.Errorf("%s exited:\n%s", c.name, c.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s: %v\n%s", c.name, within, err, c.tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// caddyTarget is one Caddy process under load.
type caddyTarget struct {
	name  string // "plain", "gateway-memory", "gateway-redis"
	base  string // http://127.0.0.1:port
	admin string // http://127.0.0.1:adminport
	proc  *child
}

// caddyfile is the configuration of one target: the same site and the same
// reverse_proxy for all, with or without voipnow_pce in front.
func caddyfile(adminPort, port int, backend, gateway string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
	grace_period 1s
	log {
		output stderr
		level WARN
	}
}

http://127.0.0.1:%d {
`, adminPort, port)
	if gateway != "" {
		b.WriteString("\tvoipnow_pce {\n")
		for line := range strings.SplitSeq(strings.TrimSpace(gateway), "\n") {
			b.WriteString("\t\t" + strings.TrimSpace(line) + "\n")
		}
		b.WriteString("\t}\n")
	}
	fmt.Fprintf(&b, "\treverse_proxy %s\n}\n", backend)
	return b.String()
}

// startCaddy writes the Caddyfile to dir (and a copy to out) and runs
// `caddy run` on it, waiting until it answers.
func startCaddy(ctx context.Context, cs *children, bin, dir, out, name, backend, gateway string) (*caddyTarget, error) {
	adminPort, err := freePort()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := caddyfile(adminPort, port, backend, gateway)
	path := filepath.Join(dir, "Caddyfile."+name)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	if out != "" {
		_ = os.WriteFile(filepath.Join(out, "Caddyfile."+name), []byte(cfg), 0o644)
	}
	// Caddy's data and config directories inside the work directory, so
	// nothing is written to the user's.
	env := []string{
		"XDG_DATA_HOME=" + filepath.Join(dir, "xdg-data"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "xdg-config"),
	}
	c, err := cs.start("caddy "+name, filepath.Join(dir, name+".log"), env, bin,
		"run", "--config", path, "--adapter", "caddyfile")
	if err != nil {
		return nil, err
	}
	t := &caddyTarget{name: name, base: fmt.Sprintf("http://127.0.0.1:%d", port), admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort), proc: c}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	err = waitFor(ctx, c, 30*time.Second, func() error {
		// A GET is not the route: every target proxies it to the backend.
		res, err := client.Get(t.base + "/healthz")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// cpuProfile fetches a CPU profile of the target from Caddy's admin
// endpoint (/debug/pprof/profile) for d and writes it to path.
func cpuProfile(ctx context.Context, t *caddyTarget, d time.Duration, path string) error {
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", t.admin, secs), nil)
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
		return fmt.Errorf("%s: profile: status %d", t.name, res.StatusCode)
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
