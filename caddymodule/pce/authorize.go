package pce

// Policy is the authorization policy of the route.
type Policy struct {
	// RequiredScopes must all be among the token's scopes, for every
	// operation.
	RequiredScopes []string
	// Scopes are the scopes each operation requires besides
	// RequiredScopes.
	Scopes map[Operation][]string
	// AdminScopes: a token with any of them may act for any numeric userId
	// (the Organization and global contexts).
	AdminScopes []string
}

// Authorize applies the policy to a request for operation op on r made
// with a token of the given scopes and user claim. It runs on every
// request, also on cache hits. Every required scope and every scope of the
// operation must be present. @me, @viewer and @owner are always the
// token's own user. A numeric UserID must equal user as a decimal number
// ("0012" equals "12"; user must itself be all digits) unless the token
// carries an admin scope. Any failure is ErrPCEAccessDenied.
func (p *Policy) Authorize(op Operation, r Route, scopes []string, user string) *Error {
	if p == nil {
		p = &Policy{}
	}
	for _, req := range p.RequiredScopes {
		if !contains(scopes, req) {
			return ErrPCEAccessDenied
		}
	}
	for _, req := range p.Scopes[op] {
		if !contains(scopes, req) {
			return ErrPCEAccessDenied
		}
	}
	if r.IsSelf() {
		return nil
	}
	if r.UserID == "" || !isDigits(r.UserID) {
		return ErrPCEAccessDenied
	}
	for _, a := range p.AdminScopes {
		if contains(scopes, a) {
			return nil
		}
	}
	if user == "" || !isDigits(user) || trimZeros(user) != trimZeros(r.UserID) {
		return ErrPCEAccessDenied
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func trimZeros(s string) string {
	for len(s) > 0 && s[0] == '0' {
		s = s[1:]
	}
	return s
}
