package pce

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"unicode/utf8"
)

// refCheck is a slow reference for scanObject built on encoding/json: one
// object, valid UTF-8, no duplicate keys, nesting at most maxDepth. It does
// not look for lone surrogates.
func refCheck(body []byte) bool {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(body) || !json.Valid(body) || len(bytes.TrimLeft(body, " \t\r\n")) == 0 || bytes.TrimLeft(body, " \t\r\n")[0] != '{' {
		return false
	}
	type frame struct {
		obj    bool
		keys   map[string]bool
		expKey bool
	}
	var stack []*frame
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.expKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].obj {
					stack[len(stack)-1].expKey = true
				}
				continue
			}
			k := tok.(string)
			if top.keys[k] {
				return false
			}
			top.keys[k] = true
			top.expKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, keys: map[string]bool{}, expKey: true})
			if len(stack) > maxDepth {
				return false
			}
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			if len(stack) > maxDepth {
				return false
			}
			continue
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].expKey = true
		}
	}
}

func FuzzScanObject(f *testing.F) {
	for _, s := range []string{pagePayload, pageFullPayload, `{"a":{"a":[1,{"b":2,"c":"\u00e9"}]}}`, `{"a":1,"a":2}`, `{"x":[{},{"y":{}}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, ok := scanObject(body)
		ref := refCheck(body)
		if ok && !ref {
			t.Fatalf("scanObject accepts %q, the reference rejects it", body)
		}
		if !ok && ref && !bytes.Contains(body, []byte(`\u`)) {
			t.Fatalf("scanObject rejects %q, the reference accepts it", body)
		}
	})
}

func TestScanObjectAgreesWithReference(t *testing.T) {
	for _, s := range []string{
		pagePayload, pageFullPayload, `{}`, ` {"a" : [ 1 , 2 ] , "b" : { } } `,
		`{"a":1,"a":2}`, `{"a":{"b":1,"b":1}}`, `{"a":[{"b":1},{"b":1}]}`, `[]`, `{"a":01}`,
		`{"a":"\/"}`, `{"":1,"":2}`, `{"":{"":[]}}`,
	} {
		_, ok := scanObject([]byte(s))
		if ok != refCheck([]byte(s)) {
			t.Errorf("%s: scanObject %v, reference %v", s, ok, !ok)
		}
	}
}
