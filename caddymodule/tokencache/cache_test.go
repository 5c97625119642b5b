package tokencache

import (
	"context"
	"errors"
	"fmt"
	"github.com/redis/go-redis/v9"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/introspect"
)

func TestSequentialLookupsCallOnce(t *testing.T) {
	_, rdb := newRedis(t)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"memory", Config{}},
		{"redis", Config{Redis: rdb}},
		{"redis-only", Config{Redis: rdb, MemoryEntries: -1, KeyPrefix: "ro:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream()
			up.set("tok-seq", active(time.Hour, time.Now()))
			c := newCache(t, tc.cfg, up)
			for range 20 {
				got := mustIntrospect(t, c, "tok-seq")
				if !got.Valid(time.Now()) || got.User != "42" || !got.HasScope("uapi") {
					t.Fatalf("claims = %+v", got)
				}
			}
			if n := up.count("tok-seq"); n != 1 {
				t.Fatalf("upstream calls = %d, want 1", n)
			}
		})
	}
}

func TestConcurrentMissesCoalesce(t *testing.T) {
	_, rdb := newRedis(t)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"memory", Config{}},
		{"redis", Config{Redis: rdb}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream()
			up.delay = 50 * time.Millisecond
			up.set("tok-conc", active(time.Hour, time.Now()))
			rec := newRecorder()
			tc.cfg.Observer = rec
			c := newCache(t, tc.cfg, up)
			start := make(chan struct{})
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for range 64 {
				wg.Go(func() {
					<-start
					got, err := c.Introspect(context.Background(), "tok-conc")
					if err != nil || !got.Active {
						errs <- fmt.Errorf("got %+v, %v", got, err)
					}
				})
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if n := up.count("tok-conc"); n != 1 {
				t.Fatalf("upstream calls = %d, want 1", n)
			}
			if rec.lookup("memory/coalesced") == 0 {
				t.Fatalf("no coalesced lookups reported: %v", rec.lookups)
			}
		})
	}
}

func TestTwoInstancesShareOneIntrospection(t *testing.T) {
	_, rdb := newRedis(t)
	up := newUpstream()
	up.delay = 50 * time.Millisecond
	up.set("tok-fleet", active(time.Hour, time.Now()))
	a := newCache(t, Config{Redis: rdb}, up)
	b := newCache(t, Config{Redis: rdb}, up)
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Go(func() {
			<-start
			got, err := c.Introspect(context.Background(), "tok-fleet")
			if err != nil || !got.Active {
				errs <- fmt.Errorf("got %+v, %v", got, err)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := up.count("tok-fleet"); n != 1 {
		t.Fatalf("upstream calls = %d, want 1 across both instances", n)
	}
}

func TestLockWaitFallsBackToOwnIntrospection(t *testing.T) {
	_, rdb := newRedis(t)
	up := newUpstream()
	up.set("tok-lock", active(time.Hour, time.Now()))
	c := newCache(t, Config{Redis: rdb, LockWait: 100 * time.Millisecond}, up)
	hash := c.keys.hash("tok-lock")
	// Another "instance" holds the lock and never answers.
	if err := rdb.Set(context.Background(), c.redis.lockKey(hash), "someone", 10*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if got := mustIntrospect(t, c, "tok-lock"); !got.Active {
		t.Fatalf("claims = %+v", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("waited %s for a silent lock owner", d)
	}
	if n := up.count("tok-lock"); n != 1 {
		t.Fatalf("upstream calls = %d, want 1", n)
	}
}

func TestLockWaitTakesOwnersAnswer(t *testing.T) {
	_, rdb := newRedis(t)
	up := newUpstream()
	rec := newRecorder()
	c := newCache(t, Config{Redis: rdb, LockWait: 5 * time.Second, Observer: rec}, up)
	hash := c.keys.hash("tok-owner")
	ctx := context.Background()
	if err := rdb.Set(ctx, c.redis.lockKey(hash), "someone", 10*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(30 * time.Millisecond)
		raw, _ := c.redis.encode(&introspect.Claims{Active: true, User: "7"}, time.Now().Add(time.Minute))
		rdb.Set(ctx, c.redis.key(hash), raw, time.Minute)
	}()
	got := mustIntrospect(t, c, "tok-owner")
	if !got.Active || got.User != "7" {
		t.Fatalf("claims = %+v, want the owner's answer", got)
	}
	if n := up.count("tok-owner"); n != 0 {
		t.Fatalf("upstream calls = %d, want 0", n)
	}
	if rec.lookup("redis/coalesced") != 1 {
		t.Fatalf("lookups = %v", rec.lookups)
	}
}

func TestRedisKeysAndLifetimes(t *testing.T) {
	_, rdb := newRedis(t)
	ctx := context.Background()
	up := newUpstream()
	now := time.Now()
	up.set("secret-token-long", active(time.Hour, now))
	up.set("secret-token-short", active(60*time.Second, now))
	c := newCache(t, Config{
		Redis: rdb, MaxTTL: 5 * time.Minute, Skew: 5 * time.Second, NegativeTTL: 10 * time.Second,
		KeySecret: []byte("k"), Namespace: "ns",
	}, up)
	for _, tok := range []string{"secret-token-long", "secret-token-short", "secret-token-unknown"} {
		mustIntrospect(t, c, tok)
	}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Fatalf("keys = %v, want 3 entries (locks released)", keys)
	}
	for _, k := range keys {
		if strings.Contains(k, "secret") || strings.Contains(k, "token") {
			t.Fatalf("key %q holds the token", k)
		}
		v, _ := rdb.Get(ctx, k).Result()
		if strings.Contains(v, "secret") {
			t.Fatalf("value %q holds the token", v)
		}
	}
	pttl := func(tok string) time.Duration {
		d, err := rdb.PTTL(ctx, c.redis.key(c.keys.hash(tok))).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	near := func(name string, got, want time.Duration) {
		t.Helper()
		if got > want || got < want-2*time.Second {
			t.Errorf("%s: PTTL %s, want about %s", name, got, want)
		}
	}
	near("long (MaxTTL)", pttl("secret-token-long"), 5*time.Minute)
	near("short (exp - skew)", pttl("secret-token-short"), 55*time.Second)
	near("negative", pttl("secret-token-unknown"), 10*time.Second)
}

func TestKeysDependOnNamespaceAndSecret(t *testing.T) {
	up := newUpstream()
	k := func(ns, secret string) string {
		c := newCache(t, Config{Namespace: ns, KeySecret: []byte(secret)}, up)
		return c.keys.hash("tok")
	}
	keys := map[string]bool{k("a", ""): true, k("b", ""): true, k("a", "s"): true, k("a", "t"): true}
	if len(keys) != 4 {
		t.Fatalf("keys collide: %v", keys)
	}
	c := newCache(t, Config{}, up)
	if fp := c.Fingerprint("tok"); len(fp) != 12 || !isHex(fp) || fp != c.keys.hash("tok")[:12] {
		t.Fatalf("Fingerprint = %q", fp)
	}
}

func TestExpiringAnswersNotCached(t *testing.T) {
	_, rdb := newRedis(t)
	now := time.Now()
	up := newUpstream()
	up.set("past", introspect.Claims{Active: true, Exp: now.Add(-time.Minute).Unix()})
	up.set("within-skew", introspect.Claims{Active: true, Exp: now.Add(3 * time.Second).Unix()})
	c := newCache(t, Config{Redis: rdb, Skew: 10 * time.Second}, up)
	for _, tok := range []string{"past", "within-skew"} {
		mustIntrospect(t, c, tok)
		mustIntrospect(t, c, tok)
		if n := up.count(tok); n != 2 {
			t.Errorf("%s: upstream calls = %d, want 2 (not cached)", tok, n)
		}
	}
	if keys := rdb.Keys(context.Background(), "*").Val(); len(keys) != 0 {
		t.Fatalf("redis keys = %v, want none", keys)
	}
}

func TestNeverServedPastExp(t *testing.T) {
	_, rdb := newRedis(t)
	clock := newClock()
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"memory", Config{}},
		{"redis", Config{Redis: rdb, MemoryEntries: -1}},
		{"both", Config{Redis: rdb, KeyPrefix: "both:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream()
			exp := clock.Now().Add(30 * time.Second)
			up.set("tok", introspect.Claims{Active: true, Exp: exp.Unix()})
			tc.cfg.Now = clock.Now
			tc.cfg.MaxTTL = 5 * time.Minute
			c := newCache(t, tc.cfg, up)
			mustIntrospect(t, c, "tok")
			mustIntrospect(t, c, "tok")
			if n := up.count("tok"); n != 1 {
				t.Fatalf("upstream calls = %d, want 1", n)
			}
			clock.Advance(31 * time.Second) // past exp by the cache's clock
			up.set("tok", introspect.Claims{Active: false})
			if got := mustIntrospect(t, c, "tok"); got.Active {
				t.Fatalf("served %+v past exp", got)
			}
			if n := up.count("tok"); n != 2 {
				t.Fatalf("upstream calls = %d, want 2", n)
			}
		})
	}
}

func TestErrorsNotCached(t *testing.T) {
	_, rdb := newRedis(t)
	up := newUpstream()
	up.fail(fmt.Errorf("%w: 503", introspect.ErrUnavailable))
	c := newCache(t, Config{Redis: rdb, StaleIfError: time.Minute}, up)
	for i := 1; i <= 3; i++ {
		if _, err := c.Introspect(context.Background(), "tok-err"); !errors.Is(err, introspect.ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
		if n := up.count("tok-err"); n != i {
			t.Fatalf("upstream calls = %d, want %d", n, i)
		}
	}
	up.fail(nil)
	up.set("tok-err", active(time.Hour, time.Now()))
	if got := mustIntrospect(t, c, "tok-err"); !got.Active {
		t.Fatalf("claims = %+v", got)
	}
}

func TestStaleIfError(t *testing.T) {
	unavailable := fmt.Errorf("%w: connection refused", introspect.ErrUnavailable)
	setup := func(t *testing.T, stale time.Duration, expIn time.Duration) (*Cache, *fakeUpstream, *fakeClock, *recorder) {
		clock := newClock()
		up := newUpstream()
		up.set("tok", active(expIn, clock.Now()))
		rec := newRecorder()
		c := newCache(t, Config{MaxTTL: time.Minute, StaleIfError: stale, Now: clock.Now, Observer: rec}, up)
		mustIntrospect(t, c, "tok")
		up.fail(unavailable)
		return c, up, clock, rec
	}
	t.Run("serves within window", func(t *testing.T) {
		c, up, clock, rec := setup(t, 2*time.Minute, time.Hour)
		clock.Advance(90 * time.Second) // past MaxTTL, within StaleIfError
		got, err := c.Introspect(context.Background(), "tok")
		if err != nil || !got.Active {
			t.Fatalf("got %+v, %v; want the stale answer", got, err)
		}
		if rec.lookup("memory/stale") != 1 || up.count("tok") != 2 {
			t.Fatalf("lookups %v, calls %d", rec.lookups, up.count("tok"))
		}
		clock.Advance(2 * time.Minute) // past MaxTTL + StaleIfError
		if _, err := c.Introspect(context.Background(), "tok"); !errors.Is(err, introspect.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	})
	t.Run("never past exp", func(t *testing.T) {
		c, _, clock, _ := setup(t, 5*time.Minute, 100*time.Second)
		clock.Advance(90 * time.Second)
		if got, err := c.Introspect(context.Background(), "tok"); err != nil || !got.Active {
			t.Fatalf("got %+v, %v; want the stale answer", got, err)
		}
		clock.Advance(11 * time.Second) // past exp
		if _, err := c.Introspect(context.Background(), "tok"); !errors.Is(err, introspect.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	})
	t.Run("off", func(t *testing.T) {
		c, _, clock, _ := setup(t, 0, time.Hour)
		clock.Advance(61 * time.Second)
		if _, err := c.Introspect(context.Background(), "tok"); !errors.Is(err, introspect.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	})
	t.Run("only for unavailable", func(t *testing.T) {
		c, up, clock, _ := setup(t, 2*time.Minute, time.Hour)
		up.fail(errors.New("something else"))
		clock.Advance(90 * time.Second)
		if _, err := c.Introspect(context.Background(), "tok"); err == nil {
			t.Fatal("stale answer served for an error that is not ErrUnavailable")
		}
	})
}

func TestRedisOutage(t *testing.T) {
	srv, rdb := newRedis(t)
	up := newUpstream()
	rec := newRecorder()
	// Not Start()ed: the record's reader would empty the memory tier on
	// finding the record lost with the restart (TestLostRecordEmptiesMemoryOnce),
	// hiding the write-behind.
	c := newCache(t, Config{Redis: rdb, Observer: rec}, up)
	now := time.Now()
	for i := range 5 {
		up.set(fmt.Sprintf("before-%d", i), active(time.Hour, now))
		mustIntrospect(t, c, fmt.Sprintf("before-%d", i))
	}

	srv.Stop()
	for i := range 20 {
		tok := fmt.Sprintf("during-%d", i)
		up.set(tok, active(time.Hour, now))
		for _, tok := range []string{tok, fmt.Sprintf("before-%d", i%5)} {
			start := time.Now()
			got, err := c.Introspect(context.Background(), tok)
			if d := time.Since(start); d > time.Second {
				t.Fatalf("lookup took %s with Redis down", d)
			}
			if err != nil || !got.Active {
				t.Fatalf("%d: got %+v, %v", i, got, err)
			}
		}
	}
	if !rec.breakerOpened() {
		t.Fatalf("breaker never opened; redis errors %v", rec.redisErrors)
	}

	srv.Restart()
	i := 0
	eventually(t, 15*time.Second, "a new entry in the restarted Redis", func() bool {
		i++
		tok := fmt.Sprintf("after-%d", i)
		up.set(tok, active(time.Hour, now))
		mustIntrospect(t, c, tok)
		n, _ := rdb.Exists(context.Background(), c.redis.key(c.keys.hash(tok))).Result()
		return n == 1
	})
	// An answer cached in memory while Redis was down is written behind on
	// its next hit, so the other instances see it.
	eventually(t, 5*time.Second, "an outage-time entry written behind to Redis", func() bool {
		mustIntrospect(t, c, "during-0")
		n, _ := rdb.Exists(context.Background(), c.redis.key(c.keys.hash("during-0"))).Result()
		return n == 1
	})
	if n := up.count("during-0"); n != 1 {
		t.Fatalf("upstream calls for during-0 = %d, want 1", n)
	}
	rec.mu.Lock()
	last := rec.breaker[len(rec.breaker)-1]
	rec.mu.Unlock()
	if last {
		t.Fatal("breaker still reported open after Redis came back")
	}
}

func TestRevoke(t *testing.T) {
	srv, rdb := newRedis(t)
	ctx := context.Background()
	up := newUpstream()
	a := newCache(t, Config{Redis: rdb}, up)
	core, bLogs := observer.New(zap.InfoLevel)
	b := newCache(t, Config{Redis: rdb, Logger: zap.New(core)}, up)
	b.Start(t.Context())
	waitSubscribed(t, b)
	now := time.Now()

	inB := func(tok string) bool {
		e, fresh := b.mem.get(b.keys.hash(tok), time.Now().UnixNano())
		return e != nil && fresh
	}
	warm := func(tok string) {
		up.set(tok, active(time.Hour, now))
		mustIntrospect(t, a, tok)
		mustIntrospect(t, b, tok)
		if !inB(tok) {
			t.Fatalf("%s not in B's memory", tok)
		}
	}
	inRedis := func(tok string) bool {
		return rdb.Exists(ctx, a.redis.key(a.keys.hash(tok))).Val() == 1
	}

	t.Run("by token", func(t *testing.T) {
		warm("tok-1")
		res, err := a.Revoke(ctx, "tok-1", "")
		if err != nil {
			t.Fatal(err)
		}
		if res.Fingerprint != a.Fingerprint("tok-1") || res.Memory != 1 || res.Redis != 1 || !res.Recorded {
			t.Fatalf("result = %+v", res)
		}
		if inRedis("tok-1") {
			t.Fatal("Redis entry survived")
		}
		eventually(t, time.Second, "B to drop the revoked token", func() bool { return !inB("tok-1") })
		// The next lookup asks upstream again.
		up.set("tok-1", introspect.Claims{Active: false})
		if got := mustIntrospect(t, b, "tok-1"); got.Active {
			t.Fatalf("B served a revoked token: %+v", got)
		}
	})
	t.Run("by fingerprint", func(t *testing.T) {
		warm("tok-2")
		fp := a.Fingerprint("tok-2")
		res, err := a.Revoke(ctx, "", fp)
		if err != nil {
			t.Fatal(err)
		}
		if res.Fingerprint != fp || res.Memory != 1 || res.Redis != 1 || !res.Recorded {
			t.Fatalf("result = %+v", res)
		}
		if inRedis("tok-2") {
			t.Fatal("Redis entry survived")
		}
		eventually(t, time.Second, "B to drop the revoked token", func() bool { return !inB("tok-2") })
	})
	t.Run("bad arguments", func(t *testing.T) {
		for _, args := range [][2]string{{"", ""}, {"x", "abcdefabcdef"}, {"", "abc"}, {"", "not-hex-at-all!"}} {
			if _, err := a.Revoke(ctx, args[0], args[1]); err == nil {
				t.Errorf("Revoke(%q, %q) succeeded", args[0], args[1])
			}
		}
	})
	t.Run("after a Redis outage", func(t *testing.T) {
		srv.Stop()
		srv.Restart()
		// The record restarted empty: B notices (and empties its memory,
		// since it may have missed revocations); wait for that, then
		// revoke.
		eventually(t, 10*time.Second, "B to notice the lost record", func() bool {
			return bLogs.FilterMessageSnippet("record was lost").Len() > 0
		})
		warm("tok-3")
		if _, err := a.Revoke(ctx, "tok-3", ""); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Second, "B to drop the revoked token", func() bool { return !inB("tok-3") })
	})
}

func waitSubscribed(t *testing.T, c *Cache) {
	t.Helper()
	for _, ch := range []chan struct{}{c.subReady, c.feedReady} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("revocation record or filled channel not read")
		}
	}
}

func TestMemoryBound(t *testing.T) {
	up := newUpstream()
	now := time.Now()
	const bound = 100
	c := newCache(t, Config{MemoryEntries: bound}, up)
	up.set("hot", active(time.Hour, now))
	mustIntrospect(t, c, "hot")
	for i := range 2 * bound {
		tok := fmt.Sprintf("cold-%d", i)
		up.set(tok, active(time.Hour, now))
		mustIntrospect(t, c, tok)
		mustIntrospect(t, c, "hot")
		if n := c.mem.len(); n > bound {
			t.Fatalf("memory holds %d entries, bound %d", n, bound)
		}
	}
	if n := up.count("hot"); n != 1 {
		t.Fatalf("hot token evicted: upstream calls = %d", n)
	}
	if n := c.mem.len(); n < bound/2 {
		t.Fatalf("memory holds only %d entries", n)
	}
}

func TestConfigValidation(t *testing.T) {
	up := newUpstream()
	for _, cfg := range []Config{{MaxTTL: -1}, {MemoryEntries: -2}, {NegativeTTL: -time.Second}} {
		if _, err := New(cfg, up); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Error("New without upstream succeeded")
	}
}

func TestCallerCancellationDoesNotFailOthers(t *testing.T) {
	up := newUpstream()
	up.delay = 100 * time.Millisecond
	up.set("tok", active(time.Hour, time.Now()))
	c := newCache(t, Config{}, up)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Introspect(ctx, "tok")
		done <- err
	}()
	eventually(t, time.Second, "the first flight to start", func() bool { return up.total.Load() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || !errors.Is(err, introspect.ErrUnavailable) {
		t.Fatalf("cancelled caller got %v", err)
	}
	if got := mustIntrospect(t, c, "tok"); !got.Active {
		t.Fatalf("claims = %+v", got)
	}
	if n := up.count("tok"); n != 1 {
		t.Fatalf("upstream calls = %d, want 1", n)
	}
}

// What the identity checks read (aud, iss, iat) survives Redis: an
// instance that finds the answer there checks it as the one that asked.
func TestRedisKeepsIdentityClaims(t *testing.T) {
	_, rdb := newRedis(t)
	up := newUpstream()
	want := active(time.Hour, time.Now())
	want.Aud, want.Iss, want.Iat, want.Nbf = []string{"https://uapi.example", "x"}, "https://idp.example", time.Now().Unix(), time.Now().Unix()
	up.set("tok-ident", want)
	a := newCache(t, Config{Redis: rdb}, up)
	b := newCache(t, Config{Redis: rdb, MemoryEntries: -1}, up)
	if _, err := a.Introspect(context.Background(), "tok-ident"); err != nil {
		t.Fatal(err)
	}
	got, err := b.Introspect(context.Background(), "tok-ident")
	if err != nil || up.count("tok-ident") != 1 {
		t.Fatalf("second instance: %v, %d calls", err, up.count("tok-ident"))
	}
	if !slices.Equal(got.Aud, want.Aud) || got.Iss != want.Iss || got.Iat != want.Iat || got.Nbf != want.Nbf {
		t.Errorf("from Redis: %+v, want %+v", *got, want)
	}
}

// countingHook counts the commands a Redis client sends.
type countingHook struct {
	mu   sync.Mutex
	seen []string
}

// note records the commands, less a new connection's handshake (HELLO,
// CLIENT SETINFO) and the revocation record's reader (its heartbeat costs
// the same whatever the flights do).
func (h *countingHook) note(cmds ...redis.Cmder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range cmds {
		if c.Name() != "hello" && c.Name() != "client" && !readsRecord(c) {
			h.seen = append(h.seen, c.Name())
		}
	}
}

func readsRecord(c redis.Cmder) bool {
	for _, a := range c.Args() {
		if s, ok := a.(string); ok && strings.Contains(s, "{revocations}") {
			return true
		}
	}
	return false
}

func (h *countingHook) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.note(cmd); return next(ctx, cmd) }
}
func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.note(cmds...)
		return next(ctx, cmds)
	}
}

// Two instances, one fresh token, the endpoint slow: one call, however
// long it lasts within LockWait, and the waiting instance is woken by the
// owner's announcement, not by polling (its safety poll is set to an hour
// here, so only the wake-up can end the wait before LockWait, after which
// it would call itself): a fixed number of Redis commands per flight.
// (Figures in BENCHMARKS.md.)
func TestTwoInstancesShareOneSlowIntrospection(t *testing.T) {
	srv, rdb := newRedis(t)
	for _, delay := range []time.Duration{100 * time.Millisecond, 400 * time.Millisecond, 1500 * time.Millisecond} {
		up := newUpstream()
		up.delay = delay
		tok := fmt.Sprintf("tok-slow-%d", delay.Milliseconds())
		up.set(tok, active(time.Hour, time.Now()))
		opts, _ := redis.ParseURL(srv.URL())
		waiterRDB := redis.NewClient(opts)
		t.Cleanup(func() { waiterRDB.Close() })
		hook := &countingHook{}
		waiterRDB.AddHook(hook)
		cfg := Config{LockWait: 3 * time.Second, LockTTL: 4 * time.Second}
		cfg.Redis = rdb
		a := newCache(t, cfg, up)
		cfg.Redis = waiterRDB
		b := newCache(t, cfg, up)
		b.poll = time.Hour
		a.Start(t.Context())
		b.Start(t.Context())
		for _, c := range []*Cache{a, b} {
			select {
			case <-c.subReady:
			case <-time.After(5 * time.Second):
				t.Fatal("no subscription")
			}
		}
		before := hook.count()
		// a takes the lock; b's 32 callers wait on it.
		first := make(chan error, 1)
		go func() { _, err := a.Introspect(context.Background(), tok); first <- err }()
		eventually(t, 2*time.Second, "a's call to start", func() bool { return up.count(tok) == 1 })
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for range 32 {
			wg.Go(func() {
				got, err := b.Introspect(context.Background(), tok)
				if err != nil || !got.Active {
					errs <- fmt.Errorf("got %+v, %v", got, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		if n := up.count(tok); n != 1 {
			t.Errorf("endpoint %s slow: %d calls, want 1", delay, n)
		}
		cmds := hook.count() - before
		hook.mu.Lock()
		t.Logf("endpoint %s slow: the waiting instance sent %d Redis commands for 32 callers (one flight): %v", delay, cmds, hook.seen)
		hook.mu.Unlock()
		// GET and SET NX of the flight, a GET+EXISTS look before waiting
		// and one after the wake-up.
		if cmds != 6 {
			t.Errorf("endpoint %s slow: the waiter sent %d Redis commands, want 6", delay, cmds)
		}
	}
}
