package tokencache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/introspect"
	"github.com/voipnow-pce/caddy-voipnow-pce/internal/redistest"
)

// fakeUpstream is an in-test Introspector: it answers from a table,
// counts calls per token, may sleep, and may fail.
type fakeUpstream struct {
	mu      sync.Mutex
	answers map[string]introspect.Claims
	calls   map[string]int
	total   atomic.Int64
	delay   time.Duration
	err     error // when set, every call fails with it
}

func newUpstream() *fakeUpstream {
	return &fakeUpstream{answers: map[string]introspect.Claims{}, calls: map[string]int{}}
}

func (u *fakeUpstream) set(token string, c introspect.Claims) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.answers[token] = c
}

func (u *fakeUpstream) fail(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.err = err
}

func (u *fakeUpstream) count(token string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.calls[token]
}

func (u *fakeUpstream) Introspect(ctx context.Context, token string) (*introspect.Claims, error) {
	u.total.Add(1)
	u.mu.Lock()
	u.calls[token]++
	delay, err := u.delay, u.err
	c, ok := u.answers[token]
	u.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", introspect.ErrUnavailable, ctx.Err())
		}
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		return &introspect.Claims{Active: false}, nil
	}
	return &c, nil
}

// recorder is an Observer that counts events.
type recorder struct {
	mu          sync.Mutex
	lookups     map[string]int // "tier/result"
	redisErrors map[string]int
	breaker     []bool
	feed        []bool
	intro       map[string]int
}

func newRecorder() *recorder {
	return &recorder{lookups: map[string]int{}, redisErrors: map[string]int{}, intro: map[string]int{}}
}

func (r *recorder) Lookup(tier, result string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lookups[tier+"/"+result]++
}

func (r *recorder) RedisError(op string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.redisErrors[op]++
}

func (r *recorder) BreakerState(open bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.breaker = append(r.breaker, open)
}

func (r *recorder) Feed(up bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.feed = append(r.feed, up)
}

func (r *recorder) Introspection(outcome string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.intro[outcome]++
}

func (r *recorder) lookup(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lookups[key]
}

func (r *recorder) breakerOpened() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.breaker {
		if b {
			return true
		}
	}
	return false
}

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newRedis starts a private Redis and a client for it, closed at the end.
func newRedis(t testing.TB) (*redistest.Server, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	return srv, clientVia(t, srv.Addr())
}

// The tests' client settings: no retries (the breaker handles failures)
// and short timeouts, as the gateway's client has.
const (
	testDialTimeout = 250 * time.Millisecond
	testIOTimeout   = 200 * time.Millisecond
)

// clientVia is a client to addr (a private server, or a proxy in front of
// one), closed at the end.
func clientVia(t testing.TB, addr string) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{
		Addr:                  addr,
		MaxRetries:            -1,
		DialTimeout:           testDialTimeout,
		ReadTimeout:           testIOTimeout,
		WriteTimeout:          testIOTimeout,
		ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// newCache makes a Cache closed at the end of the test.
func newCache(t testing.TB, cfg Config, up introspect.Introspector) *Cache {
	t.Helper()
	c, err := New(cfg, up)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// active is a positive answer expiring in d.
func active(d time.Duration, now time.Time) introspect.Claims {
	return introspect.Claims{Active: true, Exp: now.Add(d).Unix(), Scopes: []string{"uapi"}, User: "42"}
}

// eventually waits for cond, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustIntrospect(t testing.TB, c *Cache, token string) *introspect.Claims {
	t.Helper()
	claims, err := c.Introspect(context.Background(), token)
	if err != nil {
		t.Fatalf("Introspect: %v", err)
	}
	return claims
}
