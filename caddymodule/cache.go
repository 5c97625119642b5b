package caddymodule

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/introspect"
	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/tokencache"
)

// sharedCaches holds the caches (and their Redis clients) across config
// reloads: a reload with the same cache settings keeps the warm cache and
// the Redis connections; the last Cleanup closes them.
var sharedCaches = caddy.NewUsagePool()

// sharedCache is one token cache with what it owns.
type sharedCache struct {
	cache  *tokencache.Cache
	client *introspect.Client
	redis  redis.UniversalClient
	cancel context.CancelFunc
	scope  string // the revocation scope (see scopes); "" without Redis
	log    *zap.Logger
}

// scopes are the live caches by revocation scope: the caches whose
// revocations are the same keys in the same Redis record.
var (
	scopesMu sync.Mutex
	scopes   = map[string]map[*sharedCache]bool{}
)

func registerScope(s *sharedCache) {
	if s.scope == "" {
		return
	}
	scopesMu.Lock()
	defer scopesMu.Unlock()
	if scopes[s.scope] == nil {
		scopes[s.scope] = map[*sharedCache]bool{}
	}
	scopes[s.scope][s] = true
}

// unregisterScope removes s and hands its unrecorded revocations to
// another live cache of its scope; it returns those it could not hand.
func unregisterScope(s *sharedCache) []string {
	pending := s.cache.TakeUnrecorded()
	if s.scope == "" {
		return pending
	}
	scopesMu.Lock()
	defer scopesMu.Unlock()
	delete(scopes[s.scope], s)
	for other := range scopes[s.scope] {
		other.cache.Requeue(pending)
		return nil
	}
	delete(scopes, s.scope)
	return pending
}

// Destruct stops the cache's goroutines and closes its connections. The
// revocations it could not record yet (answered 503 while Redis was
// unreachable) go to a live cache of the same revocation scope (the one a
// reload replaced it with), which records them when it hears Redis.
func (s *sharedCache) Destruct() error {
	s.cancel()
	s.cache.Close()
	if pending := unregisterScope(s); len(pending) > 0 {
		s.log.Warn("revocations answered 503 and not yet recorded could not be handed to another configuration: retry them",
			zap.Int("revocations", len(pending)))
	}
	s.client.CloseIdleConnections()
	if s.redis != nil {
		return s.redis.Close()
	}
	return nil
}

// cacheIdentity is everything that makes two handlers' caches the same
// one. Secrets enter it only hashed.
type cacheIdentity struct {
	Endpoint     string        `json:"endpoint"`
	ClientID     string        `json:"client_id"`
	SecretHash   string        `json:"secret_hash"`
	UserClaim    string        `json:"user_claim"`
	ClientAuth   string        `json:"client_auth"`
	TLSHash      string        `json:"tls_hash"`
	Timeout      time.Duration `json:"timeout"`
	MaxInFlight  int           `json:"max_introspections"`
	MissBudget   MissBudget    `json:"miss_budget"`
	KeySecret    string        `json:"key_secret_hash"`
	MaxTTL       time.Duration `json:"max_ttl"`
	NegativeTTL  time.Duration `json:"negative_ttl"`
	Skew         time.Duration `json:"skew"`
	StaleIfError time.Duration `json:"stale_if_error"`
	Size         int           `json:"size"`
	Type         string        `json:"type"`
	URLsHash     string        `json:"urls_hash"`
	MasterName   string        `json:"master_name"`
	RedisTimeout time.Duration `json:"redis_timeout"`
	KeyPrefix    string        `json:"key_prefix"`
	RedisTLSHash string        `json:"redis_tls_hash"`
	MinReplicas  int           `json:"min_replicas"`
	Grace        time.Duration `json:"revocation_grace"`
}

// budgetFor is the miss budget of a configuration; nil when off.
func budgetFor(mb *MissBudget) *missBudget {
	if mb.Off {
		return nil
	}
	return newMissBudget(mb.Lookups, time.Duration(mb.Window))
}

func hashOf(parts ...string) string {
	s := sha256.New()
	for _, p := range parts {
		s.Write([]byte(p))
		s.Write([]byte{0})
	}
	return hex.EncodeToString(s.Sum(nil))
}

// loadSharedCache returns the cache for h's settings, making it (and its
// Redis client) on first use.
func loadSharedCache(ctx caddy.Context, h *Handler, client *introspect.Client, repl *caddy.Replacer) (*sharedCache, string, error) {
	endpoint := repl.ReplaceKnown(h.IntrospectionURL, "")
	clientID := repl.ReplaceKnown(h.ClientID, "")
	keySecret := repl.ReplaceKnown(h.KeySecret, "")
	urls := make([]string, len(h.Cache.URLs))
	useTLS := false
	for i, u := range h.Cache.URLs {
		urls[i] = repl.ReplaceKnown(u, "")
		useTLS = useTLS || strings.HasPrefix(urls[i], "rediss://")
	}
	logger := ctx.Logger().Named("cache")
	redisTLS, redisTLSHash, err := h.Cache.tlsConfig(useTLS)
	if err != nil {
		return nil, "", err
	}
	if redisTLS != nil && redisTLS.InsecureSkipVerify {
		logger.Warn("tls_insecure_skip_verify: the Redis servers' certificates are not checked; anyone on the path can read and change the token cache")
	}
	id := cacheIdentity{
		Endpoint:     endpoint,
		ClientID:     clientID,
		SecretHash:   hashOf(repl.ReplaceKnown(h.ClientSecret, "")),
		UserClaim:    h.UserClaim,
		ClientAuth:   h.ClientAuth,
		TLSHash:      h.tlsDigest,
		Timeout:      time.Duration(h.IntrospectionTimeout),
		MaxInFlight:  h.MaxIntrospections,
		MissBudget:   *h.MissBudget,
		KeySecret:    hashOf(keySecret),
		MaxTTL:       time.Duration(h.MaxTTL),
		NegativeTTL:  time.Duration(h.NegativeTTL),
		Skew:         time.Duration(h.Skew),
		StaleIfError: time.Duration(h.StaleIfError),
		Size:         h.CacheSize,
		Type:         h.Cache.Type,
		URLsHash:     hashOf(urls...),
		MasterName:   h.Cache.MasterName,
		RedisTimeout: time.Duration(h.Cache.Timeout),
		KeyPrefix:    h.Cache.KeyPrefix,
		RedisTLSHash: redisTLSHash,
		MinReplicas:  h.Cache.MinReplicas,
		Grace:        time.Duration(h.RevocationGrace),
	}
	raw, _ := json.Marshal(id)
	key := string(raw)
	// Two caches whose revocations are the same record entries: same
	// Redis, prefix, key secret and namespace (the settings that make the
	// key of a token).
	scope := ""
	if h.Cache.Type == "redis" {
		scope = hashOf(id.URLsHash, id.MasterName, id.KeyPrefix, id.KeySecret, endpoint, clientID, h.UserClaim)
	}

	val, _, err := sharedCaches.LoadOrNew(key, func() (caddy.Destructor, error) {
		var rdb redis.UniversalClient
		if h.Cache.Type == "redis" {
			opts, err := redisOptions(urls, h.Cache.MasterName, time.Duration(h.Cache.Timeout), redisTLS, logger)
			if err != nil {
				return nil, err
			}
			rdb = redis.NewUniversalClient(opts)
		}
		size := h.CacheSize
		cache, err := tokencache.New(tokencache.Config{
			// The namespace keeps gateways that ask different endpoints,
			// or read a different user claim, apart in a shared Redis.
			Namespace:     endpoint + "\x00" + clientID + "\x00" + h.UserClaim,
			KeySecret:     []byte(keySecret),
			KeyPrefix:     h.Cache.KeyPrefix,
			MaxTTL:        time.Duration(h.MaxTTL),
			Skew:          time.Duration(h.Skew),
			NegativeTTL:   time.Duration(h.NegativeTTL),
			StaleIfError:  time.Duration(h.StaleIfError),
			MemoryEntries: size,
			Redis:         rdb,
			RedisTimeout:  time.Duration(h.Cache.Timeout),
			// Another instance's call may last the whole timeout: wait
			// that long for its answer rather than call a second time.
			LockWait:        time.Duration(h.IntrospectionTimeout) + 100*time.Millisecond,
			LockTTL:         time.Duration(h.IntrospectionTimeout) + time.Second,
			MinReplicas:     h.Cache.MinReplicas,
			RevocationGrace: time.Duration(h.RevocationGrace),
			Logger:          logger,
			Observer:        metricsObserver{},
		}, newShield(client, h.MaxIntrospections, budgetFor(h.MissBudget)))
		if err != nil {
			if rdb != nil {
				_ = rdb.Close()
			}
			return nil, err
		}
		runCtx, cancel := context.WithCancel(context.Background())
		cache.Start(runCtx)
		sc := &sharedCache{cache: cache, client: client, redis: rdb, cancel: cancel, scope: scope, log: logger}
		registerScope(sc)
		return sc, nil
	})
	if err != nil {
		return nil, "", err
	}
	logger.Debug("token cache ready", zap.String("type", h.Cache.Type))
	return val.(*sharedCache), key, nil
}

// redisOptions turns the configured URLs into go-redis universal options:
// one URL is a single node; several are a Cluster's seeds; with a master
// name they are Sentinels. Credentials and db come from the first URL,
// TLS from tlsCfg (nil: plain TCP).
func redisOptions(urls []string, masterName string, timeout time.Duration, tlsCfg *tls.Config, log *zap.Logger) (*redis.UniversalOptions, error) {
	if len(urls) == 0 {
		return nil, fmt.Errorf("no Redis URL")
	}
	first, err := redis.ParseURL(urls[0])
	if err != nil {
		return nil, fmt.Errorf("redis URL: %s", redactURLError(urls[0], err))
	}
	addrs := []string{first.Addr}
	for _, u := range urls[1:] {
		o, err := redis.ParseURL(u)
		if err != nil {
			return nil, fmt.Errorf("redis URL: %s", redactURLError(u, err))
		}
		addrs = append(addrs, o.Addr)
	}
	opts := &redis.UniversalOptions{
		Addrs:        addrs,
		MasterName:   masterName,
		Username:     first.Username,
		Password:     first.Password,
		DB:           first.DB,
		TLSConfig:    tlsCfg,
		Dialer:       redisDialer(tlsCfg, max(timeout, 250*time.Millisecond), log),
		DialTimeout:  max(timeout, 250*time.Millisecond),
		ReadTimeout:  timeout,
		WriteTimeout: timeout,
		MaxRetries:   -1, // the breaker, not retries, handles a failing Redis
		// A short pool timeout: a saturated pool must not add latency.
		PoolTimeout:           timeout,
		ContextTimeoutEnabled: true,
	}
	if masterName != "" {
		opts.SentinelUsername, opts.SentinelPassword = first.Username, first.Password
	}
	return opts, nil
}

// redisDialer dials Redis, with TLS when tlsCfg is set (checking the
// server's name against the address dialled: the URL's host, a Cluster
// node's or the master a Sentinel names). A failed handshake is logged
// with its cause, at most once per 10s: go-redis would report only the
// deadline of the command that waited for the connection.
func redisDialer(tlsCfg *tls.Config, timeout time.Duration, log *zap.Logger) func(context.Context, string, string) (net.Conn, error) {
	var mu sync.Mutex
	var last time.Time
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		nd := &net.Dialer{Timeout: timeout, KeepAlive: 5 * time.Minute}
		if tlsCfg == nil {
			return nd.DialContext(ctx, network, addr)
		}
		cfg := tlsCfg.Clone()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		}
		conn, err := (&tls.Dialer{NetDialer: nd, Config: cfg}).DialContext(ctx, network, addr)
		if err != nil && !errors.Is(err, context.Canceled) {
			mu.Lock()
			warn := time.Since(last) >= 10*time.Second
			if warn {
				last = time.Now()
			}
			mu.Unlock()
			if warn {
				log.Warn("redis TLS connection failed", zap.String("addr", addr), zap.Error(err))
			}
		}
		return conn, err
	}
}

// redactURLError names what is wrong with a Redis URL without echoing a
// password it may hold.
func redactURLError(raw string, err error) string {
	if u, perr := url.Parse(raw); perr == nil {
		// url.Parse succeeded, so err is go-redis' own and holds no URL.
		return fmt.Sprintf("%s://%s: %v", u.Scheme, u.Host, err)
	}
	return "unparseable URL (not shown: it may hold a password)"
}
