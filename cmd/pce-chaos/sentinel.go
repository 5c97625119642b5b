package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/procs"
	"github.com/voipnow-pce/caddy-voipnow-pce/internal/resp"
)

// masterName is the name the sentinels monitor the master under.
const masterName = "pcemaster"

// sentinelSet is a master, two replicas and three sentinels (redis-server
// <conf> --sentinel), the recipe of internal/redistest/sentinel.go:
// down-after 1 s, failover-timeout 5 s, and SENTINEL DEBUG info-period
// 250 publish-period 250 so that the set converges in about a second.
type sentinelSet struct {
	nodes     []*redisNode // nodes[0] started as the master
	sentinels []*redisNode
}

func startSentinelSet(ctx context.Context, cs *procs.Set, dir string) (*sentinelSet, error) {
	ss := &sentinelSet{}
	dataArgs := []string{"--repl-diskless-sync-delay", "0"}
	m, err := startRedisNode(ctx, cs, dir, "redis-master", "", dataArgs...)
	if err != nil {
		return nil, err
	}
	ss.nodes = append(ss.nodes, m)
	for i := range 2 {
		r, err := startRedisNode(ctx, cs, dir, fmt.Sprintf("redis-replica%d", i+1), "",
			append(slices.Clone(dataArgs), "--replicaof", "127.0.0.1", strconv.Itoa(m.port))...)
		if err != nil {
			return nil, err
		}
		ss.nodes = append(ss.nodes, r)
	}
	if err := procs.WaitFor(ctx, nil, 15*time.Second, "replicas linked", func() error { return ss.replicationOK(m) }); err != nil {
		return nil, err
	}
	conf := strings.Join([]string{
		"sentinel resolve-hostnames no",
		fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2", masterName, m.port),
		fmt.Sprintf("sentinel down-after-milliseconds %s 1000", masterName),
		fmt.Sprintf("sentinel failover-timeout %s 5000", masterName),
		fmt.Sprintf("sentinel parallel-syncs %s 1", masterName),
		"",
	}, "\n")
	for i := range 3 {
		s, err := startRedisNode(ctx, cs, dir, fmt.Sprintf("sentinel%d", i+1), conf, "--sentinel")
		if err != nil {
			return nil, err
		}
		if _, err := redisDo(s.addr(), 2*time.Second, "SENTINEL", "DEBUG", "info-period", "250", "publish-period", "250"); err != nil {
			return nil, fmt.Errorf("SENTINEL DEBUG on %s: %w", s.addr(), err)
		}
		ss.sentinels = append(ss.sentinels, s)
	}
	if _, err := ss.waitStable(ctx, nil, 15*time.Second); err != nil {
		return nil, err
	}
	return ss, nil
}

// urls are the gateway's cache URLs: the sentinels.
func (ss *sentinelSet) urls() string {
	var u []string
	for _, s := range ss.sentinels {
		u = append(u, "redis://"+s.addr())
	}
	return strings.Join(u, " ")
}

func (ss *sentinelSet) node(addr string) *redisNode {
	for _, n := range ss.nodes {
		if n.addr() == addr {
			return n
		}
	}
	return nil
}

func (ss *sentinelSet) masterAddr(s *redisNode) (string, error) {
	v, err := redisDo(s.addr(), 2*time.Second, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName)
	if err != nil {
		return "", fmt.Errorf("sentinel %s: %w", s.addr(), err)
	}
	hp, ok := v.([]any)
	if !ok || len(hp) != 2 {
		return "", fmt.Errorf("sentinel %s: unexpected master address %v", s.addr(), v)
	}
	h, _ := hp[0].(string)
	p, _ := hp[1].(string)
	return net.JoinHostPort(h, p), nil
}

// agreedMaster is the master every sentinel names.
func (ss *sentinelSet) agreedMaster() (*redisNode, error) {
	var addr string
	for _, s := range ss.sentinels {
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

// waitStable waits until the sentinels agree on a master other than not
// (nil: any), it replicates to every running node, and every sentinel sees
// the replicas and the other sentinels.
func (ss *sentinelSet) waitStable(ctx context.Context, not *redisNode, within time.Duration) (*redisNode, error) {
	var m *redisNode
	err := procs.WaitFor(ctx, nil, within, "sentinel set stable", func() error {
		var err error
		if m, err = ss.agreedMaster(); err != nil {
			return err
		}
		if m == not {
			return fmt.Errorf("sentinels still name %s", m.addr())
		}
		return ss.stable(m)
	})
	return m, err
}

func (ss *sentinelSet) stable(m *redisNode) error {
	if err := ss.replicationOK(m); err != nil {
		return err
	}
	for _, s := range ss.sentinels {
		v, err := redisDo(s.addr(), 2*time.Second, "SENTINEL", "MASTER", masterName)
		if err != nil {
			return err
		}
		mm, err := resp.FlatMaps([]any{v})
		if err != nil {
			return err
		}
		if f := mm[0]["flags"]; f != "master" {
			return fmt.Errorf("sentinel %s: master flags %q", s.addr(), f)
		}
		v, err = redisDo(s.addr(), 2*time.Second, "SENTINEL", "REPLICAS", masterName)
		if err != nil {
			return err
		}
		reps, err := resp.FlatMaps(v)
		if err != nil {
			return err
		}
		for _, n := range ss.nodes {
			if n == m || !n.running() {
				continue
			}
			seen := false
			for _, r := range reps {
				if net.JoinHostPort(r["ip"], r["port"]) != n.addr() {
					continue
				}
				seen = true
				if r["flags"] != "slave" || r["master-link-status"] != "ok" ||
					net.JoinHostPort(r["master-host"], r["master-port"]) != m.addr() {
					return fmt.Errorf("sentinel %s: replica %s flags %q link %q", s.addr(), n.addr(), r["flags"], r["master-link-status"])
				}
			}
			if !seen {
				return fmt.Errorf("sentinel %s: replica %s unknown", s.addr(), n.addr())
			}
		}
		v, err = redisDo(s.addr(), 2*time.Second, "SENTINEL", "SENTINELS", masterName)
		if err != nil {
			return err
		}
		others, err := resp.FlatMaps(v)
		if err != nil {
			return err
		}
		up := 0
		for _, o := range others {
			if !hasFlag(o["flags"], "s_down", "o_down", "disconnected") {
				up++
			}
		}
		if up < len(ss.sentinels)-1 {
			return fmt.Errorf("sentinel %s knows %d other sentinels up", s.addr(), up)
		}
	}
	return nil
}

func hasFlag(flags string, want ...string) bool {
	for _, f := range strings.Split(flags, ",") {
		if slices.Contains(want, f) {
			return true
		}
	}
	return false
}

// replicationOK: m is master, every other running node its linked
// replica, and all have acknowledged m's writes (WAIT).
func (ss *sentinelSet) replicationOK(m *redisNode) error {
	mi, err := redisInfo(m.addr(), "replication")
	if err != nil {
		return err
	}
	if mi["role"] != "master" {
		return fmt.Errorf("%s role:%s", m.addr(), mi["role"])
	}
	replicas := 0
	for _, n := range ss.nodes {
		if n == m || !n.running() {
			continue
		}
		replicas++
		ri, err := redisInfo(n.addr(), "replication")
		if err != nil {
			return err
		}
		if ri["role"] != "slave" || ri["master_link_status"] != "up" ||
			net.JoinHostPort(ri["master_host"], ri["master_port"]) != m.addr() {
			return fmt.Errorf("%s role:%s link %s", n.addr(), ri["role"], ri["master_link_status"])
		}
	}
	if replicas > 0 {
		v, err := redisDo(m.addr(), 3*time.Second, "WAIT", strconv.Itoa(replicas), "1000")
		if err != nil {
			return err
		}
		if n, _ := v.(int64); n < int64(replicas) {
			return fmt.Errorf("%d of %d replicas acknowledged", n, replicas)
		}
	}
	return nil
}

// failover runs SENTINEL FAILOVER and waits for a stable set under a new
// master.
func (ss *sentinelSet) failover(ctx context.Context) (*redisNode, error) {
	old, err := ss.agreedMaster()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := redisDo(ss.sentinels[0].addr(), 2*time.Second, "SENTINEL", "FAILOVER", masterName)
		if err == nil {
			break
		}
		var re resp.Error
		if !errors.As(err, &re) || time.Now().After(deadline) {
			return nil, fmt.Errorf("SENTINEL FAILOVER: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return ss.waitStable(ctx, old, time.Until(deadline))
}

// killMaster SIGKILLs the master and waits for a promotion; then it
// restarts the killed node empty on its port and waits until the
// sentinels have made it a replica. It calls promoted when the new master
// is stable.
func (ss *sentinelSet) killMaster(ctx context.Context, promoted func()) error {
	old, err := ss.agreedMaster()
	if err != nil {
		return err
	}
	old.proc.Kill()
	if _, err := ss.waitStable(ctx, old, 30*time.Second); err != nil {
		return err
	}
	promoted()
	if err := old.restart(ctx); err != nil {
		return err
	}
	_, err = ss.waitStable(ctx, nil, 20*time.Second)
	return err
}
