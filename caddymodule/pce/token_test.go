package pce

import "testing"

func TestExtractToken(t *testing.T) {
	tests := []struct {
		name                 string
		auth, query          []string
		token                string
		fromQuery, given, ok bool
	}{
		{"none", nil, nil, "", false, false, false},
		{"header", []string{"Bearer abc"}, nil, "abc", false, true, true},
		{"header lower", []string{"bearer abc"}, nil, "abc", false, true, true},
		{"header upper", []string{"BEARER abc"}, nil, "abc", false, true, true},
		{"header spaces", []string{"Bearer    abc  "}, nil, "abc", false, true, true},
		{"header trailing tab", []string{"Bearer abc\t"}, nil, "abc", false, true, true},
		{"header b64 chars", []string{"Bearer aZ09-._~+/=="}, nil, "aZ09-._~+/==", false, true, true},
		{"header jwt", []string{"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMiJ9.sig_-"}, nil, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMiJ9.sig_-", false, true, true},
		{"header only equals", []string{"Bearer =="}, nil, "", false, true, false},
		{"header equals inside", []string{"Bearer a=b"}, nil, "", false, true, false},
		{"header empty token", []string{"Bearer "}, nil, "", false, true, false},
		{"header no token", []string{"Bearer"}, nil, "", false, true, false},
		{"header tab separator", []string{"Bearer\tabc"}, nil, "", false, true, false},
		{"header two tokens", []string{"Bearer abc def"}, nil, "", false, true, false},
		{"header bad char", []string{"Bearer ab,c"}, nil, "", false, true, false},
		{"header non-ascii", []string{"Bearer abcé"}, nil, "", false, true, false},
		{"header scheme glued", []string{"Bearerabc"}, nil, "", false, false, false},
		{"basic", []string{"Basic dXNlcjpwYXNz"}, nil, "", false, false, false},
		{"empty header", []string{""}, nil, "", false, false, false},
		{"several headers", []string{"Bearer abc", "Bearer abc"}, nil, "", false, true, false},
		{"several headers basic", []string{"Basic x", "Basic y"}, nil, "", false, true, false},
		{"query bearer", nil, []string{"Bearer abc"}, "abc", true, true, true},
		{"query bearer lower", nil, []string{"bearer abc"}, "abc", true, true, true},
		{"query bare", nil, []string{"abc"}, "abc", true, true, true},
		{"query empty", nil, []string{""}, "", false, true, false},
		{"query bearer only", nil, []string{"Bearer"}, "", false, true, false},
		{"query bearer empty", nil, []string{"Bearer "}, "", false, true, false},
		{"query bad", nil, []string{"a b"}, "", false, true, false},
		{"query twice", nil, []string{"abc", "abc"}, "", false, true, false},
		{"basic plus query", []string{"Basic x"}, []string{"Bearer abc"}, "abc", true, true, true},
		{"both equal", []string{"Bearer abc"}, []string{"Bearer abc"}, "abc", false, true, true},
		{"both equal bare", []string{"Bearer abc"}, []string{"abc"}, "abc", false, true, true},
		{"both differ", []string{"Bearer abc"}, []string{"abd"}, "", false, true, false},
		{"header bad query good", []string{"Bearer a b"}, []string{"abc"}, "", false, true, false},
		{"header good query bad", []string{"Bearer abc"}, []string{""}, "", false, true, false},
	}
	for _, tc := range tests {
		tok, fq, given, ok := ExtractToken(tc.auth, tc.query)
		if tok != tc.token || fq != tc.fromQuery || given != tc.given || ok != tc.ok {
			t.Errorf("%s: ExtractToken(%q, %q) = %q, %v, %v, %v; want %q, %v, %v, %v", tc.name, tc.auth, tc.query,
				tok, fq, given, ok, tc.token, tc.fromQuery, tc.given, tc.ok)
		}
	}
}
