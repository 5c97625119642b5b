package main

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// The list request's paging limits (the List PhoneCallEvents page: count
// and startIndex at most 5000; the Getting Started page: 20 items by
// default).
const (
	defaultCount  = 20
	maxCount      = 5000
	maxStartIndex = 5000
)

// filterable are the members filterBy may name ("all fields of the
// PhoneCallEvent"); selectable those fields may keep, in answer order.
var (
	filterable = []string{"type", "id", "method", "note", "url", "status", "modified"}
	selectable = []string{"type", "id", "method", "note", "url", "status", "modified", "links"}
)

var (
	errCount      = apiError{http.StatusBadRequest, "count_invalid", "Value supplied in count parameter is invalid. It must be a number from 1 to 5000."}
	errStartIndex = apiError{http.StatusBadRequest, "start_index_invalid", "Value supplied in startIndex parameter is invalid. It must be a number from 0 to 5000."}
	errFilterBy   = apiError{http.StatusBadRequest, "filter_invalid", "Value supplied in filterBy parameter is invalid. It must be one of type, id, method, note, url, status, modified."}
	errFields     = apiError{http.StatusBadRequest, "fields_invalid", "Value supplied in fields parameter is invalid. It must list members of the PhoneCallEvent: type, id, method, note, url, status, modified, links."}
)

// listParams are a list request's query parameters.
type listParams struct {
	startIndex, count     int
	filterBy, filterValue string          // filterBy "" is no filter
	fields                map[string]bool // nil: every member
}

// parseListParams reads count, startIndex, filterBy, filterValue and
// fields (comma-separated, and may repeat); the first value of the others
// counts. filterValue without filterBy is ignored; filterBy without
// filterValue matches the empty value.
func parseListParams(q url.Values) (listParams, *apiError) {
	p := listParams{count: defaultCount}
	var ok bool
	if v, has := first(q, "count"); has {
		if p.count, ok = smallNumber(v); !ok || p.count < 1 || p.count > maxCount {
			return p, &errCount
		}
	}
	if v, has := first(q, "startIndex"); has {
		if p.startIndex, ok = smallNumber(v); !ok || p.startIndex > maxStartIndex {
			return p, &errStartIndex
		}
	}
	if v, has := first(q, "filterBy"); has {
		if !slices.Contains(filterable, v) {
			return p, &errFilterBy
		}
		p.filterBy = v
		p.filterValue, _ = first(q, "filterValue")
	}
	for _, v := range q["fields"] {
		for name := range strings.SplitSeq(v, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			if !slices.Contains(selectable, name) {
				return p, &errFields
			}
			if p.fields == nil {
				p.fields = map[string]bool{}
			}
			p.fields[name] = true
		}
	}
	return p, nil
}

func first(q url.Values, name string) (string, bool) {
	if vs := q[name]; len(vs) > 0 {
		return vs[0], true
	}
	return "", false
}

// smallNumber reads 1 to 9 decimal digits, nothing else.
func smallNumber(s string) (int, bool) {
	if s == "" || len(s) > 9 || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// field returns the member of ev filterBy names.
func (ev *phoneCallEvent) field(name string) string {
	switch name {
	case "type":
		return ev.Type
	case "id":
		return ev.ID
	case "method":
		return ev.Method
	case "note":
		return ev.Note
	case "url":
		return ev.URL
	case "status":
		return ev.Status
	case "modified":
		return ev.Modified
	}
	return ""
}

// eventView is a PhoneCallEvent cut down to the members fields keeps, in
// the page's order.
type eventView struct {
	Type     *string     `json:"type,omitempty"`
	ID       *string     `json:"id,omitempty"`
	Method   *string     `json:"method,omitempty"`
	Note     *string     `json:"note,omitempty"`
	URL      *string     `json:"url,omitempty"`
	Status   *string     `json:"status,omitempty"`
	Modified *string     `json:"modified,omitempty"`
	Links    *eventLinks `json:"links,omitempty"`
}

// view returns ev whole, or as an eventView of the fields kept.
func view(ev phoneCallEvent, fields map[string]bool) any {
	if fields == nil {
		return ev
	}
	var v eventView
	pick := func(name string, dst **string, src *string) {
		if fields[name] {
			*dst = src
		}
	}
	pick("type", &v.Type, &ev.Type)
	pick("id", &v.ID, &ev.ID)
	pick("method", &v.Method, &ev.Method)
	pick("note", &v.Note, &ev.Note)
	pick("url", &v.URL, &ev.URL)
	pick("status", &v.Status, &ev.Status)
	pick("modified", &v.Modified, &ev.Modified)
	if fields["links"] {
		v.Links = &ev.Links
	}
	return v
}

// collection is a list answer: an OpenSocial-style page of the matching
// events, in creation order.
type collection struct {
	StartIndex   int     `json:"startIndex"`
	ItemsPerPage int     `json:"itemsPerPage"` // the entries in this answer
	TotalResults int     `json:"totalResults"` // the entries matching, all pages
	Entry        []any   `json:"entry"`
	Paging       *paging `json:"paging,omitempty"`
}

// paging holds the links to the neighbouring pages, when there are any.
type paging struct {
	Next string `json:"next,omitempty"`
	Prev string `json:"prev,omitempty"`
}

// list handles GET and HEAD. An item path answers the event itself (fields
// applies; 404 pce_not_found when there is none); a type or collection
// path answers a collection of its events, filtered, then paged.
func (b *backend) list(w http.ResponseWriter, r *http.Request, k eventKey, sh shape) {
	p, bad := parseListParams(r.URL.Query())
	if bad != nil {
		bad.write(w)
		return
	}
	if sh == shapeItem {
		b.mu.Lock()
		s, found := b.events[k]
		b.mu.Unlock()
		if !found {
			errNoEvent.write(w)
			return
		}
		s.ev.Links.Self = selfLink(r, k.user, k.extension, s.ev.ID)
		writeJSON(w, http.StatusOK, view(s.ev, p.fields))
		return
	}

	var match []stored
	b.mu.Lock()
	for ek, s := range b.events {
		if ek.user == k.user && ek.extension == k.extension &&
			(sh == shapeCollection || ek.eventType == k.eventType) &&
			(p.filterBy == "" || s.ev.field(p.filterBy) == p.filterValue) {
			match = append(match, s)
		}
	}
	b.mu.Unlock()
	slices.SortFunc(match, func(a, b stored) int { return compareSeq(a.seq, b.seq) })

	total := len(match)
	start := min(p.startIndex, total)
	end := min(start+p.count, total)
	c := collection{StartIndex: p.startIndex, TotalResults: total, Entry: make([]any, 0, end-start)}
	for _, s := range match[start:end] {
		s.ev.Links.Self = selfLink(r, k.user, k.extension, s.ev.ID)
		c.Entry = append(c.Entry, view(s.ev, p.fields))
	}
	c.ItemsPerPage = len(c.Entry)
	var pg paging
	if end < total && end <= maxStartIndex {
		pg.Next = pageLink(r, k, sh, p, end)
	}
	if p.startIndex > 0 {
		pg.Prev = pageLink(r, k, sh, p, max(0, min(p.startIndex, total)-p.count))
	}
	if pg != (paging{}) {
		c.Paging = &pg
	}
	writeJSON(w, http.StatusOK, c)
}

// pageLink is the link to the page of p starting at startIndex.
func pageLink(r *http.Request, k eventKey, sh shape, p listParams, startIndex int) string {
	path := "/uapi/extensions/" + escapeSegment(k.user) + "/" + escapeSegment(k.extension) + "/phoneCallEvents"
	if sh == shapeType {
		path += "/" + escapeSegment(k.eventType)
	}
	q := url.Values{}
	q.Set("startIndex", strconv.Itoa(startIndex))
	q.Set("count", strconv.Itoa(p.count))
	if p.filterBy != "" {
		q.Set("filterBy", p.filterBy)
		q.Set("filterValue", p.filterValue)
	}
	if p.fields != nil {
		var names []string
		for _, name := range selectable {
			if p.fields[name] {
				names = append(names, name)
			}
		}
		q.Set("fields", strings.Join(names, ","))
	}
	return origin(r) + path + "?" + q.Encode()
}
