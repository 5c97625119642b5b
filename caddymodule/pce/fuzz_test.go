package pce

import (
	"bytes"
	"encoding/json"
	"net/url"
	pathpkg "path"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzMatch(f *testing.F) {
	f.Add("/uapi/extensions/@me/0003*210/phoneCallEvents/0/MyPhoneCallEvent")
	f.Add("/uapi/extensions/%40me/0003%2A210/phoneCallEvents/0/x/")
	f.Add("//uapi/extensions/@me/1/phoneCallEvents/0/x")
	f.Add("/a/../uapi/./extensions/@me/1/phoneCallEvents/0/x")
	f.Add("/uapi%2fextensions/@me/1/PHONECALLEVENTS/0/x")
	f.Add("/index.php/uapi/index.php/extensions/@me/1/phoneCallEvents.json/0/x")
	f.Add("/uapi/extensions/@me/1%252F%C0%AFphoneCallEvents~/0/x")
	f.Add("/uapi%C0%AFextensions/@me/1/%C1%B0honeCallEvents")
	f.Add("/uapi/exten%C5%BFions/@me/1/phoneCallEvent%C5%BF/0/x")
	f.Add("/uapi/extens%C4%B1ons/@me/1/phoneCallEvents")
	rt := testRouter(f)
	f.Fuzz(func(t *testing.T, path string) {
		r, shape, on, err := rt.Match(path)
		if !on {
			if err != nil || r != (Route{}) {
				t.Fatalf("off route with %v %+v", err, r)
			}
			if backendSeesRoute(path) {
				t.Fatalf("%q passes through, but a normalizing backend sees the route in it", path)
			}
			return
		}
		if err != nil {
			if r != (Route{}) {
				t.Fatalf("error %v with route %+v", err, r)
			}
			return
		}
		if r.Shape() != shape || !validUserID(r.UserID) || !validExtension(r.Extension) ||
			shape >= ShapeType && !rt.validType(r.EventType) || shape == ShapeItem && !rt.validID(r.EventID) {
			t.Fatalf("accepted invalid route %+v (shape %d) from %q", r, shape, path)
		}
		cp := rt.CanonicalPath(r)
		r2, _, on2, err2 := rt.Match(cp)
		if !on2 || err2 != nil || r2 != r {
			t.Fatalf("canonical path %q of %q re-matches as %+v %v %v", cp, path, r2, on2, err2)
		}
	})
}

// backendSeesRoute is an independent model of a lenient PHP backend: it
// decodes the whole path until nothing changes, folds overlong UTF-8 for
// '/', '.', '\' and the letters, takes backslashes for slashes, cuts each
// segment at ';' and NUL and drops trailing dots and spaces, cleans it
// (merged slashes, dot segments), skips PHP scripts before "extensions"
// and matches /uapi/extensions/ followed somewhere by a phoneCallEvents
// segment, in any letter case, after leading blanks and before a suffix
// such as .json or ~.
func backendSeesRoute(escaped string) bool {
	if !strings.HasPrefix(escaped, "/") { // not an origin-form request path
		return false
	}
	dec := escaped
	for i := 0; i < 5; i++ {
		d, err := url.PathUnescape(dec)
		if err != nil || d == dec {
			break
		}
		dec = d
	}
	dec = foldOverlongModel(dec)
	// The dotless i and the capital I with dot are i to mb_strtolower; Go's
	// (?i) folds the rest (ſ is s, the Kelvin sign is k).
	dec = strings.NewReplacer("ı", "i", "İ", "i").Replace(dec)
	raw := strings.Split(strings.ReplaceAll(dec, "\\", "/"), "/")
	for i, seg := range raw {
		if j := strings.IndexAny(seg, ";\x00"); j >= 0 {
			seg = seg[:j]
		}
		if seg != "." && seg != ".." {
			seg = strings.TrimRight(seg, ". ")
		}
		raw[i] = seg
	}
	clean := pathpkg.Clean("/" + strings.Join(raw, "/"))
	var segs []string
	for _, seg := range strings.Split(strings.TrimPrefix(clean, "/"), "/") {
		if len(segs) < 2 && phpScript.MatchString(seg) {
			continue
		}
		segs = append(segs, seg)
	}
	if len(segs) < 3 || !lit("uapi").MatchString(segs[0]) || !lit("extensions").MatchString(segs[1]) {
		return false
	}
	for _, seg := range segs[2:] {
		if lit("phoneCallEvents").MatchString(seg) {
			return true
		}
	}
	return false
}

var (
	phpScript = regexp.MustCompile(`(?i)\.(php[0-9]*|phtml)$`)
	lits      = map[string]*regexp.Regexp{"uapi": litRE("uapi"), "extensions": litRE("extensions"), "phoneCallEvents": litRE("phoneCallEvents")}
)

// foldOverlongModel decodes each overlong UTF-8 sequence of an ASCII
// character (2, 3 or 4 bytes) to the character.
func foldOverlongModel(s string) string {
	b := []byte(s)
	var out []byte
	for i := 0; i < len(b); i++ {
		for n := 2; n <= 4; n++ {
			if i+n > len(b) {
				break
			}
			lead := [...]byte{2: 0xc0, 3: 0xe0, 4: 0xf0}[n]
			mask := [...]byte{2: 0xfe, 3: 0xff, 4: 0xff}[n]
			if b[i]&mask != lead {
				continue
			}
			v, ok := 0, true
			if n == 2 {
				v = int(b[i] & 1)
			}
			for _, c := range b[i+1 : i+n] {
				ok = ok && c&0xc0 == 0x80
				v = v<<6 | int(c&0x3f)
			}
			if ok && v < 0x80 {
				out = append(out, byte(v))
				i += n - 1
				goto next
			}
		}
		out = append(out, b[i])
	next:
	}
	return string(out)
}

func lit(name string) *regexp.Regexp { return lits[name] }

func litRE(name string) *regexp.Regexp {
	return regexp.MustCompile(`(?is)^[\x00-\x20\x7f]*` + name + `((?-i:[.~\x00-\x20\x7f-\x{10FFFF}]).*)?$`)
}

func FuzzAppendNormalized(f *testing.F) {
	f.Add([]byte(pagePayload), false, false)
	f.Add([]byte(pageFullPayload), true, false)
	f.Add([]byte(`{"type":1,"method":"GET","url":"http://e.example/"}`), false, true)
	allowed := map[string]bool{"type": true, "id": true, "method": true, "note": true, "url": true, "status": true}
	f.Fuzz(func(t *testing.T, body []byte, allowPrivate, create bool) {
		rules := PayloadRules{AllowPrivateURLs: allowPrivate, EventTypes: []string{"0", "1", "2"}, IDMinLength: 1, IDMaxLength: 32}
		op, route := OpUpdate, pageRoute
		if create {
			op, route = OpCreate, Route{UserID: "@me", Extension: "1"}
		}
		out, err := AppendNormalized(nil, body, op, route, rules)
		if err != nil {
			if out != nil {
				t.Fatalf("output %q with error %v", out, err)
			}
			return
		}
		var in map[string]any
		if e := json.Unmarshal(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")), &in); e != nil {
			t.Fatalf("accepted %q which encoding/json rejects: %v", body, e)
		}
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("invalid output %q from %q", out, body)
		}
		var m map[string]any
		if e := json.Unmarshal(out, &m); e != nil {
			t.Fatal(e)
		}
		for k, v := range m {
			if !allowed[k] {
				t.Fatalf("output key %q in %q", k, out)
			}
			if _, ok := v.(string); !ok {
				t.Fatalf("output value of %q is %T in %q", k, v, out)
			}
		}
		if create && (m["type"] == nil || m["method"] == nil || m["url"] == nil) {
			t.Fatalf("create without a required field: %q", out)
		}
		again, err := AppendNormalized(nil, out, op, route, rules)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("re-normalizing %q gives %q, %v", out, again, err)
		}
	})
}

func FuzzExtractToken(f *testing.F) {
	f.Add("Bearer abc", "", 1, 0)
	f.Add("Basic x", "Bearer abc", 1, 1)
	f.Fuzz(func(t *testing.T, header, query string, nh, nq int) {
		var auth, q []string
		for i := 0; i < nh&3; i++ {
			auth = append(auth, header)
		}
		for i := 0; i < nq&3; i++ {
			q = append(q, query)
		}
		tok, fromQuery, given, ok := ExtractToken(auth, q)
		if ok {
			if !given || !isB64Token(tok) {
				t.Fatalf("ok with token %q given=%v", tok, given)
			}
			if fromQuery && len(auth) == 1 {
				// fromQuery only for a query token without a Bearer header.
				if _, hGiven, _ := headerToken(header); hGiven {
					t.Fatalf("fromQuery with a Bearer header %q", header)
				}
			}
			if len(auth) > 1 || len(q) > 1 {
				t.Fatalf("ok with %d headers and %d parameters", len(auth), len(q))
			}
		} else if tok != "" || fromQuery {
			t.Fatalf("not ok but token %q fromQuery %v", tok, fromQuery)
		}
		if len(q) > 0 && !given {
			t.Fatal("query parameter present but not given")
		}
	})
}

func FuzzCheckWebhookURL(f *testing.F) {
	for _, s := range []string{"http://myevent.com/x", "http://0x7f.1/", "http://[::ffff:127.0.0.1]/", "https://u@8.8.8.8:443/?q#f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		strict := CheckWebhookURL(s, false)
		lax := CheckWebhookURL(s, true)
		if strict && !lax {
			t.Fatalf("%q accepted only when private URLs are not allowed", s)
		}
		if lax {
			u, err := url.Parse(s)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https" && !strings.EqualFold(u.Scheme, "http") && !strings.EqualFold(u.Scheme, "https")) || u.Hostname() == "" {
				t.Fatalf("%q accepted: %v", s, err)
			}
		}
	})
}
