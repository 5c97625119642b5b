package pce

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// The lenient view: what a backend that reads paths more leniently than
// the gateway (VoipNow's UAPI is PHP, behind Apache or nginx) may take for
// the resource. A request the strict reading passes on but the lenient
// view sees as the resource is the resource's, and wrong: never a
// pass-through under another meaning. None of this runs for a request the
// strict reading already places (it may allocate).

// maxDecodes bounds the repeated percent-decoding (%252F, %25252F...).
const maxDecodes = 5

// disguised reports, for a path that is not the resource as written,
// whether a lenient backend would see the resource in it (the lenient
// view of lenientSegments). Such a path is on the resource and wrong
// (user_invalid, the first position), never a pass-through.
func (rt *Router) disguised(escapedPath string) (Route, Shape, bool, *Error) {
	if mayNamePCE(escapedPath) && rt.seesResource(lenientSegments(escapedPath)) {
		return Route{}, ShapeUnknown, true, ErrUserInvalid
	}
	return Route{}, 0, false, nil
}

// seesResource reports whether segs (a lenient view) are
// {base}/extensions/…/phoneCallEvents…: the base and "extensions" as
// lenient literals, front controllers (a segment ending in .php: PHP runs
// it with the rest as PATH_INFO) skipped before them, and a lenient
// phoneCallEvents literal anywhere after.
func (rt *Router) seesResource(segs []string) bool {
	i := 0
	for _, seg := range segs {
		want := literalExtensions
		if i < len(rt.baseSegs) {
			want = rt.baseSegs[i]
		}
		switch {
		case i > len(rt.baseSegs):
			if literalLike(seg, literalPCE) {
				return true
			}
		case literalLike(seg, want):
			i++
		case isScript(seg):
		default:
			return false
		}
	}
	return false
}

// queryRouted reports whether a request on a path that is not the
// resource's routes to it through its query, as front controllers do
// (?_url=/extensions/…, index.php?/extensions/…): the path's lenient view
// is no more than the base (front controllers skipped) and the base
// followed by a query value, or by the whole query, is the resource.
func (rt *Router) queryRouted(escapedPath, rawQuery string) bool {
	if rawQuery == "" || !mayNamePCE(rawQuery) {
		return false
	}
	var prefix []string
	n := 0
	for _, seg := range lenientSegments(escapedPath) {
		switch {
		case n < len(rt.baseSegs) && literalLike(seg, rt.baseSegs[n]):
			n++
		case isScript(seg):
			continue
		default:
			return false
		}
		prefix = append(prefix, seg)
	}
	values := []string{rawQuery}
	for pair := range strings.FieldsFuncSeq(rawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
		if _, v, ok := strings.Cut(pair, "="); ok {
			values = append(values, v)
		}
	}
	for _, v := range values {
		if !mayNamePCE(v) {
			continue
		}
		segs := lenientSegments(strings.ReplaceAll(v, "+", " "))
		// The value as a path of its own, or after the base.
		if rt.seesResource(segs) || rt.seesResource(append(append([]string(nil), rt.baseSegs...), segs...)) ||
			rt.seesResource(append(append([]string(nil), prefix...), segs...)) {
			return true
		}
	}
	return false
}

// mayNamePCE is a cheap filter: s may spell phoneCallEvents (plainly, with
// escapes, with overlong UTF-8 or with letters that fold to ASCII).
func mayNamePCE(s string) bool {
	return strings.IndexByte(s, '%') >= 0 || hasNonASCII(s) || containsFold(s, literalPCE)
}

func hasNonASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// lenientSegments is the path as a lenient backend reads it: percent-
// decoded until nothing changes (at most maxDecodes times; an invalid
// escape stays as written, as PHP's urldecode leaves it), overlong UTF-8
// folded to ASCII, '\' taken for '/', each segment cut at ';' and NUL and
// its trailing dots and spaces dropped, empty and "." segments dropped and
// ".." resolved.
func lenientSegments(escapedPath string) []string {
	p := escapedPath
	for i := 0; i < maxDecodes && strings.IndexByte(p, '%') >= 0; i++ {
		d := lenientUnescape(p)
		if d == p {
			break
		}
		p = d
	}
	p = foldOverlong(p)
	var segs []string
	for seg := range strings.FieldsFuncSeq(p, func(r rune) bool { return r == '/' || r == '\\' }) {
		seg = lenientSegment(seg)
		switch seg {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, seg)
		}
	}
	return segs
}

// lenientSegment is a path segment as lenient servers read it: cut at a
// ";parameter" (Tomcat, Jetty) and at NUL (C strings), trailing dots and
// spaces dropped (Windows), unless it is a dot segment.
func lenientSegment(seg string) string {
	if i := strings.IndexAny(seg, ";\x00"); i >= 0 {
		seg = seg[:i]
	}
	if seg == "." || seg == ".." {
		return seg
	}
	return strings.TrimRight(seg, ". ")
}

// literalLike reports whether seg may be read as the literal lit (ASCII):
// in any letter case, Unicode's included (the long s 'ſ' is 's', the
// Kelvin sign is 'k', the dotless and dotted capital i are 'i', as
// mb_strtolower, mb_convert_case and /iu regular expressions read them),
// after leading whitespace or control characters, and before a suffix that
// starts with '.', '~', whitespace, a control character or a non-ASCII
// byte (phoneCallEvents.json, phoneCallEvents~, uapi.php).
func literalLike(seg, lit string) bool {
	seg = strings.TrimLeft(seg, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f"+
		"\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f \x7f")
	i := 0
	for j := 0; j < len(lit); j++ {
		if i >= len(seg) {
			return false
		}
		r, size := utf8.DecodeRuneInString(seg[i:])
		if !foldsTo(r, lit[j]) {
			return false
		}
		i += size
	}
	if i == len(seg) {
		return true
	}
	c := seg[i]
	return c == '.' || c == '~' || c <= ' ' || c >= 0x7f
}

// foldsTo reports whether r is the ASCII letter or digit c in some case
// folding.
func foldsTo(r rune, c byte) bool {
	switch {
	case r < utf8.RuneSelf:
		return lowerASCII(byte(r)) == lowerASCII(c)
	case r == 'ı' || r == 'İ': // dotless i, capital I with dot
		return lowerASCII(c) == 'i'
	}
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < utf8.RuneSelf && lowerASCII(byte(f)) == lowerASCII(c) {
			return true
		}
	}
	return false
}

// isScript reports whether a segment names a PHP script (index.php,
// uapi.php5...): a front controller that runs with the rest of the path
// as PATH_INFO.
func isScript(seg string) bool {
	i := strings.LastIndexByte(seg, '.')
	if i < 0 {
		return false
	}
	ext := strings.ToLower(seg[i+1:])
	return strings.HasPrefix(ext, "php") || ext == "phtml"
}

// lenientUnescape decodes every valid %XX in s; an invalid escape stays.
func lenientUnescape(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			h, ok1 := unhex(s[i+1])
			l, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b.WriteByte(h<<4 | l)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// foldOverlong replaces overlong UTF-8 encodings of ASCII characters
// (C0 AF for '/', E0 80 AE for '.', F0 80 80 AF...) by the characters: old
// decoders accepted them.
func foldOverlong(s string) string {
	if !hasOverlongLead(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case (c == 0xC0 || c == 0xC1) && i+1 < len(s) && isCont(s[i+1]):
			b.WriteByte((c&0x1F)<<6 | s[i+1]&0x3F)
			i += 2
		case c == 0xE0 && i+2 < len(s) && s[i+1] >= 0x80 && s[i+1] <= 0x81 && isCont(s[i+2]):
			b.WriteByte((s[i+1]&0x3F)<<6 | s[i+2]&0x3F)
			i += 3
		case c == 0xF0 && i+3 < len(s) && s[i+1] == 0x80 && s[i+2] >= 0x80 && s[i+2] <= 0x81 && isCont(s[i+3]):
			b.WriteByte((s[i+2]&0x3F)<<6 | s[i+3]&0x3F)
			i += 4
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

func hasOverlongLead(s string) bool {
	return strings.IndexByte(s, 0xC0) >= 0 || strings.IndexByte(s, 0xC1) >= 0 ||
		strings.IndexByte(s, 0xE0) >= 0 || strings.IndexByte(s, 0xF0) >= 0
}

func isCont(c byte) bool { return c&0xC0 == 0x80 }
