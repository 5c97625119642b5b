package pce

import "strings"

// ExtractToken finds the bearer token of a request. auth are the values of
// the Authorization header; query are the values of the accessRequestToken
// query parameter, already query-decoded (so "Bearer+abc" arrives as
// "Bearer abc").
//
// token is the token when ok. fromQuery reports that it came from the query
// parameter. given reports that the client presented a bearer credential at
// all (an Authorization header with the Bearer scheme, or any
// accessRequestToken parameter), for RFC 6750's error="invalid_token".
//
// The header is "Bearer" (any case), one or more spaces and an RFC 6750
// b64token; several Authorization headers are malformed. The query parameter
// may appear once, as "Bearer <token>" or as the bare token. When both carry a
// token they must be equal.
func ExtractToken(auth []string, query []string) (token string, fromQuery bool, given bool, ok bool) {
	var hTok string
	hGiven, hOK := false, false
	switch len(auth) {
	case 0:
	case 1:
		hTok, hGiven, hOK = headerToken(auth[0])
	default:
		return "", false, true, false
	}

	var qTok string
	qGiven, qOK := false, false
	switch len(query) {
	case 0:
	case 1:
		qGiven = true
		qTok, qOK = queryToken(query[0])
	default:
		return "", false, true, false
	}

	switch {
	case hGiven && qGiven:
		if hOK && qOK && hTok == qTok {
			return hTok, false, true, true
		}
		return "", false, true, false
	case hGiven:
		if hOK {
			return hTok, false, true, true
		}
		return "", false, true, false
	case qGiven:
		if qOK {
			return qTok, true, true, true
		}
		return "", false, true, false
	}
	return "", false, false, false
}

// headerToken parses one Authorization header value. given is false for
// another scheme.
func headerToken(v string) (token string, given, ok bool) {
	v = strings.TrimLeft(v, " \t")
	rest, isBearer := cutBearer(v)
	if !isBearer {
		return "", false, false
	}
	token, ok = bearerTail(rest)
	return token, true, ok
}

// queryToken parses the accessRequestToken value: "Bearer <token>" or a bare
// token.
func queryToken(v string) (string, bool) {
	v = strings.TrimLeft(v, " \t")
	if rest, isBearer := cutBearer(v); isBearer {
		return bearerTail(rest)
	}
	tok := strings.TrimRight(v, " \t")
	return tok, isB64Token(tok)
}

// cutBearer reports whether v starts with the Bearer scheme (any case)
// followed by a space, a tab or the end, and returns what follows the scheme
// (bearerTail then requires a space).
func cutBearer(v string) (rest string, ok bool) {
	const scheme = "Bearer"
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	if len(v) > len(scheme) && v[len(scheme)] != ' ' && v[len(scheme)] != '\t' {
		return "", false
	}
	return v[len(scheme):], true
}

// bearerTail checks " <token>[whitespace]" after the scheme: at least one
// space, then a b64token, then optional trailing whitespace.
func bearerTail(rest string) (string, bool) {
	if len(rest) == 0 || rest[0] != ' ' {
		return "", false
	}
	tok := strings.TrimRight(strings.TrimLeft(rest, " "), " \t")
	return tok, isB64Token(tok)
}

// isB64Token reports whether s has RFC 6750's b64token syntax:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' {
			continue
		}
		break
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}
