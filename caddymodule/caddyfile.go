package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/pce"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("voipnow_pce", parseCaddyfile)
	// The gateway must see the request before the proxy sends it on.
	httpcaddyfile.RegisterDirectiveOrder("voipnow_pce", httpcaddyfile.Before, "reverse_proxy")
}

// parseCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	voipnow_pce [<matcher>] {
//	    introspection_url     <url>
//	    client_id             <id>
//	    client_secret         <secret>
//	    introspection_timeout <duration>
//	    client_auth           client_secret_basic | client_secret_post
//	    introspection_tls {
//	        ca          <file>
//	        client_cert <cert file> <key file>
//	    }
//	    operations            <list|create|update|delete...>
//	    required_scopes       <scope...>
//	    scopes {
//	        <operation> <scope...>
//	    }
//	    admin_scopes          <scope...>
//	    user_claim            <claim or dotted.path>
//	    audiences             <audience...>
//	    issuers               <issuer...>
//	    leeway                <duration>
//	    base_path             <path>
//	    event_types           <type...>
//	    id_min_length         <n>
//	    id_max_length         <n>
//	    max_body              <size>
//	    allow_private_urls
//	    max_introspections    <n>
//	    miss_budget           <lookups> <window> | off
//	    cache                 memory | redis <url...> {
//	        master_name     <name>
//	        timeout         <duration>
//	        key_prefix      <prefix>
//	        tls_ca          <file>
//	        tls_client_cert <cert file> <key file>
//	        tls_insecure_skip_verify
//	        min_replicas    <n>
//	    }
//	    revocation_grace      <duration>
//	    cache_size            <n>
//	    max_ttl               <duration>
//	    negative_ttl          <duration>
//	    skew                  <duration>
//	    stale_if_error        <duration>
//	    key_secret            <secret>
//	}
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var handler Handler
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return &handler, err
}

// UnmarshalCaddyfile reads the voipnow_pce directive; see parseCaddyfile
// for the syntax. Each subdirective may be given once.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive's name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return d.Errf("voipnow_pce: subdirective '%s' given twice", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "introspection_url":
			err = oneString(d, &h.IntrospectionURL)
		case "client_id":
			err = oneString(d, &h.ClientID)
		case "client_secret":
			err = oneString(d, &h.ClientSecret)
		case "introspection_timeout":
			err = oneDuration(d, &h.IntrospectionTimeout)
		case "client_auth":
			err = oneString(d, &h.ClientAuth)
		case "introspection_tls":
			err = h.unmarshalIntrospectionTLS(d)
		case "operations":
			err = someStrings(d, &h.Operations)
		case "required_scopes":
			err = someStrings(d, &h.RequiredScopes)
		case "scopes":
			err = h.unmarshalScopes(d)
		case "admin_scopes":
			err = someStrings(d, &h.AdminScopes)
		case "user_claim":
			err = oneString(d, &h.UserClaim)
		case "audiences":
			err = someStrings(d, &h.Audiences)
		case "issuers":
			err = someStrings(d, &h.Issuers)
		case "leeway":
			var v string
			if err = oneString(d, &v); err == nil {
				l, perr := caddy.ParseDuration(v)
				if perr != nil || l < 0 {
					return d.Errf("voipnow_pce: leeway: '%s' is not a duration of 0 or more (e.g. 5s)", v)
				}
				dur := caddy.Duration(l)
				h.Leeway = &dur
			}
		case "base_path":
			err = oneString(d, &h.BasePath)
		case "event_types":
			err = someStrings(d, &h.EventTypes)
		case "id_min_length":
			err = oneInt(d, &h.IDMinLength, 1)
		case "id_max_length":
			err = oneInt(d, &h.IDMaxLength, 1)
		case "max_body":
			err = oneSize(d, &h.MaxBody)
		case "allow_private_urls":
			if d.NextArg() {
				return d.Errf("voipnow_pce: allow_private_urls takes no argument")
			}
			h.AllowPrivateURLs = true
		case "max_introspections":
			err = oneInt(d, &h.MaxIntrospections, 1)
		case "miss_budget":
			err = h.unmarshalMissBudget(d)
		case "cache":
			err = h.unmarshalCache(d)
		case "cache_size":
			err = oneInt(d, &h.CacheSize, -1)
			if err == nil && h.CacheSize == 0 {
				err = d.Errf("voipnow_pce: cache_size: must be at least 1, or -1 to turn the in-process tier off")
			}
		case "max_ttl":
			err = oneDuration(d, &h.MaxTTL)
		case "negative_ttl":
			err = oneDuration(d, &h.NegativeTTL)
		case "skew":
			err = oneDuration(d, &h.Skew)
		case "stale_if_error":
			err = oneDuration(d, &h.StaleIfError)
		case "revocation_grace":
			err = oneDuration(d, &h.RevocationGrace)
		case "key_secret":
			err = oneString(d, &h.KeySecret)
		default:
			return d.Errf("unrecognized voipnow_pce subdirective '%s'", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unmarshalIntrospectionTLS reads:
// introspection_tls { ca <file>; client_cert <cert file> <key file> }.
func (h *Handler) unmarshalIntrospectionTLS(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.Errf("voipnow_pce: introspection_tls takes a block: introspection_tls { ca <file>; client_cert <cert> <key> }")
	}
	it := &IntrospectionTLS{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "ca":
			if err := oneString(d, &it.CA); err != nil {
				return err
			}
		case "client_cert":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("voipnow_pce: introspection_tls: client_cert needs the certificate and the key files")
			}
			it.ClientCert, it.ClientKey = args[0], args[1]
		default:
			return d.Errf("unrecognized voipnow_pce introspection_tls subdirective '%s'", d.Val())
		}
	}
	h.IntrospectionTLS = it
	return nil
}

// unmarshalMissBudget reads: miss_budget <lookups> <window> | off.
func (h *Handler) unmarshalMissBudget(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	switch {
	case len(args) == 1 && args[0] == "off":
		h.MissBudget = &MissBudget{Off: true}
		return nil
	case len(args) != 2:
		return d.Errf("voipnow_pce: miss_budget: want <lookups> <window> (e.g. 50 1s) or off")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 {
		return d.Errf("voipnow_pce: miss_budget: '%s' is not a number of lookups of at least 1", args[0])
	}
	w, err := caddy.ParseDuration(args[1])
	if err != nil || w <= 0 {
		return d.Errf("voipnow_pce: miss_budget: '%s' is not a positive duration", args[1])
	}
	h.MissBudget = &MissBudget{Lookups: n, Window: caddy.Duration(w)}
	return nil
}

// unmarshalScopes reads: scopes { <operation> <scope...> ... }.
func (h *Handler) unmarshalScopes(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.Errf("voipnow_pce: scopes takes a block: scopes { <operation> <scope...> }")
	}
	h.Scopes = map[string][]string{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		op := d.Val()
		if _, ok := pce.ParseOperation(op); !ok {
			return d.Errf("voipnow_pce: scopes: unknown operation '%s' (use list, create, update, delete)", op)
		}
		if _, dup := h.Scopes[op]; dup {
			return d.Errf("voipnow_pce: scopes: '%s' given twice", op)
		}
		scopes := d.RemainingArgs()
		if len(scopes) == 0 {
			return d.Errf("voipnow_pce: scopes: %s needs at least one scope", op)
		}
		h.Scopes[op] = scopes
	}
	if len(h.Scopes) == 0 {
		return d.Errf("voipnow_pce: scopes: empty block")
	}
	return nil
}

// unmarshalCache reads: cache memory | cache redis <url...> [{ ... }].
func (h *Handler) unmarshalCache(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.Errf("voipnow_pce: cache: want 'memory' or 'redis <url...>'")
	}
	c := &CacheConfig{Type: d.Val()}
	h.Cache = c
	switch c.Type {
	case "memory":
		if d.NextArg() {
			return d.Errf("voipnow_pce: cache memory takes no argument")
		}
	case "redis":
		c.URLs = d.RemainingArgs()
		if len(c.URLs) == 0 {
			return d.Errf("voipnow_pce: cache redis needs at least one redis:// or rediss:// URL")
		}
	default:
		return d.Errf("voipnow_pce: cache: unknown type '%s' (use memory or redis)", c.Type)
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if c.Type != "redis" {
			return d.Errf("voipnow_pce: cache memory takes no block")
		}
		if seen[name] {
			return d.Errf("voipnow_pce: cache: '%s' given twice", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "master_name":
			err = oneString(d, &c.MasterName)
		case "timeout":
			err = oneDuration(d, &c.Timeout)
		case "key_prefix":
			err = oneString(d, &c.KeyPrefix)
		case "tls_ca":
			err = oneString(d, &c.TLSCA)
		case "tls_client_cert":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("voipnow_pce: cache: tls_client_cert needs the certificate and the key files")
			}
			c.TLSClientCert, c.TLSClientKey = args[0], args[1]
		case "tls_insecure_skip_verify":
			if d.NextArg() {
				return d.Errf("voipnow_pce: cache: tls_insecure_skip_verify takes no argument")
			}
			c.TLSInsecureSkipVerify = true
		case "min_replicas":
			err = oneInt(d, &c.MinReplicas, 0)
		default:
			return d.Errf("unrecognized voipnow_pce cache subdirective '%s'", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// The argument readers below name the subdirective in every error.

func oneString(d *caddyfile.Dispenser, dst *string) error {
	name := d.Val()
	if !d.NextArg() {
		return d.Errf("voipnow_pce: %s needs one argument", name)
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.Errf("voipnow_pce: %s takes one argument", name)
	}
	return nil
}

func someStrings(d *caddyfile.Dispenser, dst *[]string) error {
	name := d.Val()
	*dst = d.RemainingArgs()
	if len(*dst) == 0 {
		return d.Errf("voipnow_pce: %s needs at least one argument", name)
	}
	return nil
}

func oneInt(d *caddyfile.Dispenser, dst *int, least int) error {
	name := d.Val()
	var s string
	if err := oneString(d, &s); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return d.Errf("voipnow_pce: %s: '%s' is not a whole number", name, s)
	}
	if n < least {
		return d.Errf("voipnow_pce: %s: must be at least %d", name, least)
	}
	*dst = n
	return nil
}

func oneDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	var s string
	if err := oneString(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("voipnow_pce: %s: '%s' is not a duration (e.g. 10s, 5m)", name, s)
	}
	if dur <= 0 {
		return d.Errf("voipnow_pce: %s: must be positive", name)
	}
	*dst = caddy.Duration(dur)
	return nil
}

func oneSize(d *caddyfile.Dispenser, dst *int64) error {
	name := d.Val()
	var s string
	if err := oneString(d, &s); err != nil {
		return err
	}
	n, err := humanize.ParseBytes(s)
	if err != nil || n == 0 || n > 1<<30 {
		return d.Errf("voipnow_pce: %s: '%s' is not a size between 1B and 1GiB (e.g. 64KiB)", name, s)
	}
	*dst = int64(n)
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*Handler)(nil)
