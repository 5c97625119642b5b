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
	up := newUpstream()
	c := newCache(b, Config{}, up)
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
		b.Fatalf("upstream calls = %d, want %d", calls, n)
	}
}

// BenchmarkRedisHit measures Redis hits with the in-process tier off
// (MemoryEntries -1), under parallel load.
func BenchmarkRedisHit(b *testing.B) {
	_, rdb := newRedis(b)
	up := newUpstream()
	c := newCache(b, Config{Redis: rdb, MemoryEntries: -1, RedisTimeout: time.Second}, up)
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
		b.Fatalf("upstream calls = %d, want %d (Redis was not used)", calls, n)
	}
}
