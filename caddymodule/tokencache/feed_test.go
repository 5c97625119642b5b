package tokencache

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/introspect"
	"github.com/voipnow-pce/caddy-voipnow-pce/internal/redistest"
	"github.com/voipnow-pce/caddy-voipnow-pce/internal/testservers"
)

func inMemory(c *Cache, tok string) bool {
	e, fresh := c.mem.get(c.keys.hash(tok), time.Now().UnixNano())
	return e != nil && fresh
}

// feedDown reports whether rec saw the record go unheard.
func (r *recorder) feedDown() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.feed) > 0 && !r.feed[len(r.feed)-1]
}

// An instance whose connection to Redis hung while another revoked a
// token catches up from the record when it is back: the revoked token
// goes, nothing else does (a gap the record covers empties nothing).
func TestRecordCaughtUpAfterAHang(t *testing.T) {
	srv, rdbA := newRedis(t)
	proxy := testservers.NewProxy(t, srv.Addr())
	up := newUpstream()
	now := time.Now()
	a := newCache(t, Config{Redis: rdbA}, up)
	rec := newRecorder()
	core, logs := observer.New(zap.InfoLevel)
	// A long grace: what is tested is the catch-up, not the distrust.
	b := newCache(t, Config{Redis: clientVia(t, proxy.Addr()), Heartbeat: 200 * time.Millisecond,
		RevocationGrace: time.Hour, Observer: rec, Logger: zap.New(core)}, up)
	a.Start(t.Context())
	b.Start(t.Context())
	waitSubscribed(t, a)
	waitSubscribed(t, b)
	for _, tok := range []string{"keep", "revoked"} {
		up.set(tok, active(time.Hour, now))
		mustIntrospect(t, b, tok)
	}

	proxy.Freeze()
	eventually(t, 5*time.Second, "B to find the record silent", rec.feedDown)
	res, err := a.Revoke(context.Background(), "revoked", "")
	if err != nil || !res.Recorded {
		t.Fatalf("revoke: %+v, %v", res, err)
	}
	if !inMemory(b, "revoked") {
		t.Fatal("B dropped the token while cut off: this test proves nothing")
	}
	thawed := time.Now()
	proxy.Thaw()
	eventually(t, 10*time.Second, "B to apply the revocation it missed", func() bool { return !inMemory(b, "revoked") })
	t.Logf("B applied the missed revocation %s after its Redis came back", time.Since(thawed).Round(time.Millisecond))
	if !inMemory(b, "keep") {
		t.Fatal("B emptied its memory though the record covered the gap")
	}
	if n := logs.FilterMessageSnippet("emptied").Len(); n != 0 {
		t.Fatalf("B logged %d emptyings", n)
	}
	if n := up.count("keep"); n != 1 {
		t.Fatalf("upstream calls for an unrevoked token = %d, want 1", n)
	}
}

// Redis killed and restarted empty: the record is gone, so each instance
// empties its in-process tier once, and the tokens are then introspected
// once each across the two instances, not once per instance.
func TestLostRecordEmptiesMemoryOnce(t *testing.T) {
	srv, _ := newRedis(t)
	up := newUpstream()
	now := time.Now()
	var caches []*Cache
	var logs []*observer.ObservedLogs
	var recs []*recorder
	for range 2 {
		// Two clients, as two processes have; a timeout for a loaded
		// machine re-dialling its connections.
		rdb := clientVia(t, srv.Addr())
		core, l := observer.New(zap.InfoLevel)
		rec := newRecorder()
		c := newCache(t, Config{Redis: rdb, RedisTimeout: 200 * time.Millisecond, Heartbeat: 200 * time.Millisecond,
			Logger: zap.New(core), Observer: rec}, up)
		c.Start(t.Context())
		waitSubscribed(t, c)
		caches, logs, recs = append(caches, c), append(logs, l), append(recs, rec)
	}
	const tokens = 20
	tok := func(i int) string { return fmt.Sprintf("tok-%d", i) }
	for i := range tokens {
		up.set(tok(i), active(time.Hour, now))
		for _, c := range caches {
			mustIntrospect(t, c, tok(i))
		}
	}
	if n := up.total.Load(); n != tokens {
		t.Fatalf("warm-up: %d upstream calls, want %d", n, tokens)
	}

	srv.Restart() // SIGKILL, then a new empty server on the same port
	for i, l := range logs {
		eventually(t, 15*time.Second, fmt.Sprintf("instance %d to notice the lost record", i), func() bool {
			return l.FilterMessageSnippet("record was lost").Len() > 0
		})
		if n := caches[i].mem.len(); n != 0 {
			t.Fatalf("instance %d kept %d entries", i, n)
		}
	}
	// Each token asked of both instances at once, as traffic would.
	for i := range tokens {
		var wg sync.WaitGroup
		for _, c := range caches {
			wg.Go(func() { mustIntrospect(t, c, tok(i)) })
		}
		wg.Wait()
	}
	n := up.total.Load() - tokens
	t.Logf("after the restart: %d upstream calls for %d tokens on two instances", n, tokens)
	// One per token, give or take a Redis call lost to a connection being
	// re-dialled (which then asks the endpoint itself rather than wait).
	if n < tokens || n > tokens+tokens/4 {
		t.Errorf("after the restart: %d upstream calls for %d tokens on two instances, want about %d", n, tokens, tokens)
		for i, r := range recs {
			t.Logf("instance %d: lookups %v, redis errors %v, breaker %v", i, r.lookups, r.redisErrors, r.breaker)
		}
	}
	// Heard again for a while: no second emptying.
	time.Sleep(3 * caches[0].heartbeat)
	for i, l := range logs {
		if n := l.FilterMessageSnippet("record was lost").Len(); n != 1 {
			t.Errorf("instance %d emptied its memory %d times, want once", i, n)
		}
	}
}

// An instance that cannot hear the record trusts its in-process answers
// for the grace after it last heard it; past it each token is checked
// again with the endpoint, once per grace, however many requests come.
func TestRevocationGrace(t *testing.T) {
	srv, _ := newRedis(t)
	proxy := testservers.NewProxy(t, srv.Addr())
	up := newUpstream()
	now := time.Now()
	const grace = time.Second
	rec := newRecorder()
	b := newCache(t, Config{Redis: clientVia(t, proxy.Addr()), Heartbeat: 100 * time.Millisecond,
		RevocationGrace: grace, Observer: rec}, up)
	b.Start(t.Context())
	waitSubscribed(t, b)
	up.set("revoked", active(time.Hour, now))
	up.set("valid", active(time.Hour, now))
	mustIntrospect(t, b, "revoked")
	mustIntrospect(t, b, "valid")

	proxy.Freeze()
	frozen := time.Now()
	// Revoked at the identity provider; the revocation record cannot
	// reach B.
	up.set("revoked", introspect.Claims{Active: false})
	if got := mustIntrospect(t, b, "revoked"); !got.Active && time.Since(frozen) < grace/2 {
		t.Fatal("B asked the endpoint again well within the grace")
	}
	eventually(t, 10*time.Second, "B to stop accepting the revoked token", func() bool {
		return !mustIntrospect(t, b, "revoked").Active
	})
	t.Logf("refused %s after the feed went silent (grace %s)", time.Since(frozen).Round(time.Millisecond), grace)

	// The valid token: many concurrent requests past the grace, one call.
	e, _ := b.mem.get(b.keys.hash("valid"), time.Now().UnixNano())
	eventually(t, 10*time.Second, "the valid token's entry to leave the grace", func() bool {
		return !b.trusted(e, b.now().UnixNano())
	})
	before := up.count("valid")
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if !mustIntrospect(t, b, "valid").Active {
				t.Error("valid token refused")
			}
		})
	}
	wg.Wait()
	if n := up.count("valid") - before; n != 1 {
		t.Fatalf("32 concurrent requests past the grace made %d calls, want 1", n)
	}
	// Requests go on for a while: one call per grace at most.
	start, calls := time.Now(), up.count("valid")
	for time.Since(start) < 3*grace {
		mustIntrospect(t, b, "valid")
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	n := up.count("valid") - calls
	if limit := int(elapsed/grace) + 1; n < 1 || n > limit {
		t.Fatalf("%s of requests past the grace made %d calls, want 1 to %d", elapsed.Round(time.Millisecond), n, limit)
	}
	if rec.lookup("memory/unheard") == 0 {
		t.Fatal("no lookup reported as unheard")
	}
	proxy.Thaw()
}

// min_replicas: with no replica to acknowledge, a revocation is not
// recorded (the caller answers 503), and the local tier is purged anyway.
func TestMinReplicasUnmet(t *testing.T) {
	_, rdb := newRedis(t)
	up := newUpstream()
	up.set("tok", active(time.Hour, time.Now()))
	c := newCache(t, Config{Redis: rdb, MinReplicas: 1}, up)
	mustIntrospect(t, c, "tok")
	res, err := c.Revoke(context.Background(), "tok", "")
	if err == nil || res.Recorded {
		t.Fatalf("revocation acknowledged by no replica succeeded: %+v", res)
	}
	if res.Memory != 1 || inMemory(c, "tok") {
		t.Fatalf("local tier not purged: %+v", res)
	}
	t.Log(err)
}

// Redis hung (SIGSTOP) while a revocation is made: it is answered with an
// error, and the other instance stops accepting the token all the same:
// within the grace when the hang outlasts it (checked with the endpoint),
// and within a second of Redis coming back when it does not (the revoking
// instance records it then).
func TestRevocationsAcrossRedisHang(t *testing.T) {
	srv := redistest.Start(t)
	up := newUpstream()
	now := time.Now()
	const grace = 2 * time.Second
	var caches []*Cache
	for range 2 {
		c := newCache(t, Config{Redis: clientVia(t, srv.Addr()), Heartbeat: 200 * time.Millisecond, RevocationGrace: grace}, up)
		c.Start(t.Context())
		waitSubscribed(t, c)
		caches = append(caches, c)
	}
	a, b := caches[0], caches[1]
	for _, tok := range []string{"short", "long", "keep"} {
		up.set(tok, active(time.Hour, now))
		mustIntrospect(t, a, tok)
		mustIntrospect(t, b, tok)
	}
	ctx := context.Background()

	// A hang shorter than the grace.
	srv.Pause()
	up.set("short", introspect.Claims{Active: false})
	if res, err := a.Revoke(ctx, "short", ""); err == nil || res.Recorded {
		t.Fatalf("a revocation with Redis hung was acknowledged: %+v", res)
	}
	if !inMemory(b, "short") {
		t.Fatal("B dropped the token while Redis hung: this test proves nothing")
	}
	srv.Resume()
	resumed := time.Now()
	eventually(t, 10*time.Second, "B to drop the token after Redis came back", func() bool { return !inMemory(b, "short") })
	t.Logf("short hang: B dropped the revoked token %s after Redis came back", time.Since(resumed).Round(time.Millisecond))
	if mustIntrospect(t, b, "short").Active {
		t.Fatal("B accepts the token after Redis came back")
	}

	// A hang longer than the grace.
	srv.Pause()
	paused := time.Now()
	up.set("long", introspect.Claims{Active: false})
	if _, err := a.Revoke(ctx, "long", ""); err == nil {
		t.Fatal("a revocation with Redis hung was acknowledged")
	}
	eventually(t, grace+10*time.Second, "B to refuse the token while Redis hangs", func() bool {
		return !mustIntrospect(t, b, "long").Active
	})
	t.Logf("long hang: B refused the revoked token %s after the hang began (grace %s)", time.Since(paused).Round(time.Millisecond), grace)
	if !mustIntrospect(t, b, "keep").Active || !mustIntrospect(t, a, "keep").Active {
		t.Fatal("a valid token refused during the hang")
	}
	srv.Resume()
	resumed = time.Now()
	// A's Redis entry survived the hang (its DEL failed): the revocation
	// recorded on reconnecting deletes it.
	eventually(t, 10*time.Second, "both instances to refuse the token after Redis came back", func() bool {
		return !mustIntrospect(t, b, "long").Active && !mustIntrospect(t, a, "long").Active
	})
	t.Logf("long hang: both refuse the token %s after Redis came back", time.Since(resumed).Round(time.Millisecond))
	if !mustIntrospect(t, b, "keep").Active {
		t.Fatal("a valid token refused after the hang")
	}
}

// The record deleted (or evicted) while the epoch stays: an instance that
// had read entries notices within a round and empties its memory.
func TestRecordDeletedIsLost(t *testing.T) {
	srv, rdb := newRedis(t)
	up := newUpstream()
	core, logs := observer.New(zap.InfoLevel)
	a := newCache(t, Config{Redis: rdb}, up)
	b := newCache(t, Config{Redis: clientVia(t, srv.Addr()), Heartbeat: 100 * time.Millisecond, Logger: zap.New(core)}, up)
	b.Start(t.Context())
	waitSubscribed(t, b)
	up.set("revoked", active(time.Hour, time.Now()))
	up.set("keep", active(time.Hour, time.Now()))
	mustIntrospect(t, b, "keep")
	if _, err := a.Revoke(context.Background(), "revoked", ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "B to read the entry", func() bool {
		return len(b.recentCopy()) > 0
	})
	if err := rdb.Del(context.Background(), a.redis.recordKey()).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "B to notice the record gone", func() bool {
		return logs.FilterMessageSnippet("record is gone").Len() > 0
	})
	if inMemory(b, "keep") {
		t.Fatal("B kept its memory though the record it read from is gone")
	}
}

// An instance that could not reach Redis from its start: revocations
// recorded before its first read are applied when it reads, and the answer
// it stored meanwhile is not written back into Redis over the
// revocation. (Found by a probe: both instances then served the revoked
// token.)
func TestFirstAttachReadsSinceStart(t *testing.T) {
	srv, rdb := newRedis(t)
	proxy := testservers.NewProxy(t, srv.Addr())
	proxy.Freeze()
	up := newUpstream()
	a := newCache(t, Config{Redis: rdb, Heartbeat: 100 * time.Millisecond}, up)
	b := newCache(t, Config{Redis: clientVia(t, proxy.Addr()), Heartbeat: 100 * time.Millisecond}, up)
	a.Start(t.Context())
	waitSubscribed(t, a)
	b.Start(t.Context())
	up.set("revoked", active(time.Hour, time.Now()))
	mustIntrospect(t, b, "revoked") // Redis unreachable: kept in memory, pending
	mustIntrospect(t, a, "revoked")
	up.set("revoked", introspect.Claims{Active: false})
	if res, err := a.Revoke(context.Background(), "revoked", ""); err != nil || !res.Recorded {
		t.Fatalf("revoke: %+v, %v", res, err)
	}
	proxy.Thaw()
	waitSubscribed(t, b)
	eventually(t, 5*time.Second, "B to apply the revocation made before its first read", func() bool { return !inMemory(b, "revoked") })
	// B's hits meanwhile must not have put the old answer back.
	for range 20 {
		if mustIntrospect(t, b, "revoked").Active || mustIntrospect(t, a, "revoked").Active {
			t.Fatal("a revoked token accepted after B's first read")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if raw, _ := rdb.Get(context.Background(), a.redis.key(a.keys.hash("revoked"))).Bytes(); strings.Contains(string(raw), `"active":true`) {
		t.Fatalf("Redis holds the revoked answer: %s", raw)
	}
}
