package pce

import "testing"

const (
	coll = "/uapi/extensions/@me/0003*210/phoneCallEvents"
	typ0 = coll + "/0"
	item = typ0 + "/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"
)

func TestResourceMatch(t *testing.T) {
	all := NewResource(testRouter(t), SetOf(AllOperations()...))
	v1 := NewResource(testRouter(t), SetOf(OpUpdate))
	creates := NewResource(testRouter(t), SetOf(OpCreate))
	hdr := func(v ...string) []string { return v }
	type want struct {
		action Action
		op     Operation
		method string
		err    *Error
		allow  string
	}
	for _, tc := range []struct {
		name string
		res  *Resource
		req  Request
		want want
	}{
		// The four operations, by method and shape.
		{"list collection", all, Request{Method: "GET", EscapedPath: coll}, want{Own, OpList, "GET", nil, ""}},
		{"list type", all, Request{Method: "get", EscapedPath: typ0}, want{Own, OpList, "GET", nil, ""}},
		{"list item", all, Request{Method: "HEAD", EscapedPath: item}, want{Own, OpList, "HEAD", nil, ""}},
		{"create", all, Request{Method: "POST", EscapedPath: coll + "/"}, want{Own, OpCreate, "POST", nil, ""}},
		{"update", all, Request{Method: "PUT", EscapedPath: item}, want{Own, OpUpdate, "PUT", nil, ""}},
		{"delete collection", all, Request{Method: "DELETE", EscapedPath: coll}, want{Own, OpDelete, "DELETE", nil, ""}},
		{"delete type", all, Request{Method: "DELETE", EscapedPath: typ0}, want{Own, OpDelete, "DELETE", nil, ""}},
		{"delete item", all, Request{Method: "DELETE", EscapedPath: item}, want{Own, OpDelete, "DELETE", nil, ""}},
		// An update names an item.
		{"update collection", all, Request{Method: "PUT", EscapedPath: coll}, want{Own, OpUpdate, "PUT", ErrTypeInvalid, ""}},
		{"update type", all, Request{Method: "PUT", EscapedPath: typ0}, want{Own, OpUpdate, "PUT", ErrIDInvalid, ""}},
		{"update bad type path", all, Request{Method: "PUT", EscapedPath: coll + "/9"}, want{Own, OpUpdate, "PUT", ErrTypeInvalid, ""}},
		// Positions, for every operation.
		{"list bad type", all, Request{Method: "GET", EscapedPath: coll + "/9"}, want{Own, OpList, "GET", ErrTypeInvalid, ""}},
		{"delete bad id", all, Request{Method: "DELETE", EscapedPath: typ0 + "/a-b"}, want{Own, OpDelete, "DELETE", ErrIDInvalid, ""}},
		{"create bad user", all, Request{Method: "POST", EscapedPath: "/uapi/extensions/@self/1/phoneCallEvents"}, want{Own, OpCreate, "POST", ErrUserInvalid, ""}},
		{"list bad extension", all, Request{Method: "GET", EscapedPath: "/uapi/extensions/@me/x/phoneCallEvents"}, want{Own, OpList, "GET", ErrExtensionInvalid, ""}},
		// 405 owning the whole resource, before the positions.
		{"patch", all, Request{Method: "PATCH", EscapedPath: item}, want{Own, OpNone, "PATCH", ErrMethodNotAllowed, "GET, HEAD, PUT, DELETE"}},
		{"post item", all, Request{Method: "POST", EscapedPath: item}, want{Own, OpNone, "POST", ErrMethodNotAllowed, "GET, HEAD, PUT, DELETE"}},
		{"post type", all, Request{Method: "POST", EscapedPath: typ0}, want{Own, OpNone, "POST", ErrMethodNotAllowed, "GET, HEAD, DELETE"}},
		{"patch collection", all, Request{Method: "PATCH", EscapedPath: coll}, want{Own, OpNone, "PATCH", ErrMethodNotAllowed, "GET, HEAD, POST, DELETE"}},
		{"post bad type", all, Request{Method: "POST", EscapedPath: coll + "/9"}, want{Own, OpNone, "POST", ErrMethodNotAllowed, "GET, HEAD, DELETE"}},
		{"trace", all, Request{Method: "TRACE", EscapedPath: item}, want{Own, OpNone, "TRACE", ErrMethodNotAllowed, "GET, HEAD, PUT, DELETE"}},
		// A disguised path is 400 for every method, never 405.
		{"disguised patch", all, Request{Method: "PATCH", EscapedPath: "/UAPI/extensions/@me/1/phoneCallEvents"}, want{Own, OpNone, "PATCH", ErrUserInvalid, ""}},
		{"disguised get", all, Request{Method: "GET", EscapedPath: "//uapi/extensions/@me/1/phoneCallEvents/0"}, want{Own, OpList, "GET", ErrUserInvalid, ""}},
		{"disguised post v1", v1, Request{Method: "POST", EscapedPath: "//uapi/extensions/@me/1/phoneCallEvents/0/x", Overrides: hdr("PUT")}, want{Own, OpUpdate, "PUT", ErrUserInvalid, ""}},
		{"disguised create", creates, Request{Method: "POST", EscapedPath: "/uapi/extensions/@me%2F1/phoneCallEvents"}, want{Own, OpCreate, "POST", ErrUserInvalid, ""}},
		// OPTIONS without an override passes (CORS preflight); with one it
		// is the override's.
		{"options", all, Request{Method: "OPTIONS", EscapedPath: item}, want{Pass, OpNone, "OPTIONS", nil, ""}},
		{"options override", all, Request{Method: "OPTIONS", EscapedPath: item, Overrides: hdr("PUT")}, want{Own, OpUpdate, "PUT", nil, ""}},
		{"override to options", all, Request{Method: "POST", EscapedPath: item, Overrides: hdr("OPTIONS")}, want{Own, OpNone, "POST", ErrRequestInvalid, ""}},
		// Overrides and _method pick the operation.
		{"post override delete", all, Request{Method: "POST", EscapedPath: coll, Overrides: hdr("delete")}, want{Own, OpDelete, "DELETE", nil, ""}},
		{"post _method put", all, Request{Method: "POST", EscapedPath: item, RawQuery: "%5Fmethod=PUT"}, want{Own, OpUpdate, "PUT", nil, ""}},
		{"get form delete", all, Request{Method: "POST", EscapedPath: typ0, Form: []string{"DELETE"}}, want{Own, OpDelete, "DELETE", nil, ""}},
		{"disagree", all, Request{Method: "POST", EscapedPath: item, Overrides: hdr("PUT"), RawQuery: "_method=DELETE"}, want{Own, OpNone, "POST", ErrRequestInvalid, ""}},
		{"disagree form", v1, Request{Method: "POST", EscapedPath: item, RawQuery: "_method=GET", Form: []string{"PUT"}}, want{Own, OpNone, "POST", ErrRequestInvalid, ""}},
		{"fragment", v1, Request{Method: "GET", EscapedPath: item, Fragment: true}, want{Own, OpList, "GET", ErrRequestInvalid, ""}},
		// Version 1: the update alone.
		{"v1 update", v1, Request{Method: "PUT", EscapedPath: item}, want{Own, OpUpdate, "PUT", nil, ""}},
		{"v1 list", v1, Request{Method: "GET", EscapedPath: item}, want{Pass, OpNone, "GET", nil, ""}},
		{"v1 patch", v1, Request{Method: "PATCH", EscapedPath: item}, want{Pass, OpNone, "PATCH", nil, ""}},
		{"v1 post item", v1, Request{Method: "POST", EscapedPath: item}, want{Pass, OpNone, "POST", nil, ""}},
		{"v1 update collection", v1, Request{Method: "PUT", EscapedPath: coll}, want{Own, OpUpdate, "PUT", ErrTypeInvalid, ""}},
		// The side door: a PUT whose override names an operation not owned.
		// A backend that ignores overrides on PUT (Symfony reads them on POST
		// only) would update unchecked: forwarded plainly, as the override.
		{"v1 put override get", v1, Request{Method: "PUT", EscapedPath: item, Overrides: hdr("GET")}, want{Plain, OpList, "GET", nil, ""}},
		{"v1 put _method get", v1, Request{Method: "put", EscapedPath: item, RawQuery: "_method=GET"}, want{Plain, OpList, "GET", nil, ""}},
		{"v1 put override patch", v1, Request{Method: "PUT", EscapedPath: item, Overrides: hdr("PATCH")}, want{Plain, OpNone, "PATCH", nil, ""}},
		{"create post override get", creates, Request{Method: "POST", EscapedPath: coll, Overrides: hdr("GET")}, want{Plain, OpList, "GET", nil, ""}},
		{"v1 get override put", v1, Request{Method: "GET", EscapedPath: item, Overrides: hdr("PUT")}, want{Own, OpUpdate, "PUT", nil, ""}},
		// Off the resource: untouched, overrides or not.
		{"presence", all, Request{Method: "PUT", EscapedPath: "/uapi/extensions/@me/1/presence", Overrides: hdr("PUT", "GET")}, want{Pass, OpNone, "", nil, ""}},
		{"other base", all, Request{Method: "DELETE", EscapedPath: "/other/extensions/@me/1/phoneCallEvents"}, want{Pass, OpNone, "", nil, ""}},
	} {
		m := tc.res.Match(&tc.req)
		got := want{m.Action, m.Op, m.Method, m.Err, m.Allow}
		if got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// The route of an owned request names as many values as the path has.
func TestResourceMatchRoute(t *testing.T) {
	all := NewResource(testRouter(t), SetOf(AllOperations()...))
	for path, want := range map[string]Route{
		coll:       {UserID: "@me", Extension: "0003*210"},
		typ0 + "/": {UserID: "@me", Extension: "0003*210", EventType: "0"},
		item:       {UserID: "@me", Extension: "0003*210", EventType: "0", EventID: "NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"},
	} {
		if m := all.Match(&Request{Method: "GET", EscapedPath: path}); m.Err != nil || m.Route != want {
			t.Errorf("GET %s: %+v %v", path, m.Route, m.Err)
		}
	}
}

// The forms a PHP backend takes for the resource, for every method and
// with any set of operations owned: the error of the first faulty
// position, never a pass-through.
func TestDisguisedPHPForms(t *testing.T) {
	const tail = "/extensions/@me/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"
	for _, tc := range []struct {
		path, query string
		err         *Error
	}{
		{"/uapi/index.php" + tail, "", ErrUserInvalid},
		{"/uapi/INDEX.PHP" + tail, "", ErrUserInvalid},
		{"/uapi.php" + tail, "", ErrUserInvalid},
		{"/index.php/uapi" + tail, "", ErrUserInvalid},
		{"/index.php5/uapi/app.phtml" + tail, "", ErrUserInvalid},
		{"/uapi/index.php", "_url=" + tail, ErrUserInvalid},
		{"/uapi/index.php", "_url=%2Fextensions%2F%40me%2F1%2FphoneCallEvents", ErrUserInvalid},
		{"/uapi/index.php", tail, ErrUserInvalid},
		{"/index.php", "r=/uapi" + tail, ErrUserInvalid},
		{"/uapi/", "q=" + tail + "&x=1", ErrUserInvalid},
		{"/uapi%2Fextensions/@me/1/phoneCallEvents", "", ErrUserInvalid},
		{"/uapi%252Fextensions/@me/1/phoneCallEvents", "", ErrUserInvalid},
		{"/uapi/extensions/@me/0003*210%252FphoneCallEvents%252F0%252Fx", "", ErrExtensionInvalid},
		{"/uapi/extensions/@me/0003*210%25252FphoneCallEvents/0/x", "", ErrExtensionInvalid},
		{"/uapi/extensions/@me/0003*210%C0%AFphoneCallEvents%C0%AF0%C0%AFx", "", ErrExtensionInvalid},
		{"/uapi%C0%AFextensions/@me/1/phoneCallEvents", "", ErrUserInvalid},
		{"/uapi/extensions/@me/1/%C1%B0honeCallEvents/0/x", "", ErrTypeInvalid},
		{"/uapi/extensions/@me/1/phoneCallEvents%09/0/x", "", ErrTypeInvalid},
		{"/uapi/extensions/@me/1/phoneCallEvents%0A/0/x", "", ErrTypeInvalid},
		{"/uapi/extensions/@me/1/%20phoneCallEvents/0/x", "", ErrTypeInvalid},
		{"/uapi/extensions/@me/1/phoneCallEvents.json/0/x", "", ErrTypeInvalid},
		{"/uapi/extensions/@me/1/phoneCallEvents~/0/x", "", ErrTypeInvalid},
		{"/uapi/extensions/@me/1/phoneCallEvents%7E", "", ErrTypeInvalid},
		{"/uapi/extensions.json/@me/1/phoneCallEvents", "", ErrUserInvalid},
		{"/uapi%09/extensions/@me/1/phoneCallEvents", "", ErrUserInvalid},
		// Letters that fold to ASCII ones (found by probing a build).
		{"/uapi/extensions/@me/1/phoneCallEvent%C5%BF/0/x", "", ErrTypeInvalid},
		{"/uapi/exten%C5%BFions/@me/1/phoneCallEvents/0/x", "", ErrUserInvalid},
		{"/uapi/extens%C4%B1ons/@me/1/phoneCallEvents", "", ErrUserInvalid},
		{"/uapi/extensions/@me/1/phoneCallEvent\u017f/0/x", "", ErrTypeInvalid},
	} {
		for _, res := range []*Resource{
			NewResource(testRouter(t), SetOf(AllOperations()...)),
			NewResource(testRouter(t), SetOf(OpUpdate)),
			NewResource(testRouter(t), SetOf(OpList, OpCreate, OpDelete)),
		} {
			for _, method := range []string{"GET", "POST", "PUT", "DELETE", "PATCH"} {
				if _, on := res.Locate(tc.path, tc.query); !on {
					t.Errorf("%s?%s: not on the resource", tc.path, tc.query)
				}
				m := res.Match(&Request{Method: method, EscapedPath: tc.path, RawQuery: tc.query})
				if m.Action != Own || m.Err != tc.err {
					t.Errorf("%s %s?%s (owning %b): %v %v, want %v", method, tc.path, tc.query, res.ops, m.Action, m.Err, tc.err)
				}
			}
		}
	}
	// Near misses stay someone else's.
	all := NewResource(testRouter(t), SetOf(AllOperations()...))
	for _, tc := range []struct{ path, query string }{
		{"/uapi/extensions/@me/1/phoneCallEventsX/0/x", ""},
		{"/uapi/extensions/@me/1/phoneCallEvents-v2/0/x", ""},
		{"/uapi-v2/extensions/@me/1/phoneCallEvents", ""},
		{"/uapi/extensions/@me/1/presence", "next=%2Fother%2FphoneCallEvents"},
		{"/uapi/extensions/@me/1/presence", "next=" + "/uapi/extensions/@me/1/phoneCallEvents"},
		{"/other/index.php", "_url=/other/phoneCallEvents"},
		{"/uapi/index.php/users/@me", ""},
		{"/uapi/index.php", "_url=/extensions/@me/1/presence"},
	} {
		if m := all.Match(&Request{Method: "PUT", EscapedPath: tc.path, RawQuery: tc.query}); m.Action != Pass {
			t.Errorf("PUT %s?%s: %v %v, want a pass-through", tc.path, tc.query, m.Action, m.Err)
		}
	}
}
