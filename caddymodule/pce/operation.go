package pce

// Operation is one of the legacy API's operations on the phoneCallEvents
// resource.
type Operation uint8

// The operations. OpNone is "no operation of the resource".
const (
	OpNone Operation = iota
	OpList
	OpCreate
	OpUpdate
	OpDelete
	numOps
)

var opNames = [numOps]string{"", "list", "create", "update", "delete"}

// String returns the operation's configuration name: list, create, update
// or delete ("" for OpNone).
func (o Operation) String() string {
	if o >= numOps {
		return ""
	}
	return opNames[o]
}

// ParseOperation reads an operation's configuration name.
func ParseOperation(s string) (Operation, bool) {
	for o := OpList; o < numOps; o++ {
		if s == opNames[o] {
			return o, true
		}
	}
	return OpNone, false
}

// AllOperations lists the four operations in their documented order.
func AllOperations() []Operation { return []Operation{OpList, OpCreate, OpUpdate, OpDelete} }

// OperationSet is a set of operations.
type OperationSet uint8

// SetOf returns the set of ops.
func SetOf(ops ...Operation) OperationSet {
	var s OperationSet
	for _, o := range ops {
		s |= 1 << o
	}
	return s
}

// Has reports whether o is in the set.
func (s OperationSet) Has(o Operation) bool { return o != OpNone && s&(1<<o) != 0 }

// All reports whether the set holds all four operations.
func (s OperationSet) All() bool { return s == SetOf(AllOperations()...) }

// Shape is the shape of a resource path: the collection, a type path or an
// item path.
type Shape uint8

// The path shapes.
const (
	ShapeCollection Shape = iota // …/phoneCallEvents
	ShapeType                    // …/phoneCallEvents/{eventType}
	ShapeItem                    // …/phoneCallEvents/{eventType}/{eventId} (or longer: an error)
	ShapeUnknown                 // a disguised path: any of the three
)

// operationFor returns the operation a request with the (upper-case)
// effective method stands for on a path of the shape, OpNone when the
// resource has no such operation.
func operationFor(method string, shape Shape) Operation {
	switch method {
	case "GET", "HEAD":
		return OpList
	case "POST":
		if shape == ShapeCollection || shape == ShapeUnknown {
			return OpCreate
		}
	case "PUT":
		return OpUpdate
	case "DELETE":
		return OpDelete
	}
	return OpNone
}

// allowed is the Allow header of a 405 on a path of each shape: the
// methods that can succeed there (a PUT on the collection or a type path
// is an update with its eventType or eventId missing: a 400, not a 405).
var allowed = [...]string{
	ShapeCollection: "GET, HEAD, POST, DELETE",
	ShapeType:       "GET, HEAD, DELETE",
	ShapeItem:       "GET, HEAD, PUT, DELETE",
	ShapeUnknown:    "GET, HEAD, POST, PUT, DELETE",
}

// Allow returns the methods a path of the shape has, as an Allow header
// value.
func (s Shape) Allow() string { return allowed[s] }

// upperMethod returns m with its ASCII letters in upper case (and every
// other byte as it is), without allocating when it already is.
func upperMethod(m string) string {
	for i := 0; i < len(m); i++ {
		if c := m[i]; c >= 'a' && c <= 'z' {
			b := []byte(m)
			for j := i; j < len(b); j++ {
				if b[j] >= 'a' && b[j] <= 'z' {
					b[j] -= 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return m
}
