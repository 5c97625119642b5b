package pce

import (
	"net/url"
	"strings"
)

// TokenParam is the legacy query parameter that may carry the token.
const TokenParam = "accessRequestToken"

// MayHoldToken is a cheap test of whether rawQuery may hold the token
// parameter in any spelling QueryTokens recognizes.
func MayHoldToken(rawQuery string) bool {
	if rawQuery == "" {
		return false
	}
	return strings.IndexByte(rawQuery, '%') >= 0 || containsFold(rawQuery, TokenParam)
}

// QueryTokens returns the values of every pair of rawQuery whose name a
// lenient backend would read as accessRequestToken: pairs split on '&' or
// ';', the name percent-decoded ('+' is a space), leading spaces dropped,
// an array suffix ("[]", "[0]") cut off, letters in any case. Values are
// percent-decoded; an undecodable value is kept raw (and will not be a
// valid token).
func QueryTokens(rawQuery string) []string {
	var vals []string
	forEachPair(rawQuery, func(pair string, isToken bool) {
		if !isToken {
			return
		}
		_, v, _ := strings.Cut(pair, "=")
		if dv, err := url.QueryUnescape(v); err == nil {
			v = dv
		}
		vals = append(vals, v)
	})
	return vals
}

// WithoutQueryToken returns rawQuery without the pairs QueryTokens reads,
// and whether it removed any. The other pairs stay as the client wrote
// them, each after the separator that preceded it; empty pairs go.
func WithoutQueryToken(rawQuery string) (string, bool) {
	var b strings.Builder
	var sep byte // the separator before the current pair
	removed := false
	rest := rawQuery
	for {
		i := strings.IndexAny(rest, "&;")
		pair := rest
		if i >= 0 {
			pair = rest[:i]
		}
		switch {
		case pair == "":
		case isTokenName(pair):
			removed = true
		default:
			if b.Len() > 0 {
				b.WriteByte(sep)
			}
			b.WriteString(pair)
		}
		if i < 0 {
			break
		}
		sep = rest[i]
		rest = rest[i+1:]
	}
	if !removed {
		return rawQuery, false
	}
	return b.String(), true
}

func forEachPair(rawQuery string, fn func(pair string, isToken bool)) {
	for rawQuery != "" {
		i := strings.IndexAny(rawQuery, "&;")
		pair := rawQuery
		if i >= 0 {
			pair, rawQuery = rawQuery[:i], rawQuery[i+1:]
		} else {
			rawQuery = ""
		}
		if pair != "" {
			fn(pair, isTokenName(pair))
		}
	}
}

// isTokenName reports whether the name of pair ("name=value" or "name")
// reads as accessRequestToken.
func isTokenName(pair string) bool {
	name, _, _ := strings.Cut(pair, "=")
	if dn, err := url.QueryUnescape(name); err == nil {
		name = dn
	}
	name = strings.TrimLeft(name, " ")
	if i := strings.IndexByte(name, '['); i >= 0 {
		name = name[:i]
	}
	return strings.EqualFold(name, TokenParam)
}
