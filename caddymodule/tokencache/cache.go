// Package tokencache caches OAuth 2.0 token introspection answers (RFC
// 7662) in two tiers: a bounded in-process table and, optionally, a Redis
// shared by every gateway instance. What is cached is the answer (Claims),
// never the decision: the caller checks validity, scopes and user on every
// request, hits included.
//
// Keys are keyed hashes of the token; the raw token is never stored,
// logged, or put in a label or an error. Concurrent misses for one token
// make one introspection call per process (singleflight) and, with Redis,
// one per fleet (a short SET NX lock). A failing Redis is skipped by a
// circuit breaker and the gateway goes on with the in-process tier and the
// introspection endpoint. Revocation purges both tiers on every instance
// through a durable record in Redis (a Stream every instance reads from
// where it was; see feed.go).
package tokencache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/introspect"
)

// Defaults for the zero values of Config.
const (
	DefaultKeyPrefix     = "voipnow_pce:"
	DefaultMaxTTL        = 5 * time.Minute
	DefaultNegativeTTL   = 10 * time.Second
	DefaultMemoryEntries = 10000
	DefaultRedisTimeout  = 50 * time.Millisecond
	DefaultLockTTL       = 3 * time.Second
	DefaultLockWait      = 2 * time.Second
)

// lockPoll is how often a non-owner looks for the lock owner's answer
// when no wake-up came: a safety net for a lost message. The owner
// announces its answer on the filled channel, which wakes the waiters.
const lockPoll = 250 * time.Millisecond

// Config configures a Cache. The zero value of each field means its
// default.
type Config struct {
	// Namespace is mixed into every key so gateways with different
	// endpoints, clients or user claims sharing one Redis never share
	// entries (e.g. introspection URL + client id + user claim).
	Namespace string
	// KeySecret is the HMAC-SHA256 key for cache keys; plain SHA-256 when
	// empty.
	KeySecret []byte
	// KeyPrefix starts every Redis key and the revocation channel's name.
	// Default "voipnow_pce:".
	KeyPrefix string
	// MaxTTL bounds how long a positive answer is cached: until
	// min(exp - Skew, now + MaxTTL), never past exp. Default 5m.
	MaxTTL time.Duration
	// Skew is subtracted from exp, for clock differences with the
	// endpoint. Default 0.
	Skew time.Duration
	// NegativeTTL is how long an "active": false answer is cached.
	// Default 10s.
	NegativeTTL time.Duration
	// StaleIfError, when positive, lets a cached positive answer serve up
	// to this long past its normal expiry (but never past exp) while the
	// endpoint fails with introspect.ErrUnavailable. 0 turns it off.
	StaleIfError time.Duration
	// MemoryEntries bounds the in-process tier, in tokens. Default 10000;
	// -1 turns the in-process tier off (for measurements).
	MemoryEntries int
	// Redis is the shared tier; nil for the in-process tier only. The
	// Cache does not close it.
	Redis redis.UniversalClient
	// RedisTimeout bounds each Redis call. Default 50ms.
	RedisTimeout time.Duration
	// LockTTL is the lifetime of the cross-instance introspection lock.
	// Default 2s.
	LockTTL time.Duration
	// LockWait is how long an instance that finds the lock taken waits for
	// the owner's answer before introspecting itself: as long as the
	// owner's call may last (the introspection timeout). Default 2s.
	LockWait time.Duration
	// MinReplicas, when positive, makes a revocation succeed only once
	// that many replicas acknowledged it (WAIT), so that a failover cannot
	// drop it.
	MinReplicas int
	// RevocationGrace bounds how long in-process answers are trusted
	// after the revocation record was last heard (with Redis); past it an
	// entry is checked again, once per token per grace. Default 10s.
	RevocationGrace time.Duration
	// Heartbeat is how long one read of the revocation record blocks: the
	// record is heard, or found silent, at least this often. Default 500ms.
	Heartbeat time.Duration
	// Logger receives Redis trouble (Warn, rate-limited); nil for none.
	Logger *zap.Logger
	// Observer receives metrics events; nil for none.
	Observer Observer
	// Now is the clock for cache lifetimes (tests); default time.Now.
	Now func() time.Time
}

// Observer receives the cache's metrics events. Every label value comes
// from a small fixed set.
type Observer interface {
	// Lookup reports a lookup in tier ("memory", "redis") with result
	// "hit", "miss", "negative" (a cached inactive answer), "stale" (served
	// past its expiry because the endpoint failed), "coalesced" (answered
	// by another caller's introspection) or "unheard" (an in-process entry
	// checked again because the revocation record was not heard within
	// the grace).
	Lookup(tier string, result string)
	// RedisError reports a failed Redis call; op is "get", "set", "lock",
	// "del", "publish", "revoke" or "feed".
	RedisError(op string)
	// Feed reports the revocation record heard (true) or not heard
	// (false) by this instance.
	Feed(up bool)
	// BreakerState reports the Redis circuit breaker opening (true: Redis
	// is skipped) or closing (false).
	BreakerState(open bool)
	// Introspection reports one call to the upstream introspector with
	// outcome "active", "inactive" or "error", and its duration.
	Introspection(outcome string, d time.Duration)
}

// nopObserver is the Observer used when none is configured.
type nopObserver struct{}

func (nopObserver) Lookup(string, string)               {}
func (nopObserver) RedisError(string)                   {}
func (nopObserver) Feed(bool)                           {}
func (nopObserver) BreakerState(bool)                   {}
func (nopObserver) Introspection(string, time.Duration) {}

// Cache is an introspect.Introspector that caches the answers of another
// one. It is safe for concurrent use.
type Cache struct {
	cfg      Config
	upstream introspect.Introspector
	keys     *keyHasher
	mem      *memory    // nil when the in-process tier is off
	redis    *redisTier // nil without Redis
	obs      Observer
	log      *zap.Logger
	now      func() time.Time
	flights  singleflight.Group

	// revs numbers the revocations: a flight that started before one of
	// its token does not store or use its answer, which may predate it.
	revs revLog
	// heard is when the revocation record was last read (Unix ns by
	// c.now; 0 before the first read).
	heard     atomic.Int64
	grace     time.Duration
	heartbeat time.Duration
	startedAt time.Time     // wall clock: the record is read from here on
	feedReady chan struct{} // closed when the record is first read
	// recent are the last entries of the record this instance read or
	// made, oldest first (see remember).
	recentMu sync.Mutex
	recent   []feedEntry
	own      []feedEntry // recorded by Revoke, not yet read back (verifyOwn)
	started  atomic.Bool // Start ran: a reader will verify own entries
	// unrecorded are revocations Revoke could not record (answered with
	// an error): the reader records them when Redis answers again.
	unrecorded []string

	closeOnce sync.Once
	done      chan struct{}
	subReady  chan struct{} // closed when the filled channel is first subscribed (tests)

	// waiters are the local flights waiting for another instance's answer,
	// by key hash: a message on the filled channel wakes them.
	waitMu  sync.Mutex
	waiters map[string][]chan struct{}
	poll    time.Duration // lockPoll (tests set it longer)
	wg      sync.WaitGroup
}

var _ introspect.Introspector = (*Cache)(nil)

// New makes a Cache in front of upstream.
func New(cfg Config, upstream introspect.Introspector) (*Cache, error) {
	if upstream == nil {
		return nil, errors.New("tokencache: no upstream introspector")
	}
	for name, d := range map[string]time.Duration{
		"MaxTTL": cfg.MaxTTL, "Skew": cfg.Skew, "NegativeTTL": cfg.NegativeTTL,
		"StaleIfError": cfg.StaleIfError, "RedisTimeout": cfg.RedisTimeout,
		"LockTTL": cfg.LockTTL, "LockWait": cfg.LockWait,
		"RevocationGrace": cfg.RevocationGrace, "Heartbeat": cfg.Heartbeat,
	} {
		if d < 0 {
			return nil, fmt.Errorf("tokencache: %s must not be negative", name)
		}
	}
	if cfg.MinReplicas < 0 {
		return nil, errors.New("tokencache: MinReplicas must not be negative")
	}
	if cfg.MemoryEntries < -1 {
		return nil, errors.New("tokencache: MemoryEntries must be positive, 0 for the default or -1 for none")
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultKeyPrefix
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = DefaultMaxTTL
	}
	if cfg.NegativeTTL == 0 {
		cfg.NegativeTTL = DefaultNegativeTTL
	}
	if cfg.MemoryEntries == 0 {
		cfg.MemoryEntries = DefaultMemoryEntries
	}
	if cfg.RedisTimeout == 0 {
		cfg.RedisTimeout = DefaultRedisTimeout
	}
	if cfg.LockTTL == 0 {
		cfg.LockTTL = DefaultLockTTL
	}
	if cfg.LockWait == 0 {
		cfg.LockWait = DefaultLockWait
	}
	if cfg.RevocationGrace == 0 {
		cfg.RevocationGrace = DefaultRevocationGrace
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Cache{
		cfg:      cfg,
		upstream: upstream,
		keys:     newKeyHasher(cfg.Namespace, cfg.KeySecret),
		obs:      cfg.Observer,
		log:      cfg.Logger,
		now:      cfg.Now,
		done:     make(chan struct{}),
		subReady: make(chan struct{}),
		waiters:  map[string][]chan struct{}{},
		poll:     lockPoll,

		startedAt: time.Now(),
		grace:     cfg.RevocationGrace,
		heartbeat: cfg.Heartbeat,
		feedReady: make(chan struct{}),
	}
	if cfg.MemoryEntries > 0 {
		c.mem = newMemory(cfg.MemoryEntries)
	}
	if cfg.Redis != nil {
		c.redis = &redisTier{
			rdb:     cfg.Redis,
			timeout: cfg.RedisTimeout,
			prefix:  cfg.KeyPrefix,
			obs:     cfg.Observer,
			log:     cfg.Logger,
			now:     cfg.Now,
		}
		c.redis.br = newBreaker(breakerThreshold, breakerCooldown, breakerMaxCooldown, func(open bool) {
			if open {
				cfg.Logger.Warn("redis circuit breaker open: skipping Redis for a while")
			} else {
				cfg.Logger.Info("redis circuit breaker closed: using Redis again")
			}
			cfg.Observer.BreakerState(open)
		})
	}
	return c, nil
}

// Fingerprint returns the short fingerprint of token the logs show: the
// first 12 hex characters of its key hash. It reveals nothing of the token.
func (c *Cache) Fingerprint(token string) string {
	return c.keys.hash(token)[:fingerprintLen]
}

// Introspect answers what token means, from a cache tier when it can,
// else from the upstream introspector. Errors are never cached; with
// StaleIfError, an unavailable upstream may be answered by a recently
// expired positive entry.
func (c *Cache) Introspect(ctx context.Context, token string) (*introspect.Claims, error) {
	hash := c.keys.hash(token)
	if c.mem != nil {
		now := c.now().UnixNano()
		if e, fresh := c.mem.get(hash, now); fresh && c.trusted(e, now) {
			if e.negative() {
				c.obs.Lookup("memory", "negative")
			} else {
				c.obs.Lookup("memory", "hit")
			}
			if e.pending.Load() {
				c.writeBehind(e)
			}
			return e.claims, nil
		} else if fresh {
			c.obs.Lookup("memory", "unheard")
		} else {
			c.obs.Lookup("memory", "miss")
		}
	}

	// One flight per key hash: concurrent misses share one lookup. The
	// flight runs detached from any one caller's cancellation; each caller
	// stops waiting when its own context ends.
	leader := false
	ch := c.flights.DoChan(hash, func() (any, error) {
		leader = true
		return c.fill(context.WithoutCancel(ctx), hash, token)
	})
	select {
	case res := <-ch:
		if !leader {
			c.obs.Lookup("memory", "coalesced")
		}
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*introspect.Claims), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", introspect.ErrUnavailable, ctx.Err())
	}
}

// fill runs once per flight: the in-process tier again (a flight that
// just ended may have filled it), Redis, the cross-instance lock, and the
// upstream introspector.
func (c *Cache) fill(ctx context.Context, hash, token string) (*introspect.Claims, error) {
	mark := c.revs.mark()
	if c.mem != nil {
		now := c.now().UnixNano()
		if e, fresh := c.mem.get(hash, now); fresh && c.trusted(e, now) {
			return e.claims, nil
		}
	}
	if c.redis == nil {
		return c.introspect(ctx, hash, token, mark)
	}

	claims, ttl, outcome := c.redis.get(ctx, hash)
	switch outcome {
	case redisHit:
		// A revocation since the flight began may have deleted what was
		// just read: then the read does not count.
		if !c.revs.revokedSince(mark, hash) && c.redisHit(hash, claims, ttl, "") {
			return claims, nil
		}
		// Refused (too close to exp): reported as a miss.
	case redisSkipped:
		return c.introspect(ctx, hash, token, mark)
	default:
		c.obs.Lookup("redis", "miss")
	}

	owner := randomOwner()
	switch c.redis.lock(ctx, hash, owner, c.cfg.LockTTL) {
	case lockOwned:
		// Released, then announced: a waiter woken finds the answer, or
		// no lock (the call failed) and asks for itself.
		defer c.redis.unlockAndAnnounce(ctx, hash, owner)
	case lockHeld:
		if claims := c.awaitOwner(ctx, hash, mark); claims != nil {
			return claims, nil
		}
	}
	return c.introspect(ctx, hash, token, mark)
}

// awaitOwner waits up to LockWait for the instance holding the lock to
// store its answer; nil when it does not come. It is woken by the owner's
// message on the filled channel, and looks once every lockPoll in case a
// message is lost: a few Redis commands per wait, however long the
// owner's call lasts.
func (c *Cache) awaitOwner(ctx context.Context, hash string, mark uint64) *introspect.Claims {
	wake := c.addWaiter(hash)
	defer c.removeWaiter(hash, wake)
	deadline := time.NewTimer(c.cfg.LockWait)
	defer deadline.Stop()
	t := time.NewTimer(c.poll)
	defer t.Stop()
	for {
		// Look first: the answer may have landed before we listened.
		claims, ttl, done := c.redis.poll(ctx, hash)
		if claims != nil {
			if !c.revs.revokedSince(mark, hash) && c.redisHit(hash, claims, ttl, "coalesced") {
				return claims
			}
			return nil
		}
		if done {
			return nil
		}
		select {
		case <-wake:
			wake = c.rearm(hash, wake)
		case <-t.C:
			t.Reset(c.poll)
		case <-deadline.C:
			return nil
		case <-c.done:
			return nil
		}
	}
}

// addWaiter registers a wake-up for hash.
func (c *Cache) addWaiter(hash string) chan struct{} {
	ch := make(chan struct{})
	c.waitMu.Lock()
	c.waiters[hash] = append(c.waiters[hash], ch)
	c.waitMu.Unlock()
	return ch
}

// rearm replaces a fired wake-up by a fresh one.
func (c *Cache) rearm(hash string, old chan struct{}) chan struct{} {
	c.removeWaiter(hash, old)
	return c.addWaiter(hash)
}

func (c *Cache) removeWaiter(hash string, ch chan struct{}) {
	c.waitMu.Lock()
	defer c.waitMu.Unlock()
	list := c.waiters[hash]
	for i, w := range list {
		if w == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(c.waiters, hash)
	} else {
		c.waiters[hash] = list
	}
}

// wake wakes the local waiters for hash (a message on the filled channel).
func (c *Cache) wake(hash string) {
	c.waitMu.Lock()
	list := c.waiters[hash]
	delete(c.waiters, hash)
	c.waitMu.Unlock()
	for _, ch := range list {
		close(ch)
	}
}

// redisHit takes a Redis answer: it copies it into the in-process tier for
// its remaining Redis lifetime and reports the lookup. A positive answer
// that is, by our clock, already too close to exp is refused (false) and
// counts as a miss.
func (c *Cache) redisHit(hash string, claims *introspect.Claims, ttl time.Duration, result string) bool {
	now := c.now()
	expires := now.Add(ttl)
	if claims.Active {
		lt := c.lifetime(claims, now)
		if lt <= 0 {
			c.obs.Lookup("redis", "miss")
			return false
		}
		if lt < ttl {
			expires = now.Add(lt)
		}
	}
	if result == "" {
		result = "hit"
		if !claims.Active {
			result = "negative"
		}
	}
	c.obs.Lookup("redis", result)
	if c.mem != nil {
		// What Redis holds is as good as a new answer: a revocation deletes
		// it before it is acknowledged.
		e := &entry{key: hash, claims: claims, expires: expires.UnixNano(), checked: now.UnixNano()}
		e.stale = e.expires
		if claims.Active {
			e.stale = c.staleLimit(claims, e.expires)
		}
		c.mem.put(e, now.UnixNano())
	}
	return true
}

// introspect asks upstream and stores the answer; on an unavailable
// upstream it may serve a stale entry.
func (c *Cache) introspect(ctx context.Context, hash, token string, mark uint64) (*introspect.Claims, error) {
	start := time.Now()
	claims, err := c.upstream.Introspect(ctx, token)
	d := time.Since(start)
	if err == nil && claims == nil {
		err = fmt.Errorf("%w: empty answer", introspect.ErrUnavailable)
	}
	if err != nil {
		c.obs.Introspection("error", d)
		if stale := c.stale(hash, err); stale != nil {
			return stale, nil
		}
		return nil, err
	}
	if claims.Active {
		c.obs.Introspection("active", d)
	} else {
		c.obs.Introspection("inactive", d)
	}
	// Callers share the pointer; our copy must not change under them.
	claims = cloneClaims(claims)
	if c.revs.revokedSince(mark, hash) {
		return claims, nil // revoked meanwhile: answer, but do not keep
	}
	c.store(ctx, hash, claims)
	return claims, nil
}

// stale returns a positive entry past its normal expiry but within
// StaleIfError (and before exp) when err means the endpoint is unavailable.
func (c *Cache) stale(hash string, err error) *introspect.Claims {
	if c.cfg.StaleIfError <= 0 || c.mem == nil || !errors.Is(err, introspect.ErrUnavailable) {
		return nil
	}
	now := c.now().UnixNano()
	e, _ := c.mem.get(hash, now)
	if e == nil || e.negative() || !c.trusted(e, now) {
		return nil
	}
	c.obs.Lookup("memory", "stale")
	return e.claims
}

// lifetime is how long a positive answer may be cached from now:
// min(exp - Skew, now + MaxTTL) - now. <= 0 means not at all.
func (c *Cache) lifetime(claims *introspect.Claims, now time.Time) time.Duration {
	lt := c.cfg.MaxTTL
	if claims.Exp != 0 {
		lt = min(lt, time.Unix(claims.Exp, 0).Add(-c.cfg.Skew).Sub(now))
	}
	return lt
}

// staleLimit is how long a positive entry expiring at expires may serve
// as a stale answer: StaleIfError longer, but never past exp - Skew.
func (c *Cache) staleLimit(claims *introspect.Claims, expires int64) int64 {
	if c.cfg.StaleIfError <= 0 {
		return expires
	}
	limit := expires + int64(c.cfg.StaleIfError)
	if claims.Exp != 0 {
		limit = min(limit, time.Unix(claims.Exp, 0).Add(-c.cfg.Skew).UnixNano())
	}
	return max(limit, expires)
}

// store puts an answer into both tiers for its lifetime.
func (c *Cache) store(ctx context.Context, hash string, claims *introspect.Claims) {
	now := c.now()
	var ttl time.Duration
	if claims.Active {
		ttl = c.lifetime(claims, now)
	} else {
		ttl = c.cfg.NegativeTTL
	}
	if ttl <= 0 {
		return
	}
	var e *entry
	if c.mem != nil {
		e = &entry{key: hash, claims: claims, expires: now.Add(ttl).UnixNano(), checked: now.UnixNano()}
		e.stale = e.expires
		if claims.Active {
			e.stale = c.staleLimit(claims, e.expires)
		}
		c.mem.put(e, now.UnixNano())
	}
	if c.redis != nil && !c.redis.set(ctx, hash, claims, ttl) && e != nil {
		// Not in Redis: a later hit puts it there once Redis is back, so
		// the other instances (and the breaker's probe) see it.
		e.pending.Store(true)
	}
}

// writeBehind stores a hit entry that missed Redis when it was made, in
// the background, once the breaker lets a call through. At most one write
// per entry is in flight; each is bounded by RedisTimeout.
func (c *Cache) writeBehind(e *entry) {
	if c.redis == nil || !e.pending.Load() {
		return
	}
	// Only once the record has been read through since the answer was
	// stored: a revocation made meanwhile has then dropped the entry,
	// which must not be put back into Redis (undoing the revocation's
	// DEL for every instance).
	if (c.started.Load() && c.heard.Load() <= e.checked) || !e.pending.CompareAndSwap(true, false) {
		return
	}
	ttl := time.Duration(e.expires - c.now().UnixNano())
	raw, err := c.redis.encode(e.claims, time.Unix(0, e.expires))
	if ttl < time.Millisecond || err != nil {
		return
	}
	if !c.redis.br.allow() {
		e.pending.Store(true)
		return
	}
	go func() {
		// NX: an answer stored there since (a negative one, say) is
		// newer than ours.
		if !c.redis.setRawNX(context.Background(), e.key, raw, ttl) {
			e.pending.Store(true)
		}
	}()
}

// cloneClaims copies c so that the cached value is ours alone.
func cloneClaims(c *introspect.Claims) *introspect.Claims {
	cp := *c
	if c.Scopes != nil {
		cp.Scopes = append([]string(nil), c.Scopes...)
	}
	if c.Aud != nil {
		cp.Aud = append([]string(nil), c.Aud...)
	}
	return &cp
}

// randomOwner makes a lock value unique to this flight.
func randomOwner() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Close stops the cache's goroutines. It does not close the Redis client:
// its owner does.
func (c *Cache) Close() {
	c.closeOnce.Do(func() {
		close(c.done)
		if c.redis != nil {
			c.redis.br.release()
		}
	})
	c.wg.Wait()
}
