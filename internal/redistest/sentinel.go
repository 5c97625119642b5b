package redistest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/resp"
)

// Sentinel timing. down-after 1 s makes a dead master noticed quickly;
// failover-timeout 5 s bounds a stuck failover (and, doubled, the pause
// before the sentinels try again after a failed election).
const (
	sentinelDownAfter       = 1000 // ms
	sentinelFailoverTimeout = 5000 // ms
	failoverWait            = 20 * time.Second
	killMasterWait          = 30 * time.Second // may include a failed election and its 10 s retry
	settleWait              = 15 * time.Second
)

// fastSentinelDebug are SENTINEL DEBUG timings (Redis ≥ 7.0) that make a
// test set converge in about a second instead of about ten: sentinels
// announce themselves (hello) and poll INFO every 250 ms instead of 2 s
// and 10 s. The publish period also sets how long a sentinel waits before
// it turns a stale master that came back (for instance the old master
// after SENTINEL FAILOVER) into a replica: 4 periods, 1 s instead of 8 s.
// Failure detection (PING every second, down-after) is unchanged.
var fastSentinelDebug = []string{"info-period", "250", "publish-period", "250"}

// SentinelSet is a master with replicas, all private redis-servers, and
// Sentinels (redis-server --sentinel) watching them under one master name.
// All are killed when the test ends.
type SentinelSet struct {
	t         testing.TB
	name      string
	slow      time.Duration // extra patience with stock timings
	nodes     []*Server     // data nodes; nodes[0] started as the master
	sentinels []*Server
}

type sentinelOptions struct {
	name      string
	replicas  int
	sentinels int
	stock     bool
}

// SentinelOption configures StartSentinel.
type SentinelOption func(*sentinelOptions)

// WithMasterName sets the name the sentinels monitor the master under
// (default "pcemaster").
func WithMasterName(name string) SentinelOption {
	return func(o *sentinelOptions) { o.name = name }
}

// WithReplicas sets the number of replicas (default 1).
func WithReplicas(n int) SentinelOption {
	return func(o *sentinelOptions) { o.replicas = n }
}

// WithSentinels sets the number of sentinels (default 3); the quorum is a
// majority of them.
func WithSentinels(n int) SentinelOption {
	return func(o *sentinelOptions) { o.sentinels = n }
}

// WithStockTimings leaves the sentinels' internal periods at Redis's
// defaults instead of the faster SENTINEL DEBUG ones, as in production:
// start-up then takes a few seconds and Failover about twenty seconds
// (the sentinels poll a replica's INFO every 10 s and wait 8 s before
// demoting the old master).
func WithStockTimings() SentinelOption {
	return func(o *sentinelOptions) { o.stock = true }
}

// StartSentinel runs a master, its replicas (one by default, --replicaof
// the master) and sentinels (three by default, redis-server --sentinel
// with down-after 1 s, failover-timeout 5 s, parallel-syncs 1, quorum a
// majority, and the fast SENTINEL DEBUG periods unless WithStockTimings),
// each a private redis-server on a free loopback port. It returns once
// every replica's link to the master is up and has acknowledged the
// master's writes, and every sentinel knows the master, every replica and
// every other sentinel, so that a failover can run at once. Replication
// stays asynchronous: a test that needs a write to survive a Failover or
// KillMaster should WAIT for it on the master first
// (Do("WAIT", "1", "1000")).
func StartSentinel(t testing.TB, opts ...SentinelOption) *SentinelSet {
	t.Helper()
	o := sentinelOptions{name: "pcemaster", replicas: 1, sentinels: 3}
	for _, opt := range opts {
		opt(&o)
	}
	if o.replicas < 1 || o.sentinels < 1 {
		t.Fatalf("redistest: StartSentinel needs at least one replica and one sentinel")
	}
	ss := &SentinelSet{t: t, name: o.name}
	if o.stock {
		// INFO every 10 s and the 8 s wait before a stale master is
		// turned into a replica: convergence takes tens of seconds.
		ss.slow = 40 * time.Second
	}

	// Every data node may become the master: none delays a full sync
	// (diskless sync waits 5 s for more replicas by default).
	dataArgs := []string{"--repl-diskless-sync-delay", "0"}
	master := newServer(t)
	master.args = dataArgs
	if err := master.launch(freePort); err != nil {
		t.Fatalf("redistest: sentinel set master: %v", err)
	}
	ss.nodes = append(ss.nodes, master)
	for range o.replicas {
		r := newServer(t)
		r.args = append(append([]string{}, dataArgs...), "--replicaof", "127.0.0.1", strconv.Itoa(master.port))
		if err := r.launch(freePort); err != nil {
			t.Fatalf("redistest: sentinel set replica: %v", err)
		}
		ss.nodes = append(ss.nodes, r)
	}
	// Replicas first: a sentinel learns them from its first INFO of the
	// master.
	waitFor(t, settleWait, "replicas linked to the master", func() error {
		return ss.replicationOK(master)
	})

	conf := strings.Join([]string{
		"sentinel resolve-hostnames no",
		fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d", o.name, master.port, o.sentinels/2+1),
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", o.name, sentinelDownAfter),
		fmt.Sprintf("sentinel failover-timeout %s %d", o.name, sentinelFailoverTimeout),
		fmt.Sprintf("sentinel parallel-syncs %s 1", o.name),
		"",
	}, "\n")
	for range o.sentinels {
		s := newServer(t)
		// The sentinel rewrites its config file: it must be writable and
		// the same file on Restart. The port comes from the command line.
		s.conf = filepath.Join(s.dir, "sentinel.conf")
		if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		s.args = []string{"--sentinel"}
		if err := s.launch(freePort); err != nil {
			t.Fatalf("redistest: sentinel: %v", err)
		}
		if !o.stock {
			if _, err := s.Do(append([]string{"SENTINEL", "DEBUG"}, fastSentinelDebug...)...); err != nil {
				t.Fatalf("redistest: SENTINEL DEBUG on %s: %v", s.Addr(), err)
			}
		}
		ss.sentinels = append(ss.sentinels, s)
	}
	waitFor(t, settleWait+ss.slow, "sentinels ready", func() error {
		return ss.stable(master)
	})
	return ss
}

// MasterName is the name the sentinels monitor the master under.
func (ss *SentinelSet) MasterName() string { return ss.name }

// SentinelAddrs are the sentinels' host:port addresses.
func (ss *SentinelSet) SentinelAddrs() []string {
	addrs := make([]string, len(ss.sentinels))
	for i, s := range ss.sentinels {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Sentinels are the sentinel processes (to stop or pause one).
func (ss *SentinelSet) Sentinels() []*Server { return ss.sentinels }

// Nodes are the data nodes, master and replicas, in start order: Nodes()[0]
// was the master at start.
func (ss *SentinelSet) Nodes() []*Server { return ss.nodes }

// Master is the current master as the sentinels say (SENTINEL
// get-master-addr-by-name, the first sentinel that answers). During a
// failover sentinels may disagree; Failover and KillMaster return only
// once they agree.
func (ss *SentinelSet) Master() *Server {
	ss.t.Helper()
	var errs []error
	for _, s := range ss.sentinels {
		addr, err := ss.masterAddr(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n := ss.node(addr)
		if n == nil {
			ss.t.Fatalf("redistest: sentinel %s names master %s, not one of ours", s.Addr(), addr)
		}
		return n
	}
	ss.t.Fatalf("redistest: no sentinel names the master: %v", errors.Join(errs...))
	return nil
}

// Replicas are the data nodes other than the current Master (running or
// not).
func (ss *SentinelSet) Replicas() []*Server {
	ss.t.Helper()
	m := ss.Master()
	var rs []*Server
	for _, n := range ss.nodes {
		if n != m {
			rs = append(rs, n)
		}
	}
	return rs
}

// Failover asks a sentinel for a failover (SENTINEL FAILOVER, no
// agreement needed) and waits until every sentinel names a new master,
// that master reports role:master, the old master and every other running
// replica report role:slave of it with master_link_status:up, and the
// sentinels see them so. It returns the new master.
func (ss *SentinelSet) Failover(t testing.TB) *Server {
	t.Helper()
	old := ss.Master()
	var asked *Server
	for _, s := range ss.sentinels {
		if s.running() {
			asked = s
			break
		}
	}
	if asked == nil {
		t.Fatal("redistest: Failover: no sentinel is running")
	}
	if !slices.ContainsFunc(ss.nodes, func(n *Server) bool { return n != old && n.running() }) {
		t.Fatal("redistest: Failover: no running replica to promote")
	}
	deadline := time.Now().Add(failoverWait + ss.slow)
	for {
		_, err := asked.Do("SENTINEL", "FAILOVER", ss.name)
		if err == nil {
			break
		}
		// NOGOODSLAVE: a replica's info is momentarily stale; INPROG: a
		// failover is already running. Both pass.
		var re RedisError
		if !errors.As(err, &re) || time.Now().After(deadline) {
			t.Fatalf("redistest: SENTINEL FAILOVER %s: %v", ss.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var m *Server
	waitFor(t, time.Until(deadline), "failover away from "+old.Addr(), func() error {
		var err error
		m, err = ss.promotedOver(old)
		return err
	})
	return m
}

// KillMaster SIGKILLs the current master and waits until the sentinels
// notice, agree and promote a replica, the promoted replica reports
// role:master and the remaining running replicas replicate from it. It
// returns the killed server: Restart brings it back empty and as a master,
// until the sentinels turn it into a replica (use WaitStable).
func (ss *SentinelSet) KillMaster(t testing.TB) (killed *Server) {
	t.Helper()
	old := ss.Master()
	old.Stop()
	waitFor(t, killMasterWait+ss.slow, "promotion after killing "+old.Addr(), func() error {
		_, err := ss.promotedOver(old)
		return err
	})
	return old
}

// WaitStable waits until every sentinel names the same master, it reports
// role:master, every running replica is linked to it, and the sentinels
// know every running replica and each other. It returns the master.
func (ss *SentinelSet) WaitStable(t testing.TB) *Server {
	t.Helper()
	var m *Server
	waitFor(t, settleWait+ss.slow, "sentinel set stable", func() error {
		var err error
		m, err = ss.agreedMaster()
		if err != nil {
			return err
		}
		return ss.stable(m)
	})
	return m
}

// promotedOver is nil once the set is stable under a master other than
// old.
func (ss *SentinelSet) promotedOver(old *Server) (*Server, error) {
	m, err := ss.agreedMaster()
	if err != nil {
		return nil, err
	}
	if m == old {
		return nil, fmt.Errorf("sentinels still name %s", old.Addr())
	}
	return m, ss.stable(m)
}

// agreedMaster is the master every running sentinel names.
func (ss *SentinelSet) agreedMaster() (*Server, error) {
	var addr string
	for _, s := range ss.sentinels {
		if !s.running() {
			continue
		}
		a, err := ss.masterAddr(s)
		if err != nil {
			return nil, err
		}
		if addr != "" && a != addr {
			return nil, fmt.Errorf("sentinels disagree: %s vs %s", addr, a)
		}
		addr = a
	}
	n := ss.node(addr)
	if n == nil {
		return nil, fmt.Errorf("sentinels name %q, not one of ours", addr)
	}
	return n, nil
}

// stable is nil once m reports role:master, every other running data node
// is its linked replica, and every running sentinel names m, sees m up,
// sees every running replica up and linked, and knows every other sentinel.
func (ss *SentinelSet) stable(m *Server) error {
	if err := ss.replicationOK(m); err != nil {
		return err
	}
	var sentinels []*Server
	for _, s := range ss.sentinels {
		if s.running() {
			sentinels = append(sentinels, s)
		}
	}
	for _, s := range sentinels {
		addr, err := ss.masterAddr(s)
		if err != nil {
			return err
		}
		if addr != m.Addr() {
			return fmt.Errorf("sentinel %s names %s, not %s", s.Addr(), addr, m.Addr())
		}
		v, err := s.Do("SENTINEL", "MASTER", ss.name)
		if err != nil {
			return fmt.Errorf("sentinel %s: SENTINEL MASTER: %w", s.Addr(), err)
		}
		mm, err := resp.FlatMaps([]any{v})
		if err != nil {
			return err
		}
		if f := mm[0]["flags"]; f != "master" {
			return fmt.Errorf("sentinel %s: master flags %q", s.Addr(), f)
		}
		v, err = s.Do("SENTINEL", "REPLICAS", ss.name)
		if err != nil {
			return fmt.Errorf("sentinel %s: SENTINEL REPLICAS: %w", s.Addr(), err)
		}
		reps, err := resp.FlatMaps(v)
		if err != nil {
			return err
		}
		for _, n := range ss.nodes {
			if n == m || !n.running() {
				continue
			}
			if err := replicaSeen(reps, n, m); err != nil {
				return fmt.Errorf("sentinel %s: %w", s.Addr(), err)
			}
		}
		v, err = s.Do("SENTINEL", "SENTINELS", ss.name)
		if err != nil {
			return fmt.Errorf("sentinel %s: SENTINEL SENTINELS: %w", s.Addr(), err)
		}
		others, err := resp.FlatMaps(v)
		if err != nil {
			return err
		}
		up := 0
		for _, o := range others {
			// Not "master_down": that one only remembers the sentinel
			// voted the old master down.
			if !hasFlag(o["flags"], "s_down", "o_down", "disconnected") {
				up++
			}
		}
		if up < len(sentinels)-1 {
			return fmt.Errorf("sentinel %s knows %d other sentinels up, want %d", s.Addr(), up, len(sentinels)-1)
		}
	}
	return nil
}

// hasFlag reports whether the comma-separated flags hold one of want.
func hasFlag(flags string, want ...string) bool {
	for _, f := range strings.Split(flags, ",") {
		if slices.Contains(want, f) {
			return true
		}
	}
	return false
}

// replicaSeen checks a sentinel's view (SENTINEL REPLICAS) of n: up, a
// replica of m, link ok.
func replicaSeen(reps []map[string]string, n, m *Server) error {
	for _, r := range reps {
		if net.JoinHostPort(r["ip"], r["port"]) != n.Addr() {
			continue
		}
		if r["flags"] != "slave" || r["master-link-status"] != "ok" ||
			net.JoinHostPort(r["master-host"], r["master-port"]) != m.Addr() {
			return fmt.Errorf("replica %s: flags %q, link %q, master %s:%s", n.Addr(), r["flags"], r["master-link-status"], r["master-host"], r["master-port"])
		}
		return nil
	}
	return fmt.Errorf("replica %s unknown", n.Addr())
}

// replicationOK is nil once m reports role:master, every other running
// data node reports role:slave of m with master_link_status:up, and all of
// them have acknowledged m's writes so far.
func (ss *SentinelSet) replicationOK(m *Server) error {
	mi, err := info(m.Addr(), nil, "replication")
	if err != nil {
		return fmt.Errorf("master %s: %w", m.Addr(), err)
	}
	if mi["role"] != "master" {
		return fmt.Errorf("%s reports role:%s, want master", m.Addr(), mi["role"])
	}
	replicas := 0
	for _, n := range ss.nodes {
		if n == m || !n.running() {
			continue
		}
		replicas++
		ri, err := info(n.Addr(), nil, "replication")
		if err != nil {
			return fmt.Errorf("replica %s: %w", n.Addr(), err)
		}
		if ri["role"] != "slave" || ri["master_link_status"] != "up" ||
			net.JoinHostPort(ri["master_host"], ri["master_port"]) != m.Addr() {
			return fmt.Errorf("%s reports role:%s master %s:%s link %s, want a linked replica of %s",
				n.Addr(), ri["role"], ri["master_host"], ri["master_port"], ri["master_link_status"], m.Addr())
		}
	}
	// A link reported up is not yet a write stream: after a diskless full
	// sync the master streams writes only once the replica has
	// acknowledged (up to a second later), and a failover before that
	// loses them. WAIT returns once every replica has acknowledged the
	// master's current offset.
	if replicas > 0 {
		v, err := m.Do("WAIT", strconv.Itoa(replicas), "1000")
		if err != nil {
			return fmt.Errorf("master %s: WAIT: %w", m.Addr(), err)
		}
		if n, _ := v.(int64); n < int64(replicas) {
			return fmt.Errorf("master %s: %d of %d replicas acknowledged its writes", m.Addr(), n, replicas)
		}
	}
	return nil
}

// masterAddr asks sentinel s for the master's host:port.
func (ss *SentinelSet) masterAddr(s *Server) (string, error) {
	v, err := s.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", ss.name)
	if err != nil {
		return "", fmt.Errorf("sentinel %s: %w", s.Addr(), err)
	}
	hp, ok := v.([]any)
	if !ok || len(hp) != 2 {
		return "", fmt.Errorf("sentinel %s: unexpected master address %v", s.Addr(), v)
	}
	h, _ := hp[0].(string)
	p, _ := hp[1].(string)
	return net.JoinHostPort(h, p), nil
}

// node is the data node at addr, or nil.
func (ss *SentinelSet) node(addr string) *Server {
	for _, n := range ss.nodes {
		if n.Addr() == addr {
			return n
		}
	}
	return nil
}

// running reports whether the process is started and not stopped.
func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// waitFor polls cond until it returns nil, failing the test with cond's
// last error after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: %s: not reached within %s: %v", what, timeout, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
