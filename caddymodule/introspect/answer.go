package introspect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// maxExponent bounds the exponent of a number rendered in decimal (the user
// claim), so that "1e999999999" cannot make a gigabyte string.
const maxExponent = 64

// answerFields are the raw members of an introspection answer the client
// looks at; the rest are skipped.
type answerFields struct {
	active, exp, nbf, iat, aud, iss, scope, user, tokenType, tokenUse json.RawMessage
	// userRoot is the top-level member a dotted user claim starts with
	// (ext for ext.uid), when no member has the claim's exact name.
	userRoot json.RawMessage
	userSeen bool
}

// parseAnswer reads an RFC 7662 answer: one JSON object. The error, if any,
// describes the malformation without quoting member values.
func parseAnswer(body []byte, userClaim string) (*Claims, error) {
	f, err := scanAnswer(body, userClaim)
	if err != nil {
		return nil, err
	}
	var active bool
	switch string(f.active) {
	case "true":
		active = true
	case "false":
	case "":
		return nil, errors.New(`no "active" member`)
	default:
		return nil, errors.New(`"active" is not a boolean`)
	}
	if !active || isRefresh(f.tokenType) || isRefresh(f.tokenUse) {
		return &Claims{}, nil
	}

	c := &Claims{Active: true}
	var given bool
	if c.Exp, given, err = unixTime(f.exp); err != nil {
		return nil, fmt.Errorf(`"exp": %w`, err)
	}
	if given && c.Exp <= 0 {
		// Expired at or before the epoch; 0 would read as "no exp".
		return &Claims{}, nil
	}
	if c.Nbf, _, err = unixTime(f.nbf); err != nil {
		return nil, fmt.Errorf(`"nbf": %w`, err)
	}
	if c.Iat, _, err = unixTime(f.iat); err != nil {
		return nil, fmt.Errorf(`"iat": %w`, err)
	}
	if c.Scopes, err = scopes(f.scope); err != nil {
		return nil, fmt.Errorf(`"scope": %w`, err)
	}
	c.Aud, c.Iss = audience(f.aud), stringValue(f.iss)
	user := f.user
	if !f.userSeen && f.userRoot != nil {
		user = nested(f.userRoot, strings.Split(userClaim, ".")[1:])
	}
	if c.User, err = userValue(user); err != nil {
		// A claim of another type (an object, a boolean...) means "no
		// user", never an outage: the caller says so once.
		c.User, c.UserIgnored = "", true
	} else if c.Active && c.User == "" {
		c.UserMissing = true
	}
	return c, nil
}

// audience reads "aud": a string or an array of strings (others: nil,
// which matches no audience).
func audience(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	switch raw[0] {
	case '"':
		if s := stringValue(raw); s != "" {
			return []string{s}
		}
	case '[':
		var list []string
		if json.Unmarshal(raw, &list) == nil {
			return list
		}
	}
	return nil
}

// stringValue is raw as a string, "" when it is not one.
func stringValue(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// nested follows path through nested objects from raw; nil when a step
// is missing or not an object.
func nested(raw json.RawMessage, path []string) json.RawMessage {
	for _, name := range path {
		var obj map[string]json.RawMessage
		if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &obj) != nil {
			return nil
		}
		raw = obj[name]
	}
	return raw
}

// scanAnswer walks the top-level object and keeps the members of interest.
// A repeated member keeps its last value, as encoding/json does.
func scanAnswer(body []byte, userClaim string) (*answerFields, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, errors.New("not JSON")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	f := &answerFields{}
	var skip json.RawMessage // reused for members nobody reads
	// A dotted claim (ext.uid) names a path into nested objects when no
	// member has its exact name.
	userRoot, _, dotted := strings.Cut(userClaim, ".")
	if !dotted {
		userRoot = "\x00" // matches no member
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errors.New("invalid JSON")
		}
		key, _ := tok.(string)
		var dst *json.RawMessage
		switch key {
		case "active":
			dst = &f.active
		case "exp":
			dst = &f.exp
		case "nbf":
			dst = &f.nbf
		case "iat":
			dst = &f.iat
		case "aud":
			dst = &f.aud
		case "iss":
			dst = &f.iss
		case "scope":
			dst = &f.scope
		case "token_type":
			dst = &f.tokenType
		case "token_use":
			dst = &f.tokenUse
		case userClaim:
			dst = &f.user
			f.userSeen = true
		case userRoot:
			dst = &f.userRoot
		default:
			dst = &skip
		}
		if err := dec.Decode(dst); err != nil {
			return nil, errors.New("invalid JSON")
		}
		if key == userClaim && dst != &f.user {
			// The user claim is one of the members above (odd, but allowed).
			f.user = append(json.RawMessage(nil), *dst...)
			f.userSeen = true
		}
		if key == userRoot && dst != &f.userRoot {
			f.userRoot = append(json.RawMessage(nil), *dst...)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, errors.New("invalid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return f, nil
}

// isRefresh reports whether raw is the string "refresh_token", any case.
func isRefresh(raw json.RawMessage) bool {
	var s string
	return len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil &&
		strings.EqualFold(s, "refresh_token")
}

// unixTime reads a NumericDate: a JSON number, integer or not (truncated).
// Absent or null is (0, false, nil).
func unixTime(raw json.RawMessage) (sec int64, given bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	if !isNumber(raw) {
		return 0, false, errors.New("not a number")
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return n, true, nil
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(v) || v >= math.MaxInt64 || v <= math.MinInt64 {
		return 0, false, errors.New("out of range")
	}
	return int64(v), true, nil
}

// scopes reads "scope": a space-separated string or an array of strings.
func scopes(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, errors.New("invalid string")
		}
		return fieldsOrNil(s), nil
	case '[':
		var list []string
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, errors.New("not an array of strings")
		}
		var out []string
		for _, s := range list {
			out = append(out, strings.Fields(s)...)
		}
		return out, nil
	}
	return nil, errors.New("neither a string nor an array of strings")
}

func fieldsOrNil(s string) []string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return nil
	}
	return f
}

// userValue reads the user claim: a string, or a number rendered in
// decimal without exponent. Absent or null is "".
func userValue(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", errors.New("invalid string")
		}
		return s, nil
	}
	if isNumber(raw) {
		return plainDecimal(string(raw))
	}
	return "", errors.New("neither a string nor a number")
}

// isNumber reports whether raw (a valid JSON value) is a number.
func isNumber(raw json.RawMessage) bool {
	return len(raw) > 0 && (raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'))
}

// plainDecimal renders a JSON number literal without exponent, exactly:
// "1.001e3" is "1001", "12e-1" is "1.2", "-0" is "0".
func plainDecimal(lit string) (string, error) {
	neg := strings.HasPrefix(lit, "-")
	lit = strings.TrimPrefix(lit, "-")
	mant, exp := lit, 0
	if i := strings.IndexAny(lit, "eE"); i >= 0 {
		mant = lit[:i]
		e, err := strconv.Atoi(lit[i+1:])
		if err != nil || e > maxExponent || e < -maxExponent {
			return "", errors.New("number out of range")
		}
		exp = e
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := intPart + frac
	point := len(intPart) + exp // position of the decimal point in digits
	if point < 0 {
		digits = strings.Repeat("0", -point) + digits
		point = 0
	}
	if point > len(digits) {
		digits += strings.Repeat("0", point-len(digits))
	}
	ip := strings.TrimLeft(digits[:point], "0")
	fp := strings.TrimRight(digits[point:], "0")
	if ip == "" {
		ip = "0"
	}
	s := ip
	if fp != "" {
		s += "." + fp
	}
	if neg && s != "0" {
		s = "-" + s
	}
	return s, nil
}
