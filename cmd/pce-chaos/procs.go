package main

import (
	"bufio"
	"bytes"
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
// Its output goes to a log file.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	once    sync.Once
}

// children are stopped, in reverse order of start, when a scenario ends
// and when the harness exits (also on Ctrl-C and SIGTERM).
type children struct {
	mu   sync.Mutex
	list []*child
}

func (cs *children) start(name, logPath string, env []string, bin string, args ...string) (*child, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
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

// stopAll stops every child: SIGCONT (a paused one), SIGTERM, then SIGKILL
// after a grace period.
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
		_ = c.cmd.Process.Signal(syscall.SIGCONT)
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
}

// kill is a crash: SIGKILL, and wait for the exit.
func (c *child) kill() {
	c.once.Do(func() {
		_ = c.cmd.Process.Kill()
		<-c.done
	})
}

func (c *child) signal(s syscall.Signal) error { return c.cmd.Process.Signal(s) }

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

// moduleRoot is the directory of the go.mod of the current module.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run pce-chaos from inside the caddy-voipnow-pce module")
	}
	return filepath.Dir(gomod), nil
}

// buildCaddy builds ./cmd/caddy (standard modules plus voipnow_pce) into
// dir; go's build cache makes a second build a link at most.
func buildCaddy(ctx context.Context, root, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "caddy")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/caddy: %w\n%s", err, out)
	}
	return bin, nil
}

// listenLoopback opens a listener on a free loopback port.
func listenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// freePort returns a loopback port nobody listens on right now, never
// 6379 (a Redis that is not ours may run there).
func freePort() (int, error) {
	for {
		l, err := listenLoopback()
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if p != 6379 && p != 26379 {
			return p, nil
		}
	}
}

// serveOn runs h on a fresh loopback port; the returned func stops it.
func serveOn(h http.Handler) (addr string, stop func(), err error) {
	l, err := listenLoopback()
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	go func() { _ = srv.Serve(l) }()
	return l.Addr().String(), func() { _ = srv.Close() }, nil
}

// waitFor polls ready until it succeeds, the child (if any) exits, or
// within passes.
func waitFor(ctx context.Context, c *child, within time.Duration, what string, ready func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if c != nil && c.exited() {
			return fmt.Errorf("%s exited:\n%s", c.name, c.tail())
		}
		if time.Now().After(deadline) {
			tail := ""
			if c != nil {
				tail = "\n" + c.tail()
			}
			return fmt.Errorf("%s: not ready within %s: %v%s", what, within, err, tail)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// redisNode is one private redis-server (data node or sentinel) on a
// fixed loopback port, which it keeps across restarts.
type redisNode struct {
	name string
	port int
	dir  string
	conf string   // config file first on the command line (sentinels)
	args []string // extra arguments
	cs   *children
	proc *child
}

func (n *redisNode) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

func (n *redisNode) running() bool { return n.proc != nil && !n.proc.exited() }

// launch starts the node and waits for PING.
func (n *redisNode) launch(ctx context.Context) error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return fmt.Errorf("redis-server is not on PATH (apt-get install redis-server): %w", err)
	}
	var args []string
	if n.conf != "" {
		args = append(args, n.conf)
	}
	args = append(args, "--port", strconv.Itoa(n.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", n.dir)
	args = append(args, n.args...)
	c, err := n.cs.start(n.name, filepath.Join(n.dir, "redis.log"), nil, bin, args...)
	if err != nil {
		return err
	}
	n.proc = c
	return waitFor(ctx, c, 10*time.Second, n.name, func() error { return redisPing(n.addr()) })
}

// startRedisNode runs a node on a free port (a few tries: the port may be
// taken between probe and bind).
func startRedisNode(ctx context.Context, cs *children, dir, name string, conf string, args ...string) (*redisNode, error) {
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		d := filepath.Join(dir, fmt.Sprintf("%s-%d", name, port))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		n := &redisNode{name: name, port: port, dir: d, args: args, cs: cs}
		if conf != "" {
			n.conf = filepath.Join(d, "sentinel.conf")
			if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
				return nil, err
			}
		}
		if lastErr = n.launch(ctx); lastErr == nil {
			return n, nil
		}
		if n.proc != nil {
			n.proc.kill()
		}
	}
	return nil, lastErr
}

// restart brings a killed node back on the same port, empty (no
// persistence), retrying while the kernel frees the port.
func (n *redisNode) restart(ctx context.Context) error {
	if n.proc != nil {
		n.proc.kill()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := n.launch(ctx)
		if err == nil {
			return nil
		}
		if n.proc != nil {
			n.proc.kill()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("restart %s on %d: %w", n.name, n.port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func redisPing(addr string) error {
	v, err := redisDo(addr, 500*time.Millisecond, "PING")
	if err != nil {
		return err
	}
	if v != "PONG" {
		return fmt.Errorf("unexpected answer to PING: %v", v)
	}
	return nil
}

// redisError is an error reply (-ERR ...).
type redisError string

func (e redisError) Error() string { return string(e) }

// redisDo sends one command over a fresh connection and returns the reply
// (string, int64, []any, nil) or a redisError.
func redisDo(addr string, timeout time.Duration, args ...string) (any, error) {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(b.Bytes()); err != nil {
		return nil, err
	}
	v, err := respRead(bufio.NewReader(c))
	if err != nil {
		return nil, err
	}
	if e, ok := v.(redisError); ok {
		return nil, e
	}
	return v, nil
}

func respRead(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return nil, fmt.Errorf("malformed RESP line %q", line)
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return body, nil
	case '-':
		return redisError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		arr := make([]any, n)
		for i := range arr {
			if arr[i], err = respRead(r); err != nil {
				return nil, err
			}
		}
		return arr, nil
	}
	return nil, fmt.Errorf("unknown RESP type %q", kind)
}

// redisInfo runs INFO section and parses its key:value lines.
func redisInfo(addr, section string) (map[string]string, error) {
	v, err := redisDo(addr, 2*time.Second, "INFO", section)
	if err != nil {
		return nil, err
	}
	text, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("INFO: unexpected reply %T", v)
	}
	m := map[string]string{}
	for _, l := range strings.Split(text, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(l, "#") {
			m[k] = v
		}
	}
	return m, nil
}

// flatMaps turns an array of flat [k1 v1 k2 v2 ...] arrays (SENTINEL
// REPLICAS / SENTINELS / MASTER) into maps.
func flatMaps(v any) ([]map[string]string, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("unexpected reply %T", v)
	}
	out := make([]map[string]string, 0, len(arr))
	for _, e := range arr {
		kv, ok := e.([]any)
		if !ok || len(kv)%2 != 0 {
			return nil, errors.New("unexpected entry in reply")
		}
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			k, _ := kv[i].(string)
			val, _ := kv[i+1].(string)
			m[k] = val
		}
		out = append(out, m)
	}
	return out, nil
}

// caddyTarget is one Caddy process.
type caddyTarget struct {
	name   string
	base   string // http://127.0.0.1:port
	admin  string // http://127.0.0.1:adminport
	config string // the Caddyfile, for /load
	proc   *child
}

// caddyfile is one instance's configuration: a site on port proxying to
// the backend, with voipnow_pce in front unless gateway is empty.
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

// startCaddy writes the Caddyfile to dir and runs `caddy run` on it,
// waiting until the site answers.
func startCaddy(ctx context.Context, cs *children, bin, dir, name, backend, gateway string) (*caddyTarget, error) {
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
	env := []string{
		"XDG_DATA_HOME=" + filepath.Join(dir, "xdg-data"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "xdg-config"),
	}
	c, err := cs.start("caddy "+name, filepath.Join(dir, name+".log"), env, bin,
		"run", "--config", path, "--adapter", "caddyfile")
	if err != nil {
		return nil, err
	}
	t := &caddyTarget{name: name, base: fmt.Sprintf("http://127.0.0.1:%d", port),
		admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort), config: cfg, proc: c}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	err = waitFor(ctx, c, 30*time.Second, "caddy "+name, func() error {
		// A GET on another path is not the resource: it is proxied.
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
