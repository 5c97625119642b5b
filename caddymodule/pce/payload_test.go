package pce

import (
	"github.com/voipnow-pce/caddy-voipnow-pce/internal/testservers"
	"strings"
	"testing"
)

var pageRoute = Route{UserID: "@me", Extension: "0003*210", EventType: "0", EventID: "NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"}

const pagePayload = `{
  "method": "1",
  "note": "I want to use POST for my event"
}`

// The full PhoneCallEvent of the page's answer, as a client echoing a GET
// would send it.
const pageFullPayload = testservers.PageAnswer

func TestAppendNormalized(t *testing.T) {
	note1024 := strings.Repeat("é", 1000) + strings.Repeat("😀", 24)
	note1025 := note1024 + "a"
	tests := []struct {
		name string
		body string
		want string // canonical output when err is nil
		err  *Error
	}{
		// The page's examples.
		{"page example", pagePayload, `{"method":"1","note":"I want to use POST for my event"}`, nil},
		{"page answer echoed", pageFullPayload, `{"type":"0","id":"NqeyDRqo4FtabmFj8gNWq3hsiGNYyq","method":"1","note":"I want to use POST for my event","url":"http://myevent.com/SaveMyPhoneCallDetails","status":"1"}`, nil},
		{"empty object", `{}`, `{}`, nil},
		{"empty object ws", " \t\r\n{ \n } \r\n", `{}`, nil},
		{"bom", "\xef\xbb\xbf{\"status\":0}", `{"status":"0"}`, nil},
		{"field order", `{"note":"x","method":1}`, `{"method":"1","note":"x"}`, nil},
		{"unknown dropped", `{"foo":{"a":[1,2,{"b":null}]},"status":"1","modified":"x","links":{}}`, `{"status":"1"}`, nil},
		{"escaped key", `{"\u0073tatus":1}`, `{"status":"1"}`, nil},

		// Structure.
		{"empty", ``, "", ErrPayloadInvalid},
		{"ws only", "  \n", "", ErrPayloadInvalid},
		{"array", `[]`, "", ErrPayloadInvalid},
		{"string", `"x"`, "", ErrPayloadInvalid},
		{"null", `null`, "", ErrPayloadInvalid},
		{"number", `1`, "", ErrPayloadInvalid},
		{"two objects", `{}{}`, "", ErrPayloadInvalid},
		{"trailing garbage", `{"status":1}x`, "", ErrPayloadInvalid},
		{"trailing comma", `{"status":1,}`, "", ErrPayloadInvalid},
		{"trailing nul", "{}\x00", "", ErrPayloadInvalid},
		{"unterminated", `{"status":1`, "", ErrPayloadInvalid},
		{"unterminated string", `{"note":"abc}`, "", ErrPayloadInvalid},
		{"single quotes", `{'status':1}`, "", ErrPayloadInvalid},
		{"unquoted key", `{status:1}`, "", ErrPayloadInvalid},
		{"double bom", "\xef\xbb\xbf\xef\xbb\xbf{}", "", ErrPayloadInvalid},
		{"bom after ws", " \xef\xbb\xbf{}", "", ErrPayloadInvalid},
		{"invalid utf8", "{\"note\":\"\xff\"}", "", ErrPayloadInvalid},
		{"invalid utf8 unknown key", "{\"x\xc3\":1}", "", ErrPayloadInvalid},
		{"overlong utf8", "{\"note\":\"\xc0\xaf\"}", "", ErrPayloadInvalid},
		{"utf8 surrogate", "{\"note\":\"\xed\xa0\x80\"}", "", ErrPayloadInvalid},
		{"raw control char", "{\"note\":\"a\nb\"}", "", ErrPayloadInvalid},
		{"bad escape", `{"note":"\x"}`, "", ErrPayloadInvalid},
		{"short unicode escape", `{"note":"\u12"}`, "", ErrPayloadInvalid},
		{"lone high surrogate", `{"note":"\ud83d"}`, "", ErrPayloadInvalid},
		{"lone high surrogate in unknown", `{"x":["\ud83dx"]}`, "", ErrPayloadInvalid},
		{"lone low surrogate", `{"note":"\ude00"}`, "", ErrPayloadInvalid},
		{"reversed surrogates", `{"note":"\ude00\ud83d"}`, "", ErrPayloadInvalid},
		{"high then non-low", `{"note":"\ud83d\u0041"}`, "", ErrPayloadInvalid},
		{"duplicate", `{"note":"a","note":"b"}`, "", ErrPayloadInvalid},
		{"duplicate unknown", `{"x":1,"x":2}`, "", ErrPayloadInvalid},
		{"duplicate escaped", `{"note":"a","n\u006fte":"b"}`, "", ErrPayloadInvalid},
		{"duplicate escaped unknown", `{"a":1,"\u0061":2}`, "", ErrPayloadInvalid},
		{"duplicate nested", `{"links":{"self":"a","self":"b"}}`, "", ErrPayloadInvalid},
		{"duplicate nested in array", `{"x":[{"a":1},{"b":1,"b":2}]}`, "", ErrPayloadInvalid},
		{"same key in sibling objects ok", `{"x":[{"a":1},{"a":1}],"y":{"a":{"a":1}}}`, `{}`, nil},
		{"bad number leading zero", `{"x":01}`, "", ErrPayloadInvalid},
		{"bad number plus", `{"x":+1}`, "", ErrPayloadInvalid},
		{"bad number dot", `{"x":1.}`, "", ErrPayloadInvalid},
		{"bad number exp", `{"x":1e}`, "", ErrPayloadInvalid},
		{"bad number hex", `{"x":0x1}`, "", ErrPayloadInvalid},
		{"NaN", `{"x":NaN}`, "", ErrPayloadInvalid},
		{"good numbers", `{"x":[-0,0.5,1e10,-1.5E-3,2e+2]}`, `{}`, nil},
		{"bad literal", `{"x":tru}`, "", ErrPayloadInvalid},
		{"literal glued", `{"x":truex}`, "", ErrPayloadInvalid},
		{"comment", `{"x":1/*c*/}`, "", ErrPayloadInvalid},
		{"too deep", `{"x":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`, "", ErrPayloadInvalid},
		{"deep ok", `{"x":` + strings.Repeat("[", 63) + strings.Repeat("]", 63) + `}`, `{}`, nil},
		// Structure is checked before the fields.
		{"bad field then bad json", `{"type":"9",}`, "", ErrPayloadInvalid},
		{"bad field then duplicate", `{"type":"9","x":1,"x":1}`, "", ErrPayloadInvalid},

		// type.
		{"type string", `{"type":"0"}`, `{"type":"0"}`, nil},
		{"type number", `{"type":0}`, `{"type":"0"}`, nil},
		{"type escaped", `{"type":"\u0030"}`, `{"type":"0"}`, nil},
		{"type other", `{"type":"1"}`, "", ErrTypeInvalid},
		{"type 00", `{"type":"00"}`, "", ErrTypeInvalid},
		{"type 0.0", `{"type":0.0}`, "", ErrTypeInvalid},
		{"type 1e0", `{"type":0e0}`, "", ErrTypeInvalid},
		{"type -0", `{"type":-0}`, "", ErrTypeInvalid},
		{"type null", `{"type":null}`, "", ErrTypeInvalid},
		{"type bool", `{"type":false}`, "", ErrTypeInvalid},
		{"type empty", `{"type":""}`, "", ErrTypeInvalid},
		{"type array", `{"type":["0"]}`, "", ErrTypeInvalid},
		{"type space", `{"type":" 0"}`, "", ErrTypeInvalid},

		// id.
		{"id", `{"id":"NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"}`, `{"id":"NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"}`, nil},
		{"id other", `{"id":"MyPhoneCallEvent"}`, "", ErrIDInvalid},
		{"id case", `{"id":"nqeyDRqo4FtabmFj8gNWq3hsiGNYyq"}`, "", ErrIDInvalid},
		{"id null", `{"id":null}`, "", ErrIDInvalid},
		{"id number", `{"id":5}`, "", ErrIDInvalid},

		// method.
		{"method 0", `{"method":0}`, `{"method":"0"}`, nil},
		{"method 1", `{"method":1}`, `{"method":"1"}`, nil},
		{"method \"0\"", `{"method":"0"}`, `{"method":"0"}`, nil},
		{"method GET", `{"method":"GET"}`, `{"method":"0"}`, nil},
		{"method get", `{"method":"get"}`, `{"method":"0"}`, nil},
		{"method post", `{"method":"post"}`, `{"method":"1"}`, nil},
		{"method PoSt", `{"method":"PoSt"}`, `{"method":"1"}`, nil},
		{"method escaped POST", `{"method":"\u0050\u004f\u0053\u0054"}`, `{"method":"1"}`, nil},
		{"method 2", `{"method":2}`, "", ErrMethodInvalid},
		{"method 1.0", `{"method":1.0}`, "", ErrMethodInvalid},
		{"method -0", `{"method":-0}`, "", ErrMethodInvalid},
		{"method PUT", `{"method":"PUT"}`, "", ErrMethodInvalid},
		{"method empty", `{"method":""}`, "", ErrMethodInvalid},
		{"method null", `{"method":null}`, "", ErrMethodInvalid},
		{"method true", `{"method":true}`, "", ErrMethodInvalid},
		{"method ' 1'", `{"method":" 1"}`, "", ErrMethodInvalid},

		// note.
		{"note empty", `{"note":""}`, `{"note":""}`, nil},
		{"note escapes kept", `{"note":"a\"b\\c\/d\n\u00e9\ud83d\ude00"}`, `{"note":"a\"b\\c\/d\n\u00e9\ud83d\ude00"}`, nil},
		{"note 1024 multibyte", `{"note":"` + note1024 + `"}`, `{"note":"` + note1024 + `"}`, nil},
		{"note 1025 multibyte", `{"note":"` + note1025 + `"}`, "", ErrNoteInvalid},
		{"note 1024 ascii", `{"note":"` + strings.Repeat("a", 1024) + `"}`, `{"note":"` + strings.Repeat("a", 1024) + `"}`, nil},
		{"note 1025 ascii", `{"note":"` + strings.Repeat("a", 1025) + `"}`, "", ErrNoteInvalid},
		{"note 1024 escaped pairs", `{"note":"` + strings.Repeat(`\ud83d\ude00`, 1024) + `"}`, `{"note":"` + strings.Repeat(`\ud83d\ude00`, 1024) + `"}`, nil},
		{"note 1025 escaped", `{"note":"` + strings.Repeat(`\n`, 1025) + `"}`, "", ErrNoteInvalid},
		{"note number", `{"note":1}`, "", ErrNoteInvalid},
		{"note null", `{"note":null}`, "", ErrNoteInvalid},
		{"note object", `{"note":{}}`, "", ErrNoteInvalid},

		// url.
		{"url", `{"url":"https://example.com/hook?a=1"}`, `{"url":"https://example.com/hook?a=1"}`, nil},
		{"url escaped kept", `{"url":"http:\/\/myevent.com\/x"}`, `{"url":"http:\/\/myevent.com\/x"}`, nil},
		{"url private", `{"url":"http://127.0.0.1/"}`, "", ErrURLInvalid},
		{"url metadata", `{"url":"http://169.254.169.254/"}`, "", ErrURLInvalid},
		{"url escaped private", `{"url":"http://\u006cocalhost/"}`, "", ErrURLInvalid},
		{"url escaped newline", `{"url":"http://example.com/\n"}`, "", ErrURLInvalid},
		{"url relative", `{"url":"/x"}`, "", ErrURLInvalid},
		{"url ftp", `{"url":"ftp://example.com/"}`, "", ErrURLInvalid},
		{"url empty", `{"url":""}`, "", ErrURLInvalid},
		{"url null", `{"url":null}`, "", ErrURLInvalid},
		{"url number", `{"url":1}`, "", ErrURLInvalid},

		// status.
		{"status 0", `{"status":0}`, `{"status":"0"}`, nil},
		{"status \"1\"", `{"status":"1"}`, `{"status":"1"}`, nil},
		{"status enabled", `{"status":"enabled"}`, "", ErrStatusInvalid},
		{"status GET", `{"status":"GET"}`, "", ErrStatusInvalid},
		{"status 2", `{"status":2}`, "", ErrStatusInvalid},
		{"status true", `{"status":true}`, "", ErrStatusInvalid},
		{"status null", `{"status":null}`, "", ErrStatusInvalid},

		// First failure wins, in field order, whatever the key order.
		{"order type first", `{"status":9,"url":1,"note":1,"method":9,"id":"x","type":"9"}`, "", ErrTypeInvalid},
		{"order id", `{"status":9,"url":1,"note":1,"method":9,"id":"x","type":"0"}`, "", ErrIDInvalid},
		{"order method", `{"status":9,"url":1,"note":1,"method":9}`, "", ErrMethodInvalid},
		{"order note", `{"status":9,"url":1,"note":1,"method":"post"}`, "", ErrNoteInvalid},
		{"order url", `{"status":9,"url":1,"note":"n"}`, "", ErrURLInvalid},
		{"order status", `{"status":9,"url":"http://example.com/"}`, "", ErrStatusInvalid},
	}
	for _, tc := range tests {
		prefix := []byte("prefix:")
		out, err := AppendNormalized(prefix, []byte(tc.body), OpUpdate, pageRoute, PayloadRules{})
		if err != tc.err {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.err)
			continue
		}
		if err == nil && string(out) != "prefix:"+tc.want {
			t.Errorf("%s: out = %s, want %s", tc.name, out, tc.want)
		}
		if err != nil && string(out) != "prefix:" {
			t.Errorf("%s: dst changed on error: %q", tc.name, out)
		}
	}
}

func TestAppendNormalizedAllowPrivate(t *testing.T) {
	body := []byte(`{"url":"http://10.0.0.5:8080/hook"}`)
	if _, err := AppendNormalized(nil, body, OpUpdate, pageRoute, PayloadRules{}); err != ErrURLInvalid {
		t.Errorf("private url, not allowed: %v", err)
	}
	out, err := AppendNormalized(nil, body, OpUpdate, pageRoute, PayloadRules{AllowPrivateURLs: true})
	if err != nil || string(out) != `{"url":"http://10.0.0.5:8080/hook"}` {
		t.Errorf("private url, allowed: %s %v", out, err)
	}
	if _, err := AppendNormalized(nil, []byte(`{"url":"gopher://10.0.0.5/"}`), OpUpdate, pageRoute, PayloadRules{AllowPrivateURLs: true}); err != ErrURLInvalid {
		t.Errorf("bad scheme with private allowed: %v", err)
	}
}

func TestAppendNormalizedNumericRoute(t *testing.T) {
	r := Route{UserID: "12", Extension: "210", EventType: "2", EventID: "123"}
	out, err := AppendNormalized(nil, []byte(`{"type":2,"id":123}`), OpUpdate, r, PayloadRules{})
	if err != nil || string(out) != `{"type":"2","id":"123"}` {
		t.Errorf("numbers: %s %v", out, err)
	}
	if _, err := AppendNormalized(nil, []byte(`{"type":2,"id":123.0}`), OpUpdate, r, PayloadRules{}); err != ErrIDInvalid {
		t.Errorf("123.0: %v", err)
	}
}

func TestDuplicateKeysManyKeys(t *testing.T) {
	// Enough keys to switch duplicate detection to its map.
	var b strings.Builder
	b.WriteString(`{"status":1`)
	for i := 0; i < 200; i++ {
		b.WriteString(`,"k`)
		b.WriteString(strings.Repeat("x", i))
		b.WriteString(`":1`)
	}
	ok := b.String() + "}"
	if out, err := AppendNormalized(nil, []byte(ok), OpUpdate, pageRoute, PayloadRules{}); err != nil || string(out) != `{"status":"1"}` {
		t.Fatalf("many keys: %s %v", out, err)
	}
	for _, dup := range []string{`,"k":2}`, `,"status":2}`, `,"k\u0078x":2}`} {
		if _, err := AppendNormalized(nil, []byte(b.String()+dup), OpUpdate, pageRoute, PayloadRules{}); err != ErrPayloadInvalid {
			t.Errorf("duplicate %s after many keys: %v", dup, err)
		}
	}
}

// A create requires type (its own error spelling), method and url; its id
// is optional and checked as an eventId; every other field is the
// update's, by the same validators.
func TestAppendNormalizedCreate(t *testing.T) {
	rules := PayloadRules{EventTypes: []string{"0", "1", "2"}, IDMinLength: 1, IDMaxLength: 32}
	collection := Route{UserID: "@me", Extension: "0003*210"}
	const base = `"method":"0","url":"http://myevent.com/x"`
	for _, tc := range []struct {
		body, want string
		err        *Error
	}{
		{`{"type":"0",` + base + `}`, `{"type":"0","method":"0","url":"http://myevent.com/x"}`, nil},
		{`{"type":2,"method":"post","url":"https://e.example/","note":"n","status":1,"id":"Abc123","links":{}}`,
			`{"type":"2","id":"Abc123","method":"1","note":"n","url":"https://e.example/","status":"1"}`, nil},
		{`{"type":"1","id":42,` + base + `}`, `{"type":"1","id":"42","method":"0","url":"http://myevent.com/x"}`, nil},
		{`{` + base + `}`, "", ErrCreateTypeInvalid},
		{`{"type":null,` + base + `}`, "", ErrCreateTypeInvalid},
		{`{"type":"3",` + base + `}`, "", ErrCreateTypeInvalid},
		{`{"type":"00",` + base + `}`, "", ErrCreateTypeInvalid},
		{`{"type":0.0,` + base + `}`, "", ErrCreateTypeInvalid},
		{`{"type":true,` + base + `}`, "", ErrCreateTypeInvalid},
		{`{"type":"3","method":"9"}`, "", ErrCreateTypeInvalid}, // type first
		{`{"type":"0","id":"a-b",` + base + `}`, "", ErrIDInvalid},
		{`{"type":"0","id":1e3,` + base + `}`, "", ErrIDInvalid},
		{`{"type":"0","id":10.0,` + base + `}`, "", ErrIDInvalid},
		{`{"type":"0","id":-1,` + base + `}`, "", ErrIDInvalid},
		{`{"type":"0","id":"",` + base + `}`, "", ErrIDInvalid},
		{`{"type":"0","id":"` + strings.Repeat("a", 33) + `",` + base + `}`, "", ErrIDInvalid},
		{`{"type":"0","url":"http://myevent.com/x"}`, "", ErrMethodInvalid},
		{`{"type":"0","method":null,"url":"http://myevent.com/x"}`, "", ErrMethodInvalid},
		{`{"type":"0","method":"0"}`, "", ErrURLInvalid},
		{`{"type":"0","method":"0","note":"` + strings.Repeat("a", 1025) + `"}`, "", ErrNoteInvalid}, // note before url
		{`{"type":"0","method":"0","url":"http://169.254.169.254/latest/meta-data/"}`, "", ErrURLInvalid},
		{`{"type":"0",` + base + `,"status":2}`, "", ErrStatusInvalid},
		{`{"type":"0",` + base + `,"status":null}`, "", ErrStatusInvalid},
		{`[]`, "", ErrPayloadInvalid},
		{``, "", ErrPayloadInvalid},
	} {
		out, err := AppendNormalized(nil, []byte(tc.body), OpCreate, collection, rules)
		if err != tc.err || (err == nil && string(out) != tc.want) {
			t.Errorf("create %s = %s, %v; want %s, %v", tc.body, out, err, tc.want, tc.err)
		}
	}
	// The update of the same body keeps its own spelling of the type error.
	if _, err := AppendNormalized(nil, []byte(`{"type":"1"}`), OpUpdate, pageRoute, rules); err != ErrTypeInvalid {
		t.Errorf("update type: %v", err)
	}
}
