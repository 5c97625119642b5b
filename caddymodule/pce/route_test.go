package pce

import (
	"strings"
	"testing"
)

func testRouter(t testing.TB) *Router {
	t.Helper()
	rt, err := NewRouter(RouteRules{Base: "/uapi", EventTypes: []string{"0", "1", "2"}, IDMinLength: 1, IDMaxLength: 32})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func TestNewRouter(t *testing.T) {
	ok := []RouteRules{
		{Base: "/uapi", EventTypes: []string{"0", "1", "2"}, IDMinLength: 1, IDMaxLength: 32},
		{Base: "", EventTypes: []string{"0"}, IDMinLength: 32, IDMaxLength: 32},
		{Base: "/api/v1", EventTypes: []string{"0", "1", "2", "3", "4"}, IDMinLength: 1, IDMaxLength: 1024},
	}
	for _, r := range ok {
		if _, err := NewRouter(r); err != nil {
			t.Errorf("NewRouter(%+v): %v", r, err)
		}
	}
	bad := []RouteRules{
		{Base: "uapi", EventTypes: []string{"0"}, IDMinLength: 1, IDMaxLength: 32},
		{Base: "/uapi/", EventTypes: []string{"0"}, IDMinLength: 1, IDMaxLength: 32},
		{Base: "/", EventTypes: []string{"0"}, IDMinLength: 1, IDMaxLength: 32},
		{Base: "/a//b", EventTypes: []string{"0"}, IDMinLength: 1, IDMaxLength: 32},
		{Base: "/a/../b", EventTypes: []string{"0"}, IDMinLength: 1, IDMaxLength: 32},
		{Base: "/a%2Fb", EventTypes: []string{"0"}, IDMinLength: 1, IDMaxLength: 32},
		{Base: "/uapi", EventTypes: nil, IDMinLength: 1, IDMaxLength: 32},
		{Base: "/uapi", EventTypes: []string{""}, IDMinLength: 1, IDMaxLength: 32},
		{Base: "/uapi", EventTypes: []string{"0/1"}, IDMinLength: 1, IDMaxLength: 32},
		{Base: "/uapi", EventTypes: []string{"0", "x"}, IDMinLength: 1, IDMaxLength: 32},
		{Base: "/uapi", EventTypes: []string{"0"}, IDMinLength: 0, IDMaxLength: 32},
		{Base: "/uapi", EventTypes: []string{"0"}, IDMinLength: 33, IDMaxLength: 32},
		{Base: "/uapi", EventTypes: []string{"0"}, IDMinLength: 1, IDMaxLength: 1025},
	}
	for _, r := range bad {
		if _, err := NewRouter(r); err == nil {
			t.Errorf("NewRouter(%+v) accepted", r)
		}
	}
}

func TestMatch(t *testing.T) {
	rt := testRouter(t)
	id32 := strings.Repeat("a", 32)
	tests := []struct {
		path    string
		onRoute bool
		err     *Error
		want    Route
	}{
		// The page's examples.
		{"/uapi/extensions/@me/0003*210/phoneCallEvents/0/MyPhoneCallEvent", true, nil, Route{"@me", "0003*210", "0", "MyPhoneCallEvent"}},
		{"/uapi/extensions/@me/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq", true, nil, Route{"@me", "0003*210", "0", "NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"}},
		{"/uapi/extensions/@viewer/210/phoneCallEvents/1/x", true, nil, Route{"@viewer", "210", "1", "x"}},
		{"/uapi/extensions/@owner/210/phoneCallEvents/2/x", true, nil, Route{"@owner", "210", "2", "x"}},
		{"/uapi/extensions/12345/210/phoneCallEvents/2/x", true, nil, Route{"12345", "210", "2", "x"}},
		{"/uapi/extensions/12345678901234567890/210/phoneCallEvents/2/x", true, nil, Route{"12345678901234567890", "210", "2", "x"}},
		// Percent-decoding, once.
		{"/uapi/extensions/%40me/0003%2A210/phoneCallEvents/0/MyPhoneCallEvent", true, nil, Route{"@me", "0003*210", "0", "MyPhoneCallEvent"}},
		{"/uapi/extensions/%40me/0003%2a210/phoneCall%45vents/%30/My%50honeCallEvent", true, nil, Route{"@me", "0003*210", "0", "MyPhoneCallEvent"}},
		{"/%75api/extensions/@me/1/phoneCallEvents/0/x", true, nil, Route{"@me", "1", "0", "x"}},
		{"/uapi/extensions/@me/1/phonecallevents/0/x", true, nil, Route{"@me", "1", "0", "x"}},
		{"/uapi/extensions/@me/1/PHONECALLEVENTS/0/x", true, nil, Route{"@me", "1", "0", "x"}},
		// One trailing slash accepted, two not.
		{"/uapi/extensions/@me/1/phoneCallEvents/0/x/", true, nil, Route{"@me", "1", "0", "x"}},
		{"/uapi/extensions/@me/1/phoneCallEvents/0/x//", true, ErrIDInvalid, Route{}},
		// Id length boundaries.
		{"/uapi/extensions/@me/1/phoneCallEvents/0/" + id32, true, nil, Route{"@me", "1", "0", id32}},
		{"/uapi/extensions/@me/1/phoneCallEvents/0/" + id32 + "a", true, ErrIDInvalid, Route{}},

		// Pass-through.
		{"/uapi/extensions/@me/1/presence", false, nil, Route{}},
		{"/uapi/extensions/@me/1/phoneCalls/0/x", false, nil, Route{}},
		{"/uapi/extensions/@me", false, nil, Route{}},
		{"/uapi/extensions", false, nil, Route{}},
		{"/uapi/extensions/", false, nil, Route{}},
		{"/uapi", false, nil, Route{}},
		{"/", false, nil, Route{}},
		{"", false, nil, Route{}},
		{"*", false, nil, Route{}},
		{"/other/extensions/@me/1/phoneCallEvents/0/x", false, nil, Route{}},
		// Disguised routes: a backend that folds case, merges slashes,
		// decodes %2F or resolves dot segments would see the route.
		{"/UAPI/extensions/@me/1/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},
		{"/uapi/Extensions/@me/1/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},
		{"//uapi/extensions/@me/1/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},
		{"/uapi//extensions/@me/1/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},
		{"/x/../uapi/extensions/@me/1/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},
		{"/./uapi/extensions/@me/1/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},
		{"/uapi%2Fextensions/@me/1/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},
		{"/%75api/extensions/@me/1/phoneCallEvents/0/x", true, nil, Route{"@me", "1", "0", "x"}},
		{"//uapi/extensions/@me/1/presence", false, nil, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents%00/0/x", true, ErrTypeInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents%20/0/x", true, ErrTypeInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents./0/x", true, ErrTypeInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents;a/0/x", true, ErrTypeInvalid, Route{}},
		{"/uapi;a/extensions/@me/1/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},
		{"/uapi/extensions%00/@me/1/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},
		{"/uapi/extensions/@me/1/presence;phoneCallEvents", false, nil, Route{}},
		{"/uapiX/extensions/@me/1/phoneCallEvents/0/x", false, nil, Route{}},
		{"/extensions/@me/1/phoneCallEvents/0/x", false, nil, Route{}},
		{"/x/uapi/extensions/@me/1/phoneCallEvents/0/x", false, nil, Route{}},
		{"/uapi/users/@me/phoneCallEvents/0/x", false, nil, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents%2F0/x", true, ErrTypeInvalid, Route{}},
		{"/uapi/extensions/@me%2F1/phoneCallEvents%2F0/x", true, ErrUserInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEventsX/0/x", false, nil, Route{}},

		// userId.
		{"/uapi/extensions/@self/1/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},
		{"/uapi/extensions/@ME/1/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},
		{"/uapi/extensions/123456789012345678901/1/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},
		{"/uapi/extensions/-1/1/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},
		{"/uapi/extensions//1/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},
		{"/uapi/extensions/./1/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},
		{"/uapi/extensions/../1/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},
		{"/uapi/extensions/%2E%2E/1/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},
		{"/uapi/extensions/@me%00/1/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},
		{"/uapi/extensions/%4/1/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},
		{"/uapi/extensions/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents/0/x?", true, ErrIDInvalid, Route{}},

		// extension.
		{"/uapi/extensions/@me/@self/phoneCallEvents/0/x", true, ErrExtensionInvalid, Route{}},
		{"/uapi/extensions/@me/***/phoneCallEvents/0/x", true, ErrExtensionInvalid, Route{}},
		{"/uapi/extensions/@me/12a/phoneCallEvents/0/x", true, ErrExtensionInvalid, Route{}},
		{"/uapi/extensions/@me/" + strings.Repeat("1", 65) + "/phoneCallEvents/0/x", true, ErrExtensionInvalid, Route{}},
		{"/uapi/extensions/@me/" + strings.Repeat("1", 64) + "/phoneCallEvents/0/x", true, nil, Route{"@me", strings.Repeat("1", 64), "0", "x"}},
		{"/uapi/extensions/@me//phoneCallEvents/0/x", true, ErrExtensionInvalid, Route{}},
		{"/uapi/extensions/@me/./phoneCallEvents/0/x", true, ErrExtensionInvalid, Route{}},
		{"/uapi/extensions/@me/..%2F1/phoneCallEvents/0/x", true, ErrExtensionInvalid, Route{}},
		{"/uapi/extensions/@me/1%2F2/phoneCallEvents/0/x", true, ErrExtensionInvalid, Route{}},
		{"/uapi/extensions/@me/1%00/phoneCallEvents/0/x", true, ErrExtensionInvalid, Route{}},
		{"/uapi/extensions/@me/1%252A/phoneCallEvents/0/x", true, ErrExtensionInvalid, Route{}},
		{"/uapi/extensions/@me/phoneCallEvents/0/x", true, ErrExtensionInvalid, Route{}},
		{"/uapi/extensions/@me/1/2/phoneCallEvents/0/x", true, ErrExtensionInvalid, Route{}},
		{"/uapi/extensions/@bad/1/2/phoneCallEvents/0/x", true, ErrUserInvalid, Route{}},

		// eventType.
		{"/uapi/extensions/@me/1/phoneCallEvents/3/x", true, ErrTypeInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents/00/x", true, ErrTypeInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents//x", true, ErrTypeInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents/", true, ErrTypeInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents", true, ErrTypeInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents/%00/x", true, ErrTypeInvalid, Route{}},

		// eventId.
		{"/uapi/extensions/@me/1/phoneCallEvents/0", true, ErrIDInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents/0/", true, ErrIDInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents/0/abc/def", true, ErrIDInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents/0/abc/def/", true, ErrIDInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents/0/a%2Fb", true, ErrIDInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents/0/a%252Fb", true, ErrIDInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents/0/a%00", true, ErrIDInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents/0/..", true, ErrIDInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents/0/.", true, ErrIDInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents/0/a-b", true, ErrIDInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents/0/a%zz", true, ErrIDInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents/0/%C3%A9", true, ErrIDInvalid, Route{}},
		// First defective position wins.
		{"/uapi/extensions/@x/@self/phoneCallEvents/9/-", true, ErrUserInvalid, Route{}},
		{"/uapi/extensions/@me/@self/phoneCallEvents/9/-", true, ErrExtensionInvalid, Route{}},
		{"/uapi/extensions/@me/1/phoneCallEvents/9/-", true, ErrTypeInvalid, Route{}},
	}
	// Version 1's table is the update's: a PUT, owning every operation.
	res := NewResource(rt, SetOf(AllOperations()...))
	for _, tc := range tests {
		m := res.Match(&Request{Method: "PUT", EscapedPath: tc.path})
		got, on, err := m.Route, m.Action != Pass, m.Err
		if on != tc.onRoute || err != tc.err || got != tc.want {
			t.Errorf("Match(%q) = %+v, %v, %v; want %+v, %v, %v", tc.path, got, on, err, tc.want, tc.onRoute, tc.err)
		}
	}
}

func TestMatchRootBaseAndLengths(t *testing.T) {
	rt, err := NewRouter(RouteRules{Base: "", EventTypes: []string{"0", "4"}, IDMinLength: 32, IDMaxLength: 32})
	if err != nil {
		t.Fatal(err)
	}
	id32 := strings.Repeat("Z9", 16)
	if r, _, on, e := rt.Match("/extensions/@me/1/phoneCallEvents/4/" + id32); !on || e != nil || r.EventID != id32 {
		t.Errorf("root base: %+v %v %v", r, on, e)
	}
	if _, _, on, e := rt.Match("/extensions/@me/1/phoneCallEvents/4/" + id32[:31]); !on || e != ErrIDInvalid {
		t.Errorf("31 chars with min 32: %v %v", on, e)
	}
	if _, _, on, _ := rt.Match("/uapi/extensions/@me/1/phoneCallEvents/4/" + id32); on {
		t.Error("/uapi is not the root base")
	}
}

func TestCanonicalPath(t *testing.T) {
	rt := testRouter(t)
	for path, want := range map[string]string{
		"/uapi/extensions/%40me/0003%2A210/phonecallevents/0/MyPhoneCallEvent/": "/uapi/extensions/@me/0003*210/phoneCallEvents/0/MyPhoneCallEvent",
		"/uapi/extensions/%40me/0003%2A210/PHONECALLEVENTS/%31/":                "/uapi/extensions/@me/0003*210/phoneCallEvents/1",
		"/uapi/extensions/%40me/0003%2A210/phonecallevents/":                    "/uapi/extensions/@me/0003*210/phoneCallEvents",
	} {
		r, shape, _, err := rt.Match(path)
		if got := rt.CanonicalPath(r); err != nil || got != want || r.Shape() != shape {
			t.Errorf("CanonicalPath(%q) = %q (%v, shape %d/%d), want %q", path, got, err, r.Shape(), shape, want)
		}
	}
	r, _, _, _ := rt.Match("/uapi/extensions/@me/1/phoneCallEvents/0/x")
	if !r.IsSelf() || (Route{UserID: "12"}).IsSelf() || (Route{UserID: "@self"}).IsSelf() {
		t.Error("IsSelf")
	}
}

func TestMatchAllocs(t *testing.T) {
	rt := testRouter(t)
	n := testing.AllocsPerRun(100, func() {
		rt.Match("/uapi/extensions/@me/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq")
		rt.Match("/uapi/extensions/@me/1/presence")
	})
	if n != 0 {
		t.Errorf("Match allocates %v times without escapes", n)
	}
}

// The forwarded path costs one allocation, whatever its shape.
func TestCanonicalPathAllocs(t *testing.T) {
	rt := testRouter(t)
	for _, r := range []Route{{UserID: "@me", Extension: "1"}, {UserID: "@me", Extension: "1", EventType: "0"}, pageRoute} {
		if n := testing.AllocsPerRun(100, func() { _ = rt.CanonicalPath(r) }); n != 1 {
			t.Errorf("CanonicalPath(%+v) allocates %v times", r, n)
		}
	}
}
