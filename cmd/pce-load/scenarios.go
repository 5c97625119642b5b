package main

import (
	"strings"
	"time"
)

// scenario is one workload, run against plain Caddy and one gateway.
type scenario struct {
	name    string
	title   string
	gateway string // the gateway target: gateway-memory or gateway-redis
	target  string // the target, as text; "" for none
	hot     string // the one hot token
	// requests prepares one run: budget is an estimate of how many
	// requests the run may send. supply is how many distinct tokens the
	// run can use (-1: unlimited, tokens repeat).
	requests func(budget float64, conns int) (next func(seq int64) request, supply int)
}

func unlimited(f func(seq int64) request) func(float64, int) (func(int64) request, int) {
	return func(float64, int) (func(int64) request, int) { return f, -1 }
}

func makeScenarios(p *idp) []*scenario {
	hot := p.issue(1, 24*time.Hour)[0]
	rotation := p.issue(1000, 24*time.Hour)
	return []*scenario{
		{
			name: "memory-hit", title: "in-process hit (one token)", gateway: "gateway-memory", hot: hot,
			target:   "≥ 0.95x req/s, p99 within 0.3 ms",
			requests: unlimited(func(int64) request { return request{token: hot} }),
		},
		{
			name: "list-hit", title: "list, in-process hit (one token)", gateway: "gateway-memory", hot: hot,
			target:   "≥ 0.95x req/s",
			requests: unlimited(func(int64) request { return request{op: opList, token: hot} }),
		},
		{
			name: "create-hit", title: "create, in-process hit (one token)", gateway: "gateway-memory", hot: hot,
			requests: unlimited(func(int64) request { return request{op: opCreate, token: hot} }),
		},
		{
			name: "redis-hit", title: "Redis hit (cache_size -1)", gateway: "gateway-redis", hot: hot,
			target:   "≥ 0.85x req/s",
			requests: unlimited(func(int64) request { return request{token: hot} }),
		},
		{
			name: "new-token", title: "every request a new token (shield off)", gateway: "gateway-memory-noshield", hot: hot,
			target: "1 introspection per token",
			requests: func(budget float64, conns int) (func(int64) request, int) {
				// Tokens minted and registered before the run; enough for
				// 1.5x the fastest rate seen so far.
				n := min(max(int(budget*1.5), 50_000)+conns, 1_000_000)
				pool := p.issue(n, time.Hour)
				return func(seq int64) request {
					if seq >= int64(len(pool)) {
						return request{}
					}
					return request{token: pool[seq]}
				}, n
			},
		},
		{
			name: "half-rejected", title: "half rejected (bad eventType)", gateway: "gateway-memory", hot: hot,
			target:   "≥ 1.00x req/s",
			requests: unlimited(func(seq int64) request { return request{token: hot, bad: seq%2 == 1} }),
		},
		{
			name: "all-rejected", title: "all rejected (bad eventType)", gateway: "gateway-memory", hot: hot,
			target:   "≥ 1.00x req/s",
			requests: unlimited(func(int64) request { return request{token: hot, bad: true} }),
		},
		{
			name: "rotate-1000", title: "1,000 tokens in rotation (shield off)", gateway: "gateway-memory-noshield", hot: hot,
			target:   "≥ 0.93x req/s",
			requests: unlimited(func(seq int64) request { return request{token: rotation[seq%int64(len(rotation))]} }),
		},
	}
}

func filterScenarios(all []*scenario, keep map[string]bool) []*scenario {
	var out []*scenario
	for _, s := range all {
		if keep[s.name] {
			out = append(out, s)
		}
	}
	return out
}

func scenarioNames(all []*scenario) string {
	var names []string
	for _, s := range all {
		names = append(names, s.name)
	}
	return strings.Join(names, ", ")
}
