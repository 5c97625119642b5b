package pce

import (
	"bytes"
	"strings"
)

// maxNoteCodePoints is the documented maximum length of note.
const maxNoteCodePoints = 1024

// PayloadRules configure the payload check.
type PayloadRules struct {
	// AllowPrivateURLs lets url target loopback, private, link-local and
	// other internal addresses.
	AllowPrivateURLs bool
}

// AppendNormalized checks body (the PhoneCallEvent payload) for the route r
// and appends its canonical form to dst.
//
// The body must be exactly one JSON object in valid UTF-8 (one leading BOM
// and surrounding whitespace allowed), with no duplicate keys at any level,
// no lone surrogate escapes and nesting at most 64 deep; else
// ErrPayloadInvalid. Then the fields are checked in the order type, id,
// method, note, url, status, and the first failure wins. The canonical form is
// a compact object with the present fields in that order, all values
// strings; every other key is dropped. Size limits are the caller's.
func AppendNormalized(dst []byte, body []byte, r Route, rules PayloadRules) ([]byte, *Error) {
	f, ok := scanObject(body)
	if !ok {
		return dst, ErrPayloadInvalid
	}
	var out [numFields]string // canonical values of the fields with a fixed form
	if v := f[fieldType]; v != nil {
		if !equalsScalar(v, r.EventType) {
			return dst, ErrTypeInvalid
		}
		out[fieldType] = r.EventType
	}
	if v := f[fieldID]; v != nil {
		if !equalsScalar(v, r.EventID) {
			return dst, ErrIDInvalid
		}
		out[fieldID] = r.EventID
	}
	if v := f[fieldMethod]; v != nil {
		m, ok := binaryValue(v, true)
		if !ok {
			return dst, ErrMethodInvalid
		}
		out[fieldMethod] = m
	}
	if v := f[fieldNote]; v != nil {
		if !isString(v) || countCodePoints(v[1:len(v)-1]) > maxNoteCodePoints {
			return dst, ErrNoteInvalid
		}
	}
	if v := f[fieldURL]; v != nil {
		if !isString(v) || !CheckWebhookURL(decodeString(v), rules.AllowPrivateURLs) {
			return dst, ErrURLInvalid
		}
	}
	if v := f[fieldStatus]; v != nil {
		s, ok := binaryValue(v, false)
		if !ok {
			return dst, ErrStatusInvalid
		}
		out[fieldStatus] = s
	}

	dst = append(dst, '{')
	first := true
	for i := 0; i < numFields; i++ {
		if f[i] == nil {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, fieldNames[i]...)
		dst = append(dst, '"', ':')
		if i == fieldNote || i == fieldURL {
			dst = append(dst, f[i]...) // the raw, validated string literal
		} else {
			dst = appendJSONString(dst, out[i])
		}
	}
	return append(dst, '}'), nil
}

func isString(v []byte) bool { return len(v) >= 2 && v[0] == '"' }

func isNumber(v []byte) bool { return len(v) > 0 && (v[0] == '-' || v[0] >= '0' && v[0] <= '9') }

// equalsScalar reports whether the raw JSON value v is a string whose decoded
// value is want, or a number whose literal is exactly want.
func equalsScalar(v []byte, want string) bool {
	switch {
	case isString(v):
		content := v[1 : len(v)-1]
		if bytes.IndexByte(content, '\\') < 0 {
			return string(content) == want
		}
		var buf [64]byte
		return string(appendUnescaped(buf[:0], content)) == want
	case isNumber(v):
		return string(v) == want
	}
	return false
}

// binaryValue maps the number literal 0 or 1, or the string "0" or "1", to
// "0" or "1". With words, the strings GET and POST (any case) map to "0" and
// "1" as well.
func binaryValue(v []byte, words bool) (string, bool) {
	var s string
	switch {
	case isNumber(v):
		s = string(v)
		switch s {
		case "0":
			return "0", true
		case "1":
			return "1", true
		}
		return "", false
	case isString(v):
		content := v[1 : len(v)-1]
		var buf [48]byte
		if len(content) <= len(buf) && bytes.IndexByte(content, '\\') >= 0 {
			content = appendUnescaped(buf[:0], content)
		}
		s = string(content)
	default:
		return "", false
	}
	switch {
	case s == "0":
		return "0", true
	case s == "1":
		return "1", true
	case words && strings.EqualFold(s, "GET"):
		return "0", true
	case words && strings.EqualFold(s, "POST"):
		return "1", true
	}
	return "", false
}

// decodeString returns the decoded value of the validated JSON string
// literal v.
func decodeString(v []byte) string {
	content := v[1 : len(v)-1]
	if bytes.IndexByte(content, '\\') < 0 {
		return string(content)
	}
	return string(appendUnescaped(make([]byte, 0, len(content)), content))
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
