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
	// EventTypes are the allowed values of a create's type (an update's
	// must equal its path's eventType).
	EventTypes []string
	// IDMinLength and IDMaxLength bound a create's id (an update's must
	// equal its path's eventId).
	IDMinLength, IDMaxLength int
}

// AppendNormalized checks body (the PhoneCallEvent payload) of operation
// op (OpCreate or OpUpdate) on the route r and appends its canonical form
// to dst.
//
// The body must be exactly one JSON object in valid UTF-8 (one leading BOM
// and surrounding whitespace allowed), with no duplicate keys at any level,
// no lone surrogate escapes and nesting at most 64 deep; else
// ErrPayloadInvalid. Then the fields are checked in the order type, id,
// method, note, url, status, and the first failure wins. An update's
// fields are all optional, its type and id must equal the path's; a
// create requires type (an allowed type, else ErrCreateTypeInvalid),
// method and url, and its optional id must be a valid eventId. The canonical form is
// a compact object with the present fields in that order, all values
// strings; every other key is dropped. Size limits are the caller's.
func AppendNormalized(dst []byte, body []byte, op Operation, r Route, rules PayloadRules) ([]byte, *Error) {
	f, ok := scanObject(body)
	if !ok {
		return dst, ErrPayloadInvalid
	}
	create := op == OpCreate
	var out [numFields]string // canonical values of the fields with a fixed form
	// A create requires type, method and url: a missing one is the
	// field's own error, in the fields' order.
	if create && f[fieldType] == nil {
		return dst, ErrCreateTypeInvalid
	}
	if v := f[fieldType]; v != nil {
		t, ok := rules.typeValue(v, op, r)
		if !ok {
			if create {
				return dst, ErrCreateTypeInvalid
			}
			return dst, ErrTypeInvalid
		}
		out[fieldType] = t
	}
	if v := f[fieldID]; v != nil {
		id, ok := rules.idValue(v, op, r)
		if !ok {
			return dst, ErrIDInvalid
		}
		out[fieldID] = id
	}
	if create && f[fieldMethod] == nil {
		return dst, ErrMethodInvalid
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
	if create && f[fieldURL] == nil {
		return dst, ErrURLInvalid
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

// typeValue is the canonical type of the raw value v: an update's must be
// its path's eventType, a create's one of the allowed types; as a number
// or a string either way.
func (rules *PayloadRules) typeValue(v []byte, op Operation, r Route) (string, bool) {
	if op != OpCreate {
		return r.EventType, equalsScalar(v, r.EventType)
	}
	for _, t := range rules.EventTypes {
		if equalsScalar(v, t) {
			return t, true
		}
	}
	return "", false
}

// idValue is the canonical id of the raw value v: an update's must be its
// path's eventId, a create's a valid eventId (alphanumeric, within the
// length bounds), as a string or a number literal.
func (rules *PayloadRules) idValue(v []byte, op Operation, r Route) (string, bool) {
	if op != OpCreate {
		return r.EventID, equalsScalar(v, r.EventID)
	}
	var id string
	switch {
	case isString(v):
		id = decodeString(v)
	case isNumber(v) && isDigits(string(v)):
		// An integer literal as written: 1e3 or 10.0 are no ids.
		id = string(v)
	}
	if len(id) < max(rules.IDMinLength, 1) || len(id) > rules.IDMaxLength || !isAlnum(id) {
		return "", false
	}
	return id, true
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
