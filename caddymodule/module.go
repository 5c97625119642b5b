// Package caddymodule is the Caddy shell of the VoipNow phoneCallEvents
// gateway: the http.handlers.voipnow_pce handler, its Caddyfile directive,
// the admin.api.voipnow_pce revocation route and the metrics. What the
// contract means lives in package pce; token introspection in package
// introspect; the caches in package tokencache.
package caddymodule

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/introspect"
	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/pce"
	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/tokencache"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults of the configuration, as documented on the fields.
const (
	defaultBasePath             = "/uapi"
	defaultUserClaim            = "sub"
	defaultIDMaxLength          = 32
	defaultIDMinLength          = 1
	defaultMaxBody              = 64 << 10
	defaultIntrospectionTimeout = 2 * time.Second
	defaultMaxTTL               = 5 * time.Minute
	defaultNegativeTTL          = 10 * time.Second
	defaultSkew                 = 5 * time.Second
	defaultLeeway               = 5 * time.Second
	defaultCacheSize            = 100_000
	defaultRedisTimeout         = 100 * time.Millisecond
	defaultKeyPrefix            = "voipnow_pce:"
	defaultRetryAfter           = "5"
)

var defaultEventTypes = []string{"0", "1", "2"}

// Handler guards the legacy VoipNow UAPI resource
// {base}/extensions/{userId}/{extension}/phoneCallEvents[/{eventType}[/{eventId}]]
// and its four operations (list, create, update, delete): it authenticates
// the caller by OAuth 2.0 token introspection (RFC 7662), checks the
// method, the URI, the caller's rights and the JSON payload, and forwards
// a canonical request to the next handler (normally reverse_proxy to the
// legacy backend), or answers itself with the legacy API's error codes.
// Every other request passes through untouched.
type Handler struct {
	// IntrospectionURL is the RFC 7662 introspection endpoint. Required.
	IntrospectionURL string `json:"introspection_url,omitempty"`
	// ClientID authenticates the gateway to the introspection endpoint
	// (client_secret_basic). Required.
	ClientID string `json:"client_id,omitempty"`
	// ClientSecret goes with ClientID. Placeholders such as
	// {env.PCE_CLIENT_SECRET} are resolved when the config is loaded.
	ClientSecret string `json:"client_secret,omitempty"`
	// IntrospectionTimeout bounds one introspection call. Default: 2s.
	IntrospectionTimeout caddy.Duration `json:"introspection_timeout,omitempty"`
	// ClientAuth is how the gateway authenticates to the endpoint:
	// client_secret_basic (the default) or client_secret_post.
	ClientAuth string `json:"client_auth,omitempty"`
	// IntrospectionTLS: a private CA for the endpoint's certificate and a
	// client certificate (mutual TLS). Default: the system's roots, no
	// client certificate.
	IntrospectionTLS *IntrospectionTLS `json:"introspection_tls,omitempty"`

	// Operations are the operations of the resource the gateway owns:
	// list, create, update, delete. Requests for the others pass through
	// untouched. Default: all four (["update"] is version 1's behaviour).
	Operations []string `json:"operations,omitempty"`
	// RequiredScopes must all be carried by the token, for every
	// operation. Default: none.
	RequiredScopes []string `json:"required_scopes,omitempty"`
	// Scopes are required besides RequiredScopes for one operation each,
	// keyed by the operation's name. Default: none.
	Scopes map[string][]string `json:"scopes,omitempty"`
	// AdminScopes let a token act for any numeric userId (the
	// Organization and global contexts): one of them is enough. Default: none.
	AdminScopes []string `json:"admin_scopes,omitempty"`
	// UserClaim is the introspection claim that holds the token's User-Id:
	// a top-level member, or, when no member has that exact name, a dotted
	// path into nested objects (ext.uid). A claim that is neither a string
	// nor a number means "no user". Default: "sub".
	UserClaim string `json:"user_claim,omitempty"`
	// Audiences: when set, a token's aud (a string or an array) must
	// contain one of them. Default: none (aud not checked).
	Audiences []string `json:"audiences,omitempty"`
	// Issuers: when set, a token's iss must equal one of them. Default:
	// none (iss not checked).
	Issuers []string `json:"issuers,omitempty"`
	// Leeway is how far in the future a token's nbf and iat may be (the
	// identity provider's clock may run ahead); never applied to exp.
	// Default: 5s (0 is allowed: no leeway).
	Leeway *caddy.Duration `json:"leeway,omitempty"`

	// BasePath is the API's base path. Default: "/uapi".
	BasePath string `json:"base_path,omitempty"`
	// EventTypes are the accepted eventType values. Default: ["0","1","2"].
	EventTypes []string `json:"event_types,omitempty"`
	// IDMinLength is the shortest accepted eventId. Default: 1. (In JSON,
	// 0 for this and the other numbers means the default.)
	IDMinLength int `json:"id_min_length,omitempty"`
	// IDMaxLength is the longest accepted eventId. Default: 32.
	IDMaxLength int `json:"id_max_length,omitempty"`
	// MaxBody is the largest accepted payload in bytes. Default: 65536.
	MaxBody int64 `json:"max_body,omitempty"`
	// AllowPrivateURLs lets a webhook url point at loopback, private,
	// link-local or unspecified addresses. Default: false.
	AllowPrivateURLs bool `json:"allow_private_urls,omitempty"`

	// MaxIntrospections bounds the introspection calls in flight in this
	// process; a lookup beyond it waits 250ms for a slot, then is a 503.
	// Default: 64.
	MaxIntrospections int `json:"max_introspections,omitempty"`
	// MissBudget bounds, per client address (Caddy's client IP, which
	// honours trusted_proxies; IPv6 by /64), the lookups that miss every
	// cache; past it, 429 too_many_requests. Default: 50 per second.
	MissBudget *MissBudget `json:"miss_budget,omitempty"`

	// Cache selects where introspection answers are kept besides the
	// in-process tier. Default: the in-process tier alone.
	Cache *CacheConfig `json:"cache,omitempty"`
	// CacheSize bounds the in-process tier, in tokens. Default: 100000.
	// -1 turns the in-process tier off (for measurements only).
	CacheSize int `json:"cache_size,omitempty"`
	// MaxTTL bounds how long a positive answer is cached; it is never
	// cached past the token's exp (less Skew). Default: 5m.
	MaxTTL caddy.Duration `json:"max_ttl,omitempty"`
	// NegativeTTL is how long an "active": false answer is cached.
	// Default: 10s.
	NegativeTTL caddy.Duration `json:"negative_ttl,omitempty"`
	// Skew is taken off exp when a positive answer's lifetime is computed.
	// Default: 5s.
	Skew caddy.Duration `json:"skew,omitempty"`
	// StaleIfError lets a cached positive answer be used for up to this
	// long past MaxTTL while the introspection endpoint fails, never past
	// exp. Default: 0 (off).
	StaleIfError caddy.Duration `json:"stale_if_error,omitempty"`
	// RevocationGrace bounds how long in-process answers are trusted
	// after the revocation record in Redis was last heard; past it a
	// cached token is checked again with the endpoint, once per token per
	// grace. Only with Redis. Default: 10s.
	RevocationGrace caddy.Duration `json:"revocation_grace,omitempty"`
	// KeySecret keys the HMAC-SHA256 that turns tokens into cache keys
	// (SHA-256 when empty). Placeholders are resolved at load.
	KeySecret string `json:"key_secret,omitempty"`

	resource     *pce.Resource
	tlsDigest    string
	checks       introspect.Checks
	userWarning  *sync.Once
	router       *pce.Router
	policy       pce.Policy
	payloadRules pce.PayloadRules
	maxBody      int64
	lookup       introspect.Introspector
	shared       *sharedCache
	sharedKey    string
	logger       *zap.Logger
}

// IntrospectionTLS is the TLS of the calls to the introspection endpoint.
// The files are read when the configuration is loaded.
type IntrospectionTLS struct {
	// CA is a PEM file of the CA certificates that the endpoint's
	// certificate must chain to (instead of the system's roots).
	CA string `json:"ca,omitempty"`
	// ClientCert and ClientKey are PEM files of the gateway's certificate
	// and key, presented to the endpoint (mutual TLS, RFC 8705).
	ClientCert string `json:"client_cert,omitempty"`
	ClientKey  string `json:"client_key,omitempty"`
}

// tlsConfig reads the files and makes the client's TLS configuration; an
// error names the subdirective.
func (it *IntrospectionTLS) tlsConfig() (*tls.Config, string, error) {
	if it == nil {
		return nil, "", nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	var digest []string
	if it.CA != "" {
		pemData, err := os.ReadFile(it.CA)
		if err != nil {
			return nil, "", fmt.Errorf("introspection_tls: ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, "", fmt.Errorf("introspection_tls: ca: no PEM certificate in %s", it.CA)
		}
		cfg.RootCAs = pool
		digest = append(digest, string(pemData))
	}
	if (it.ClientCert == "") != (it.ClientKey == "") {
		return nil, "", errors.New("introspection_tls: client_cert: give the certificate and the key files")
	}
	if it.ClientCert != "" {
		cert, err := tls.LoadX509KeyPair(it.ClientCert, it.ClientKey)
		if err != nil {
			return nil, "", fmt.Errorf("introspection_tls: client_cert: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
		digest = append(digest, string(cert.Certificate[0]))
	}
	return cfg, hashOf(digest...), nil
}

// MissBudget is the per-address budget of lookups that miss every cache.
type MissBudget struct {
	// Off turns the budget off.
	Off bool `json:"off,omitempty"`
	// Lookups per Window (and at once). Default: 50.
	Lookups int `json:"lookups,omitempty"`
	// Window. Default: 1s.
	Window caddy.Duration `json:"window,omitempty"`
}

// CacheConfig selects the shared cache tier.
type CacheConfig struct {
	// Type is "memory" (the in-process tier alone, the default) or "redis".
	Type string `json:"type,omitempty"`
	// URLs are redis:// or rediss:// URLs (password and db may be in the
	// URL; placeholders are resolved at load). Several URLs: a Redis
	// Cluster, or the Sentinels when MasterName is set.
	URLs []string `json:"urls,omitempty"`
	// MasterName turns the URLs into Sentinel addresses for this master.
	MasterName string `json:"master_name,omitempty"`
	// Timeout bounds each Redis call. Default: 100ms.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// KeyPrefix starts every Redis key (the revocation record's too).
	// Default: "voipnow_pce:".
	KeyPrefix string `json:"key_prefix,omitempty"`
	// TLSCA is a PEM file of the CA certificates that the Redis servers'
	// certificates must chain to (rediss:// URLs), instead of the
	// system's roots. Read at load.
	TLSCA string `json:"tls_ca,omitempty"`
	// TLSClientCert and TLSClientKey are PEM files of the certificate and
	// key presented to Redis (tls-auth-clients). Read at load.
	TLSClientCert string `json:"tls_client_cert,omitempty"`
	TLSClientKey  string `json:"tls_client_key,omitempty"`
	// TLSInsecureSkipVerify turns the check of the Redis servers'
	// certificates off, with a warning at every load. A URL's own
	// skip_verify is refused.
	TLSInsecureSkipVerify bool `json:"tls_insecure_skip_verify,omitempty"`
	// MinReplicas, when positive, makes a revocation answer 200 only once
	// that many replicas acknowledged its record (WAIT, within 1s), so
	// that a failover cannot drop it; 503 otherwise. Default: 0.
	MinReplicas int `json:"min_replicas,omitempty"`
}

// tlsConfig reads the TLS files of the Redis connections; nil without
// rediss:// and any option. An error names the subdirective.
func (c *CacheConfig) tlsConfig(useTLS bool) (*tls.Config, string, error) {
	if !useTLS {
		return nil, "", nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.TLSInsecureSkipVerify}
	digest := []string{strconv.FormatBool(c.TLSInsecureSkipVerify)}
	if c.TLSCA != "" {
		pemData, err := os.ReadFile(c.TLSCA)
		if err != nil {
			return nil, "", fmt.Errorf("tls_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, "", fmt.Errorf("tls_ca: no PEM certificate in %s", c.TLSCA)
		}
		cfg.RootCAs = pool
		digest = append(digest, string(pemData))
	}
	if c.TLSClientCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSClientCert, c.TLSClientKey)
		if err != nil {
			return nil, "", fmt.Errorf("tls_client_cert: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
		digest = append(digest, string(cert.Certificate[0]))
	}
	return cfg, hashOf(digest...), nil
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.voipnow_pce",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets the defaults, builds the contract's rules, the
// introspection client and the caches.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.setDefaults()
	if err := h.Validate(); err != nil {
		return err
	}

	router, err := pce.NewRouter(pce.RouteRules{
		Base:        h.BasePath,
		EventTypes:  h.EventTypes,
		IDMinLength: h.IDMinLength,
		IDMaxLength: h.IDMaxLength,
	})
	if err != nil {
		return fmt.Errorf("voipnow_pce: %w", err)
	}
	var owned pce.OperationSet
	for _, name := range h.Operations {
		op, _ := pce.ParseOperation(name) // checked by Validate
		owned |= pce.SetOf(op)
	}
	h.router = router
	h.resource = pce.NewResource(router, owned)
	h.checks = introspect.Checks{Leeway: time.Duration(*h.Leeway), Audiences: h.Audiences, Issuers: h.Issuers}
	h.userWarning = new(sync.Once)
	h.policy = pce.Policy{RequiredScopes: h.RequiredScopes, AdminScopes: h.AdminScopes}
	for name, scopes := range h.Scopes {
		op, _ := pce.ParseOperation(name)
		if h.policy.Scopes == nil {
			h.policy.Scopes = map[pce.Operation][]string{}
		}
		h.policy.Scopes[op] = scopes
	}
	h.payloadRules = pce.PayloadRules{
		AllowPrivateURLs: h.AllowPrivateURLs,
		EventTypes:       h.EventTypes,
		IDMinLength:      h.IDMinLength,
		IDMaxLength:      h.IDMaxLength,
	}
	h.maxBody = h.MaxBody

	// Placeholders such as {env.PCE_CLIENT_SECRET} are resolved here, so
	// that an unset variable is refused at load, not met as 503s later.
	repl := caddy.NewReplacer()
	endpoint := repl.ReplaceKnown(h.IntrospectionURL, "")
	clientID := repl.ReplaceKnown(h.ClientID, "")
	secret := repl.ReplaceKnown(h.ClientSecret, "")
	if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("voipnow_pce: introspection_url: must be an absolute http or https URL once placeholders are resolved")
	}
	if clientID == "" {
		return fmt.Errorf("voipnow_pce: client_id: resolves to an empty value (is its environment variable set?)")
	}
	if secret == "" {
		return fmt.Errorf("voipnow_pce: client_secret: resolves to an empty value (is its environment variable set?)")
	}
	if h.KeySecret != "" && repl.ReplaceKnown(h.KeySecret, "") == "" {
		return fmt.Errorf("voipnow_pce: key_secret: resolves to an empty value (is its environment variable set?)")
	}
	for _, u := range h.Cache.URLs {
		if repl.ReplaceKnown(u, "") == "" {
			return fmt.Errorf("voipnow_pce: cache: a Redis URL resolves to an empty value (is its environment variable set?)")
		}
	}
	tlsCfg, tlsDigest, err := h.IntrospectionTLS.tlsConfig()
	if err != nil {
		return fmt.Errorf("voipnow_pce: %w", err)
	}
	if tlsCfg != nil && !strings.HasPrefix(endpoint, "https://") {
		return fmt.Errorf("voipnow_pce: introspection_tls: needs an https introspection_url")
	}
	h.tlsDigest = tlsDigest
	client, err := introspect.NewClient(introspect.Config{
		Endpoint:     endpoint,
		ClientID:     clientID,
		ClientSecret: secret,
		AuthMethod:   h.ClientAuth,
		TLS:          tlsCfg,
		UserClaim:    h.UserClaim,
		Timeout:      time.Duration(h.IntrospectionTimeout),
	})
	if err != nil {
		return fmt.Errorf("voipnow_pce: introspection_url: %w", err)
	}

	registerMetrics(ctx.GetMetricsRegistry())

	shared, key, err := loadSharedCache(ctx, h, client, repl)
	if err != nil {
		return fmt.Errorf("voipnow_pce: cache: %w", err)
	}
	h.shared, h.sharedKey = shared, key
	h.lookup = shared.cache
	return nil
}

func (h *Handler) setDefaults() {
	if len(h.Operations) == 0 {
		for _, op := range pce.AllOperations() {
			h.Operations = append(h.Operations, op.String())
		}
	}
	if h.BasePath == "" {
		h.BasePath = defaultBasePath
	}
	if h.UserClaim == "" {
		h.UserClaim = defaultUserClaim
	}
	if h.MaxIntrospections == 0 {
		h.MaxIntrospections = defaultMaxIntrospections
	}
	if h.MissBudget == nil {
		h.MissBudget = &MissBudget{}
	}
	if !h.MissBudget.Off && h.MissBudget.Lookups == 0 {
		h.MissBudget.Lookups = defaultMissBudget
	}
	if !h.MissBudget.Off && h.MissBudget.Window == 0 {
		h.MissBudget.Window = caddy.Duration(defaultMissWindow)
	}
	if h.Leeway == nil {
		d := caddy.Duration(defaultLeeway)
		h.Leeway = &d
	}
	if len(h.EventTypes) == 0 {
		h.EventTypes = defaultEventTypes
	}
	if h.IDMinLength == 0 {
		h.IDMinLength = defaultIDMinLength
	}
	if h.IDMaxLength == 0 {
		h.IDMaxLength = defaultIDMaxLength
	}
	if h.MaxBody == 0 {
		h.MaxBody = defaultMaxBody
	}
	if h.IntrospectionTimeout == 0 {
		h.IntrospectionTimeout = caddy.Duration(defaultIntrospectionTimeout)
	}
	if h.MaxTTL == 0 {
		h.MaxTTL = caddy.Duration(defaultMaxTTL)
	}
	if h.NegativeTTL == 0 {
		h.NegativeTTL = caddy.Duration(defaultNegativeTTL)
	}
	if h.Skew == 0 {
		h.Skew = caddy.Duration(defaultSkew)
	}
	if h.CacheSize == 0 {
		h.CacheSize = defaultCacheSize
	}
	if h.Cache == nil {
		h.Cache = &CacheConfig{Type: "memory"}
	}
	if h.Cache.Type == "" {
		h.Cache.Type = "memory"
	}
	if h.Cache.Timeout == 0 {
		h.Cache.Timeout = caddy.Duration(defaultRedisTimeout)
	}
	if h.Cache.KeyPrefix == "" {
		h.Cache.KeyPrefix = defaultKeyPrefix
	}
	if h.RevocationGrace == 0 {
		h.RevocationGrace = caddy.Duration(tokencache.DefaultRevocationGrace)
	}
}

// Validate refuses a configuration that cannot work, naming the
// subdirective at fault.
func (h *Handler) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("voipnow_pce: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if h.IntrospectionURL == "" {
		bad("introspection_url", "is required")
	} else if !strings.Contains(h.IntrospectionURL, "{") {
		if u, err := url.Parse(h.IntrospectionURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("introspection_url", "must be an absolute http or https URL, got %q", h.IntrospectionURL)
		}
	}
	if h.ClientID == "" {
		bad("client_id", "is required")
	}
	if h.ClientSecret == "" {
		bad("client_secret", "is required (introspection uses client_secret_basic or client_secret_post)")
	}
	switch h.ClientAuth {
	case "", introspect.ClientSecretBasic, introspect.ClientSecretPost:
	default:
		bad("client_auth", "%q: use client_secret_basic or client_secret_post", h.ClientAuth)
	}
	if it := h.IntrospectionTLS; it != nil {
		if it.CA == "" && it.ClientCert == "" {
			bad("introspection_tls", "give ca, client_cert or both")
		}
		if (it.ClientCert == "") != (it.ClientKey == "") {
			bad("introspection_tls", "client_cert needs the certificate and the key files")
		}
	}
	if h.IntrospectionTimeout < 0 {
		bad("introspection_timeout", "must be positive")
	}
	if h.MaxIntrospections < 1 || h.MaxIntrospections > 10_000 {
		bad("max_introspections", "must be 1 to 10000")
	}
	if mb := h.MissBudget; !mb.Off && (mb.Lookups < 1 || mb.Window <= 0 || time.Duration(mb.Window)/time.Duration(mb.Lookups) <= 0) {
		bad("miss_budget", "want <lookups> <window> (e.g. 50 1s) or off")
	}
	if *h.Leeway < 0 || time.Duration(*h.Leeway) > 10*time.Minute {
		bad("leeway", "must be between 0 and 10m")
	}
	for _, list := range []struct {
		name   string
		values []string
	}{{"audiences", h.Audiences}, {"issuers", h.Issuers}} {
		for _, v := range list.values {
			if v == "" {
				bad(list.name, "an empty value matches nothing")
			}
		}
	}
	if strings.HasPrefix(h.UserClaim, ".") || strings.HasSuffix(h.UserClaim, ".") || strings.Contains(h.UserClaim, "..") {
		bad("user_claim", "%q: a dotted path needs a name on each side of every dot (ext.uid)", h.UserClaim)
	}
	for _, name := range h.Operations {
		if _, ok := pce.ParseOperation(name); !ok {
			bad("operations", "unknown operation %q (use list, create, update, delete)", name)
		}
	}
	for name, scopes := range h.Scopes {
		if _, ok := pce.ParseOperation(name); !ok {
			bad("scopes", "unknown operation %q (use list, create, update, delete)", name)
		} else if len(scopes) == 0 {
			bad("scopes", "%s needs at least one scope", name)
		}
		for _, sc := range scopes {
			if sc == "" || strings.ContainsAny(sc, " \t\"\\") {
				bad("scopes", "%s: %q is not a scope", name, sc)
			}
		}
	}
	if !strings.HasPrefix(h.BasePath, "/") || strings.HasSuffix(h.BasePath, "/") || strings.Contains(h.BasePath, "//") {
		bad("base_path", "must start with / and not end with one, e.g. /uapi; got %q", h.BasePath)
	}
	for _, et := range h.EventTypes {
		if et == "" || len(et) > 16 || strings.Trim(et, "0123456789") != "" {
			bad("event_types", "%q is not an event type: eventType is a number, e.g. 0 1 2", et)
		}
	}
	if h.IDMinLength < 1 || h.IDMaxLength < h.IDMinLength || h.IDMaxLength > 1024 {
		bad("id_max_length", "need 1 <= id_min_length (%d) <= id_max_length (%d) <= 1024", h.IDMinLength, h.IDMaxLength)
	}
	if h.MaxBody < 2 {
		bad("max_body", "must be at least 2 bytes (the size of {})")
	}
	if h.MaxTTL < 0 {
		bad("max_ttl", "must be positive")
	}
	if h.NegativeTTL < 0 {
		bad("negative_ttl", "must be positive")
	}
	if h.Skew < 0 {
		bad("skew", "must not be negative")
	}
	if h.StaleIfError < 0 {
		bad("stale_if_error", "must not be negative")
	}
	if h.RevocationGrace <= 0 {
		bad("revocation_grace", "must be positive")
	}
	if h.CacheSize < -1 {
		bad("cache_size", "must be positive, or -1 to turn the in-process tier off")
	}
	switch h.Cache.Type {
	case "memory":
		if len(h.Cache.URLs) > 0 {
			bad("cache", "memory takes no URL")
		}
	case "redis":
		if len(h.Cache.URLs) == 0 {
			bad("cache", "redis needs at least one redis:// or rediss:// URL")
		}
		for _, u := range h.Cache.URLs {
			if strings.Contains(u, "{") {
				continue
			}
			if p, err := url.Parse(u); err != nil || (p.Scheme != "redis" && p.Scheme != "rediss") || p.Host == "" {
				bad("cache", "redis URL must look like redis://host:port/db or rediss://..., got a malformed one")
			}
		}
		if h.Cache.Timeout <= 0 {
			bad("cache", "timeout must be positive")
		}
		tlsURLs := 0
		for _, u := range h.Cache.URLs {
			p, err := url.Parse(u)
			if err != nil {
				continue
			}
			if p.Scheme == "rediss" {
				tlsURLs++
			}
			if p.Query().Has("skip_verify") {
				bad("cache", "skip_verify in a Redis URL is refused (it would turn certificate checks off silently); tls_insecure_skip_verify does it, with a warning")
			}
		}
		hasTLSOption := h.Cache.TLSCA != "" || h.Cache.TLSClientCert != "" || h.Cache.TLSInsecureSkipVerify
		if hasTLSOption && tlsURLs != len(h.Cache.URLs) {
			bad("cache", "tls_ca, tls_client_cert and tls_insecure_skip_verify need rediss:// URLs")
		}
		if tlsURLs != 0 && tlsURLs != len(h.Cache.URLs) {
			bad("cache", "mixes redis:// and rediss:// URLs; TLS is all or nothing")
		}
		if (h.Cache.TLSClientCert == "") != (h.Cache.TLSClientKey == "") {
			bad("cache", "tls_client_cert needs the certificate and the key files")
		}
		if h.Cache.MinReplicas < 0 {
			bad("cache", "min_replicas must not be negative")
		}
	default:
		bad("cache", "unknown type %q (use memory or redis)", h.Cache.Type)
	}
	return errors.Join(errs...)
}

// Cleanup releases this configuration's hold on the shared caches and
// Redis clients; the last holder closes them.
func (h *Handler) Cleanup() error {
	if h.sharedKey != "" {
		_, err := sharedCaches.Delete(h.sharedKey)
		return err
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner  = (*Handler)(nil)
	_ caddy.Validator    = (*Handler)(nil)
	_ caddy.CleanerUpper = (*Handler)(nil)
)
