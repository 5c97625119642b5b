package pce

import (
	"net/url"
	"strings"
)

// TokenParam is the legacy query parameter that may carry the token.
const TokenParam = "accessRequestToken"

// MethodParam is the parameter with which PHP frameworks (Symfony's method
// override) let a request stand for another method.
const MethodParam = "_method"

// ParamName returns the name of the raw query or form pair ("name=value",
// "name" or "") as PHP reads it: percent-decoded ('+' is a space), cut at
// a NUL, leading spaces dropped, an array suffix ("[]", "[0]") cut off when
// its ']' follows, and ' ' and '.' in the name read as '_' (PHP 8's
// php_register_variable_ex: ".method" and "_method%00x" are both
// "_method"). A '[' without its ']' is read as '_'.
func ParamName(pair string) string {
	name, _, _ := strings.Cut(pair, "=")
	return phpName(phpDecode(name))
}

// phpName is ParamName for a name already percent-decoded.
func phpName(name string) string {
	if i := strings.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	name = strings.TrimLeft(name, " ")
	if !strings.ContainsAny(name, " .[") {
		return name
	}
	b := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch c {
		case ' ', '.':
			c = '_'
		case '[':
			if strings.IndexByte(name[i+1:], ']') >= 0 {
				return string(b) // an array: its name ends here
			}
			// Not an index: '[' and every ' ', '.' and '[' after it are '_'.
			for _, c := range []byte(name[i:]) {
				if c == ' ' || c == '.' || c == '[' {
					c = '_'
				}
				b = append(b, c)
			}
			return string(b)
		}
		b = append(b, c)
	}
	return string(b)
}

// paramIs reports whether a lenient backend reads the name of pair as want
// (ASCII case-insensitively): as PHP reads it (ParamName), or cut at the
// first NUL or '[' whatever follows it, ' ' and '.' read as '_' (stricter
// than PHP, for other readers).
func paramIs(pair, want string) bool {
	name, _, _ := strings.Cut(pair, "=")
	name = phpDecode(name)
	if strings.EqualFold(phpName(name), want) {
		return true
	}
	if i := strings.IndexAny(name, "\x00["); i >= 0 {
		name = name[:i]
	}
	name = strings.TrimLeft(name, " ")
	if strings.ContainsAny(name, " .") {
		name = strings.NewReplacer(" ", "_", ".", "_").Replace(name)
	}
	return strings.EqualFold(name, want)
}

// IsTokenPair reports whether a lenient backend reads pair's name as the
// accessRequestToken parameter.
func IsTokenPair(pair string) bool { return paramIs(pair, TokenParam) }

// IsMethodPair reports whether a lenient backend reads pair's name as the
// _method parameter.
func IsMethodPair(pair string) bool { return paramIs(pair, MethodParam) }

// phpDecode percent-decodes s as PHP's urldecode does: '+' is a space, a
// valid %XX its byte, anything else (a bad escape) stays as written.
func phpDecode(s string) string {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s):
			h, ok1 := unhex(s[i+1])
			l, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b = append(b, h<<4|l)
				i += 2
			} else {
				b = append(b, c)
			}
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

// MayHoldToken is a cheap test of whether rawQuery may hold the token
// parameter in any spelling IsTokenPair recognizes.
func MayHoldToken(rawQuery string) bool {
	if rawQuery == "" {
		return false
	}
	return strings.IndexByte(rawQuery, '%') >= 0 || containsFold(rawQuery, TokenParam)
}

// mayHoldMethod is a cheap test of whether rawQuery may hold the _method
// parameter in any spelling IsMethodPair recognizes.
func mayHoldMethod(rawQuery string) bool {
	if rawQuery == "" {
		return false
	}
	return strings.IndexByte(rawQuery, '%') >= 0 || containsFold(rawQuery, "method")
}

// QueryTokens returns the values of every pair of rawQuery whose name a
// lenient backend would read as accessRequestToken (IsTokenPair), pairs
// split on '&' or ';'. Values are percent-decoded; an undecodable value is
// kept raw (and will not be a valid token).
func QueryTokens(rawQuery string) []string { return pairValues(rawQuery, IsTokenPair) }

// queryMethods returns the values of the _method pairs of rawQuery.
func queryMethods(rawQuery string) []string { return pairValues(rawQuery, IsMethodPair) }

func pairValues(rawQuery string, is func(string) bool) []string {
	var vals []string
	for rest := rawQuery; rest != ""; {
		var pair string
		if i := strings.IndexAny(rest, "&;"); i >= 0 {
			pair, rest = rest[:i], rest[i+1:]
		} else {
			pair, rest = rest, ""
		}
		if pair == "" || !is(pair) {
			continue
		}
		_, v, _ := strings.Cut(pair, "=")
		if dv, err := url.QueryUnescape(v); err == nil {
			v = dv
		}
		vals = append(vals, v)
	}
	return vals
}

// WithoutMethod is rawQuery less its _method pairs, byte for byte
// otherwise (see CanonicalQuery): the query of a request forwarded Plain.
func WithoutMethod(rawQuery string) string {
	if !mayHoldMethod(rawQuery) {
		return rawQuery
	}
	out, _ := withoutPairs(rawQuery, IsMethodPair)
	return out
}

// CanonicalQuery is the query the backend gets: rawQuery byte for byte,
// less every pair whose name reads as accessRequestToken or _method. Each
// removed pair takes the separator before it (the one after it when it
// comes first); everything else stays as the client wrote it.
func CanonicalQuery(rawQuery string) string {
	if !MayHoldToken(rawQuery) && !mayHoldMethod(rawQuery) {
		return rawQuery
	}
	out, _ := withoutPairs(rawQuery, func(p string) bool { return IsTokenPair(p) || IsMethodPair(p) })
	return out
}

func withoutPairs(rawQuery string, drop func(string) bool) (string, bool) {
	var b strings.Builder
	removed, kept := false, 0
	var sep byte // the separator before the current pair; 0 for the first
	for rest := rawQuery; ; {
		i := strings.IndexAny(rest, "&;")
		pair := rest
		if i >= 0 {
			pair = rest[:i]
		}
		if pair != "" && drop(pair) {
			removed = true
		} else {
			if kept > 0 && sep != 0 {
				b.WriteByte(sep)
			}
			b.WriteString(pair)
			kept++
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
