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
		DialTimeout:           testDialTimeout,
		ReadTimeout:           testIOTimeout,
		WriteTimeout:          testIOTimeout,
		ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// Revocations go on while Sentinel fails the master over, while the
// master is killed, while a single Redis hangs (SIGSTOP) and while it is
// killed and restarted empty: every revocation answered without an error
// holds on both instances, from their memory and from Redis, once the
// fault has settled; with min_replicas 1 a failover cannot drop it.
func TestRevocationsSurviveFailover(t *testing.T) {
	for _, fault := range []string{"failover", "kill master", "sigstop", "sigkill and empty restart"} {
		t.Run(fault, func(t *testing.T) {
			var ss *redistest.SentinelSet
			var single *redistest.Server
			cfg := Config{Heartbeat: 200 * time.Millisecond, RedisTimeout: 200 * time.Millisecond}
			if fault == "failover" || fault == "kill master" {
				// Two replicas: with the master killed, one is left to
				// acknowledge (min_replicas 1) while the other is promoted.
				ss = redistest.StartSentinel(t, redistest.WithReplicas(2))
				cfg.MinReplicas = 1
			} else {
				single = redistest.Start(t)
			}
			up := newUpstream()
			now := time.Now()
			var caches []*Cache
			for range 2 {
				if ss != nil {
					cfg.Redis = sentinelClient(t, ss)
				} else {
					cfg.Redis = clientVia(t, single.Addr())
				}
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
			switch fault {
			case "failover":
				ss.Failover(t)
			case "kill master":
				ss.KillMaster(t)
			case "sigstop":
				single.Pause()
				time.Sleep(2 * time.Second)
				single.Resume()
			default:
				single.Stop()
				time.Sleep(time.Second)
				single.Restart()
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
			// Those answered with an error too: their instance records them
			// once Redis answers again.
			held := func() bool {
				for i := range tokens {
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
				var rdb redis.UniversalClient
				if ss != nil {
					rdb = sentinelClient(t, ss)
				} else {
					rdb = clientVia(t, single.Addr())
				}
				ctx := context.Background()
				record, _ := rdb.XRange(ctx, caches[0].redis.recordKey(), "-", "+").Result()
				inRecord := map[string]int{}
				for _, m := range record {
					t, _ := m.Values["t"].(string)
					inRecord[t]++
				}
				for i := range tokens {
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
			for i := range tokens {
				for _, c := range caches {
					got, err := c.Introspect(context.Background(), tok(i))
					if err == nil && got.Active {
						wrong++
					}
				}
			}
			if wrong != 0 {
				t.Fatalf("%d lookups accepted a revoked token", wrong)
			}
		})
	}
}
