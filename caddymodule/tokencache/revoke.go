package tokencache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// revokeTimeout bounds each Redis call of a revocation (an admin action,
// which may SCAN a large keyspace).
const revokeTimeout = 5 * time.Second

// RevokeResult summarises a revocation.
type RevokeResult struct {
	// Fingerprint is the revoked token's fingerprint, or the fingerprint
	// prefix given.
	Fingerprint string
	// Memory is the number of entries removed from this instance's
	// in-process tier.
	Memory int
	// Redis is the number of entries removed from Redis.
	Redis int
	// Published reports whether the other instances were told to drop
	// their in-process entries.
	Published bool
}

// Revoke purges a token's cached answers: by token, or by fingerprint (a
// prefix of 12 to 64 hex characters of the key hash, as the logs show;
// every matching entry goes). Exactly one of token and fingerprint must be
// given. It removes the entries from the in-process tier and Redis and
// publishes the revocation so that every instance sharing the Redis drops
// its in-process entries. The in-process tier is purged even when Redis
// fails; the error says what is incomplete.
func (c *Cache) Revoke(ctx context.Context, token, fingerprint string) (RevokeResult, error) {
	var res RevokeResult
	if (token == "") == (fingerprint == "") {
		return res, errors.New("tokencache: give exactly one of token and fingerprint")
	}
	var target string // what is published: the full hash or the prefix
	if token != "" {
		target = c.keys.hash(token)
		res.Fingerprint = target[:fingerprintLen]
	} else {
		fingerprint = strings.ToLower(fingerprint)
		if !ValidFingerprint(fingerprint) {
			return res, fmt.Errorf("tokencache: a fingerprint is %d to 64 hex characters", fingerprintLen)
		}
		target = fingerprint
		res.Fingerprint = fingerprint
	}
	// Flights in progress must not store answers that predate this.
	c.epoch.Add(1)
	res.Memory = c.dropLocal(target)
	if c.redis == nil {
		return res, nil
	}

	var errs []error
	n, err := c.redis.deleteMatching(ctx, target)
	res.Redis = n
	if err != nil {
		c.redis.fail("del", err)
		errs = append(errs, fmt.Errorf("delete from Redis: %w", err))
	}
	pctx, cancel := context.WithTimeout(ctx, revokeTimeout)
	err = c.redis.rdb.Publish(pctx, c.redis.channel(), target).Err()
	cancel()
	if err != nil {
		c.redis.fail("publish", err)
		errs = append(errs, fmt.Errorf("publish to other instances: %w", err))
	} else {
		res.Published = true
	}
	// A flight that was storing while we deleted may have won the race;
	// one more local pass is cheap.
	res.Memory += c.dropLocal(target)
	if len(errs) > 0 {
		return res, fmt.Errorf("tokencache: revocation of %s incomplete: %w", res.Fingerprint, errors.Join(errs...))
	}
	return res, nil
}

// dropLocal removes the in-process entries for a full key hash or a
// fingerprint prefix.
func (c *Cache) dropLocal(target string) int {
	if c.mem == nil {
		return 0
	}
	if len(target) == 64 {
		if c.mem.del(target) {
			return 1
		}
		return 0
	}
	return c.mem.delPrefix(target)
}

// deleteMatching deletes the Redis entry for a full key hash, or every
// entry whose hash starts with a fingerprint (SCAN on every master of a
// Cluster). It bypasses the breaker: a revocation must at least try.
func (r *redisTier) deleteMatching(ctx context.Context, target string) (int, error) {
	if len(target) == 64 {
		dctx, cancel := context.WithTimeout(ctx, revokeTimeout)
		defer cancel()
		n, err := r.rdb.Del(dctx, r.key(target)).Result()
		return int(n), err
	}
	pattern := globEscape(r.prefix) + target + "*"
	scan := func(ctx context.Context, node redis.Cmdable) (int, error) {
		var cursor uint64
		n := 0
		for {
			sctx, cancel := context.WithTimeout(ctx, revokeTimeout)
			keys, next, err := node.Scan(sctx, cursor, pattern, 1000).Result()
			if err == nil {
				for _, k := range keys {
					// One key per DEL: on a Cluster, keys of one node may
					// still be in different slots.
					var d int64
					d, err = node.Del(sctx, k).Result()
					if err != nil {
						break
					}
					n += int(d)
				}
			}
			cancel()
			if err != nil {
				return n, err
			}
			if next == 0 {
				return n, nil
			}
			cursor = next
		}
	}
	if cc, ok := r.rdb.(*redis.ClusterClient); ok {
		var total atomic.Int64
		err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			n, err := scan(ctx, node)
			total.Add(int64(n))
			return err
		})
		return int(total.Load()), err
	}
	return scan(ctx, r.rdb)
}

// globEscape escapes Redis glob metacharacters in s.
func globEscape(s string) string {
	var b strings.Builder
	for _, ch := range s {
		switch ch {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

// Start starts the revocation subscriber (with Redis): it drops the
// in-process entries every instance's Revoke publishes, until ctx ends or
// Close. go-redis reconnects and resubscribes by itself after an outage;
// since revocations published meanwhile were missed, the in-process tier
// is cleared on each resubscription.
func (c *Cache) Start(ctx context.Context) {
	if c.redis == nil {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		// Subscribing here, not in Start, keeps an unreachable Redis from
		// delaying Start; go-redis keeps trying.
		sub := c.redis.rdb.Subscribe(ctx, c.redis.channel(), c.redis.filledChannel())
		defer sub.Close()
		msgs := sub.ChannelWithSubscriptions(
			redis.WithChannelHealthCheckInterval(time.Second),
			redis.WithChannelPingTimeout(time.Second),
			redis.WithChannelReconnectTimeout(time.Second),
		)
		subscribed := false
		for {
			select {
			case <-ctx.Done():
				return
			case <-c.done:
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				switch m := m.(type) {
				case *redis.Subscription:
					if m.Kind != "subscribe" || m.Channel != c.redis.channel() {
						continue
					}
					if subscribed {
						c.epoch.Add(1)
						n := 0
						if c.mem != nil {
							n = c.mem.clear()
						}
						c.log.Info("revocation channel resubscribed after a Redis outage; cleared the in-process cache, since revocations may have been missed",
							zap.Int("entries", n))
					}
					if !subscribed {
						close(c.subReady)
					}
					subscribed = true
				case *redis.Message:
					if m.Channel == c.redis.filledChannel() {
						c.wake(m.Payload)
						continue
					}
					target := m.Payload
					if !ValidFingerprint(target) {
						continue
					}
					c.epoch.Add(1)
					c.dropLocal(target)
				}
			}
		}
	}()
}
