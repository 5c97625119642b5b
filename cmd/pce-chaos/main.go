// Command pce-chaos drives two voipnow_pce gateways sharing one Redis with
// a steady mix of tokens while it breaks things underneath them, and
// classifies every answer.
//
//	go run ./cmd/pce-chaos [-scenarios a,b] [-duration 4s] [-fault 5s] [-out dir]
//	go run ./cmd/pce-chaos -smoke     # redis-hang only, short; exit 1 on any fail-open or false refusal
//
// It starts, on free loopback ports: a backend (in process) that records
// the token of every request reaching it; an RFC 7662 introspection
// endpoint (in process) that knows which tokens are valid or revoked,
// behind an HTTP proxy that can answer 503, hang, or delay (and that
// counts the calls per token kind); a private redis-server, or a Sentinel
// set (master, two replicas, three sentinels); and two Caddy processes
// built from ./cmd/caddy with the voipnow_pce handler sharing that Redis
// (revocation_grace 3s). Every scenario gets new Redis and Caddy processes.
//
// Traffic, about -rate requests/s over both instances, is the page's
// update request (PUT .../phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq,
// body {}) with: valid cached tokens; fresh tokens (a new one each time,
// sent to both instances at once); garbage tokens; and revoked tokens. A
// new revocable token is made four times a second, used on both
// instances, and 1.5 s later revoked at the identity provider and then
// with POST /voipnow_pce/revoke on one instance's admin endpoint (in turn),
// retried until a 200, so revocations happen before, during and after
// each fault.
//
// Every answer is classified: fail-open (a garbage token answered 2xx; a
// revoked token answered 2xx more than 1 s after its revocation's 200, or
// while Redis could not be heard for longer than revocation_grace +
// heartbeat + 0.5 s since the later of the outage's start and the
// revocation at the identity provider), false refusal (a valid token
// refused with 401 or 403), 503s, 429s, transport errors; and a backend
// leak (a garbage token, or a revoked one past the same bounds, reached
// the backend). Results go to -out as results.md and results.json.
//
// The exit status is 1 when any scenario had a fail-open, a false refusal
// or a backend leak (after the results are written), 2 on a harness error.
// Every child process is stopped on exit, also on Ctrl-C or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/loopback"
	"github.com/voipnow-pce/caddy-voipnow-pce/internal/procs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	code, err := run(ctx, os.Args[1:])
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "pce-chaos:", err)
		code = 2
	}
	stop()
	os.Exit(code)
}

const grace = 3 * time.Second // the gateways' revocation_grace

type harness struct {
	bin, work, out string
	pre, post      time.Duration
	faultLen       time.Duration
	rate           int
	revokeEvery    time.Duration
	idp            *idp
	proxy          *faultProxy
	proxyAddr      string
	back           *backend
	backAddr       string
}

// env is what a fault acts on.
type env struct {
	h       *harness
	d       *driver
	redis   *redisNode
	ss      *sentinelSet
	gws     [2]*procs.Caddy
	extra   map[string]any
	reloads map[string]int
}

type scenario struct {
	name, fault string
	sentinel    bool
	plainToo    bool // run again against plain Caddy (reverse_proxy only)
	run         func(ctx context.Context, e *env) error
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func scenarios() []scenario {
	return []scenario{
		{name: "redis-hang", fault: "SIGSTOP redis for -fault, SIGCONT", run: func(ctx context.Context, e *env) error {
			up := e.d.redisDown()
			if err := e.redis.proc.Signal(syscall.SIGSTOP); err != nil {
				return err
			}
			err := sleep(ctx, e.h.faultLen)
			_ = e.redis.proc.Signal(syscall.SIGCONT)
			up()
			return err
		}},
		{name: "redis-kill", fault: "SIGKILL redis, down for -fault, restarted empty on the same port", run: func(ctx context.Context, e *env) error {
			up := e.d.redisDown()
			e.redis.proc.Kill()
			if err := sleep(ctx, e.h.faultLen); err != nil {
				return err
			}
			err := e.redis.restart(ctx)
			up()
			return err
		}},
		{name: "sentinel-failover", fault: "SENTINEL FAILOVER (min_replicas 1)", sentinel: true, run: func(ctx context.Context, e *env) error {
			up := e.d.redisDown()
			t0 := time.Now()
			m, err := e.ss.failover(ctx)
			up()
			if err == nil {
				e.extra["failover"] = fmt.Sprintf("new master %s stable after %s", m.addr(), time.Since(t0).Round(10*time.Millisecond))
			}
			return err
		}},
		{name: "sentinel-master-kill", fault: "SIGKILL the master; promotion; old master restarted empty", sentinel: true, run: func(ctx context.Context, e *env) error {
			up := e.d.redisDown()
			t0 := time.Now()
			err := e.ss.killMaster(ctx, func() {
				up()
				e.extra["promotion"] = fmt.Sprintf("new master stable %s after the kill", time.Since(t0).Round(10*time.Millisecond))
			})
			return err
		}},
		{name: "idp-503", fault: "introspection answers 503 for -fault", run: func(ctx context.Context, e *env) error {
			return e.idpMode(ctx, mode503)
		}},
		{name: "idp-hang", fault: "introspection hangs (past introspection_timeout 2s) for -fault", run: func(ctx context.Context, e *env) error {
			return e.idpMode(ctx, modeHang)
		}},
		{name: "slow-idp", fault: "introspection 1.5 s slow for -fault", run: func(ctx context.Context, e *env) error {
			return e.idpMode(ctx, modeSlow)
		}},
		{name: "reload", fault: "POST the same Caddyfile to each admin /load every 500 ms for -fault", plainToo: true, run: func(ctx context.Context, e *env) error {
			rctx, cancel := context.WithTimeout(ctx, e.h.faultLen)
			defer cancel()
			e.reloads = reloader(rctx, e.gws, 500*time.Millisecond)
			return ctx.Err()
		}},
		{name: "flood", fault: "one address (127.0.0.2) sends distinct garbage tokens, 16 closed loops, for -fault", run: func(ctx context.Context, e *env) error {
			fctx, cancel := context.WithTimeout(ctx, e.h.faultLen)
			defer cancel()
			t0 := time.Now()
			e.d.flood(fctx, 16)
			secs := time.Since(t0).Seconds()
			e.extra["flood_budget_bound"] = fmt.Sprintf("2 instances × (50 + 50/s × %.1f s) = %.0f calls", secs, 2*(50+50*secs))
			return ctx.Err()
		}},
	}
}

func (e *env) idpMode(ctx context.Context, m int32) error {
	e.h.proxy.mode.Store(m)
	err := sleep(ctx, e.h.faultLen)
	e.h.proxy.mode.Store(modePass)
	return err
}

func run(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("pce-chaos", flag.ContinueOnError)
	only := fs.String("scenarios", "", "comma-separated scenarios (default: all): "+names())
	dur := fs.Duration("duration", 4*time.Second, "steady traffic before and after each fault")
	faultLen := fs.Duration("fault", 5*time.Second, "length of a fault (redis-hang, redis-kill, idp-*, reload, flood)")
	revPerSec := fs.Float64("revocations", 4, "revocations per second (each of a token made 1.5 s earlier); 0: none")
	rate := fs.Int("rate", 200, "request ticks per second over both instances (a fresh-token tick sends two)")
	out := fs.String("out", "", "directory for results.md, results.json and the Caddy logs (default: cmd/pce-chaos/results in the module)")
	caddyBin := fs.String("caddy", "", "a Caddy built from ./cmd/caddy (default: build one into the user cache directory)")
	smoke := fs.Bool("smoke", false, "redis-hang only, -duration 2s; for CI (exit 1 on any fail-open, false refusal or backend leak)")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	if fs.NArg() > 0 {
		return 2, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *smoke {
		*only, *dur = "redis-hang", 2*time.Second
	}
	if *dur <= 0 || *faultLen <= 0 || *rate < 10 {
		return 2, errors.New("need -duration > 0, -fault > 0, -rate >= 10")
	}
	list := scenarios()
	if *only != "" {
		keep := map[string]bool{}
		for _, n := range strings.Split(*only, ",") {
			keep[strings.TrimSpace(n)] = true
		}
		var sel []scenario
		for _, s := range list {
			if keep[s.name] {
				sel = append(sel, s)
				delete(keep, s.name)
			}
		}
		if len(keep) > 0 {
			return 2, fmt.Errorf("unknown scenarios in %q; known: %s", *only, names())
		}
		list = sel
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		return 2, fmt.Errorf("redis-server is not on PATH (apt-get install redis-server): %w", err)
	}
	root, err := procs.ModuleRoot(ctx)
	if err != nil {
		return 2, err
	}
	if *out == "" {
		*out = filepath.Join(root, "cmd", "pce-chaos", "results")
	}
	work, err := os.MkdirTemp("", "pce-chaos-")
	if err != nil {
		return 2, err
	}
	defer os.RemoveAll(work)

	h := &harness{work: work, out: *out, pre: *dur, post: *dur, faultLen: *faultLen, rate: *rate,
		idp: newIDP(), back: &backend{}}
	if *revPerSec > 0 {
		h.revokeEvery = time.Duration(float64(time.Second) / *revPerSec)
	}
	h.bin = *caddyBin
	if h.bin == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = work
		}
		logf("building ./cmd/caddy")
		t0 := time.Now()
		if h.bin, err = procs.BuildCaddy(ctx, root, filepath.Join(cache, "pce-chaos")); err != nil {
			return 2, err
		}
		logf("built %s in %s", h.bin, time.Since(t0).Round(100*time.Millisecond))
	}
	idpAddr, stopIDP, err := loopback.Serve(h.idp)
	if err != nil {
		return 2, err
	}
	defer stopIDP()
	h.proxy = newFaultProxy(h.idp, idpAddr)
	var stopProxy, stopBack func()
	if h.proxyAddr, stopProxy, err = loopback.Serve(h.proxy); err != nil {
		return 2, err
	}
	defer stopProxy()
	if h.backAddr, stopBack, err = loopback.Serve(h.back); err != nil {
		return 2, err
	}
	defer stopBack()

	rep := &report{Started: time.Now(), Machine: machineInfo(), Options: map[string]string{
		"duration": dur.String(), "fault": faultLen.String(), "rate": fmt.Sprint(*rate), "smoke": fmt.Sprint(*smoke),
		"revocations_per_second": fmt.Sprint(*revPerSec),
		"summary":                fmt.Sprintf("-duration %s -fault %s -rate %d -revocations %g%s", dur, faultLen, *rate, *revPerSec, map[bool]string{true: " -smoke"}[*smoke]),
	}}
	for _, sc := range list {
		targets := []string{"gateway"}
		if sc.plainToo {
			targets = append(targets, "plain")
		}
		for _, target := range targets {
			if err := ctx.Err(); err != nil {
				return 2, err
			}
			t0 := time.Now()
			r, err := h.runOnce(ctx, sc, target)
			if err != nil {
				return 2, fmt.Errorf("%s (%s): %w", sc.name, target, err)
			}
			rep.Rows = append(rep.Rows, r)
			rep.FailOpen += r.FailOpen
			rep.FalseRef += r.FalseRefusals
			rep.Leaks += r.Leaks
			logf("%-21s %-7s %6d requests  fail-open %d  false refusals %d  503 %d  429 %d  errors %d  leaks %d  valid p50 %.1f p99 %.1f max %.0f ms  calls %s  (%s)",
				r.Scenario, r.Target, r.Requests, r.FailOpen, r.FalseRefusals, r.S503, r.S429, r.Errors, r.Leaks,
				r.P50, r.P99, r.Max, callsCell(r.Calls), time.Since(t0).Round(100*time.Millisecond))
		}
	}
	rep.Seconds = time.Since(rep.Started).Seconds()
	fmt.Print(rep.markdown())
	if err := rep.write(h.out); err != nil {
		return 2, err
	}
	logf("wrote %s and results.json (%.0f s)", filepath.Join(h.out, "results.md"), rep.Seconds)
	if rep.FailOpen+rep.FalseRef+rep.Leaks > 0 {
		logf("FAILED: %d fail-open, %d false refusals, %d backend leaks", rep.FailOpen, rep.FalseRef, rep.Leaks)
		return 1, nil
	}
	return 0, nil
}

func (h *harness) runOnce(ctx context.Context, sc scenario, target string) (*row, error) {
	cs := &procs.Set{}
	defer cs.StopAll()
	dir := filepath.Join(h.work, sc.name+"-"+target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	e := &env{h: h, extra: map[string]any{}}
	gateway := ""
	if target == "gateway" {
		var cache string
		if sc.sentinel {
			ss, err := startSentinelSet(ctx, cs, dir)
			if err != nil {
				return nil, err
			}
			e.ss = ss
			cache = fmt.Sprintf("cache redis %s {\nmaster_name %s\nmin_replicas 1\n}", ss.urls(), masterName)
		} else {
			n, err := startRedisNode(ctx, cs, dir, "redis", "")
			if err != nil {
				return nil, err
			}
			e.redis = n
			cache = "cache redis redis://" + n.addr() + "/0"
		}
		gateway = fmt.Sprintf("introspection_url http://%s/oauth/introspect\nclient_id %s\nclient_secret %s\nrequired_scopes uapi\nrevocation_grace %s\n%s",
			h.proxyAddr, gatewayClient, gatewaySecret, grace, cache)
	}
	for i := range e.gws {
		g, err := procs.StartCaddy(ctx, cs, h.bin, dir, fmt.Sprintf("%s-%c", target, 'a'+i), h.backAddr, gateway)
		if err != nil {
			return nil, err
		}
		e.gws[i] = g
	}
	h.proxy.reset()
	h.back.take()
	h.back.on.Store(target == "gateway")
	defer h.back.on.Store(false)
	e.d = newDriver(e.gws, h.idp, h.rate, target == "plain")
	e.d.revokeEvery = h.revokeEvery
	e.d.warmHot(ctx)
	e.d.start(ctx)
	stopped := false
	defer func() {
		if !stopped {
			e.d.stop()
		}
	}()
	if err := sleep(ctx, h.pre); err != nil {
		return nil, err
	}
	faultStart := time.Now()
	logf("%s (%s): fault: %s", sc.name, target, sc.fault)
	if err := sc.run(ctx, e); err != nil {
		return nil, err
	}
	faultEnd := time.Now()
	if err := sleep(ctx, h.post); err != nil {
		return nil, err
	}
	e.d.stop()
	stopped = true
	hits := h.back.take()
	r := classify(sc.name, target, e.d, hits, h.proxy.counts(), faultStart, faultEnd, grace)
	r.Fault = sc.fault
	r.Extra = e.extra
	r.Reloads = e.reloads
	r.Extra["fault_seconds"] = fmt.Sprintf("%.1f", faultEnd.Sub(faultStart).Seconds())
	if sc.name == "flood" {
		f := r.Kinds[kindFlood]
		r.Extra["flood"] = fmt.Sprintf("%d requests (%d × 429, %d × 401), %d introspection calls for them",
			f.Requests, f.S429, f.S401, r.Calls[kindFlood])
	}
	for _, g := range e.gws {
		if g.Proc.Exited() {
			r.Notes = append(r.Notes, g.Name+" exited during the run")
		}
	}
	h.keepLogs(dir, sc.name+"-"+target)
	return r, nil
}

// keepLogs copies the Caddy logs of a run to -out/logs.
func (h *harness) keepLogs(dir, prefix string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if len(logs) == 0 {
		return
	}
	dst := filepath.Join(h.out, "logs")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return
	}
	for _, l := range logs {
		in, err := os.Open(l)
		if err != nil {
			continue
		}
		o, err := os.Create(filepath.Join(dst, prefix+"."+filepath.Base(l)))
		if err == nil {
			_, _ = io.Copy(o, in)
			o.Close()
		}
		in.Close()
	}
}

func names() string {
	var n []string
	for _, s := range scenarios() {
		n = append(n, s.name)
	}
	return strings.Join(n, ",")
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "pce-chaos: "+format+"\n", a...)
}

func machineInfo() map[string]string {
	m := map[string]string{"goos": runtime.GOOS, "goarch": runtime.GOARCH, "cpus": fmt.Sprint(runtime.NumCPU()), "go": runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("redis-server", "--version").Output(); err == nil {
		m["redis"] = strings.TrimSpace(string(out))
	}
	m["summary"] = fmt.Sprintf("%s %s/%s, %s CPUs (%s), kernel %s, %s", m["go"], m["goos"], m["goarch"], m["cpus"], m["cpu"], m["kernel"], strings.Fields(m["redis"] + " x x x")[2])
	return m
}
