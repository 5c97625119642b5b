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

// sentinelClient is a Sentinel-managed client as the gateway makes one.
func sentinelClient(t testing.TB, ss *redistest.SentinelSet) *redis.Client {
	t.Helper()
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:            ss.MasterName(),
		SentinelAddrs:         ss.SentinelAddrs(),
		MaxRetries:            -1,
		DialTimeout:           250 * time.Millisecond,
		ReadTimeout:           200 * time.Millisecond,
		WriteTimeout:          200 * time.Millisecond,
		ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// Revocations go on while Sentinel fails the master over (and, second
// round, while the master is killed): every revocation answered without
// an error holds on both instances, from their memory and from Redis,
// within a second of the failover settling; with min_replicas 1 a failover
// cannot drop it.
func TestRevocationsSurviveFailover(t *testing.T) {
	for _, fault := range []string{"failover", "kill master"} {
		t.Run(fault, func(t *testing.T) {
			// Two replicas: with the master killed, one is left to
			// acknowledge (min_replicas 1) while the other is promoted.
			ss := redistest.StartSentinel(t, redistest.WithReplicas(2))
			up := newUpstream()
			now := time.Now()
			cfg := Config{MinReplicas: 1, Heartbeat: 200 * time.Millisecond, RedisTimeout: 200 * time.Millisecond}
			var caches []*Cache
			for range 2 {
				cfg.Redis = sentinelClient(t, ss)
				c := newCache(t, cfg, up)
				c.Start(t.Context())
				waitSubscribed(t, c)
				caches = append(caches, c)
			}
			const tokens = 100
			tok := func(i int) string { return fmt.Sprintf("tok-%d", i) }
			for i := range tokens {
				up.set(tok(i), active(time.Hour, now))
				for _, c := range caches {
					mustIntrospect(t, c, tok(i))
				}
			}

			// Revoke one token every 50ms, alternating instances, while the
			// fault happens; the identity provider revokes it first.
			var acked []int
			var refused atomic.Int32
			var wg sync.WaitGroup
			wg.Go(func() {
				for i := range tokens {
					up.set(tok(i), introspect.Claims{Active: false})
					if _, err := caches[i%2].Revoke(context.Background(), tok(i), ""); err == nil {
						acked = append(acked, i)
					} else {
						refused.Add(1)
					}
					time.Sleep(50 * time.Millisecond)
				}
			})
			time.Sleep(500 * time.Millisecond)
			if fault == "failover" {
				ss.Failover(t)
			} else {
				ss.KillMaster(t)
			}
			wg.Wait()
			settled := time.Now()
			t.Logf("%d revocations acknowledged, %d answered with an error", len(acked), refused.Load())
			if len(acked) < tokens/3 {
				t.Fatalf("only %d of %d revocations acknowledged: the fault lasted too long to test anything", len(acked), tokens)
			}
			// Every acknowledged revocation holds on both instances: not in
			// memory, and a lookup (memory, then Redis, then the endpoint)
			// refuses it.
			held := func() bool {
				for _, i := range acked {
					for _, c := range caches {
						if inMemory(c, tok(i)) {
							return false
						}
					}
				}
				return true
			}
			deadline := time.Now().Add(5 * time.Second)
			for !held() && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if !held() {
				// What is left, and where it came from.
				rdb := sentinelClient(t, ss)
				ctx := context.Background()
				record, _ := rdb.XRange(ctx, caches[0].redis.recordKey(), "-", "+").Result()
				inRecord := map[string]int{}
				for _, m := range record {
					t, _ := m.Values["t"].(string)
					inRecord[t]++
				}
				for _, i := range acked {
					for n, c := range caches {
						if inMemory(c, tok(i)) {
							h := c.keys.hash(tok(i))
							t.Errorf("%s (revoked by instance %d) still in instance %d's memory; in Redis: %d; in the record: %d times",
								tok(i), i%2, n, rdb.Exists(ctx, c.redis.key(h)).Val(), inRecord[h])
						}
					}
				}
				t.FailNow()
			}
			t.Logf("held on both instances %s after the fault settled", time.Since(settled).Round(time.Millisecond))
			wrong := 0
			for _, i := range acked {
				for _, c := range caches {
					got, err := c.Introspect(context.Background(), tok(i))
					if err == nil && got.Active {
						wrong++
					}
				}
			}
			if wrong != 0 {
				t.Fatalf("%d lookups accepted a token whose revocation was acknowledged", wrong)
			}
		})
	}
}
