package caddymodule

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/logging"
	"go.uber.org/zap/zapcore"

	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/pce"
)

// exampleURIFilter is the request>uri filter of Caddyfile.example's
// access log, provisioned as Caddy provisions it.
func exampleURIFilter(t testing.TB) *logging.RegexpFilter {
	t.Helper()
	src, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": "Caddyfile.example"})
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Logging struct {
			Logs map[string]struct {
				Encoder struct {
					Fields map[string]json.RawMessage `json:"fields"`
				} `json:"encoder"`
			} `json:"logs"`
		} `json:"logging"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, l := range cfg.Logging.Logs {
		raw, ok := l.Encoder.Fields["request>uri"]
		if !ok {
			continue
		}
		var f logging.RegexpFilter
		if err := json.Unmarshal(raw, &f); err != nil || f.RawRegexp == "" {
			t.Fatalf("request>uri filter %s is not a regexp filter (%v)", raw, err)
		}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
		defer cancel()
		if err := f.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		return &f
	}
	t.Fatal("Caddyfile.example's access log has no request>uri filter")
	return nil
}

// spellings of the token parameter's name that the gateway accepts.
var tokenNameSpellings = []string{
	"accessRequestToken", "accessrequesttoken", "ACCESSREQUESTTOKEN", "accessRequestToken[]",
	"accessRequestToken%5B%5D", "accessRequestToken[0]", "%20accessRequestToken", "+accessRequestToken",
	"%61ccessRequestToken", "%41CCESS%52equestToken", "accessRequestToken%00", "accessRequestToken%00junk",
	"++%20accessRequest%54oken%5bx",
}

// redactionHolds checks that the filtered URI keeps no value of a token
// pair (values are distinctive), and that the URI of a query without one
// is unchanged.
func redactionHolds(t *testing.T, f *logging.RegexpFilter, uri string, values map[string]bool) {
	t.Helper()
	got := f.Filter(zapcore.Field{Key: "uri", Type: zapcore.StringType, String: uri}).String
	_, q, _ := strings.Cut(uri, "?")
	found := false
	for pair := range strings.FieldsFuncSeq(q, func(r rune) bool { return r == '&' || r == ';' }) {
		_, v, _ := strings.Cut(pair, "=")
		if pce.IsTokenPair(pair) && v != "" && values[v] {
			found = true
			if strings.Contains(got, v) {
				t.Errorf("%q logged as %q: the token %q is in it", uri, got, v)
			}
		}
	}
	if !found && got != uri {
		t.Errorf("%q without a token logged as %q", uri, got)
	}
}

// Caddyfile.example's access log redacts every spelling of the token
// parameter that the gateway accepts (pce.IsTokenPair), wherever the pair
// stands.
func TestAccessLogRedactsEverySpelling(t *testing.T) {
	f := exampleURIFilter(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for i, name := range tokenNameSpellings {
		if !pce.IsTokenPair(name + "=x") {
			t.Fatalf("%q is not a spelling the gateway accepts", name)
		}
		tok := "Bearer%20secretToken" + itoa(i)
		for _, uri := range []string{
			pagePath + "?" + name + "=" + tok,
			pagePath + "?a=1&" + name + "=" + tok + "&b=2",
			pagePath + "?a=1;" + name + "=" + tok + ";b=2",
		} {
			redactionHolds(t, f, uri, map[string]bool{tok: true})
		}
	}
	// Random spellings: every letter in either case, maybe encoded.
	for i := range 2000 {
		var b strings.Builder
		for range rng.IntN(3) {
			b.WriteString([]string{"+", "%20"}[rng.IntN(2)])
		}
		for _, c := range pce.TokenParam {
			if rng.IntN(2) == 0 {
				c ^= 0x20
			}
			if rng.IntN(3) == 0 {
				b.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[c>>4])) + string("0123456789abcdef"[c&15]))
			} else {
				b.WriteRune(c)
			}
		}
		b.WriteString([]string{"", "[]", "%00", "%5B1%5D", "x", "%00%5B"}[rng.IntN(6)])
		tok := "tokValue" + itoa(i)
		redactionHolds(t, f, "/uapi/x?z=1&"+b.String()+"="+tok, map[string]bool{tok: true})
	}
	for _, uri := range []string{pagePath, pagePath + "?a=1&b=2", pagePath + "?accessRequestTokens=x", pagePath + "?xaccessRequestToken=y"} {
		redactionHolds(t, f, uri, nil)
	}
}

// The same property under the fuzzer: no value of a pair the gateway reads
// as the token survives the filter.
func FuzzAccessLogRedaction(f *testing.F) {
	for _, name := range tokenNameSpellings {
		f.Add(name, "Bearer+abcdef123")
	}
	filter := exampleURIFilter(f)
	f.Fuzz(func(t *testing.T, name, value string) {
		if strings.ContainsAny(name, "&;=?#") || strings.ContainsAny(value, "&;?#") || len(value) < 6 {
			return
		}
		redactionHolds(t, filter, "/uapi/x?a=1&"+name+"="+value, map[string]bool{value: true})
	})
}
