package pce

import (
	"bytes"
	"sync"
	"unicode/utf8"
)

// maxDepth caps the nesting of arrays and objects in a payload.
const maxDepth = 64

// mapThreshold is the number of keys of one object above which duplicate
// detection switches from pairwise comparison to a map.
const mapThreshold = 32

// The payload fields, in their checking and output order.
const (
	fieldType = iota
	fieldID
	fieldMethod
	fieldNote
	fieldURL
	fieldStatus
	numFields
)

var fieldNames = [numFields]string{"type", "id", "method", "note", "url", "status"}

func fieldIndex(key []byte) int {
	for i, name := range fieldNames {
		if string(key) == name {
			return i
		}
	}
	return -1
}

// keyRef locates a decoded key: in the input when it has no escapes, else in
// the scanner's key buffer.
type keyRef struct {
	inBuf      bool
	start, end int
}

// scanner is a strict single-pass RFC 8259 scanner. It validates one JSON
// object and records the raw values of the top-level payload fields.
type scanner struct {
	data   []byte
	pos    int
	depth  int
	keys   []keyRef // keys of the open objects, innermost last
	buf    []byte   // decoded keys that had escapes
	fields [numFields][]byte
}

// scanObject validates body as exactly one JSON object (surrounding
// whitespace and one leading UTF-8 BOM allowed), in valid UTF-8, with no
// duplicate keys at any level, no lone surrogate escapes, nesting at most
// maxDepth, and returns the raw values of the known top-level fields (nil when
// absent).
func scanObject(body []byte) (fields [numFields][]byte, ok bool) {
	s := scannerPool.Get().(*scanner)
	defer func() {
		// Keep only modest buffers, and no reference to the body.
		if cap(s.keys) > 1024 {
			s.keys = nil
		}
		if cap(s.buf) > 4096 {
			s.buf = nil
		}
		*s = scanner{keys: s.keys[:0], buf: s.buf[:0]}
		scannerPool.Put(s)
	}()
	s.data = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(s.data) {
		return fields, false
	}
	s.skipWS()
	if s.pos >= len(s.data) || s.data[s.pos] != '{' {
		return fields, false
	}
	if !s.object() {
		return fields, false
	}
	s.skipWS()
	if s.pos != len(s.data) {
		return fields, false
	}
	return s.fields, true
}

var scannerPool = sync.Pool{New: func() any {
	return &scanner{keys: make([]keyRef, 0, 16), buf: make([]byte, 0, 64)}
}}

func (s *scanner) skipWS() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) value() bool {
	if s.pos >= len(s.data) {
		return false
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object()
	case c == '[':
		return s.array()
	case c == '"':
		_, ok := s.str()
		return ok
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return false
}

func (s *scanner) literal(lit string) bool {
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return false
	}
	s.pos += len(lit)
	return true
}

func (s *scanner) number() bool {
	d, i := s.data, s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(d) && d[i] == '.' {
		i++
		start := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		start := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	s.pos = i
	return true
}

// str scans the string starting at the opening quote at s.pos and leaves
// s.pos after the closing quote. escaped reports backslash escapes.
func (s *scanner) str() (escaped, ok bool) {
	d := s.data
	for i := s.pos + 1; i < len(d); {
		c := d[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return escaped, true
		case c == '\\':
			escaped = true
			n, ok := escapeLen(d[i:])
			if !ok {
				return false, false
			}
			i += n
		case c < 0x20:
			return false, false
		default:
			i++
		}
	}
	return false, false
}

// escapeLen validates the escape sequence at the start of b (b[0] == '\\')
// and returns its length: 2, 6, or 12 for a surrogate pair. Lone surrogates
// are invalid.
func escapeLen(b []byte) (int, bool) {
	if len(b) < 2 {
		return 0, false
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, true
	case 'u':
		r, ok := hex4(b[2:])
		if !ok {
			return 0, false
		}
		switch {
		case r >= 0xD800 && r < 0xDC00:
			if len(b) < 8 || b[6] != '\\' || b[7] != 'u' {
				return 0, false
			}
			r2, ok := hex4(b[8:])
			if !ok || r2 < 0xDC00 || r2 > 0xDFFF {
				return 0, false
			}
			return 12, true
		case r >= 0xDC00 && r <= 0xDFFF:
			return 0, false
		}
		return 6, true
	}
	return 0, false
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		h, ok := unhex(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(h)
	}
	return r, true
}

func (s *scanner) array() bool {
	s.depth++
	if s.depth > maxDepth {
		return false
	}
	s.pos++ // '['
	s.skipWS()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		s.depth--
		return true
	}
	for {
		if !s.value() {
			return false
		}
		s.skipWS()
		if s.pos >= len(s.data) {
			return false
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.skipWS()
		case ']':
			s.pos++
			s.depth--
			return true
		default:
			return false
		}
	}
}

func (s *scanner) key(r keyRef) []byte {
	if r.inBuf {
		return s.buf[r.start:r.end]
	}
	return s.data[r.start:r.end]
}

func (s *scanner) object() bool {
	s.depth++
	if s.depth > maxDepth {
		return false
	}
	top := s.depth == 1
	s.pos++ // '{'
	s.skipWS()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		s.depth--
		return true
	}
	frame, bufMark := len(s.keys), len(s.buf)
	var seen map[string]struct{}
	for {
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return false
		}
		start := s.pos
		escaped, ok := s.str()
		if !ok {
			return false
		}
		ref := keyRef{start: start + 1, end: s.pos - 1}
		if escaped {
			b := len(s.buf)
			s.buf = appendUnescaped(s.buf, s.data[ref.start:ref.end])
			ref = keyRef{inBuf: true, start: b, end: len(s.buf)}
		}
		k := s.key(ref)
		if seen != nil {
			if _, dup := seen[string(k)]; dup {
				return false
			}
			seen[string(k)] = struct{}{}
		} else {
			for _, prev := range s.keys[frame:] {
				if bytes.Equal(s.key(prev), k) {
					return false
				}
			}
			s.keys = append(s.keys, ref)
			if len(s.keys)-frame > mapThreshold {
				seen = make(map[string]struct{}, 2*mapThreshold)
				for _, prev := range s.keys[frame:] {
					seen[string(s.key(prev))] = struct{}{}
				}
			}
		}
		s.skipWS()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return false
		}
		s.pos++
		s.skipWS()
		vstart := s.pos
		if !s.value() {
			return false
		}
		if top {
			if f := fieldIndex(k); f >= 0 {
				s.fields[f] = s.data[vstart:s.pos]
			}
		}
		s.skipWS()
		if s.pos >= len(s.data) {
			return false
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.skipWS()
		case '}':
			s.pos++
			s.depth--
			s.keys = s.keys[:frame]
			s.buf = s.buf[:bufMark]
			return true
		default:
			return false
		}
	}
}

// appendUnescaped appends the decoded content of a JSON string (raw is the
// text between the quotes, already validated by the scanner) to dst.
func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := bytes.IndexByte(raw[i:], '\\')
			if j < 0 {
				return append(dst, raw[i:]...)
			}
			dst = append(dst, raw[i:i+j]...)
			i += j
			continue
		}
		if i+1 >= len(raw) {
			return dst
		}
		switch raw[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(raw[i+2:])
			i += 6
			if r >= 0xD800 && r < 0xDC00 && i+6 <= len(raw) {
				r2, _ := hex4(raw[i+2:])
				r = ((r-0xD800)<<10 | (r2 - 0xDC00)) + 0x10000
				i += 6
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, raw[i+1])
		}
		i += 2
	}
	return dst
}

// countCodePoints counts the Unicode code points of the decoded content of a
// validated JSON string (raw is the text between the quotes).
func countCodePoints(raw []byte) int {
	n := 0
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			if i+1 < len(raw) && raw[i+1] == 'u' {
				r, _ := hex4(raw[i+2:])
				i += 6
				if r >= 0xD800 && r < 0xDC00 {
					i += 6
				}
			} else {
				i += 2
			}
		case c < utf8.RuneSelf:
			i++
		default:
			_, size := utf8.DecodeRune(raw[i:])
			i += size
		}
		n++
	}
	return n
}
