package tokencache

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/redistest"
)

// The same guarantees on a real three-node Redis Cluster: one upstream
// call for two instances, entries spread over the nodes, revocation by
// fingerprint found on whichever node holds the entry, and the purge heard
// by the other instance.
func TestRedisCluster(t *testing.T) {
	nodes := redistest.StartCluster(t, 3)
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr()
	}
	client := func() *redis.ClusterClient {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	ctx := context.Background()
	up := newUpstream()
	up.delay = 50 * time.Millisecond
	a := newCache(t, Config{Redis: client()}, up)
	b := newCache(t, Config{Redis: client()}, up)
	b.Start(t.Context())
	waitSubscribed(t, b)

	// One call for a fresh token looked up on both at once.
	up.set("tok-c", active(time.Hour, time.Now()))
	var wg sync.WaitGroup
	for i := range 16 {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Go(func() { mustIntrospect(t, c, "tok-c") })
	}
	wg.Wait()
	if n := up.count("tok-c"); n != 1 {
		t.Fatalf("upstream calls over two instances on a Cluster = %d, want 1", n)
	}

	// Entries land on several nodes; revoking each by fingerprint finds it.
	tokens := make([]string, 12)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("tok-spread-%d", i)
		up.set(tokens[i], active(time.Hour, time.Now()))
		mustIntrospect(t, a, tokens[i])
		mustIntrospect(t, b, tokens[i])
	}
	holders := map[string]bool{}
	for _, n := range nodes {
		nc := redis.NewClient(&redis.Options{Addr: n.Addr()})
		keys, _ := nc.Keys(ctx, a.redis.prefix+"*").Result()
		if len(keys) > 0 {
			holders[n.Addr()] = true
		}
		nc.Close()
	}
	if len(holders) < 2 {
		t.Errorf("12 entries sat on %d node(s); the test wants them spread", len(holders))
	}
	for _, tok := range tokens {
		res, err := a.Revoke(ctx, "", a.Fingerprint(tok))
		if err != nil {
			t.Fatal(err)
		}
		if res.Redis != 1 || !res.Recorded {
			t.Fatalf("revoke %s by fingerprint: %+v", tok, res)
		}
		hash := b.keys.hash(tok)
		eventually(t, time.Second, "B to drop "+tok, func() bool {
			e, fresh := b.mem.get(hash, time.Now().UnixNano())
			return e == nil || !fresh
		})
	}
}
