package pce

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"strings"
)

// overrideHeaders are the method-override headers of old frameworks, in
// Go's canonical spelling.
var overrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// IsOverrideHeader reports whether a backend may read the header name as a
// method-override header: any letter case, '_' or '.' for '-' (CGI and PHP
// turn all three into HTTP_X_HTTP_METHOD_OVERRIDE). Caddy drops names with
// '_' or '.' unless a server allowlists them; an allowlisted one is read.
func IsOverrideHeader(name string) bool {
	switch len(name) {
	case len("X-Http-Method-Override"), len("X-Http-Method"), len("X-Method-Override"):
	default:
		return false
	}
	for _, h := range overrideHeaders {
		if headerNameIs(name, h) {
			return true
		}
	}
	return false
}

// headerNameIs compares header names case-insensitively with '_' and '.'
// read as '-'.
func headerNameIs(name, want string) bool {
	if len(name) != len(want) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := lowerASCII(name[i])
		if c == '_' || c == '.' {
			c = '-'
		}
		if c != lowerASCII(want[i]) {
			return false
		}
	}
	return true
}

// EffectiveMethod returns the method the backend would act on, in upper
// case: method (the request's, any letter case) unless an override says
// otherwise. overrides are the values of the method-override headers,
// rawQuery the request's query (whose _method pairs, in every spelling PHP
// reads as _method, are overrides) and form the _method values of a form
// body (FormMethods). A header value may list several methods separated by
// commas; empty values are no override. Overrides that disagree, an
// override that is not a method name (ASCII letters: Symfony refuses
// others) and one naming OPTIONS, TRACE or CONNECT are ErrRequestInvalid.
func EffectiveMethod(method string, overrides []string, rawQuery string, form []string) (string, *Error) {
	var eff string
	var bad bool
	take := func(v string) {
		v = strings.Trim(v, " \t")
		if v == "" {
			return
		}
		v = upperMethod(v)
		switch {
		case !isLetters(v) || v == "OPTIONS" || v == "TRACE" || v == "CONNECT":
			bad = true
		case eff == "":
			eff = v
		case eff != v:
			bad = true
		}
	}
	for _, h := range overrides {
		for v := range strings.SplitSeq(h, ",") {
			take(v)
		}
	}
	if mayHoldMethod(rawQuery) {
		for _, v := range queryMethods(rawQuery) {
			take(v)
		}
	}
	for _, v := range form {
		take(v)
	}
	if bad {
		return "", ErrRequestInvalid
	}
	if eff == "" {
		return upperMethod(method), nil
	}
	return eff, nil
}

func isLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// Form body kinds, as PHP reads a request's Content-Type.
const (
	formNone = iota
	formURLEncoded
	formMultipart
)

func formKind(contentType string) int {
	mt := strings.TrimLeft(contentType, " \t")
	if i := strings.IndexAny(mt, "; ,\t"); i >= 0 {
		mt = mt[:i]
	}
	switch {
	case strings.EqualFold(mt, "application/x-www-form-urlencoded"):
		return formURLEncoded
	case strings.EqualFold(mt, "multipart/form-data"):
		return formMultipart
	}
	return formNone
}

// IsForm reports whether a PHP backend parses a body sent with these
// Content-Type values as a form (urlencoded or multipart), so that a
// _method field in it is an override.
func IsForm(contentTypes []string) bool {
	for _, ct := range contentTypes {
		if formKind(ct) != formNone {
			return true
		}
	}
	return false
}

// errForm is a form body the gateway cannot read the way PHP would.
var errForm = errors.New("unreadable form body")

// FormMethods returns the values of the _method fields of a form body sent
// with these Content-Type values (IsForm): urlencoded pairs split on '&'
// or ';', or the parts of a multipart body. ok is false for a multipart
// body the gateway cannot parse: it cannot tell what PHP would read in it.
func FormMethods(contentTypes []string, body []byte) (methods []string, ok bool) {
	for _, ct := range contentTypes {
		switch formKind(ct) {
		case formURLEncoded:
			methods = append(methods, pairValues(string(body), IsMethodPair)...)
		case formMultipart:
			m, err := multipartMethods(ct, body)
			if err != nil {
				return nil, false
			}
			methods = append(methods, m...)
		}
	}
	return methods, true
}

func multipartMethods(contentType string, body []byte) ([]string, error) {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil || params["boundary"] == "" {
		return nil, errForm
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var methods []string
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			// PHP's multipart reader is laxer than Go's (the boundary found
			// by substring in Content-Type, bare-LF delimiters, single-quoted
			// names) and Go reads RFC 2231 names PHP ignores: unless both
			// readings count the same _method names, and no name is an RFC
			// 2231 one, PHP may read a _method Go did not.
			if n, extended := lenientMethodNames(body); n != len(methods) || extended {
				return nil, errForm
			}
			return methods, nil
		}
		if err != nil {
			return nil, errForm
		}
		name := p.FormName()
		if name == "" && strings.Contains(strings.ToLower(p.Header.Get("Content-Disposition")), "name") {
			return nil, errForm // a name Go cannot read: PHP may
		}
		if !IsMethodPair(name) {
			continue
		}
		v, err := io.ReadAll(io.LimitReader(p, 1<<10))
		if err != nil {
			return nil, errForm
		}
		methods = append(methods, string(v))
	}
}

// lenientMethodNames counts the places in a multipart body where a lax
// reader may find a field named _method: every "name=" (any letter case,
// also inside filename=), its value unquoted (double or single quotes),
// unescaped (backslashes dropped) and past an RFC 2231 charset prefix,
// read as PHP reads names (IsMethodPair). It over-counts rather than
// under-counts. extended reports an RFC 2231 name (name*=, name*0=): Go's
// parser reads those, PHP's ignores them, so the two may see different
// fields.
func lenientMethodNames(body []byte) (n int, extended bool) {
	for i := 0; ; {
		j := indexFold(body[i:], "name")
		if j < 0 {
			return n, extended
		}
		k := i + j + len("name")
		i = k
		for k < len(body) && (body[k] == ' ' || body[k] == '\t') {
			k++
		}
		if k < len(body) && body[k] == '*' {
			extended = true
		}
		for k < len(body) && (body[k] == '*' || body[k] == ' ' || body[k] == '\t') {
			k++
		}
		if k >= len(body) || body[k] != '=' {
			continue
		}
		k++
		for k < len(body) && (body[k] == ' ' || body[k] == '\t') {
			k++
		}
		quoted := k < len(body) && (body[k] == '"' || body[k] == '\'')
		if quoted {
			k++
		}
		end := k
		for end < len(body) {
			c := body[end]
			if c == '\r' || c == '\n' || c == '"' || c == '\'' || (!quoted && (c == ';' || c == ' ' || c == '\t')) {
				break
			}
			end++
		}
		name := strings.ReplaceAll(string(body[k:end]), "\\", "")
		if _, after, ok := strings.Cut(name, "''"); ok {
			name = after
		}
		if IsMethodPair(name) {
			n++
		}
	}
}

// indexFold is bytes.Index with ASCII case folding of an ASCII lower-case
// sep.
func indexFold(s []byte, sep string) int {
	for i := 0; i+len(sep) <= len(s); i++ {
		j := 0
		for j < len(sep) && lowerASCII(s[i+j]) == sep[j] {
			j++
		}
		if j == len(sep) {
			return i
		}
	}
	return -1
}
