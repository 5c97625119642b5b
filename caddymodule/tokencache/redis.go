package tokencache

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/introspect"
)

// Breaker settings: after breakerThreshold consecutive errors Redis is
// skipped for breakerCooldown, doubling while probes fail, up to
// breakerMaxCooldown.
const (
	breakerThreshold   = 3
	breakerCooldown    = time.Second
	breakerMaxCooldown = 10 * time.Second
	// warnEvery rate-limits the Warn log of Redis errors.
	warnEvery = 10 * time.Second
)

// releaseLock deletes the introspection lock only if it is still ours.
var releaseLock = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) end return 0`)

// redisTier is the shared tier: go-redis behind a per-call timeout and a
// circuit breaker, with errors logged (rate-limited) and counted.
type redisTier struct {
	rdb     redis.UniversalClient
	timeout time.Duration
	prefix  string
	br      *breaker
	obs     Observer
	log     *zap.Logger
	now     func() time.Time

	logMu      sync.Mutex
	lastWarn   time.Time
	suppressed int
}

func (r *redisTier) key(hash string) string     { return r.prefix + hash }
func (r *redisTier) lockKey(hash string) string { return r.prefix + "lock:" + hash }

// filledChannel carries the key hash of each answer an instance stored
// (or gave up on) while holding the lock: it wakes the other instances'
// waiters.
func (r *redisTier) filledChannel() string { return r.prefix + "filled" }

// result feeds a call's outcome into the breaker, the observer and the
// log. redis.Nil is an answer, not an error. It reports whether err was a
// real error.
func (r *redisTier) result(op string, err error) bool {
	if err == nil || errors.Is(err, redis.Nil) {
		r.br.success()
		return false
	}
	r.br.failure()
	r.fail(op, err)
	return true
}

// fail reports and logs an error without touching the breaker.
func (r *redisTier) fail(op string, err error) {
	r.obs.RedisError(op)
	r.logMu.Lock()
	now := time.Now()
	if now.Sub(r.lastWarn) < warnEvery {
		r.suppressed++
		r.logMu.Unlock()
		return
	}
	suppressed := r.suppressed
	r.lastWarn, r.suppressed = now, 0
	r.logMu.Unlock()
	r.log.Warn("redis error; going on with the in-process cache and the introspection endpoint",
		zap.String("op", op), zap.Error(err), zap.Int("suppressed_since_last_warning", suppressed))
}

// Outcomes of a Redis read.
const (
	redisSkipped = iota // breaker open or error: Redis said nothing
	redisMiss
	redisHit
)

// get reads an entry with one GET: the claims and the remaining lifetime,
// which the value carries (its expiry), so no PTTL round trip is needed.
func (r *redisTier) get(ctx context.Context, hash string) (c *introspect.Claims, ttl time.Duration, outcome int) {
	if !r.br.allow() {
		return nil, 0, redisSkipped
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	raw, err := r.rdb.Get(ctx, r.key(hash)).Bytes()
	if r.result("get", err) {
		return nil, 0, redisSkipped
	}
	if err != nil { // redis.Nil
		return nil, 0, redisMiss
	}
	c, ttl, err = r.decode(raw)
	if err != nil {
		r.fail("get", err)
		return nil, 0, redisMiss
	}
	if ttl <= 0 { // expiring right now
		return nil, 0, redisMiss
	}
	return c, ttl, redisHit
}

// set stores an entry for ttl; it reports false when Redis was skipped or
// failed (an entry too short-lived to store counts as stored).
func (r *redisTier) set(ctx context.Context, hash string, c *introspect.Claims, ttl time.Duration) bool {
	if ttl < time.Millisecond {
		return true
	}
	raw, err := r.encode(c, r.now().Add(ttl))
	if err != nil {
		return true // cannot happen with Claims; nothing Redis could do
	}
	if !r.br.allow() {
		return false
	}
	return r.setRaw(ctx, hash, raw, ttl)
}

// setRaw stores an encoded entry, after the breaker has allowed the call.
func (r *redisTier) setRaw(ctx context.Context, hash string, raw []byte, ttl time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return !r.result("set", r.rdb.Set(ctx, r.key(hash), raw, ttl).Err())
}

// setRawNX stores an encoded entry unless one is there; false only on a
// Redis error (an entry already there counts as done).
func (r *redisTier) setRawNX(ctx context.Context, hash string, raw []byte, ttl time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return !r.result("set", r.rdb.SetArgs(ctx, r.key(hash), raw, redis.SetArgs{Mode: "NX", TTL: ttl}).Err())
}

// Lock outcomes.
const (
	lockError = iota // Redis is unusable: go on without it
	lockOwned
	lockHeld // another instance is introspecting
)

// lock tries to take the cross-instance introspection lock for hash.
func (r *redisTier) lock(ctx context.Context, hash, owner string, ttl time.Duration) int {
	if !r.br.allow() {
		return lockError
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	err := r.rdb.SetArgs(ctx, r.lockKey(hash), owner, redis.SetArgs{Mode: "NX", TTL: ttl}).Err()
	switch {
	case err == nil:
		r.br.success()
		return lockOwned
	case errors.Is(err, redis.Nil):
		r.br.success()
		return lockHeld
	default:
		r.result("lock", err)
		return lockError
	}
}

// unlock releases our lock.
func (r *redisTier) unlock(ctx context.Context, hash, owner string) {
	if !r.br.allow() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	r.result("del", releaseLock.Run(ctx, r.rdb, []string{r.lockKey(hash)}, owner).Err())
}

// unlockAndAnnounce releases our lock and tells the other instances that
// the answer for hash is there (or will not come).
func (r *redisTier) unlockAndAnnounce(ctx context.Context, hash, owner string) {
	r.unlock(ctx, hash, owner)
	if !r.br.allow() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	r.result("publish", r.rdb.Publish(ctx, r.filledChannel(), hash).Err())
}

// poll looks once for the value another instance is introspecting. done
// is true when waiting further is pointless: the value is there (c != nil),
// the owner let go of the lock without storing one, or Redis failed.
func (r *redisTier) poll(ctx context.Context, hash string) (c *introspect.Claims, ttl time.Duration, done bool) {
	if !r.br.allow() {
		return nil, 0, true
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	pipe := r.rdb.Pipeline()
	getCmd := pipe.Get(ctx, r.key(hash))
	lockCmd := pipe.Exists(ctx, r.lockKey(hash))
	_, err := pipe.Exec(ctx)
	if r.result("get", err) {
		return nil, 0, true
	}
	if raw, err := getCmd.Bytes(); err == nil {
		if c, ttl, err := r.decode(raw); err == nil && ttl > 0 {
			return c, ttl, true
		}
	}
	return nil, 0, lockCmd.Val() == 0
}

// stored is a Redis value: the claims and when the entry expires (Unix
// milliseconds), the same moment as the key's own TTL.
type stored struct {
	introspect.Claims
	Expires int64 `json:"x"`
}

// encode makes the value of an entry that expires at expires.
func (r *redisTier) encode(c *introspect.Claims, expires time.Time) ([]byte, error) {
	return json.Marshal(&stored{Claims: *c, Expires: expires.UnixMilli()})
}

// decode reads a value: the claims and their remaining lifetime.
func (r *redisTier) decode(raw []byte) (*introspect.Claims, time.Duration, error) {
	var v stored
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, 0, err
	}
	if v.Expires == 0 {
		return nil, 0, errors.New("stored entry without expiry")
	}
	c := v.Claims
	return &c, time.UnixMilli(v.Expires).Sub(r.now()), nil
}
