package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
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

// maxEventBody bounds a PUT body; the gateway forwards far less.
const maxEventBody = 1 << 20

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
type eventKey struct {
	user, extension, eventType, eventID string
}

// backend is the simulated legacy UAPI: phone call events in memory.
type backend struct {
	mu     sync.Mutex
	events map[eventKey]phoneCallEvent // Links.Self is filled per answer
	now    func() time.Time
}

// newBackend returns the simulated legacy VoipNow UAPI backend, with the
// page's example event already stored. It does not authenticate.
func newBackend() http.Handler {
	b := &backend{events: map[eventKey]phoneCallEvent{}, now: time.Now}
	k := eventKey{exampleUser, exampleExtension, exampleType, exampleID}
	b.events[k] = phoneCallEvent{
		Type: exampleType, ID: exampleID, Method: "0", Note: "",
		URL: defaultEventURL, Status: "1", Modified: b.now().Format(rfc3339Offset),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("/uapi/extensions/", b.serveEvent)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		uapiError(w, http.StatusNotFound, "not_found", "The requested resource does not exist.")
	})
	return logRequests("backend", mux)
}

// serveEvent handles GET and PUT on
// /uapi/extensions/{userId}/{extension}/phoneCallEvents/{eventType}/{eventId}.
func (b *backend) serveEvent(w http.ResponseWriter, r *http.Request) {
	k, ok := parseEventPath(r.URL.EscapedPath())
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodPut) {
		uapiError(w, http.StatusNotFound, "not_found", "The requested resource does not exist.")
		return
	}
	if r.Method == http.MethodGet {
		b.mu.Lock()
		ev, found := b.events[k]
		b.mu.Unlock()
		if !found {
			uapiError(w, http.StatusNotFound, "pce_not_found", "The phone call event does not exist.")
			return
		}
		b.answer(w, r, k, ev)
		return
	}

	fields, code, msg := readEventBody(w, r)
	if code != "" {
		uapiError(w, http.StatusBadRequest, code, msg)
		return
	}
	if t, ok := fields["type"]; ok && t != k.eventType {
		uapiError(w, http.StatusBadRequest, "pce_type_invalid", "Value supplied in type parameter is missing or invalid.")
		return
	}
	if id, ok := fields["id"]; ok && id != k.eventID {
		uapiError(w, http.StatusBadRequest, "pce_id_invalid", "Value supplied in id parameter is invalid.")
		return
	}
	b.mu.Lock()
	ev, found := b.events[k]
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
	b.events[k] = ev
	b.mu.Unlock()
	b.answer(w, r, k, ev)
}

// answer writes ev with its self link as seen through r's Host.
func (b *backend) answer(w http.ResponseWriter, r *http.Request, k eventKey, ev phoneCallEvent) {
	host := r.Host
	if host == "" {
		host = "localhost"
	}
	ev.Links.Self = "https://" + host + "/uapi/extensions/" + k.user + "/" + k.extension +
		"/phoneCallEvents/" + k.eventID
	writeJSON(w, http.StatusOK, ev)
}

// parseEventPath splits an escaped event path; each segment is unescaped
// once and must be non-empty and slash-free. One trailing slash is allowed.
func parseEventPath(escaped string) (eventKey, bool) {
	rest, ok := strings.CutPrefix(escaped, "/uapi/extensions/")
	if !ok {
		return eventKey{}, false
	}
	rest = strings.TrimSuffix(rest, "/")
	parts := strings.Split(rest, "/")
	if len(parts) != 5 || parts[2] != "phoneCallEvents" {
		return eventKey{}, false
	}
	for i, p := range parts {
		s, err := url.PathUnescape(p)
		if err != nil || s == "" || strings.ContainsAny(s, "/\x00") {
			return eventKey{}, false
		}
		parts[i] = s
	}
	return eventKey{parts[0], parts[1], parts[3], parts[4]}, true
}

// readEventBody reads a JSON object whose known members are strings. An
// empty body is an empty update. It returns a UAPI error code on failure.
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
