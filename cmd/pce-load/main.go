// Command pce-load measures the voipnow_pce gateway against a plain Caddy
// reverse_proxy to the same backend, in the same run on the same machine.
//
//	go run ./cmd/pce-load [-duration 5s] [-rounds 3] [-out testdata/load]
//
// It starts, on loopback and free ports: a backend stub (200 with the
// page's JSON), a minimal RFC 7662 introspection endpoint that counts its
// calls, a private redis-server (no persistence), and three Caddy processes
// built from ./cmd/caddy: a plain reverse_proxy, the gateway with the
// in-process cache, and the gateway with Redis and the in-process tier off
// (cache_size -1). For every scenario and round it drives plain Caddy and
// the gateway in turns of -slice (A B A B ..., the first alternating
// between rounds) with the same Go load generator (-conns keep-alive
// clients, one pool per target, warm-up, then -duration per target), and
// prints requests/s, p50, p99 and the ratio to plain Caddy measured in the
// same round. It then checks that 64
// clients hitting a fresh token at once cause exactly one introspection,
// and measures the heap of 100,000 tokens in the in-process tier.
//
// Results go to -out: results.md (the table), results.json, chart.svg,
// and the generated Caddyfiles. Every child process is stopped on exit,
// also on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/loopback"
	"github.com/voipnow-pce/caddy-voipnow-pce/internal/procs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "pce-load:", err)
		os.Exit(1)
	}
}

type options struct {
	duration, warmup time.Duration
	slice            time.Duration
	rounds, conns    int
	out, caddyBin    string
	only, profile    string
	burstTokens      int
}

func run(ctx context.Context, args []string) (err error) {
	var o options
	fs := flag.NewFlagSet("pce-load", flag.ContinueOnError)
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "measuring window of each run")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "warm-up before each measuring window")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each round runs every scenario against plain Caddy and the gateway")
	fs.IntVar(&o.conns, "conns", 64, "concurrent keep-alive clients")
	fs.DurationVar(&o.slice, "slice", 250*time.Millisecond, "plain Caddy and the gateway are driven in turns of this length")
	fs.StringVar(&o.out, "out", "testdata/load", "directory for results.md, results.json, chart.svg and the Caddyfiles (empty: none)")
	fs.StringVar(&o.caddyBin, "caddy", "", "a Caddy built from ./cmd/caddy (default: build one)")
	fs.StringVar(&o.only, "scenarios", "", "comma-separated scenario names to run (default: all)")
	fs.StringVar(&o.profile, "profile", "", "after the rounds, profile the gateway's CPU (from Caddy's admin /debug/pprof) while these comma-separated scenarios run once more; profiles go to -out as <scenario>.<gateway>.cpu.pprof")
	replotOnly := fs.Bool("replot", false, "only redraw results.md and chart.svg in -out from its results.json")
	fs.IntVar(&o.burstTokens, "burst-tokens", 100, "fresh tokens for the one-introspection-per-token check")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.duration <= 0 || o.warmup < 0 || o.rounds < 1 || o.conns < 1 || o.slice <= 0 {
		return errors.New("need -duration > 0, -warmup >= 0, -rounds >= 1, -conns >= 1, -slice > 0")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *replotOnly {
		return replot(o.out)
	}

	work, err := os.MkdirTemp("", "pce-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	cs := &procs.Set{}
	defer cs.StopAll()
	if o.out != "" {
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			return err
		}
	}
	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "pce-load: "+format+"\n", a...) }

	// The Caddy binary.
	bin := o.caddyBin
	if bin == "" {
		root, err := procs.ModuleRoot(ctx)
		if err != nil {
			return err
		}
		logf("building ./cmd/caddy")
		if bin, err = procs.BuildCaddy(ctx, root, work); err != nil {
			return err
		}
	}

	// Backend stub, introspection endpoint, Redis.
	var backendHits atomic.Int64 // requests that reached the backend
	backendAddr, stopBackend, err := loopback.Serve(backendHandler(&backendHits))
	if err != nil {
		return err
	}
	defer stopBackend()
	p := newIDP()
	idpAddr, stopIDP, err := loopback.Serve(p)
	if err != nil {
		return err
	}
	defer stopIDP()
	redisAddr, err := startRedis(ctx, cs, work)
	if err != nil {
		return err
	}
	logf("backend %s, introspection http://%s/oauth/introspect, redis %s", backendAddr, idpAddr, redisAddr)

	// The Caddy processes.
	common := fmt.Sprintf(`introspection_url http://%s/oauth/introspect
client_id %s
client_secret %s
required_scopes uapi`, idpAddr, gatewayClient, gatewaySecret)
	// The shield (max_introspections, miss_budget) is on with its defaults
	// where the requests hit the caches: that is the hit path operators
	// run. The harness is one client address sending tens of thousands of
	// new tokens a second (new-token, the burst) or 1,000 at once
	// (rotate-1000's first round, the burst check, the Redis tier): there
	// the shield would turn most into 429s, and it is the caches' cost
	// that is measured, so it is off.
	noShield := "\nmiss_budget off\nmax_introspections 1024"
	configs := []struct{ name, gateway string }{
		{"plain", ""},
		{"gateway-memory", common + "\ncache memory"},
		{"gateway-memory-noshield", common + noShield + "\ncache memory"},
		{"gateway-redis", common + noShield + "\ncache redis redis://" + redisAddr + "/0\ncache_size -1"},
	}
	targets := map[string]*procs.Caddy{}
	for _, c := range configs {
		t, err := procs.StartCaddy(ctx, cs, bin, work, c.name, backendAddr, c.gateway)
		if o.out != "" {
			keepCaddyfile(work, o.out, c.name)
		}
		if err != nil {
			return err
		}
		targets[c.name] = t
		logf("caddy %s on %s", c.name, t.Base)
	}

	rep := &report{Machine: machineInfo(), Options: optionsInfo(o), Started: time.Now().UTC()}
	scenarios := makeScenarios(p)
	if o.only != "" {
		keep := map[string]bool{}
		for _, n := range strings.Split(o.only, ",") {
			keep[strings.TrimSpace(n)] = true
		}
		scenarios = filterScenarios(scenarios, keep)
		if len(scenarios) == 0 {
			return fmt.Errorf("-scenarios %q matches none of %s", o.only, scenarioNames(makeScenarios(p)))
		}
	}
	rep.scenarios = scenarios
	total := time.Duration(o.rounds*len(scenarios)) * (2*o.duration + o.warmup)
	logf("%d scenarios x %d rounds, plain and gateway in turns of %s, about %s", len(scenarios), o.rounds, o.slice, total.Round(time.Second))

	// Warm every target once (connections, code paths, the hot token in
	// the caches) before anything is measured.
	hot := scenarios[0].hot
	warm := min(o.warmup, time.Second) + 100*time.Millisecond
	for _, name := range []string{"gateway-memory", "gateway-memory-noshield", "gateway-redis"} {
		runPair(ctx, [2]string{targets["plain"].Base, targets[name].Base}, 0, o.conns, 0, warm/2, o.slice,
			func(int64) request { return request{token: hot} }, func(request, int) int { return 200 })
	}

	maxRPS := 0.0
	for round := 1; round <= o.rounds; round++ {
		for _, sc := range scenarios {
			if err := ctx.Err(); err != nil {
				return err
			}
			names := [2]string{"plain", sc.gateway}
			first := (round + 1) % 2 // plain first in odd rounds, the gateway in even ones
			next, supply := sc.requests(2*maxRPS*(2*o.duration+o.warmup).Seconds(), o.conns)
			callsBefore := p.calls.Load()
			res := runPair(ctx, [2]string{targets[names[0]].Base, targets[names[1]].Base}, first, o.conns, o.warmup, o.duration, o.slice,
				next, func(rq request, target int) int {
					if rq.bad && target == 1 {
						return 400
					}
					return 200
				})
			if err := ctx.Err(); err != nil {
				return err
			}
			calls := p.calls.Load() - callsBefore
			for i, name := range names {
				if t := targets[name]; t.Proc.Exited() {
					return fmt.Errorf("%s exited during the run:\n%s", t.Name, t.Proc.Tail())
				}
				r := res[i]
				rec := record{
					Scenario: sc.name, Round: round, Target: name, Plain: i == 0,
					RPS: r.RPS(), P50: ms(r.Percentile(0.50)), P90: ms(r.Percentile(0.90)), P99: ms(r.Percentile(0.99)),
					Requests: r.Requests, Errors: r.Errors, Unexpected: r.Unexpected, Exhausted: r.Exhausted,
					Issued: r.Issued, TokensUsed: r.Issued,
				}
				if i == 1 {
					// Only the gateway introspects.
					rec.Introspections = calls
				}
				if supply < 0 {
					rec.TokensUsed = 0 // tokens repeat: not counted
				}
				rep.Runs = append(rep.Runs, rec)
				maxRPS = max(maxRPS, rec.RPS)
				logf("round %d %-14s %-15s %8.0f req/s  p50 %6.3f ms  p99 %6.3f ms  introspections %d  errors %d  unexpected %d%s",
					round, sc.name, name, rec.RPS, rec.P50, rec.P99, rec.Introspections, rec.Errors, rec.Unexpected, exhaustedNote(rec.Exhausted))
			}
		}
	}

	// CPU profiles of the gateway under load, from Caddy's own pprof.
	if o.profile != "" && o.out != "" {
		for _, sc := range makeScenariosFiltered(scenarios, o.profile) {
			gw := targets[sc.gateway]
			path := filepath.Join(o.out, sc.name+"."+sc.gateway+".cpu.pprof")
			errc := make(chan error, 1)
			go func() { errc <- cpuProfile(ctx, gw, 2*o.duration, path) }()
			next, _ := sc.requests(2*maxRPS*(2*o.duration+o.warmup).Seconds(), o.conns)
			runPair(ctx, [2]string{targets["plain"].Base, gw.Base}, 0, o.conns, 0, o.duration, o.slice, next,
				func(rq request, target int) int {
					if rq.bad && target == 1 {
						return 400
					}
					return 200
				})
			if err := <-errc; err != nil {
				return err
			}
			logf("profiled %s under %s: %s (go tool pprof -top <caddy binary> %s)", sc.gateway, sc.name, path, path)
		}
	}

	// One introspection per token, with every client on a fresh token at
	// once (100 fresh tokens from one address: past the miss budget, so
	// with the shield off).
	for _, name := range []string{"gateway-memory-noshield", "gateway-redis"} {
		tokens := p.issue(o.burstTokens, time.Hour)
		before := p.calls.Load()
		errs, bad := burst(ctx, targets[name].Base, o.conns, tokens)
		if err := ctx.Err(); err != nil {
			return err
		}
		bc := burstCheck{Target: name, Clients: o.conns, Tokens: len(tokens), RequestsPerToken: 2 * o.conns,
			Introspections: p.calls.Load() - before, Errors: errs, Unexpected: bad, Min: 1 << 62}
		for _, tok := range tokens {
			n := p.callsFor(tok)
			bc.Min, bc.Max = min(bc.Min, n), max(bc.Max, n)
		}
		rep.Bursts = append(rep.Bursts, bc)
		logf("burst %s: %d tokens x %d requests (%d clients at once, twice): %d introspections, per token min %d max %d",
			name, bc.Tokens, bc.RequestsPerToken, bc.Clients, bc.Introspections, bc.Min, bc.Max)
	}

	for _, name := range []string{"plain", "gateway-memory", "gateway-redis"} {
		rep.RSS = append(rep.RSS, rssInfo{Target: name, KiB: targets[name].Proc.RSSKiB()})
	}
	cs.StopAll()

	// The in-process tier with 100,000 tokens.
	rep.Memory = measureCache(100_000)
	logf("in-process tier: %d tokens, %.1f MiB of heap (%.0f B/token)", rep.Memory.Tokens, rep.Memory.MiB, rep.Memory.BytesPerToken)

	rep.summarize()
	fmt.Print(rep.markdown())
	if o.out != "" {
		if err := rep.write(o.out); err != nil {
			return err
		}
		logf("wrote %s", strings.Join([]string{
			filepath.Join(o.out, "results.md"), filepath.Join(o.out, "results.json"), filepath.Join(o.out, "chart.svg")}, ", "))
	}
	return nil
}

func exhaustedNote(b bool) string {
	if b {
		return "  (token supply ran out: window shortened)"
	}
	return ""
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func optionsInfo(o options) map[string]string {
	return map[string]string{
		"duration": o.duration.String(), "warmup": o.warmup.String(),
		"rounds": fmt.Sprint(o.rounds), "conns": fmt.Sprint(o.conns), "slice": o.slice.String(),
		"go": runtime.Version(),
	}
}

// makeScenariosFiltered picks the named scenarios out of all.
func makeScenariosFiltered(all []*scenario, names string) []*scenario {
	keep := map[string]bool{}
	for _, n := range strings.Split(names, ",") {
		keep[strings.TrimSpace(n)] = true
	}
	return filterScenarios(all, keep)
}
