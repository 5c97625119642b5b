package pce

import (
	"slices"
	"testing"
)

func TestQueryTokens(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		tokens  []string
		without string
	}{
		{"", nil, ""},
		{"a=1&b=2", nil, "a=1&b=2"},
		{"accessRequestToken=Bearer%20abc", []string{"Bearer abc"}, ""},
		{"a=1&accessRequestToken=Bearer+abc&b=2", []string{"Bearer abc"}, "a=1&b=2"},
		{"a=1;accessRequestToken=Bearer+abc", []string{"Bearer abc"}, "a=1"},
		{"a=1;b=2&accessRequestToken=x;c=3", []string{"x"}, "a=1;b=2;c=3"},
		{"+accessRequestToken=x", []string{"x"}, ""},
		{"%20accessRequestToken=x", []string{"x"}, ""},
		{"access%52equestToken=x&y=%20", []string{"x"}, "y=%20"},
		{"accessRequestToken%5B%5D=x", []string{"x"}, ""},
		{"accessRequestToken[0]=x&accessRequestToken[1]=y", []string{"x", "y"}, ""},
		{"ACCESSREQUESTTOKEN=x", []string{"x"}, ""},
		{"accessRequestToken", []string{""}, ""},
		{"accessRequestTokens=x", nil, "accessRequestTokens=x"},
		{"a=1&&b=2", nil, "a=1&&b=2"},
		{"accessRequestToken=%zz", []string{"%zz"}, ""},
		{"accessRequestToken%00=Bearer+x&a=1", []string{"Bearer x"}, "a=1"},
		{"accessRequestToken%00junk=y", []string{"y"}, ""},
	} {
		if got := QueryTokens(tc.raw); !slices.Equal(got, tc.tokens) {
			t.Errorf("QueryTokens(%q) = %q, want %q", tc.raw, got, tc.tokens)
		}
		got, removed := withoutQueryToken(tc.raw)
		if got != tc.without || removed != (len(tc.tokens) > 0) {
			t.Errorf("withoutQueryToken(%q) = %q, %v; want %q", tc.raw, got, removed, tc.without)
		}
		if len(tc.tokens) > 0 && !MayHoldToken(tc.raw) {
			t.Errorf("MayHoldToken(%q) = false", tc.raw)
		}
	}
}

// Whatever the query, what is forwarded holds no token parameter, and
// nothing else is lost.
func FuzzQueryTokens(f *testing.F) {
	for _, s := range []string{"a=1&accessRequestToken=Bearer+x", "a;accessRequestToken[]=1", "%20accessRequestToken=x&b", "&&;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tokens := QueryTokens(raw)
		if len(tokens) > 0 && !MayHoldToken(raw) {
			t.Fatalf("MayHoldToken(%q) missed %q", raw, tokens)
		}
		out, removed := withoutQueryToken(raw)
		if removed != (len(tokens) > 0) {
			t.Fatalf("withoutQueryToken(%q) removed=%v with tokens %q", raw, removed, tokens)
		}
		if left := QueryTokens(out); len(left) > 0 {
			t.Fatalf("withoutQueryToken(%q) = %q still holds %q", raw, out, left)
		}
		if !removed && out != raw {
			t.Fatalf("withoutQueryToken(%q) changed a query without a token: %q", raw, out)
		}
		if len(out) > len(raw) {
			t.Fatalf("withoutQueryToken(%q) = %q", raw, out)
		}
	})
}

// withoutQueryToken is rawQuery less its token pairs, and whether any was
// removed: CanonicalQuery's token half.
func withoutQueryToken(rawQuery string) (string, bool) {
	return withoutPairs(rawQuery, IsTokenPair)
}

func TestWithoutMethod(t *testing.T) {
	for raw, want := range map[string]string{
		"":            "",
		"a=1":         "a=1",
		"_method=GET": "",
		"a=1;%5Fmethod=GET&accessRequestToken=Bearer%20x": "a=1&accessRequestToken=Bearer%20x",
		"_method[]=GET&b=%41":                             "b=%41",
	} {
		if got := WithoutMethod(raw); got != want {
			t.Errorf("WithoutMethod(%q) = %q, want %q", raw, got, want)
		}
	}
}
