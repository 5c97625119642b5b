package pce

import "testing"

func TestAuthorize(t *testing.T) {
	p := &Policy{RequiredScopes: []string{"uapi"}, AdminScopes: []string{"uapi.admin", "uapi.global"}}
	tests := []struct {
		name   string
		userID string
		scopes []string
		user   string
		want   *Error
	}{
		{"@me", "@me", []string{"uapi"}, "12", nil},
		{"@viewer", "@viewer", []string{"uapi"}, "", nil},
		{"@owner", "@owner", []string{"x", "uapi"}, "12", nil},
		{"@me missing scope", "@me", []string{"other"}, "12", ErrPCEAccessDenied},
		{"@me no scopes", "@me", nil, "12", ErrPCEAccessDenied},
		{"own id", "12", []string{"uapi"}, "12", nil},
		{"own id zeros", "0012", []string{"uapi"}, "12", nil},
		{"own id zeros claim", "12", []string{"uapi"}, "00012", nil},
		{"zero", "0", []string{"uapi"}, "000", nil},
		{"other id", "13", []string{"uapi"}, "12", ErrPCEAccessDenied},
		{"prefix id", "123", []string{"uapi"}, "12", ErrPCEAccessDenied},
		{"non-numeric claim", "12", []string{"uapi"}, "user-12", ErrPCEAccessDenied},
		{"empty claim", "12", []string{"uapi"}, "", ErrPCEAccessDenied},
		{"admin", "13", []string{"uapi", "uapi.admin"}, "12", nil},
		{"global admin no user", "13", []string{"uapi.global", "uapi"}, "", nil},
		{"admin without required", "13", []string{"uapi.admin"}, "12", ErrPCEAccessDenied},
		{"scope case", "12", []string{"UAPI"}, "12", ErrPCEAccessDenied},
		{"invalid user id", "@self", []string{"uapi", "uapi.admin"}, "12", ErrPCEAccessDenied},
	}
	for _, tc := range tests {
		if got := p.Authorize(OpUpdate, Route{UserID: tc.userID}, tc.scopes, tc.user); got != tc.want {
			t.Errorf("%s: Authorize = %v, want %v", tc.name, got, tc.want)
		}
	}
	var empty *Policy
	if e := empty.Authorize(OpList, Route{UserID: "@me"}, nil, ""); e != nil {
		t.Errorf("nil policy: %v", e)
	}
	if e := (&Policy{}).Authorize(OpDelete, Route{UserID: "5"}, nil, "6"); e != ErrPCEAccessDenied {
		t.Errorf("empty policy, other user: %v", e)
	}
}

// An operation's own scopes are required on top of RequiredScopes, for
// that operation only.
func TestAuthorizeOperationScopes(t *testing.T) {
	p := &Policy{RequiredScopes: []string{"uapi"}, Scopes: map[Operation][]string{
		OpList: {"uapi.read"}, OpCreate: {"uapi.write"}, OpDelete: {"uapi.write", "uapi.delete"},
	}}
	me := Route{UserID: "@me"}
	for _, tc := range []struct {
		op     Operation
		scopes []string
		want   *Error
	}{
		{OpList, []string{"uapi", "uapi.read"}, nil},
		{OpList, []string{"uapi.read"}, ErrPCEAccessDenied},
		{OpList, []string{"uapi", "uapi.write"}, ErrPCEAccessDenied},
		{OpCreate, []string{"uapi", "uapi.write"}, nil},
		{OpCreate, []string{"uapi", "uapi.read"}, ErrPCEAccessDenied},
		{OpUpdate, []string{"uapi"}, nil},
		{OpDelete, []string{"uapi", "uapi.write"}, ErrPCEAccessDenied},
		{OpDelete, []string{"uapi", "uapi.delete", "uapi.write"}, nil},
	} {
		if got := p.Authorize(tc.op, me, tc.scopes, "7"); got != tc.want {
			t.Errorf("%v with %v: %v, want %v", tc.op, tc.scopes, got, tc.want)
		}
	}
}
