package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/loopback"
	"github.com/voipnow-pce/caddy-voipnow-pce/internal/procs"
	"github.com/voipnow-pce/caddy-voipnow-pce/internal/resp"
)

// redisNode is one private redis-server (data node or sentinel) on a
// fixed loopback port, which it keeps across restarts.
type redisNode struct {
	name string
	port int
	dir  string
	conf string   // config file first on the command line (sentinels)
	args []string // extra arguments
	cs   *procs.Set
	proc *procs.Child
}

func (n *redisNode) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

func (n *redisNode) running() bool { return n.proc != nil && !n.proc.Exited() }

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
	c, err := n.cs.Start(n.name, filepath.Join(n.dir, "redis.log"), nil, bin, args...)
	if err != nil {
		return err
	}
	n.proc = c
	return procs.WaitFor(ctx, c, 10*time.Second, n.name, func() error { return redisPing(n.addr()) })
}

// startRedisNode runs a node on a free port (a few tries: the port may be
// taken between probe and bind).
func startRedisNode(ctx context.Context, cs *procs.Set, dir, name string, conf string, args ...string) (*redisNode, error) {
	var lastErr error
	for range 5 {
		port, err := loopback.FreePort()
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
			n.proc.Kill()
		}
	}
	return nil, lastErr
}

// restart brings a killed node back on the same port, empty (no
// persistence), retrying while the kernel frees the port.
func (n *redisNode) restart(ctx context.Context) error {
	if n.proc != nil {
		n.proc.Kill()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := n.launch(ctx)
		if err == nil {
			return nil
		}
		if n.proc != nil {
			n.proc.Kill()
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

// redisDo sends one command over a fresh plain connection and returns
// the reply (string, int64, []any, nil) or a resp.Error; the exchange must
// finish within timeout.
func redisDo(addr string, timeout time.Duration, args ...string) (any, error) {
	return resp.Do(addr, nil, timeout, args...)
}

// redisInfo runs INFO section and parses its key:value lines.
func redisInfo(addr, section string) (map[string]string, error) {
	return resp.Info(addr, nil, 2*time.Second, section)
}
