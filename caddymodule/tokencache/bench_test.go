package tokencache

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkMemoryHit measures in-process hits under parallel load, over a
// small set of hot tokens.
func BenchmarkMemoryHit(b *testing.B) {
	benchParallelHits(b, Config{}, "")
}

// BenchmarkRedisHit measures Redis hits with the in-process tier off
// (MemoryEntries -1), under parallel load.
func BenchmarkRedisHit(b *testing.B) {
	_, rdb := newRedis(b)
	benchParallelHits(b, Config{Redis: rdb, MemoryEntries: -1, RedisTimeout: time.Second}, " (Redis was not used)")
}

// benchParallelHits warms 64 tokens, then looks them up in turn from
// parallel goroutines; every lookup must be a hit (64 upstream calls in
// all, from the warm-up).
func benchParallelHits(b *testing.B, cfg Config, why string) {
	up := newUpstream()
	c := newCache(b, cfg, up)
	const n = 64
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("bench-token-%d-abcdefghijklmnopqrstuvwxyz", i)
		up.set(tokens[i], active(time.Hour, time.Now()))
		mustIntrospect(b, c, tokens[i])
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := c.Introspect(ctx, tokens[i%n]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	if calls := up.total.Load(); calls != n {
		b.Fatalf("upstream calls = %d, want %d%s", calls, n, why)
	}
}
