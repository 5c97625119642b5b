package tokencache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
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
	// Recorded reports whether the revocation is in the record every
	// instance sharing the Redis reads (acknowledged by MinReplicas
	// replicas when set).
	Recorded bool
}

// Revoke purges a token's cached answers: by token, or by fingerprint (a
// prefix of 12 to 64 hex characters of the key hash, as the logs show;
// every matching entry goes). Exactly one of token and fingerprint must be
// given. It removes the entries from the in-process tier and Redis and
// appends the revocation to the record, from which every instance sharing
// the Redis drops its in-process entries, also one that hears it late.
// The in-process tier is purged even when Redis fails; the error says
// what is incomplete.
func (c *Cache) Revoke(ctx context.Context, token, fingerprint string) (RevokeResult, error) {
	var res RevokeResult
	if (token == "") == (fingerprint == "") {
		return res, errors.New("tokencache: give exactly one of token and fingerprint")
	}
	var target string // what is recorded: the full hash or the prefix
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
	c.revs.add(target)
	res.Memory = c.dropLocal(target)
	if c.redis == nil {
		return res, nil
	}
	n, id, err := c.redis.revoke(ctx, target, c.cfg.MinReplicas)
	res.Redis = n
	if id != "" {
		c.remember(feedEntry{id: id, target: target})
		if c.started.Load() {
			c.addOwn(feedEntry{id: id, target: target})
		}
	}
	// A flight that was storing while we deleted may have won the race;
	// one more local pass is cheap.
	res.Memory += c.dropLocal(target)
	if err != nil {
		c.redis.fail("revoke", err)
		// The caller answers 503 (retry); meanwhile this instance records
		// it as soon as it hears Redis again, so that the others apply it
		// then even if no one retries.
		c.queueUnrecorded(target)
		return res, fmt.Errorf("tokencache: revocation of %s not recorded: %w", res.Fingerprint, err)
	}
	res.Recorded = true
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
// Cluster), each batch in one round trip ending with a WAIT for
// minReplicas when positive. It bypasses the breaker: a revocation must
// at least try.
func (r *redisTier) deleteMatching(ctx context.Context, target string, minReplicas int) (int, error) {
	if len(target) == 64 {
		dctx, cancel := context.WithTimeout(ctx, revokeTimeout)
		defer cancel()
		n, err := r.rdb.Del(dctx, r.key(target)).Result()
		return int(n), err
	}
	pattern := globEscape(r.prefix) + target + "*"
	scan := func(ctx context.Context, node redis.UniversalClient) (int, error) {
		var cursor uint64
		n := 0
		for {
			sctx, cancel := context.WithTimeout(ctx, revokeTimeout)
			keys, next, err := node.Scan(sctx, cursor, pattern, 1000).Result()
			if err == nil && len(keys) > 0 {
				// One key per DEL: on a Cluster, keys of one node may
				// still be in different slots.
				dels := make([]*redis.IntCmd, len(keys))
				err = onConn(sctx, node, minReplicas, func(pipe redis.Pipeliner) {
					for i, k := range keys {
						dels[i] = pipe.Del(sctx, k)
					}
				})
				for _, d := range dels {
					n += int(d.Val())
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

// Start starts the readers (with Redis): the revocation record's, and the
// subscription to the filled channel that wakes the waiters of
// cross-instance flights. Both run until ctx ends or Close; neither delays
// Start when Redis is unreachable.
func (c *Cache) Start(ctx context.Context) {
	if c.redis == nil {
		return
	}
	c.started.Store(true)
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		c.runFeed(ctx)
	}()
	go func() {
		defer c.wg.Done()
		c.runFilled(ctx)
	}()
}

// runFilled wakes local waiters on the owner's message. A lost message
// costs a waiter one safety poll (lockPoll), nothing more: go-redis
// resubscribes by itself.
func (c *Cache) runFilled(ctx context.Context) {
	sub := c.redis.rdb.Subscribe(ctx, c.redis.filledChannel())
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
				if m.Kind == "subscribe" && !subscribed {
					subscribed = true
					close(c.subReady)
				}
			case *redis.Message:
				c.wake(m.Payload)
			}
		}
	}
}
