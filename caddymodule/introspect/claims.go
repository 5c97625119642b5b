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
	// User is the value of the configured user claim ("sub" by default),
	// numbers rendered in decimal; "" when absent.
	User string `json:"user,omitempty"`
}

// Valid reports whether the claims describe a token that may be used at
// now: active, not expired (when exp is given) and not before nbf.
func (c *Claims) Valid(now time.Time) bool {
	if c == nil || !c.Active {
		return false
	}
	sec := now.Unix()
	if c.Exp != 0 && sec >= c.Exp {
		return false
	}
	if c.Nbf != 0 && sec < c.Nbf {
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
