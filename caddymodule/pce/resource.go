package pce

// Resource is the phoneCallEvents resource as the gateway owns it: its
// paths (a Router) and the operations the gateway answers for. It is
// immutable once built and safe for concurrent use.
type Resource struct {
	router *Router
	ops    OperationSet
}

// NewResource returns the resource of rt's paths with the operations ops
// owned.
func NewResource(rt *Router, ops OperationSet) *Resource {
	return &Resource{router: rt, ops: ops}
}

// Request is what the matcher reads of an HTTP request.
type Request struct {
	// Method is the request method as received (any letter case).
	Method string
	// Overrides are the values of the method-override headers
	// (IsOverrideHeader).
	Overrides []string
	// EscapedPath is the path as the client sent it.
	EscapedPath string
	// RawQuery is the query as the client sent it.
	RawQuery string
	// Form holds the _method values of a form body (FormMethods).
	Form []string
	// FormErr is set when a form body could not be read (too large, or a
	// multipart body the gateway cannot parse): its _method is unknown.
	FormErr *Error
	// Fragment is set when the request target holds a raw '#'.
	Fragment bool
}

// Action is what the gateway does with a request.
type Action uint8

// The actions.
const (
	// Pass: not the resource's, or an operation the gateway does not own
	// in every reading; the next handler gets it untouched.
	Pass Action = iota
	// Own: an owned operation (or, owning the whole resource, a method the
	// path has not): authenticate, then Err if set, else check and forward.
	Own
	// Plain: an operation the gateway does not own, sent with a method (or
	// override) that a backend might read as one it owns. It is forwarded
	// unchecked but plainly: the effective method, no override, no _method.
	Plain
)

// Match is the matcher's verdict on a request.
type Match struct {
	Action Action
	// Op is the operation of the effective method on the path's shape
	// (OpNone: the resource has no such operation there).
	Op Operation
	// Method is the effective method, in upper case.
	Method string
	// Route holds the path's decoded values when Err is nil.
	Route Route
	// Err is the first error after authentication, in the contract's
	// order (request_invalid, method_not_allowed, the path's positions);
	// nil when the request may go on to authorization.
	Err *Error
	// Allow is the Allow header of a method_not_allowed.
	Allow string
}

// Place is where a request's path falls on the resource: its shape, the
// decoded values and the first positional error (Locate).
type Place struct {
	route Route
	shape Shape
	err   *Error
}

// Locate reports whether the request is the resource's (disguised paths
// and query routing included) and where on it, so that the caller reads
// headers and a form body only for the resource's requests, and the path
// is parsed once (Decide).
func (res *Resource) Locate(escapedPath, rawQuery string) (Place, bool) {
	route, shape, on, err := res.router.Match(escapedPath)
	if !on && res.router.queryRouted(escapedPath, rawQuery) {
		return Place{shape: ShapeUnknown, err: ErrUserInvalid}, true
	}
	return Place{route: route, shape: shape, err: err}, on
}

// Match decides what the gateway does with req. A request is the
// resource's when its path is; then the operation is picked by the
// effective method (EffectiveMethod) and the path's shape. It is owned
// when that operation is owned, or, owning all four, always (a method the
// path has not is method_not_allowed). Overrides that disagree and a raw
// '#' are request_invalid, and an unreadable form body is FormErr, on the
// resource whatever is owned: the backend's reading is unknown. A request whose raw method names an owned operation
// but whose effective one does not is forwarded Plain, so that a backend
// that ignores overrides on that method never acts on an unchecked owned
// operation. OPTIONS without an override passes (CORS preflight).
func (res *Resource) Match(req *Request) Match {
	p, on := res.Locate(req.EscapedPath, req.RawQuery)
	if !on {
		return Match{}
	}
	return res.Decide(p, req)
}

// Decide is Match for a request Locate placed on the resource.
func (res *Resource) Decide(p Place, req *Request) Match {
	route, shape, pathErr := p.route, p.shape, p.err
	raw := upperMethod(req.Method)
	method, methodErr := EffectiveMethod(req.Method, req.Overrides, req.RawQuery, req.Form)
	if methodErr == nil && method == "OPTIONS" {
		return Match{Method: method}
	}
	rawOp := operationFor(raw, shape)
	switch {
	case req.FormErr != nil:
		return Match{Action: Own, Op: rawOp, Method: raw, Err: req.FormErr}
	case methodErr != nil || req.Fragment:
		return Match{Action: Own, Op: rawOp, Method: raw, Err: ErrRequestInvalid}
	}
	m := Match{Action: Own, Op: operationFor(method, shape), Method: method}
	if shape == ShapeUnknown {
		// A disguised path is its position's error for every method,
		// whatever is owned: the backend may take it for any operation.
		m.Err = pathErr
		return m
	}
	switch {
	case res.ops.Has(m.Op):
	case m.Op == OpNone && res.ops.All():
		m.Err, m.Allow = ErrMethodNotAllowed, shape.Allow()
		return m
	case res.ops.Has(rawOp):
		return Match{Action: Plain, Op: m.Op, Method: method}
	default:
		return Match{Method: method}
	}
	if pathErr != nil {
		m.Err = pathErr
		return m
	}
	// An update names an item: on the collection or a type path its
	// eventType or eventId is missing.
	if m.Op == OpUpdate {
		switch shape {
		case ShapeCollection:
			m.Err = ErrTypeInvalid
			return m
		case ShapeType:
			m.Err = ErrIDInvalid
			return m
		}
	}
	m.Route = route
	return m
}
