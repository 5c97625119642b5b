package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// call sends one request and returns the status, the headers and the raw
// body.
func call(t *testing.T, method, u, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, raw
}

// list GETs u and decodes a collection answer.
func list(t *testing.T, u string) collectionAnswer {
	t.Helper()
	st, _, raw := call(t, http.MethodGet, u, "")
	if st != 200 {
		t.Fatalf("GET %s: %d %s", u, st, raw)
	}
	var c collectionAnswer
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("GET %s: %v: %s", u, err, raw)
	}
	return c
}

type collectionAnswer struct {
	StartIndex   int              `json:"startIndex"`
	ItemsPerPage int              `json:"itemsPerPage"`
	TotalResults int              `json:"totalResults"`
	Entry        []phoneCallEvent `json:"entry"`
	Paging       *paging          `json:"paging"`
}

func (c collectionAnswer) ids() []string {
	ids := make([]string, len(c.Entry))
	for i, e := range c.Entry {
		ids[i] = e.ID
	}
	return ids
}

func codeOf(t *testing.T, raw []byte) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("not a JSON object: %s", raw)
	}
	return errorCode(m)
}

// loopback serves h on a real 127.0.0.1 listener.
func loopback(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

var createdRe = regexp.MustCompile(`^\{"type":"(\d)","id":"([A-Za-z0-9]+)","method":"[01]","note":"[^"]*",` +
	`"url":"[^"]*","status":"[01]","modified":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d",` +
	`"links":\{"self":"https://[^"]+/uapi/extensions/1001/0003\*210/phoneCallEvents/([A-Za-z0-9]+)"\}\}\n$`)

// TestBackendWalk is the README's session: create, list, update, list
// again, delete an item, delete the rest.
func TestBackendWalk(t *testing.T) {
	base := loopback(t, newBackend())
	coll := base + "/uapi/extensions/1001/0003*210/phoneCallEvents"

	if c := list(t, coll); c.TotalResults != 0 || c.Entry == nil || len(c.Entry) != 0 || c.Paging != nil {
		t.Fatalf("empty extension: %+v", c)
	}

	// create, without and with an id
	st, h, raw := call(t, http.MethodPost, coll, `{"type":"0","method":"1","url":"https://hooks.example/in","note":"dial in"}`)
	m := createdRe.FindSubmatch(raw)
	if st != 200 || h.Get("Content-Type") != "application/json" || m == nil {
		t.Fatalf("create: %d %q %s", st, h.Get("Content-Type"), raw)
	}
	id1 := string(m[2])
	if len(id1) != 30 || string(m[3]) != id1 {
		t.Errorf("generated id %q, self link id %q", id1, m[3])
	}
	var ev phoneCallEvent
	_ = json.Unmarshal(raw, &ev)
	if ev.Type != "0" || ev.Method != "1" || ev.Note != "dial in" || ev.URL != "https://hooks.example/in" || ev.Status != "1" {
		t.Errorf("create answer %+v", ev)
	}
	st, _, raw = call(t, http.MethodPost, coll+"/", `{"type":"2","id":"hangup1","method":"0","url":"http://hooks.example/out","status":"0"}`)
	if st != 200 || createdRe.Find(raw) == nil || !strings.Contains(string(raw), `"id":"hangup1"`) {
		t.Fatalf("create with id: %d %s", st, raw)
	}

	// list
	c := list(t, coll)
	if c.TotalResults != 2 || c.ItemsPerPage != 2 || c.StartIndex != 0 || fmt.Sprint(c.ids()) != fmt.Sprint([]string{id1, "hangup1"}) {
		t.Fatalf("list: %+v", c)
	}
	if !strings.HasSuffix(c.Entry[1].Links.Self, "/phoneCallEvents/hangup1") || c.Entry[1].Status != "0" {
		t.Errorf("entry %+v", c.Entry[1])
	}
	if c := list(t, coll+"/2"); c.TotalResults != 1 || c.Entry[0].ID != "hangup1" {
		t.Errorf("type list: %+v", c)
	}

	// update, then read it back and list it
	st, _, raw = call(t, http.MethodPut, coll+"/0/"+id1, `{"status":"0","note":"off for now"}`)
	if st != 200 || !strings.Contains(string(raw), `"note":"off for now","url":"https://hooks.example/in","status":"0"`) {
		t.Fatalf("update: %d %s", st, raw)
	}
	st, _, raw = call(t, http.MethodGet, coll+"/0/"+id1, "")
	if st != 200 || !strings.Contains(string(raw), `"status":"0"`) {
		t.Errorf("GET item: %d %s", st, raw)
	}
	if c := list(t, coll+"?filterBy=status&filterValue=0"); c.TotalResults != 2 {
		t.Errorf("both disabled now: %+v", c)
	}

	// delete the item, then the rest
	st, _, raw = call(t, http.MethodDelete, coll+"/0/"+id1, "")
	if st != 200 || string(raw) != `[{"id":"`+id1+`"}]`+"\n" {
		t.Fatalf("delete item: %d %s", st, raw)
	}
	if st, _, raw := call(t, http.MethodGet, coll+"/0/"+id1, ""); st != 404 || codeOf(t, raw) != "pce_not_found" {
		t.Errorf("deleted item: %d %s", st, raw)
	}
	st, _, raw = call(t, http.MethodDelete, coll, "")
	if st != 200 || string(raw) != `[{"id":"hangup1"}]`+"\n" {
		t.Fatalf("delete collection: %d %s", st, raw)
	}
	if c := list(t, coll); c.TotalResults != 0 {
		t.Errorf("after delete: %+v", c)
	}
	// The page's example event, in another extension, is untouched.
	if c := list(t, base+"/uapi/extensions/@me/0003*210/phoneCallEvents"); c.TotalResults != 1 || c.Entry[0].ID != exampleID {
		t.Errorf("example extension: %+v", c)
	}
}

func TestBackendListPaging(t *testing.T) {
	srv := httptest.NewServer(newBackend())
	defer srv.Close()
	coll := srv.URL + "/uapi/extensions/42/210/phoneCallEvents"
	var ids []string
	for i := range 7 {
		id := "ev" + strconv.Itoa(i)
		ids = append(ids, id)
		body := fmt.Sprintf(`{"type":"%d","id":"%s","method":"0","url":"http://h.example/%d"}`, i%3, id, i)
		if st, _, raw := call(t, http.MethodPost, coll, body); st != 200 {
			t.Fatalf("create %d: %d %s", i, st, raw)
		}
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	link := func(path, q string) string {
		return "https://" + host + "/uapi/extensions/42/210/phoneCallEvents" + path + "?" + q
	}

	for _, tc := range []struct {
		path, query string
		total       int
		want        []string
		next, prev  string
	}{
		{"", "", 7, ids, "", ""},
		{"", "count=3", 7, ids[0:3], link("", "count=3&startIndex=3"), ""},
		{"", "count=3&startIndex=3", 7, ids[3:6], link("", "count=3&startIndex=6"), link("", "count=3&startIndex=0")},
		{"", "count=3&startIndex=6", 7, ids[6:], "", link("", "count=3&startIndex=3")},
		{"", "startIndex=2&count=1", 7, ids[2:3], link("", "count=1&startIndex=3"), link("", "count=1&startIndex=1")},
		{"", "startIndex=7", 7, []string{}, "", link("", "count=20&startIndex=0")},
		{"", "startIndex=5000&count=5000", 7, []string{}, "", link("", "count=5000&startIndex=0")},
		{"/1", "", 2, []string{"ev1", "ev4"}, "", ""},
		{"/1", "count=1", 2, []string{"ev1"}, link("/1", "count=1&startIndex=1"), ""},
		{"/9", "", 0, []string{}, "", ""},
		{"", "filterBy=type&filterValue=0", 3, []string{"ev0", "ev3", "ev6"}, "", ""},
		{"", "filterBy=type&filterValue=0&count=2", 3, []string{"ev0", "ev3"},
			link("", "count=2&filterBy=type&filterValue=0&startIndex=2"), ""},
		{"", "filterBy=url&filterValue=http://h.example/4", 1, []string{"ev4"}, "", ""},
		{"", "filterBy=note", 7, ids, "", ""}, // every note is ""
		{"", "filterBy=id&filterValue=nope", 0, []string{}, "", ""},
		{"", "filterValue=ignored", 7, ids, "", ""},
	} {
		t.Run(tc.path+"?"+tc.query, func(t *testing.T) {
			c := list(t, coll+tc.path+"?"+tc.query)
			var next, prev string
			if c.Paging != nil {
				next, prev = c.Paging.Next, c.Paging.Prev
			}
			if c.TotalResults != tc.total || c.ItemsPerPage != len(tc.want) || fmt.Sprint(c.ids()) != fmt.Sprint(tc.want) ||
				next != tc.next || prev != tc.prev {
				t.Errorf("got total %d items %d %v next %q prev %q\nwant total %d %v next %q prev %q",
					c.TotalResults, c.ItemsPerPage, c.ids(), next, prev, tc.total, tc.want, tc.next, tc.prev)
			}
		})
	}

	// The exact shape, member order included.
	_, _, raw := call(t, http.MethodGet, coll+"?count=1&startIndex=1&fields=id,type", "")
	want := `{"startIndex":1,"itemsPerPage":1,"totalResults":7,"entry":[{"type":"1","id":"ev1"}],` +
		`"paging":{"next":"` + link("", "count=1&fields=type%2Cid&startIndex=2") + `","prev":"` + link("", "count=1&fields=type%2Cid&startIndex=0") + `"}}` + "\n"
	if string(raw) != want {
		t.Errorf("shape:\n got %s\nwant %s", raw, want)
	}
}

func TestBackendListParamsAndFields(t *testing.T) {
	srv := httptest.NewServer(newBackend())
	defer srv.Close()
	coll := srv.URL + "/uapi/extensions/@me/0003*210/phoneCallEvents"
	item := coll + "/0/" + exampleID

	for _, tc := range []struct{ query, code string }{
		{"count=0", "count_invalid"},
		{"count=5001", "count_invalid"},
		{"count=abc", "count_invalid"},
		{"count=-1", "count_invalid"},
		{"count=", "count_invalid"},
		{"startIndex=-1", "start_index_invalid"},
		{"startIndex=5001", "start_index_invalid"},
		{"startIndex=1e3", "start_index_invalid"},
		{"filterBy=links", "filter_invalid"},
		{"filterBy=bogus&filterValue=1", "filter_invalid"},
		{"fields=id,bogus", "fields_invalid"},
	} {
		for _, u := range []string{coll, item} {
			if st, _, raw := call(t, http.MethodGet, u+"?"+tc.query, ""); st != 400 || codeOf(t, raw) != tc.code {
				t.Errorf("%s?%s: %d %s, want %s", u, tc.query, st, raw, tc.code)
			}
		}
	}
	for _, q := range []string{"count=1", "count=5000", "startIndex=0", "startIndex=5000", "fields=", "fields=%20id%20,,url"} {
		if st, _, raw := call(t, http.MethodGet, coll+"?"+q, ""); st != 200 {
			t.Errorf("?%s: %d %s", q, st, raw)
		}
	}

	// fields keeps the members named, in the page's order, on lists and items.
	selfRe := `"links":\{"self":"https://[^"]+/phoneCallEvents/` + exampleID + `"\}`
	for _, tc := range []struct{ u, want string }{
		{item + "?fields=url,id", `^\{"id":"` + exampleID + `","url":"` + defaultEventURL + `"\}\n$`},
		{item + "?fields=links&fields=note", `^\{"note":"",` + selfRe + `\}\n$`},
		{item + "?fields=", `^\{"type":"0","id":"` + exampleID + `","method":"0","note":"","url":"[^"]+","status":"1","modified":"[^"]+",` + selfRe + `\}\n$`},
		{coll + "?fields=status", `^\{"startIndex":0,"itemsPerPage":1,"totalResults":1,"entry":\[\{"status":"1"\}\]\}\n$`},
		{item + "?filterBy=status&filterValue=0", `"id":"` + exampleID + `"`}, // an item ignores filters
	} {
		st, _, raw := call(t, http.MethodGet, tc.u, "")
		if st != 200 || !regexp.MustCompile(tc.want).Match(raw) {
			t.Errorf("%s: %d %s\nwant %s", tc.u, st, raw, tc.want)
		}
	}
}

func TestBackendHead(t *testing.T) {
	srv := httptest.NewServer(newBackend())
	defer srv.Close()
	for _, u := range []string{
		srv.URL + "/uapi/extensions/@me/0003*210/phoneCallEvents",
		srv.URL + "/uapi/extensions/@me/0003*210/phoneCallEvents/0",
		srv.URL + "/uapi/extensions/@me/0003*210/phoneCallEvents/0/" + exampleID,
		srv.URL + "/uapi/extensions/@me/0003*210/phoneCallEvents/0/unknown",
	} {
		gst, gh, graw := call(t, http.MethodGet, u, "")
		hst, hh, hraw := call(t, http.MethodHead, u, "")
		if hst != gst || len(hraw) != 0 || hh.Get("Content-Type") != "application/json" ||
			hh.Get("Content-Length") != strconv.Itoa(len(graw)) || gh.Get("Content-Length") != strconv.Itoa(len(graw)) {
			t.Errorf("HEAD %s: %d %v %q; GET %d %d bytes", u, hst, hh, hraw, gst, len(graw))
		}
	}
}

func TestBackendCreateErrors(t *testing.T) {
	srv := httptest.NewServer(newBackend())
	defer srv.Close()
	coll := srv.URL + "/uapi/extensions/1001/210/phoneCallEvents"
	ok := `"type":"1","method":"0","url":"http://h.example/x"`
	if st, _, raw := call(t, http.MethodPost, coll, `{"id":"taken",`+ok+`}`); st != 200 {
		t.Fatalf("create: %d %s", st, raw)
	}
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"empty body", ``, 400, "pce_type_invalid"},
		{"not an object", `[1]`, 400, "payload_invalid"},
		{"bad JSON", `{"type":`, 400, "payload_invalid"},
		{"type missing", `{"method":"0","url":"http://h.example/x"}`, 400, "pce_type_invalid"},
		{"type unknown", `{"type":"7","method":"0","url":"http://h.example/x"}`, 400, "pce_type_invalid"},
		{"type a number", `{"type":1,"method":"0","url":"http://h.example/x"}`, 400, "pce_type_invalid"},
		{"method missing", `{"type":"0","url":"http://h.example/x"}`, 400, "pce_method_invalid"},
		{"method unknown", `{"type":"0","method":"GET","url":"http://h.example/x"}`, 400, "pce_method_invalid"},
		{"url missing", `{"type":"0","method":"0"}`, 400, "pce_url_invalid"},
		{"url relative", `{"type":"0","method":"0","url":"/x"}`, 400, "pce_url_invalid"},
		{"url ftp", `{"type":"0","method":"0","url":"ftp://h.example/x"}`, 400, "pce_url_invalid"},
		{"status unknown", `{` + ok + `,"status":"2"}`, 400, "pce_status_invalid"},
		{"note null", `{` + ok + `,"note":null}`, 400, "pce_note_invalid"},
		{"id empty", `{` + ok + `,"id":""}`, 400, "pce_id_invalid"},
		{"id not alphanumeric", `{` + ok + `,"id":"a-b"}`, 400, "pce_id_invalid"},
		{"id too long", `{` + ok + `,"id":"` + strings.Repeat("a", 256) + `"}`, 400, "pce_id_invalid"},
		{"id taken", `{` + ok + `,"id":"taken"}`, 400, "pce_id_invalid"},
		{"id taken, other type", `{"type":"2","method":"0","url":"http://h.example/x","id":"taken"}`, 400, "pce_id_invalid"},
	} {
		st, _, raw := call(t, http.MethodPost, coll, tc.body)
		if st != tc.status || codeOf(t, raw) != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, st, raw, tc.status, tc.code)
		}
	}
	// An id of 255 characters, and the same id in another extension, are fine.
	for _, u := range []string{coll, srv.URL + "/uapi/extensions/1001/211/phoneCallEvents"} {
		if st, _, raw := call(t, http.MethodPost, u, `{`+ok+`,"id":"`+strings.Repeat("Z", 255)+`"}`); st != 200 {
			t.Errorf("POST %s: %d %s", u, st, raw)
		}
	}
	if c := list(t, coll); c.TotalResults != 2 {
		t.Errorf("only the good creates are stored: %+v", c)
	}
}

func TestBackendMethods(t *testing.T) {
	srv := httptest.NewServer(newBackend())
	defer srv.Close()
	coll := srv.URL + "/uapi/extensions/@me/0003*210/phoneCallEvents"
	body := `{"type":"0","method":"0","url":"http://h.example/x"}`
	for _, tc := range []struct {
		method, u string
		status    int
		code      string
		allow     string
	}{
		{http.MethodPost, coll + "/0", 405, "method_not_allowed", "GET, HEAD, DELETE"},
		{http.MethodPost, coll + "/0/" + exampleID, 405, "method_not_allowed", "GET, HEAD, PUT, DELETE"},
		{http.MethodPatch, coll + "/0/" + exampleID, 405, "method_not_allowed", "GET, HEAD, PUT, DELETE"},
		{http.MethodPatch, coll, 405, "method_not_allowed", "GET, HEAD, POST, DELETE"},
		{http.MethodOptions, coll + "/0", 405, "method_not_allowed", "GET, HEAD, DELETE"},
		{http.MethodPut, coll, 400, "pce_type_invalid", ""},
		{http.MethodPut, coll + "/0", 400, "pce_id_invalid", ""},
		{http.MethodPost, srv.URL + "/uapi/extensions/@me/phoneCallEvents", 404, "not_found", ""},
		{http.MethodPost, srv.URL + "/uapi/extensions/@me//phoneCallEvents", 404, "not_found", ""},
		{http.MethodDelete, coll + "/0/" + exampleID + "/more", 404, "not_found", ""},
		{http.MethodGet, srv.URL + "/uapi/extensions/@me/0003*210/phonecallevents", 404, "not_found", ""},
	} {
		st, h, raw := call(t, tc.method, tc.u, body)
		if st != tc.status || codeOf(t, raw) != tc.code || h.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d %q %s, want %d %q %s", tc.method, tc.u, st, h.Get("Allow"), raw, tc.status, tc.allow, tc.code)
		}
	}
	if c := list(t, coll); c.TotalResults != 1 {
		t.Errorf("nothing changed: %+v", c)
	}
}

func TestBackendDelete(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		status     int
		answer     string
		left       []string
	}{
		{"item", "/1/b", 200, `[{"id":"b"}]`, []string{"a", "c", "d"}},
		{"type", "/0", 200, `[{"id":"a"},{"id":"c"}]`, []string{"b", "d"}},
		{"type, trailing slash", "/0/", 200, `[{"id":"a"},{"id":"c"}]`, []string{"b", "d"}},
		{"collection", "", 200, `[{"id":"a"},{"id":"b"},{"id":"c"},{"id":"d"}]`, []string{}},
		{"empty type", "/4", 204, ``, []string{"a", "b", "c", "d"}},
		{"unknown item", "/1/a", 404, `pce_not_found`, []string{"a", "b", "c", "d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(newBackend())
			defer srv.Close()
			coll := srv.URL + "/uapi/extensions/7/0007*001/phoneCallEvents"
			for i, id := range []string{"a", "b", "c", "d"} {
				body := fmt.Sprintf(`{"type":"%d","id":"%s","method":"0","url":"http://h.example/"}`, i%2, id)
				if st, _, raw := call(t, http.MethodPost, coll, body); st != 200 {
					t.Fatalf("create: %d %s", st, raw)
				}
			}
			st, _, raw := call(t, http.MethodDelete, coll+tc.path, "")
			got := strings.TrimSuffix(string(raw), "\n")
			if st == 404 {
				got = codeOf(t, raw)
			}
			if st != tc.status || got != tc.answer {
				t.Errorf("DELETE %s: %d %s, want %d %s", tc.path, st, raw, tc.status, tc.answer)
			}
			if c := list(t, coll); fmt.Sprint(c.ids()) != fmt.Sprint(tc.left) {
				t.Errorf("left %v, want %v", c.ids(), tc.left)
			}
			// The other extensions keep their events.
			if c := list(t, srv.URL+"/uapi/extensions/@me/0003*210/phoneCallEvents"); c.TotalResults != 1 {
				t.Errorf("example extension: %+v", c)
			}
		})
	}
	// An empty collection: 204, no body.
	srv := httptest.NewServer(newBackend())
	defer srv.Close()
	if st, _, raw := call(t, http.MethodDelete, srv.URL+"/uapi/extensions/1/2/phoneCallEvents", ""); st != 204 || len(raw) != 0 {
		t.Errorf("empty collection: %d %q", st, raw)
	}
}

func TestBackendLimit(t *testing.T) {
	srv := httptest.NewServer(newBackendLimit(3)) // the example event is one
	defer srv.Close()
	coll := srv.URL + "/uapi/extensions/1/2/phoneCallEvents"
	body := `{"type":"0","method":"0","url":"http://h.example/"}`
	for i := range 2 {
		if st, _, raw := call(t, http.MethodPost, coll, body); st != 200 {
			t.Fatalf("create %d: %d %s", i, st, raw)
		}
	}
	if st, _, raw := call(t, http.MethodPost, coll, body); st != 507 || codeOf(t, raw) != "storage_full" {
		t.Errorf("create past the limit: %d %s", st, raw)
	}
	if st, _, raw := call(t, http.MethodPut, coll+"/0/new1", body); st != 507 || codeOf(t, raw) != "storage_full" {
		t.Errorf("PUT-create past the limit: %d %s", st, raw)
	}
	// Updates still work when full.
	u := srv.URL + "/uapi/extensions/@me/0003*210/phoneCallEvents/0/" + exampleID
	if st, _, raw := call(t, http.MethodPut, u, `{"method":"1","note":"I want to use POST for my event"}`); st != 200 {
		t.Errorf("update when full: %d %s", st, raw)
	}
	if st, _, raw := call(t, http.MethodDelete, coll, ""); st != 200 || strings.Count(string(raw), `"id"`) != 2 {
		t.Fatalf("delete: %d %s", st, raw)
	}
	if st, _, raw := call(t, http.MethodPost, coll, body); st != 200 {
		t.Errorf("create after delete: %d %s", st, raw)
	}
}

func TestBackendConcurrent(t *testing.T) {
	srv := httptest.NewServer(newBackend())
	defer srv.Close()
	coll := srv.URL + "/uapi/extensions/1/2/phoneCallEvents"
	const workers, each = 8, 10
	var wg sync.WaitGroup
	ids := make(chan string, workers*each)
	for w := range workers {
		wg.Go(func() {
			for range each {
				st, _, raw := call(t, http.MethodPost, coll, fmt.Sprintf(`{"type":"%d","method":"0","url":"http://h.example/"}`, w%3))
				var ev phoneCallEvent
				if st != 200 || json.Unmarshal(raw, &ev) != nil {
					t.Errorf("create: %d %s", st, raw)
					return
				}
				ids <- ev.ID
				list(t, coll+"?count=5")
				call(t, http.MethodPut, coll+"/"+ev.Type+"/"+ev.ID, `{"note":"x"}`)
			}
		})
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] || !regexp.MustCompile(`^[A-Za-z0-9]{30}$`).MatchString(id) {
			t.Errorf("id %q repeated or malformed", id)
		}
		seen[id] = true
	}
	c := list(t, coll+"?count=5000")
	if c.TotalResults != workers*each || len(seen) != workers*each {
		t.Errorf("stored %d, created %d", c.TotalResults, len(seen))
	}
	for _, e := range c.Entry {
		if !seen[e.ID] || e.Note != "x" {
			t.Errorf("entry %+v", e)
		}
	}
}

func TestEscapeSegment(t *testing.T) {
	for in, want := range map[string]string{
		"@me": "@me", "0003*210": "0003*210", "a b": "a%20b", "a?b#c": "a%3Fb%23c", "é": "%C3%A9", "100%": "100%25",
	} {
		if got := escapeSegment(in); got != want {
			t.Errorf("escapeSegment(%q) = %q, want %q", in, got, want)
		}
	}
}
