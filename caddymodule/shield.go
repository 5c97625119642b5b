package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"golang.org/x/time/rate"

	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/introspect"
)

// Defaults of the shield.
const (
	defaultMaxIntrospections = 64
	defaultMissBudget        = 50
	defaultMissWindow        = time.Second
	// slotWait is how long a lookup waits for one of max_introspections
	// before it is a 503.
	slotWait = 250 * time.Millisecond
	// maxTracked bounds the addresses the budget remembers; past it, the
	// addresses whose budget is whole again are forgotten (one sweep per
	// window), and a new address finding the table still full is over
	// budget until the next sweep.
	maxTracked = 100_000
)

// errOverBudget is a client address past its miss budget: 429, never
// cached, never "stale-if-error".
type errOverBudget struct{ retryAfter time.Duration }

func (e *errOverBudget) Error() string {
	return fmt.Sprintf("the client address spent its budget of lookups of new tokens; retry after %s", e.retryAfter)
}

// errNoSlot is the introspection limit reached: an outage for the caller.
var errNoSlot = fmt.Errorf("%w: max_introspections calls already in flight", introspect.ErrUnavailable)

// shield sits between the token caches and the introspection endpoint:
// only lookups that missed every cache reach it. It bounds the calls in
// flight (max_introspections) and each client address's misses
// (miss_budget, by Caddy's client IP, which honours trusted_proxies).
type shield struct {
	next   introspect.Introspector
	slots  chan struct{}
	budget *missBudget // nil: off
}

func newShield(next introspect.Introspector, maxInFlight int, budget *missBudget) *shield {
	return &shield{next: next, slots: make(chan struct{}, maxInFlight), budget: budget}
}

func (s *shield) Introspect(ctx context.Context, token string) (*introspect.Claims, error) {
	if s.budget != nil {
		if d, ok := s.budget.spend(clientAddr(ctx)); !ok {
			return nil, &errOverBudget{retryAfter: d}
		}
	}
	select {
	case s.slots <- struct{}{}:
	default:
		t := time.NewTimer(slotWait)
		defer t.Stop()
		select {
		case s.slots <- struct{}{}:
		case <-t.C:
			return nil, errNoSlot
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", introspect.ErrUnavailable, ctx.Err())
		}
	}
	defer func() { <-s.slots }()
	return s.next.Introspect(ctx, token)
}

// clientAddr is the request's client address as Caddy computed it.
func clientAddr(ctx context.Context) netip.Addr {
	s, _ := caddyhttp.GetVar(ctx, caddyhttp.ClientIPVarKey).(string)
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	if a.Is6() && !a.Is4In6() {
		// One budget per /64: an IPv6 client has a whole subnet.
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a.Unmap()
}

// missBudget is a token bucket per client address: n lookups per window,
// n at once.
type missBudget struct {
	n      int
	window time.Duration
	max    int // addresses tracked at most
	mu     sync.Mutex
	addrs  map[netip.Addr]*rate.Limiter
	swept  time.Time // the last sweep of a full table
	sweeps int       // how many (tests)
}

func newMissBudget(n int, window time.Duration) *missBudget {
	return &missBudget{n: n, window: window, max: maxTracked, addrs: map[netip.Addr]*rate.Limiter{}}
}

// spend takes one lookup from addr's budget; when there is none left, it
// says how long until there is.
func (b *missBudget) spend(addr netip.Addr) (time.Duration, bool) {
	now := time.Now()
	b.mu.Lock()
	l := b.addrs[addr]
	if l == nil {
		if len(b.addrs) >= b.max && now.Sub(b.swept) >= b.window {
			// At most one sweep per window: a flood of new addresses
			// does not make every lookup walk the table.
			b.swept = now
			b.sweeps++
			b.forgetWhole(now)
		}
		if len(b.addrs) >= b.max {
			// Still full: that many addresses are spending their budget
			// right now. A new one waits for the next sweep rather than
			// grow the table without bound (or be let through unchecked).
			b.mu.Unlock()
			return max(b.window-now.Sub(b.swept), time.Second), false
		}
		l = rate.NewLimiter(rate.Every(b.window/time.Duration(b.n)), b.n)
		b.addrs[addr] = l
	}
	b.mu.Unlock()
	r := l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// forgetWhole drops the addresses whose budget has refilled: remembering
// them changes nothing. Called with mu held.
func (b *missBudget) forgetWhole(now time.Time) {
	for a, l := range b.addrs {
		if l.TokensAt(now) >= float64(b.n) {
			delete(b.addrs, a)
		}
	}
}

// overBudget reports whether err is a client address past its budget,
// and the delay until it has one lookup again.
func overBudget(err error) (time.Duration, bool) {
	var ob *errOverBudget
	if errors.As(err, &ob) {
		return ob.retryAfter, true
	}
	return 0, false
}
