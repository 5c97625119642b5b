// Package redistest runs a private redis-server for tests: on a free
// loopback port, without persistence, killed when the test ends. It never
// touches a Redis the developer may run on the default port.
//
// Besides a single server (Start) it runs a Redis Cluster (StartCluster), a
// master with replicas watched by three Sentinels (StartSentinel) and a
// TLS-only server (StartTLS). A Server can be stopped (SIGKILL), restarted
// empty on the same port, and paused (SIGSTOP) to play a hung Redis.
package redistest

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/resp"
)

// readyTimeout bounds how long Start and Restart wait for the server to
// answer PING.
const readyTimeout = 10 * time.Second

// Server is one private redis-server process.
type Server struct {
	t    testing.TB
	bin  string
	port int
	dir  string
	args []string // extra redis-server arguments
	conf string   // config file given first on the command line, if any

	// clientTLS, when set, makes the server TLS-only: it listens with
	// --tls-port instead of --port, and readiness, Do and URL use TLS.
	clientTLS *tls.Config

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has been waited for
	out    *lockedWriter // the server's output, for failure messages
	paused bool          // SIGSTOPped by Pause and not resumed
}

// newServer is a Server not yet started, stopped when the test ends.
func newServer(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: redis-server is not on PATH (install it, e.g. apt-get install redis-server): %v", err)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	t.Cleanup(s.Stop)
	return s
}

// launch starts s on a port from pick and waits until it answers PING. A
// free port can be taken by someone else between our probe and the
// server's bind; it tries a few.
func (s *Server) launch(pick func() (int, error)) error {
	var lastErr error
	for range 5 {
		port, err := pick()
		if err != nil {
			return fmt.Errorf("no free port: %w", err)
		}
		s.port = port
		if lastErr = s.start(); lastErr == nil {
			return nil
		}
		s.Stop()
	}
	return lastErr
}

// Start runs a private redis-server on a free loopback port and waits until
// it answers PING. The server is killed when the test ends. A missing
// redis-server fails the test: it is a dependency, not an option.
func Start(t testing.TB) *Server {
	t.Helper()
	s := newServer(t)
	if err := s.launch(freePort); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return s
}

// StartCluster runs n private redis-servers in cluster mode (no replicas),
// joins them into one Redis Cluster with redis-cli and waits until every
// node reports cluster_state:ok. A Cluster needs at least 3 masters.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redistest: redis-cli is not on PATH (it comes with redis-server): %v", err)
	}
	nodes := make([]*Server, n)
	addrs := make([]string, n)
	for i := range nodes {
		s := newServer(t)
		s.args = []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"}
		// The cluster bus listens on port+10000: both must be free.
		if err := s.launch(freeClusterPort); err != nil {
			t.Fatalf("redistest: cluster node: %v", err)
		}
		nodes[i], addrs[i] = s, s.Addr()
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(readyTimeout)
	for _, a := range addrs {
		for {
			out, _ := exec.Command(cli, "-h", "127.0.0.1", "-p", a[len("127.0.0.1:"):], "cluster", "info").Output()
			if bytes.Contains(out, []byte("cluster_state:ok")) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: node %s never reported cluster_state:ok:\n%s", a, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nodes
}

// freeClusterPort finds a port p with p and p+10000 both free.
func freeClusterPort() (int, error) {
	for range 50 {
		p, err := freePort()
		if err != nil {
			return 0, err
		}
		if p+10000 > 65535 {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+10000))
		if err != nil {
			continue
		}
		l.Close()
		return p, nil
	}
	return 0, fmt.Errorf("no port p with p+10000 free")
}

// Addr is the server's host:port.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// URL is a go-redis URL for database 0 of the server: redis://host:port/0,
// or rediss://host:port/0 for a TLS server.
func (s *Server) URL() string {
	if s.clientTLS != nil {
		return "rediss://" + s.Addr() + "/0"
	}
	return "redis://" + s.Addr() + "/0"
}

// Stop kills the server with SIGKILL (a crash: no shutdown, no goodbye to
// clients or replicas) and waits for it to exit. It works on a paused
// server too: SIGKILL ends a SIGSTOPped process. Stopping a stopped server
// does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.paused = nil, false
}

// Restart starts the server again on the same port with the same
// arguments (after Stop; a running server is stopped first) and waits
// until it answers PING. The data is gone: the server persists none, so it
// comes back empty.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	// The port was ours a moment ago; the kernel may take a moment to free
	// it, which start's readiness loop absorbs by retrying the launch.
	deadline := time.Now().Add(readyTimeout)
	for {
		err := s.start()
		if err == nil {
			return
		}
		s.Stop()
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: restart on port %d: %v", s.port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// start launches the process and waits until it answers PING or exits.
func (s *Server) start() error {
	var cmdArgs []string
	if s.conf != "" {
		cmdArgs = append(cmdArgs, s.conf)
	}
	if s.clientTLS != nil {
		cmdArgs = append(cmdArgs, "--port", "0", "--tls-port", strconv.Itoa(s.port))
	} else {
		cmdArgs = append(cmdArgs, "--port", strconv.Itoa(s.port))
	}
	cmdArgs = append(cmdArgs,
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", s.dir,
	)
	cmd := exec.Command(s.bin, append(cmdArgs, s.args...)...)
	dieWithParent(cmd)
	out := &lockedWriter{w: &bytes.Buffer{}}
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done, s.out = cmd, done, out
	s.mu.Unlock()

	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited: %s", s.port, out.String())
		default:
		}
		if pingWith(s.Addr(), s.clientTLS) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on port %d did not answer PING within %s", s.port, readyTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ping sends one inline PING and expects +PONG.
func ping(addr string) error { return pingWith(addr, nil) }

// pingWith pings over TLS with cfg, or plain TCP for a nil cfg.
func pingWith(addr string, cfg *tls.Config) error { return resp.Ping(addr, cfg) }

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	if port == 6379 { // never the developer's Redis
		return freePort()
	}
	return port, nil
}

// lockedWriter is a bytes.Buffer safe for the process's writer goroutine
// and our reads.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
