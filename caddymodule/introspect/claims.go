// Package introspect is an OAuth 2.0 token introspection client (RFC 7662)
// and the small vocabulary the rest of the gateway uses to talk about the
// answer: Claims, the Introspector interface and ErrUnavailable.
package introspect

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Claims is the part of an introspection answer the gateway's policy needs.
// It is what the caches store: never the decision, never the token.
type Claims struct {
	// Active is the endpoint's "active" member.
	Active bool `json:"active"`
	// Exp is the "exp" member in Unix seconds; 0 when the endpoint gave none.
	Exp int64 `json:"exp,omitempty"`
	// Nbf is the "nbf" member in Unix seconds; 0 when the endpoint gave none.
	Nbf int64 `json:"nbf,omitempty"`
	// Scopes are the token's scopes ("scope", space-separated, split).
	Scopes []string `json:"scope,omitempty"`
	// Iat is the "iat" member in Unix seconds; 0 when the endpoint gave none.
	Iat int64 `json:"iat,omitempty"`
	// Aud is the "aud" member: a string or an array of strings; nil when
	// absent or of another type.
	Aud []string `json:"aud,omitempty"`
	// Iss is the "iss" member; "" when absent or not a string.
	Iss string `json:"iss,omitempty"`
	// User is the value of the configured user claim ("sub" by default),
	// numbers rendered in decimal; "" when absent or of another type.
	User string `json:"user,omitempty"`
	// UserIgnored is set when the user claim was there but neither a
	// string nor a number (not kept in Redis: the warning it causes is
	// once per configuration anyway).
	UserIgnored bool `json:"-"`
	// UserMissing is set when an active token's answer has no user claim
	// (or an empty one): also "no user", also warned of once.
	UserMissing bool `json:"-"`
}

// Checks are what a valid token must also satisfy besides being active.
type Checks struct {
	// Leeway is how far in the future nbf and iat may be (clocks differ);
	// it never extends exp.
	Leeway time.Duration
	// Audiences: when set, aud must contain one of them.
	Audiences []string
	// Issuers: when set, iss must equal one of them.
	Issuers []string
}

// Valid reports whether the claims describe a token that may be used at
// now with no further checks (Checks' zero value).
func (c *Claims) Valid(now time.Time) bool { return c.ValidFor(now, nil) }

// ValidFor reports whether the claims describe a token that may be used at
// now: active; before exp (when given; no leeway); nbf and iat (when given)
// not later than now plus the leeway; aud containing one of the audiences
// and iss one of the issuers, when those are set.
func (c *Claims) ValidFor(now time.Time, k *Checks) bool {
	if c == nil || !c.Active {
		return false
	}
	if k == nil {
		k = &Checks{}
	}
	sec := now.Unix()
	if c.Exp != 0 && sec >= c.Exp {
		return false
	}
	late := now.Add(k.Leeway).Unix()
	if c.Nbf != 0 && late < c.Nbf || c.Iat != 0 && late < c.Iat {
		return false
	}
	if len(k.Audiences) > 0 && !slices.ContainsFunc(c.Aud, func(a string) bool { return slices.Contains(k.Audiences, a) }) {
		return false
	}
	if len(k.Issuers) > 0 && !slices.Contains(k.Issuers, c.Iss) {
		return false
	}
	return true
}

// HasScope reports whether the token carries scope s.
func (c *Claims) HasScope(s string) bool {
	return c != nil && slices.Contains(c.Scopes, s)
}

// Introspector answers what a token means. An answer with Active false is a
// valid answer (the token is unknown, revoked or expired), not an error.
// Every failure to get an answer wraps ErrUnavailable.
type Introspector interface {
	Introspect(ctx context.Context, token string) (*Claims, error)
}

// ErrUnavailable is wrapped by every error that means "no answer": the
// endpoint is unreachable, timed out, answered 5xx or answered nonsense.
// The gateway never treats it as "allowed".
var ErrUnavailable = errors.New("introspection endpoint unavailable")

// ErrRefused is wrapped, beside ErrUnavailable, when the endpoint answers
// 4xx: it refuses the gateway itself (wrong client credentials, wrong URL),
// a configuration fault rather than an outage.
var ErrRefused = errors.New("the introspection endpoint refused the gateway's request (check client_id, client_secret and introspection_url)")
