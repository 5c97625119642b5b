package main

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// The page's example event, pre-seeded so that the page's example request
// gets the page's answer.
const (
	exampleUser      = "@me"
	exampleExtension = "0003*210"
	exampleType      = "0"
	exampleID        = "NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"
	defaultEventURL  = "http://myevent.com/SaveMyPhoneCallDetails"
)

// maxEventBody bounds a PUT or POST body; the gateway forwards far less.
const maxEventBody = 1 << 20

// defaultMaxEvents bounds the number of stored events, all extensions
// together; a create past it is refused with errStoreFull.
const defaultMaxEvents = 10000

// generatedIDLength is the length of the alphanumeric id a create without
// one gets (the page's example id is 30 characters long).
const generatedIDLength = 30

// maxIDLength is the longest id a create may give (the resource page: "Must
// be alpha-numeric and 1 to 255 characters long").
const maxIDLength = 255

// rfc3339Offset is RFC 3339 with a numeric offset even in UTC ("+00:00"),
// as the legacy API writes "modified".
const rfc3339Offset = "2006-01-02T15:04:05-07:00"

// phoneCallEvent is the legacy PhoneCallEvent, members in the page's order.
type phoneCallEvent struct {
	Type     string     `json:"type"`
	ID       string     `json:"id"`
	Method   string     `json:"method"`
	Note     string     `json:"note"`
	URL      string     `json:"url"`
	Status   string     `json:"status"`
	Modified string     `json:"modified"`
	Links    eventLinks `json:"links"`
}

type eventLinks struct {
	Self string `json:"self"`
}

// eventKey locates an event; userId is kept as written (@me, 1001, ...).
// On a collection path eventType and eventID are empty, on a type path
// eventID is.
type eventKey struct {
	user, extension, eventType, eventID string
}

// shape is the shape of a phoneCallEvents path.
type shape uint8

const (
	shapeCollection shape = iota // .../phoneCallEvents
	shapeType                    // .../phoneCallEvents/{eventType}
	shapeItem                    // .../phoneCallEvents/{eventType}/{eventId}
)

// allow is the Allow header of a 405 on a path of each shape. A PUT on the
// collection or a type path is an update missing its eventType or eventId
// (a 400), as the gateway reads it.
var allow = [...]string{
	shapeCollection: "GET, HEAD, POST, DELETE",
	shapeType:       "GET, HEAD, DELETE",
	shapeItem:       "GET, HEAD, PUT, DELETE",
}

// stored is an event with its creation rank, the order of every listing.
type stored struct {
	ev  phoneCallEvent // Links.Self is filled per answer
	seq uint64
}

// backend is the simulated legacy UAPI: phone call events in memory.
type backend struct {
	mu        sync.Mutex
	events    map[eventKey]stored
	seq       uint64 // the next event's rank
	maxEvents int
	now       func() time.Time
}

// newBackend returns the simulated legacy VoipNow UAPI backend, with the
// page's example event already stored. It does not authenticate.
func newBackend() http.Handler { return newBackendLimit(defaultMaxEvents) }

// newBackendLimit is newBackend storing at most maxEvents events.
func newBackendLimit(maxEvents int) http.Handler {
	b := &backend{events: map[eventKey]stored{}, maxEvents: maxEvents, now: time.Now}
	b.put(eventKey{exampleUser, exampleExtension, exampleType, exampleID}, phoneCallEvent{
		Type: exampleType, ID: exampleID, Method: "0", Note: "",
		URL: defaultEventURL, Status: "1", Modified: b.now().Format(rfc3339Offset),
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("/uapi/extensions/", b.serveEvents)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		uapiError(w, http.StatusNotFound, "not_found", "The requested resource does not exist.")
	})
	return logRequests("backend", mux)
}

// put stores ev under k, keeping its rank when it is already there. The
// caller holds mu (or is the constructor).
func (b *backend) put(k eventKey, ev phoneCallEvent) {
	s, found := b.events[k]
	if !found {
		s.seq = b.seq
		b.seq++
	}
	s.ev = ev
	b.events[k] = s
}

// The errors of the resource, in the legacy shape.
var (
	errNotFound = apiError{http.StatusNotFound, "not_found", "The requested resource does not exist."}
	errNoEvent  = apiError{http.StatusNotFound, "pce_not_found", "The phone call event does not exist."}
	errType     = apiError{http.StatusBadRequest, "pce_type_invalid", "Value supplied in type parameter is missing or invalid."}
	errID       = apiError{http.StatusBadRequest, "pce_id_invalid", "Value supplied in id parameter is invalid."}
	errIDTaken  = apiError{http.StatusBadRequest, "pce_id_invalid", "Value supplied in id parameter is invalid. A phone call event with this id already exists."}
	errMethod   = apiError{http.StatusBadRequest, "pce_method_invalid", "Value supplied in method parameter is missing or invalid. The parameter must be set to 0 for GET or 1 for POST."}
	errURL      = apiError{http.StatusBadRequest, "pce_url_invalid", "Value supplied in request URL parameter is missing or invalid. It must be a valid HTTP URL."}
	errStatus   = apiError{http.StatusBadRequest, "pce_status_invalid", "Value supplied in status parameter is missing or invalid. The parameter must be set to 0 or 1."}
	errStore    = apiError{http.StatusInsufficientStorage, "storage_full", "The simulated backend stores no more phone call events. Delete some first."}
)

// apiError is an answer in the legacy error shape.
type apiError struct {
	status        int
	code, message string
}

func (e apiError) write(w http.ResponseWriter) { uapiError(w, e.status, e.code, e.message) }

// serveEvents routes /uapi/extensions/{userId}/{extension}/phoneCallEvents
// [/{eventType}[/{eventId}]]: GET and HEAD list (an item path reads one
// event), POST on the collection creates, PUT on an item updates (or
// creates it), DELETE deletes everything the path names.
func (b *backend) serveEvents(w http.ResponseWriter, r *http.Request) {
	k, sh, ok := parseEventPath(r.URL.EscapedPath())
	if !ok {
		errNotFound.write(w)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		b.list(w, r, k, sh)
	case http.MethodPost:
		if sh != shapeCollection {
			methodNotAllowed(w, sh)
			return
		}
		b.create(w, r, k)
	case http.MethodPut:
		switch sh {
		case shapeCollection:
			errType.write(w)
		case shapeType:
			errID.write(w)
		default:
			b.update(w, r, k)
		}
	case http.MethodDelete:
		b.remove(w, r, k, sh)
	default:
		methodNotAllowed(w, sh)
	}
}

func methodNotAllowed(w http.ResponseWriter, sh shape) {
	w.Header().Set("Allow", allow[sh])
	uapiError(w, http.StatusMethodNotAllowed, "method_not_allowed", "The request method is not allowed on this resource.")
}

// update handles PUT on an item: the members given replace the stored ones;
// an event that does not exist yet is created with the defaults.
func (b *backend) update(w http.ResponseWriter, r *http.Request, k eventKey) {
	fields, code, msg := readEventBody(w, r)
	if code != "" {
		uapiError(w, http.StatusBadRequest, code, msg)
		return
	}
	if t, ok := fields["type"]; ok && t != k.eventType {
		errType.write(w)
		return
	}
	if id, ok := fields["id"]; ok && id != k.eventID {
		errID.write(w)
		return
	}
	b.mu.Lock()
	s, found := b.events[k]
	if !found && len(b.events) >= b.maxEvents {
		b.mu.Unlock()
		errStore.write(w)
		return
	}
	ev := s.ev
	if !found {
		ev = phoneCallEvent{Type: k.eventType, ID: k.eventID, Method: "0", URL: defaultEventURL, Status: "1"}
	}
	for name, v := range fields {
		switch name {
		case "method":
			ev.Method = v
		case "note":
			ev.Note = v
		case "url":
			ev.URL = v
		case "status":
			ev.Status = v
		}
	}
	ev.Modified = b.now().Format(rfc3339Offset)
	b.put(k, ev)
	b.mu.Unlock()
	b.answer(w, r, k, ev)
}

// create handles POST on the collection: type, method and url are
// required, note (default "") and status (default "1") optional, and id
// optional (default: 30 random alphanumeric characters). It answers the new
// event, as an update does.
func (b *backend) create(w http.ResponseWriter, r *http.Request, k eventKey) {
	fields, code, msg := readEventBody(w, r)
	if code != "" {
		uapiError(w, http.StatusBadRequest, code, msg)
		return
	}
	ev, bad := newEvent(fields)
	if bad != nil {
		bad.write(w)
		return
	}
	b.mu.Lock()
	if len(b.events) >= b.maxEvents {
		b.mu.Unlock()
		errStore.write(w)
		return
	}
	if ev.ID == "" {
		for ev.ID == "" || b.idTaken(k, ev.ID) {
			ev.ID = randomID()
		}
	} else if b.idTaken(k, ev.ID) {
		b.mu.Unlock()
		errIDTaken.write(w)
		return
	}
	k.eventType, k.eventID = ev.Type, ev.ID
	ev.Modified = b.now().Format(rfc3339Offset)
	b.put(k, ev)
	b.mu.Unlock()
	b.answer(w, r, k, ev)
}

// idTaken reports whether the extension of k has an event with the id,
// whatever its type (a self link names an event by its id alone). The
// caller holds mu.
func (b *backend) idTaken(k eventKey, id string) bool {
	for ek := range b.events {
		if ek.eventID == id && ek.user == k.user && ek.extension == k.extension {
			return true
		}
	}
	return false
}

// newEvent checks a create's members and returns the event they describe
// (Modified unset, ID empty when not given).
func newEvent(fields map[string]string) (phoneCallEvent, *apiError) {
	ev := phoneCallEvent{
		Type: fields["type"], ID: fields["id"], Method: fields["method"],
		Note: fields["note"], URL: fields["url"], Status: "1",
	}
	if !oneOf(ev.Type, "0", "1", "2", "3", "4") {
		return ev, &errType
	}
	if id, ok := fields["id"]; ok && !validID(id) {
		return ev, &errID
	}
	if !oneOf(ev.Method, "0", "1") {
		return ev, &errMethod
	}
	if !validEventURL(ev.URL) {
		return ev, &errURL
	}
	if s, ok := fields["status"]; ok {
		if !oneOf(s, "0", "1") {
			return ev, &errStatus
		}
		ev.Status = s
	}
	return ev, nil
}

func oneOf(s string, values ...string) bool { return slices.Contains(values, s) }

// validID: alphanumeric, 1 to 255 characters.
func validID(id string) bool {
	if id == "" || len(id) > maxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !isAlnum(id[i]) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// validEventURL: an absolute http or https URL with a host.
func validEventURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomID returns generatedIDLength characters of idAlphabet, uniformly
// drawn from crypto/rand.
func randomID() string {
	out := make([]byte, 0, generatedIDLength)
	buf := make([]byte, 2*generatedIDLength)
	for len(out) < generatedIDLength {
		_, _ = rand.Read(buf) // never fails (crypto/rand)
		for _, c := range buf {
			// 248 = 4*62: keep the draw uniform.
			if c < 248 && len(out) < generatedIDLength {
				out = append(out, idAlphabet[c%62])
			}
		}
	}
	return string(out)
}

// remove handles DELETE: an item path deletes that event (404 when there
// is none), a type path every event of the type, the collection every
// event of the extension. It answers the deleted events' ids as an array
// of PhoneCallEvents, [{"id":"..."},...], in creation order, or 204 when a
// type or collection path matched nothing.
func (b *backend) remove(w http.ResponseWriter, r *http.Request, k eventKey, sh shape) {
	var gone []stored
	b.mu.Lock()
	if sh == shapeItem {
		if s, ok := b.events[k]; ok {
			delete(b.events, k)
			gone = append(gone, s)
		}
	} else {
		for ek, s := range b.events {
			if ek.user == k.user && ek.extension == k.extension && (sh == shapeCollection || ek.eventType == k.eventType) {
				delete(b.events, ek)
				gone = append(gone, s)
			}
		}
	}
	b.mu.Unlock()
	if len(gone) == 0 {
		if sh == shapeItem {
			errNoEvent.write(w)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	slices.SortFunc(gone, func(a, b stored) int { return compareSeq(a.seq, b.seq) })
	type deleted struct {
		ID string `json:"id"`
	}
	out := make([]deleted, len(gone))
	for i, s := range gone {
		out[i] = deleted{s.ev.ID}
	}
	writeJSON(w, http.StatusOK, out)
}

func compareSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// answer writes ev with its self link as seen through r's Host.
func (b *backend) answer(w http.ResponseWriter, r *http.Request, k eventKey, ev phoneCallEvent) {
	ev.Links.Self = selfLink(r, k.user, k.extension, ev.ID)
	writeJSON(w, http.StatusOK, ev)
}

// origin is "https://" and r's Host, the legacy API's links' prefix.
func origin(r *http.Request) string {
	host := r.Host
	if host == "" {
		host = "localhost"
	}
	return "https://" + host
}

// selfLink is an event's self link, as the page's response example writes
// it: .../phoneCallEvents/{eventId}, without the type.
func selfLink(r *http.Request, user, extension, id string) string {
	return origin(r) + "/uapi/extensions/" + escapeSegment(user) + "/" + escapeSegment(extension) +
		"/phoneCallEvents/" + escapeSegment(id)
}

// escapeSegment percent-encodes what may not stand in a path segment
// (RFC 3986 pchar), leaving @, * and the like as written.
func escapeSegment(s string) string {
	isPchar := func(c byte) bool {
		return isAlnum(c) || strings.IndexByte("-._~!$&'()*+,;=:@", c) >= 0
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !isPchar(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		if c := s[i]; isPchar(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(b)
}

// parseEventPath splits an escaped phoneCallEvents path (collection, type
// or item); each segment is unescaped once and must be non-empty and
// slash-free. One trailing slash is allowed.
func parseEventPath(escaped string) (eventKey, shape, bool) {
	rest, ok := strings.CutPrefix(escaped, "/uapi/extensions/")
	if !ok {
		return eventKey{}, 0, false
	}
	rest = strings.TrimSuffix(rest, "/")
	parts := strings.Split(rest, "/")
	if len(parts) < 3 || len(parts) > 5 || parts[2] != "phoneCallEvents" {
		return eventKey{}, 0, false
	}
	for i, p := range parts {
		s, err := url.PathUnescape(p)
		if err != nil || s == "" || strings.ContainsAny(s, "/\x00") {
			return eventKey{}, 0, false
		}
		parts[i] = s
	}
	sh := shape(len(parts) - 3) // 3, 4 or 5 segments
	parts = append(parts, "", "")
	return eventKey{parts[0], parts[1], parts[3], parts[4]}, sh, true
}

// readEventBody reads a JSON object whose known members are strings. An
// empty body is an empty object. It returns a UAPI error code on failure.
func readEventBody(w http.ResponseWriter, r *http.Request) (map[string]string, string, string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEventBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, "payload_too_large", "The request payload is too large."
		}
		return nil, "payload_invalid", "The request payload could not be read."
	}
	out := map[string]string{}
	if len(strings.TrimSpace(string(body))) == 0 {
		return out, "", ""
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return nil, "payload_invalid", "The request payload must be a JSON object."
	}
	for _, name := range []string{"type", "id", "method", "note", "url", "status"} {
		v, ok := raw[name]
		if !ok {
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil || string(v) == "null" {
			return nil, "pce_" + name + "_invalid", "Value supplied in " + name + " parameter is missing or invalid."
		}
		out[name] = s
	}
	return out, "", ""
}
