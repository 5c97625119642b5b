package pce

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

// ParamName reads names as PHP 8's php_register_variable_ex does.
func TestParamName(t *testing.T) {
	for _, tc := range []struct{ pair, want string }{
		{"_method=PUT", "_method"},
		{"%5Fmethod=PUT", "_method"},
		{"_%6Dethod=PUT", "_method"},
		{"+_method=PUT", "_method"},
		{"%20%20_method=PUT", "_method"},
		{"_method%00=PUT", "_method"},
		{"_method%00junk=PUT", "_method"},
		{".method=PUT", "_method"},
		{" .method=PUT", "_method"},
		{"_method[]=PUT", "_method"},
		{"_method%5B0%5D=PUT", "_method"},
		{"_method[=PUT", "_method_"},
		{"_method[a.b=PUT", "_method_a_b"},
		{"a.b c=1", "a_b_c"},
		{"x", "x"},
		{"=1", ""},
		{"%zz=1", "%zz"},
	} {
		if got := ParamName(tc.pair); got != tc.want {
			t.Errorf("ParamName(%q) = %q, want %q", tc.pair, got, tc.want)
		}
	}
}

func TestEffectiveMethod(t *testing.T) {
	for _, tc := range []struct {
		method    string
		overrides []string
		query     string
		form      []string
		want      string
		err       *Error
	}{
		{"PUT", nil, "", nil, "PUT", nil},
		{"put", nil, "", nil, "PUT", nil},
		{"POST", []string{"PUT"}, "", nil, "PUT", nil},
		{"GET", []string{" delete "}, "", nil, "DELETE", nil},
		{"POST", nil, "_method=PUT", nil, "PUT", nil},
		{"POST", nil, "a=1&%5Fmethod=put", nil, "PUT", nil},
		{"POST", nil, "_%6Dethod=PUT", nil, "PUT", nil},
		{"POST", nil, "+_method=PUT", nil, "PUT", nil},
		{"POST", nil, "_method%00=PUT", nil, "PUT", nil},
		{"POST", nil, ".method=PUT", nil, "PUT", nil},
		{"POST", nil, "x=1;_method[]=PUT", nil, "PUT", nil},
		{"POST", nil, "", []string{"PUT"}, "PUT", nil},
		{"POST", []string{"PUT"}, "_method=PUT", []string{"put"}, "PUT", nil},
		{"POST", []string{""}, "_method=", nil, "POST", nil},
		{"POST", nil, "method=PUT", nil, "POST", nil},
		// Disagreement and the methods an override may not name.
		{"POST", []string{"PUT"}, "_method=DELETE", nil, "", ErrRequestInvalid},
		{"POST", []string{"PUT, DELETE"}, "", nil, "", ErrRequestInvalid},
		{"POST", []string{"PUT", "GET"}, "", nil, "", ErrRequestInvalid},
		{"POST", nil, "_method=PUT&_method=GET", nil, "", ErrRequestInvalid},
		{"POST", nil, "_method=PUT", []string{"DELETE"}, "", ErrRequestInvalid},
		{"GET", []string{"OPTIONS"}, "", nil, "", ErrRequestInvalid},
		{"GET", nil, "_method=trace", nil, "", ErrRequestInvalid},
		{"GET", nil, "", []string{"CONNECT"}, "", ErrRequestInvalid},
		{"POST", []string{"\nPUT"}, "", nil, "", ErrRequestInvalid},
		{"POST", nil, "_method=PU%54%0A", nil, "", ErrRequestInvalid},
		{"POST", nil, "_method=P-UT", nil, "", ErrRequestInvalid},
		{"POST", nil, "", []string{"PUT\x00"}, "", ErrRequestInvalid},
	} {
		got, err := EffectiveMethod(tc.method, tc.overrides, tc.query, tc.form)
		if got != tc.want || err != tc.err {
			t.Errorf("EffectiveMethod(%q, %q, %q, %q) = %q, %v; want %q, %v",
				tc.method, tc.overrides, tc.query, tc.form, got, err, tc.want, tc.err)
		}
	}
}

func TestIsOverrideHeader(t *testing.T) {
	for _, name := range []string{"X-Http-Method-Override", "X-HTTP-Method", "x-method-override", "X_http_method_override", "X-Http_method-Override", "X.HTTP.Method.Override", "x.method_override"} {
		if !IsOverrideHeader(name) {
			t.Errorf("IsOverrideHeader(%q) = false", name)
		}
	}
	for _, name := range []string{"X-Http-Method-Overrides", "X-Method", "Content-Type", "", "X-HTTP-Method:Override", "X HTTP Method"} {
		if IsOverrideHeader(name) {
			t.Errorf("IsOverrideHeader(%q) = true", name)
		}
	}
}

func TestFormMethods(t *testing.T) {
	mp := "--b\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--b--\r\n"
	for _, tc := range []struct {
		ct   []string
		body string
		want []string
		ok   bool
	}{
		{[]string{"application/x-www-form-urlencoded"}, "a=1&_method=PUT", []string{"PUT"}, true},
		{[]string{"Application/X-WWW-Form-Urlencoded; charset=utf-8"}, "%5Fmethod=PUT", []string{"PUT"}, true},
		{[]string{"application/x-www-form-urlencoded"}, `{"method":"1"}`, nil, true},
		{[]string{"application/json"}, "_method=PUT", nil, true},
		{[]string{"multipart/form-data; boundary=b"}, mp, []string{"DELETE"}, true},
		{[]string{"multipart/form-data"}, mp, nil, false},
		{[]string{"multipart/form-data; boundary=c"}, mp, nil, false},
		{[]string{"multipart/form-data; boundary=b"}, "--b\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nmethod name=x\r\n--b--\r\n", nil, true},
		// What PHP reads and Go does not (found by probing a build with
		// PHP 8.2 behind it): an inner boundary PHP takes from
		// "xboundary=", a single-quoted name, a bare-LF delimiter.
		{[]string{"multipart/form-data; xboundary=AAA; boundary=BBB"}, "--BBB\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n--AAA\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nPUT\r\n--AAA--\r\n\r\n--BBB--\r\n", nil, false},
		{[]string{"multipart/form-data; boundary=BBB"}, "--BBB\r\nContent-Disposition: form-data; name='_method'\r\n\r\nPUT\r\n--BBB--\r\n", nil, false},
		{[]string{"multipart/form-data; boundary=BBB"}, "--BBB\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nhello\n--BBB\nContent-Disposition: form-data; name=\"_method\"\n\nPUT\r\n--BBB--\r\n", nil, false},
		{[]string{"multipart/form-data; boundary=BBB"}, "--BBB\r\nContent-Disposition: form-data; NAME = .method\r\n\r\nPUT\r\n--BBB--\r\n", []string{"PUT"}, true},
		{[]string{"multipart/form-data; boundary=BBB"}, "--BBB\r\nContent-Disposition: form-data; name*=UTF-8''%5Fmethod\r\n\r\nPUT\r\n--BBB--\r\n", nil, false},
		// A Go-only name (RFC 2231) beside a PHP-only one (single quotes):
		// the counts agree, the readings do not (found by probing a build).
		{[]string{"multipart/form-data; boundary=AAA"}, "--AAA\r\nContent-Disposition: form-data; name='_method'\r\n\r\nPUT\r\n--AAA\r\nContent-Disposition: form-data; name*0=\"_met\"; name*1=\"hod\"\r\n\r\nPOST\r\n--AAA--\r\n", nil, false},
		{[]string{"multipart/form-data; boundary=AAA"}, "--AAA\r\nContent-Disposition: form-data; name='_method'\r\n\r\nPUT\r\n--AAA\r\nContent-Disposition: form-data; name*=utf-8'en'%5Fmethod\r\n\r\nPOST\r\n--AAA--\r\n", nil, false},
		{[]string{"multipart/form-data; boundary=AAA"}, "--AAA\r\nContent-Disposition: form-data; name=\"a\"; filename=\"x.txt\"\r\n\r\nhello\r\n--AAA--\r\n", nil, true},
	} {
		if IsForm(tc.ct) != (tc.want != nil || formKind(tc.ct[0]) != formNone) {
			t.Errorf("IsForm(%q) = %v", tc.ct, IsForm(tc.ct))
		}
		got, ok := FormMethods(tc.ct, []byte(tc.body))
		if !slices.Equal(got, tc.want) || ok != tc.ok {
			t.Errorf("FormMethods(%q, %q) = %q, %v; want %q, %v", tc.ct, tc.body, got, ok, tc.want, tc.ok)
		}
	}
}

// The forwarded query keeps every other pair byte for byte, ';' pairs and
// order included.
func TestCanonicalQuery(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{"", ""},
		{"a=1&b=2", "a=1&b=2"},
		{"x=1;y=2&_method=PUT&z=%41", "x=1;y=2&z=%41"},
		{"_method=PUT&b=2;a=1", "b=2;a=1"},
		{"b=2&accessRequestToken%00=Bearer+x&a=1", "b=2&a=1"},
		{"accessRequestToken%00junk=x", ""},
		{"%5Fmethod=PUT&_%6Dethod=PUT&+_method=PUT&.method=PUT&keep", "keep"},
		{"a=1&&_method=PUT&&b", "a=1&&&b"},
		{"methods=1&my_method=2", "methods=1&my_method=2"},
	} {
		if got := CanonicalQuery(tc.raw); got != tc.want {
			t.Errorf("CanonicalQuery(%q) = %q, want %q", tc.raw, got, tc.want)
		}
	}
}

// FuzzEffectiveMethod: the gateway's method is the backend's. The oracle
// is a model of PHP and Symfony written here: override headers (a value
// may list methods), and every query or form pair whose name PHP reads as
// _method (decoded, cut at NUL, leading spaces dropped, cut at '[', ' '
// and '.' as '_'). When the gateway names a method, every override the
// model finds names that method too (none: the request's own).
func FuzzEffectiveMethod(f *testing.F) {
	f.Add("POST", "PUT", "_method=PUT", "")
	f.Add("post", "", "a=1&%5Fmethod=delete;b", "_method=DELETE")
	f.Add("GET", "PUT, DELETE", "", "")
	f.Add("PUT", "", "+.method[x]=GET", "")
	f.Add("POST", "", "_method%00junk=PATCH&_method=patch", "x=%5F%6Dethod")
	f.Fuzz(func(t *testing.T, method, header, rawQuery, form string) {
		var formVals []string
		for _, pair := range strings.FieldsFunc(form, func(r rune) bool { return r == '&' || r == ';' }) {
			if IsMethodPair(pair) {
				_, v, _ := strings.Cut(pair, "=")
				if dv, err := url.QueryUnescape(v); err == nil {
					v = dv
				}
				formVals = append(formVals, v)
			}
		}
		got, err := EffectiveMethod(method, []string{header}, rawQuery, formVals)
		if err != nil {
			return // refused: nothing reaches the backend
		}
		var model []string
		for _, v := range strings.Split(header, ",") {
			model = append(model, v)
		}
		for _, src := range []string{rawQuery, form} {
			for _, pair := range strings.FieldsFunc(src, func(r rune) bool { return r == '&' || r == ';' }) {
				name, v, _ := strings.Cut(pair, "=")
				if dn, err := url.QueryUnescape(name); err == nil {
					name = dn
				}
				name, _, _ = strings.Cut(name, "\x00")
				name = strings.TrimLeft(name, " ")
				name, _, _ = strings.Cut(name, "[")
				name = strings.NewReplacer(" ", "_", ".", "_").Replace(name)
				if !strings.EqualFold(name, "_method") {
					continue
				}
				if dv, err := url.QueryUnescape(v); err == nil {
					v = dv
				}
				model = append(model, v)
			}
		}
		named := false
		for _, v := range model {
			v = strings.Trim(v, " \t")
			if v == "" {
				continue
			}
			named = true
			if !strings.EqualFold(v, got) {
				t.Fatalf("the backend may act on %q; the gateway decided %q (method %q, header %q, query %q, form %q)",
					v, got, method, header, rawQuery, form)
			}
		}
		// Without an override the model knows of, the gateway may still
		// have found one (it reads more spellings than this model: a
		// leading '[' is '_' to PHP); else the method is the request's.
		if !named && got != asciiUpper(method) && !mayHoldMethod(rawQuery+"&"+form) {
			t.Fatalf("no override, yet %q became %q", method, got)
		}
	})
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}
