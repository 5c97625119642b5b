package pce

import (
	"errors"
	"fmt"
	"strings"
)

// The literal path segment of the route, matched case-insensitively and
// written in this form by CanonicalPath.
const (
	literalExtensions = "extensions"
	literalPCE        = "phoneCallEvents"
)

// Limits of the path segments.
const (
	maxUserIDDigits    = 20
	maxExtensionLength = 64
	maxIDLength        = 1024
	maxEventTypeLength = 64
)

// RouteRules configure the Router.
type RouteRules struct {
	// Base is the path prefix of the API, e.g. "/uapi": it starts with "/"
	// and has no trailing slash; "" means the root.
	Base string
	// EventTypes are the allowed eventType values, numbers, e.g. {"0", "1", "2"}.
	EventTypes []string
	// IDMinLength is the minimum length of eventId (at least 1).
	IDMinLength int
	// IDMaxLength is the maximum length of eventId (at most 1024).
	IDMaxLength int
}

// Router matches request paths against the phoneCallEvents route. It is
// immutable once built and safe for concurrent use.
type Router struct {
	base     string
	baseSegs []string
	types    []string
	idMin    int
	idMax    int
}

// Route holds the decoded path values of a matched request.
type Route struct {
	UserID    string
	Extension string
	EventType string
	EventID   string
}

// NewRouter validates the rules and compiles them into a Router.
func NewRouter(r RouteRules) (*Router, error) {
	rt := &Router{base: r.Base, idMin: r.IDMinLength, idMax: r.IDMaxLength}
	if r.Base != "" {
		if r.Base[0] != '/' {
			return nil, fmt.Errorf("base path %q must start with /", r.Base)
		}
		if strings.HasSuffix(r.Base, "/") {
			return nil, fmt.Errorf("base path %q must not end with /", r.Base)
		}
		for _, seg := range strings.Split(r.Base[1:], "/") {
			if seg == "" || seg == "." || seg == ".." {
				return nil, fmt.Errorf("base path %q has an empty or dot segment", r.Base)
			}
			for i := 0; i < len(seg); i++ {
				c := seg[i]
				if c <= ' ' || c >= 0x7f || c == '%' || c == '?' || c == '#' || c == '\\' {
					return nil, fmt.Errorf("base path %q has an invalid character %q", r.Base, c)
				}
			}
			rt.baseSegs = append(rt.baseSegs, seg)
		}
	}
	if len(r.EventTypes) == 0 {
		return nil, errors.New("no event types")
	}
	for _, t := range r.EventTypes {
		if t == "" || len(t) > maxEventTypeLength || !isDigits(t) {
			return nil, fmt.Errorf("event type %q must be a number of 1 to %d digits", t, maxEventTypeLength)
		}
	}
	rt.types = append([]string(nil), r.EventTypes...)
	if r.IDMinLength < 1 || r.IDMinLength > r.IDMaxLength || r.IDMaxLength > maxIDLength {
		return nil, fmt.Errorf("event id lengths must satisfy 1 <= min (%d) <= max (%d) <= %d",
			r.IDMinLength, r.IDMaxLength, maxIDLength)
	}
	return rt, nil
}

// segIter iterates over the "/"-separated segments of a path without
// allocating.
type segIter struct {
	s    string
	done bool
}

func (it *segIter) next() (string, bool) {
	if it.done {
		return "", false
	}
	if i := strings.IndexByte(it.s, '/'); i >= 0 {
		seg := it.s[:i]
		it.s = it.s[i+1:]
		return seg, true
	}
	it.done = true
	return it.s, true
}

// maxKept is how many segments after "extensions" Match keeps: the five of
// an item path, an optional empty one for a trailing slash, and one more to
// detect excess.
const maxKept = 7

// Match matches escapedPath, the path as the client sent it (for a Go server
// r.URL.EscapedPath()), against the resource's paths. onRoute is false when
// the path is not the resource's and the request must pass through
// untouched. When onRoute is true, shape is the path's shape (collection,
// type or item, by the number of segments after the literal; ShapeUnknown
// for a disguised path) and err the error of the first defective position
// (userId, extension, the phoneCallEvents literal, eventType, eventId) of a
// path of that shape; when err is nil, route holds the decoded, valid
// values. Each segment is percent-decoded exactly once. Which positions an
// operation requires is the Resource's business.
func (rt *Router) Match(escapedPath string) (route Route, shape Shape, onRoute bool, err *Error) {
	if len(escapedPath) == 0 || escapedPath[0] != '/' {
		return Route{}, 0, false, nil
	}
	it := segIter{s: escapedPath[1:]}
	for _, b := range rt.baseSegs {
		seg, ok := it.next()
		if !ok || !segEqual(seg, b, false) {
			return rt.disguised(escapedPath)
		}
	}
	if seg, ok := it.next(); !ok || !segEqual(seg, literalExtensions, false) {
		return rt.disguised(escapedPath)
	}
	var raw [maxKept]string
	n, lit := 0, -1
	for {
		seg, ok := it.next()
		if !ok {
			break
		}
		if n < maxKept {
			raw[n] = seg
		}
		if lit < 0 && segEqual(seg, literalPCE, true) {
			lit = n
		}
		n++
	}
	if lit < 0 {
		if _, _, on, _ := rt.disguised(escapedPath); on {
			// The literal hides in a segment (an encoded slash): the first
			// position that is not a clean segment is at fault.
			if user, ok := decodeSegment(raw[0]); n < 1 || !ok || !validUserID(user) {
				return Route{}, ShapeUnknown, true, ErrUserInvalid
			}
			if ext, ok := decodeSegment(raw[1]); n < 2 || !ok || !validExtension(ext) {
				return Route{}, ShapeUnknown, true, ErrExtensionInvalid
			}
			return Route{}, ShapeUnknown, true, ErrTypeInvalid
		}
		return Route{}, 0, false, nil
	}

	// On the resource: from here on, any defect is an error, never a
	// pass-through. One trailing slash is allowed.
	if n > lit+1 && n <= maxKept && raw[n-1] == "" {
		n--
	}
	switch {
	case n <= lit+1:
		shape = ShapeCollection
	case n == lit+2:
		shape = ShapeType
	default:
		shape = ShapeItem
	}
	if lit == 0 {
		return Route{}, shape, true, ErrUserInvalid
	}
	user, ok := decodeSegment(raw[0])
	if !ok || !validUserID(user) {
		return Route{}, shape, true, ErrUserInvalid
	}
	if lit != 2 {
		return Route{}, shape, true, ErrExtensionInvalid
	}
	ext, ok := decodeSegment(raw[1])
	if !ok || !validExtension(ext) {
		return Route{}, shape, true, ErrExtensionInvalid
	}
	route = Route{UserID: user, Extension: ext}
	if shape == ShapeCollection {
		return route, shape, true, nil
	}
	typ, ok := decodeSegment(raw[3])
	if !ok || !rt.validType(typ) {
		return Route{}, shape, true, ErrTypeInvalid
	}
	route.EventType = typ
	if shape == ShapeType {
		return route, shape, true, nil
	}
	id, ok := decodeSegment(raw[4])
	if !ok || !rt.validID(id) || n > 5 {
		return Route{}, shape, true, ErrIDInvalid
	}
	route.EventID = id
	return route, shape, true, nil
}

func containsFold(s, sub string) bool {
	first := lowerASCII(sub[0])
	for i := 0; i+len(sub) <= len(s); i++ {
		if lowerASCII(s[i]) == first && strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// CanonicalPath returns the path to forward for r: no trailing slash, the
// literal in its documented case, values unescaped (valid values need no
// escaping), as many segments as r has values.
func (rt *Router) CanonicalPath(r Route) string {
	// One concatenation per shape: one allocation.
	const ext, pce = "/" + literalExtensions + "/", "/" + literalPCE
	switch {
	case r.EventID != "":
		return rt.base + ext + r.UserID + "/" + r.Extension + pce + "/" + r.EventType + "/" + r.EventID
	case r.EventType != "":
		return rt.base + ext + r.UserID + "/" + r.Extension + pce + "/" + r.EventType
	}
	return rt.base + ext + r.UserID + "/" + r.Extension + pce
}

// Shape returns the shape of the path r's values make.
func (r Route) Shape() Shape {
	switch {
	case r.EventID != "":
		return ShapeItem
	case r.EventType != "":
		return ShapeType
	}
	return ShapeCollection
}

// IsSelf reports whether UserID designates the token's own user (@me,
// @viewer or @owner).
func (r Route) IsSelf() bool {
	switch r.UserID {
	case "@me", "@viewer", "@owner":
		return true
	}
	return false
}

func (rt *Router) validType(s string) bool {
	for _, t := range rt.types {
		if s == t {
			return true
		}
	}
	return false
}

func (rt *Router) validID(s string) bool {
	return len(s) >= rt.idMin && len(s) <= rt.idMax && isAlnum(s)
}

// validUserID: @me, @viewer, @owner or 1 to 20 ASCII digits.
func validUserID(s string) bool {
	switch s {
	case "@me", "@viewer", "@owner":
		return true
	}
	return len(s) >= 1 && len(s) <= maxUserIDDigits && isDigits(s)
}

// validExtension: ASCII digits and '*', at least one digit, at most 64 bytes.
func validExtension(s string) bool {
	if len(s) == 0 || len(s) > maxExtensionLength {
		return false
	}
	digit := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digit = true
		case c == '*':
		default:
			return false
		}
	}
	return digit
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// segEqual reports whether the percent-decoded raw equals lit (ASCII
// case-insensitively when fold), without allocating. A bad escape never
// matches.
func segEqual(raw, lit string, fold bool) bool {
	j := 0
	for i := 0; i < len(raw); j++ {
		c := raw[i]
		if c == '%' {
			if i+2 >= len(raw) {
				return false
			}
			h, ok1 := unhex(raw[i+1])
			l, ok2 := unhex(raw[i+2])
			if !ok1 || !ok2 {
				return false
			}
			c = h<<4 | l
			i += 3
		} else {
			i++
		}
		if j >= len(lit) {
			return false
		}
		if c != lit[j] && (!fold || lowerASCII(c) != lowerASCII(lit[j])) {
			return false
		}
	}
	return j == len(lit)
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// decodeSegment percent-decodes one path segment once (url.PathUnescape
// semantics: '+' stays '+'). ok is false for a bad escape.
func decodeSegment(raw string) (string, bool) {
	first := strings.IndexByte(raw, '%')
	if first < 0 {
		return raw, true
	}
	var b strings.Builder
	b.Grow(len(raw))
	b.WriteString(raw[:first])
	for i := first; i < len(raw); {
		c := raw[i]
		if c != '%' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+2 >= len(raw) {
			return "", false
		}
		h, ok1 := unhex(raw[i+1])
		l, ok2 := unhex(raw[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		b.WriteByte(h<<4 | l)
		i += 3
	}
	return b.String(), true
}
