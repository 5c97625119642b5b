package caddymodule

// Benchmarks of the whole handler (ServeHTTP), driven in process with a
// next handler that drains the body: no network to the backend, a real
// loopback introspection endpoint, a private redis-server for the Redis
// tier. They measure the gateway's own cost per request; the end-to-end
// comparison with a plain reverse_proxy is cmd/pce-load (BENCHMARKS.md).
//
// Every benchmark works with b.N == 1, for CI's
//
//	go test -run '^$' -bench . -benchtime=1x ./...

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/introspect"
	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/tokencache"
	"github.com/voipnow-pce/caddy-voipnow-pce/internal/redistest"
)

const (
	benchToken   = "bench-token-0123456789abcdefghijklmnopqrstuvwxyz"
	benchPath    = "/uapi/extensions/@me/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"
	benchBadPath = "/uapi/extensions/@me/0003*210/phoneCallEvents/9/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"
	benchPayload = `{"method": "1", "note": "I want to use POST for my event", "url": "http://myevent.com/SaveMyPhoneCallDetails", "status": "1"}`
)

// benchIdP is a loopback RFC 7662 endpoint that answers active for every
// token, for an hour, and counts its calls.
func benchIdP(b *testing.B) (introspectionURL string, calls *atomic.Int64) {
	b.Helper()
	calls = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if id, secret, ok := r.BasicAuth(); !ok || id != "gateway" || secret != "s3cret" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"active":true,"scope":"uapi","sub":"1001","exp":%d}`, time.Now().Add(time.Hour).Unix())
	}))
	b.Cleanup(srv.Close)
	return srv.URL + "/introspect", calls
}

// benchHandler provisions a Handler as Caddy would; configure adjusts it
// before provisioning.
func benchHandler(b *testing.B, configure func(h *Handler)) (*Handler, *atomic.Int64) {
	b.Helper()
	idpURL, calls := benchIdP(b)
	h := &Handler{
		IntrospectionURL: idpURL,
		ClientID:         "gateway",
		ClientSecret:     "s3cret",
		RequiredScopes:   []string{"uapi"},
		AdminScopes:      []string{"uapi.admin"},
	}
	if configure != nil {
		configure(h)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	// Without a loaded config, ctx.Logger() is zap's development logger on
	// os.Stderr, whose Debug lines would break the benchmark output that
	// go test merges with stderr: point it at /dev/null while provisioning.
	stderr := os.Stderr
	if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
		os.Stderr = null
		defer func() { os.Stderr = stderr; _ = null.Close() }()
	}
	if err := h.Provision(ctx); err != nil {
		os.Stderr = stderr
		cancel()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = h.Cleanup()
		cancel()
	})
	return h, calls
}

// benchNext stands for reverse_proxy: it drains the body and answers 200.
var benchNext = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, `{"status":"1"}`)
	return nil
})

// benchRequest is one request reused across iterations: reset restores it
// to what the client sent without allocating, so that allocs/op counts the
// handler's allocations and not the harness's. (In Caddy, net/http and
// caddyhttp.PrepareRequest make a fresh request each time; that cost is
// the same with or without the gateway.)
type benchRequest struct {
	r       *http.Request
	url     url.URL
	header  http.Header
	auth    []string
	body    *strings.Reader
	rc      io.ReadCloser // io.NopCloser(body), made once
	payload string
	ctx     context.Context
}

func newBenchRequest(method, target, token, payload string) *benchRequest {
	br := &benchRequest{payload: payload, body: strings.NewReader(payload), header: http.Header{}}
	br.rc = io.NopCloser(br.body)
	tmpl := httptest.NewRequest(method, target, nil)
	br.url = *tmpl.URL
	if token != "" {
		br.auth = []string{"Bearer " + token}
	}
	// Caddy's replacer, as caddyhttp.PrepareRequest puts it in the context.
	br.ctx = context.WithValue(tmpl.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer())
	br.r = tmpl.WithContext(br.ctx)
	br.r.URL = new(url.URL)
	br.r.Header = br.header
	br.reset()
	return br
}

func (br *benchRequest) reset() *http.Request {
	r := br.r
	*r.URL = br.url
	clear(br.header)
	if br.auth != nil {
		br.header["Authorization"] = br.auth
	}
	br.body.Reset(br.payload)
	r.Body = br.rc
	r.ContentLength = int64(len(br.payload))
	r.GetBody = nil
	return r
}

// benchWriter is a ResponseWriter that can be reused without allocating.
type benchWriter struct {
	header http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header { return w.header }
func (w *benchWriter) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
}

func (w *benchWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}

func (w *benchWriter) reset() *benchWriter {
	clear(w.header)
	w.status, w.n = 0, 0
	return w
}

// checkOnce serves one request through httptest.NewRecorder and checks
// the answer, so a benchmark never measures the wrong path.
func checkOnce(b *testing.B, h *Handler, br *benchRequest, wantStatus int, wantBody string) {
	b.Helper()
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, br.reset(), benchNext); err != nil {
		b.Fatal(err)
	}
	if rec.Code != wantStatus || !strings.Contains(rec.Body.String(), wantBody) {
		b.Fatalf("status %d body %q, want %d with %q", rec.Code, rec.Body.String(), wantStatus, wantBody)
	}
}

func runServe(b *testing.B, h *Handler, br *benchRequest, wantStatus int) {
	b.Helper()
	w := &benchWriter{header: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := h.ServeHTTP(w.reset(), br.reset(), benchNext); err != nil {
			b.Fatal(err)
		}
		if w.status != wantStatus {
			b.Fatalf("status %d, want %d", w.status, wantStatus)
		}
	}
}

// BenchmarkServeHTTPMemoryHit: the page's request, token answered by the
// in-process tier, forwarded.
func BenchmarkServeHTTPMemoryHit(b *testing.B) {
	h, calls := benchHandler(b, nil)
	br := newBenchRequest(http.MethodPut, benchPath, benchToken, benchPayload)
	checkOnce(b, h, br, http.StatusOK, `"status":"1"`)
	runServe(b, h, br, http.StatusOK)
	if n := calls.Load(); n != 1 {
		b.Fatalf("introspection calls = %d, want 1", n)
	}
}

// BenchmarkServeHTTPMemoryHitParallel: the same under parallel load (one
// hot token: every goroutine reads the same shard).
func BenchmarkServeHTTPMemoryHitParallel(b *testing.B) {
	h, calls := benchHandler(b, nil)
	checkOnce(b, h, newBenchRequest(http.MethodPut, benchPath, benchToken, benchPayload), http.StatusOK, `"status":"1"`)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		br := newBenchRequest(http.MethodPut, benchPath, benchToken, benchPayload)
		w := &benchWriter{header: http.Header{}}
		for pb.Next() {
			if err := h.ServeHTTP(w.reset(), br.reset(), benchNext); err != nil || w.status != http.StatusOK {
				b.Errorf("status %d, err %v", w.status, err)
				return
			}
		}
	})
	if n := calls.Load(); n != 1 {
		b.Fatalf("introspection calls = %d, want 1", n)
	}
}

// BenchmarkServeHTTPRedisHit: the token answered by Redis, the in-process
// tier off (cache_size -1): one GET to a private redis-server per request.
func BenchmarkServeHTTPRedisHit(b *testing.B) {
	srv := redistest.Start(b)
	h, calls := benchHandler(b, func(h *Handler) {
		h.CacheSize = -1
		h.Cache = &CacheConfig{Type: "redis", URLs: []string{srv.URL()}, Timeout: caddy.Duration(time.Second)}
	})
	br := newBenchRequest(http.MethodPut, benchPath, benchToken, benchPayload)
	checkOnce(b, h, br, http.StatusOK, `"status":"1"`)
	runServe(b, h, br, http.StatusOK)
	if n := calls.Load(); n != 1 {
		b.Fatalf("introspection calls = %d, want 1 (Redis was not used)", n)
	}
}

// BenchmarkServeHTTPRejected: a valid token (in-process hit) on a bad
// eventType: 400 pce_type_invalid, nothing forwarded.
func BenchmarkServeHTTPRejected(b *testing.B) {
	h, _ := benchHandler(b, nil)
	br := newBenchRequest(http.MethodPut, benchBadPath, benchToken, benchPayload)
	checkOnce(b, h, br, http.StatusBadRequest, "pce_type_invalid")
	runServe(b, h, br, http.StatusBadRequest)
}

// BenchmarkServeHTTPNoToken: no Authorization: 401 before any lookup.
func BenchmarkServeHTTPNoToken(b *testing.B) {
	h, calls := benchHandler(b, nil)
	br := newBenchRequest(http.MethodPut, benchPath, "", benchPayload)
	checkOnce(b, h, br, http.StatusUnauthorized, "access_denied")
	runServe(b, h, br, http.StatusUnauthorized)
	if n := calls.Load(); n != 0 {
		b.Fatalf("introspection calls = %d, want 0", n)
	}
}

// BenchmarkServeHTTPPassThrough: a request that is not the route (a GET)
// goes to next untouched: the floor of this harness.
// A request off the resource: the cost of looking at it.
func BenchmarkServeHTTPPassThrough(b *testing.B) {
	h, _ := benchHandler(b, nil)
	br := newBenchRequest(http.MethodGet, "/uapi/extensions/@me/0003*210/presence", benchToken, "")
	checkOnce(b, h, br, http.StatusOK, `"status":"1"`)
	runServe(b, h, br, http.StatusOK)
}

// A create with a cached token: the create page's payload, checked and
// normalized.
func BenchmarkServeHTTPCreateHit(b *testing.B) {
	h, _ := benchHandler(b, nil)
	br := newBenchRequest(http.MethodPost, "/uapi/extensions/@me/0003*210/phoneCallEvents", benchToken,
		`{"type":"0","method":"1","note":"I want to use POST for my event","url":"http://myevent.com/SaveMyPhoneCallDetails","status":"1"}`)
	checkOnce(b, h, br, http.StatusOK, `"status":"1"`)
	runServe(b, h, br, http.StatusOK)
}

// A list with a cached token: checked and forwarded without a body.
func BenchmarkServeHTTPListHit(b *testing.B) {
	h, _ := benchHandler(b, nil)
	br := newBenchRequest(http.MethodGet, benchPath, benchToken, "")
	checkOnce(b, h, br, http.StatusOK, `"status":"1"`)
	runServe(b, h, br, http.StatusOK)
}

// BenchmarkServeHTTPMiss: every request a new token, miss_budget off:
// the whole miss path (both tiers, one loopback introspection call, the
// shield's max_introspections slot) per request.
func BenchmarkServeHTTPMiss(b *testing.B) {
	h, calls := benchHandler(b, func(h *Handler) { h.MissBudget = &MissBudget{Off: true} })
	w := &benchWriter{header: http.Header{}}
	i := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		i++
		br := newBenchRequest(http.MethodPut, benchPath, benchToken+strconv.Itoa(i), benchPayload)
		if err := h.ServeHTTP(w.reset(), br.reset(), benchNext); err != nil || w.status != http.StatusOK {
			b.Fatalf("status %d, err %v", w.status, err)
		}
	}
	b.StopTimer()
	if n := calls.Load(); n != int64(i) {
		b.Fatalf("introspection calls = %d for %d new tokens", n, i)
	}
}

// BenchmarkServeHTTPOverBudget: one address sending new tokens past the
// default miss budget: the 429 costs no introspection call.
func BenchmarkServeHTTPOverBudget(b *testing.B) {
	h, calls := benchHandler(b, nil)
	w := &benchWriter{header: http.Header{}}
	i := 0
	for range defaultMissBudget { // spend the budget first
		i++
		br := newBenchRequest(http.MethodPut, benchPath, benchToken+strconv.Itoa(i), benchPayload)
		_ = h.ServeHTTP(w.reset(), br.reset(), benchNext)
	}
	before := calls.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		i++
		br := newBenchRequest(http.MethodPut, benchPath, benchToken+strconv.Itoa(i), benchPayload)
		if err := h.ServeHTTP(w.reset(), br.reset(), benchNext); err != nil || w.status != http.StatusTooManyRequests {
			// The bucket refills at 50/s: a slow iteration may get one
			// more lookup through; it must then be a 200.
			if w.status != http.StatusOK {
				b.Fatalf("status %d, err %v", w.status, err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(calls.Load()-before)/float64(b.N), "introspections/op")
}

// countingUpstream answers active for every token and counts its calls.
type countingUpstream struct {
	calls atomic.Int64
	exp   int64
}

func (u *countingUpstream) Introspect(_ context.Context, token string) (*introspect.Claims, error) {
	u.calls.Add(1)
	return &introspect.Claims{Active: true, Exp: u.exp, Scopes: []string{"uapi"}, User: "1001"}, nil
}

// BenchmarkCache100kTokens measures the heap held by the in-process tier
// with 100,000 cached tokens (target < 64 MiB), each with its own claims as
// the introspection client makes them. The tier is sized 110,000 so none
// is evicted (the per-shard tables are allocated for the full size, so
// this errs on the high side); a second pass checks that all 100,000 are
// hits. Reported as MiB and bytes/token.
func BenchmarkCache100kTokens(b *testing.B) {
	const n = 100_000
	tokens := make([]string, n)
	for i := range tokens {
		// 43 characters, like a base64url 32-byte opaque token.
		tokens[i] = fmt.Sprintf("%043d", i)
	}
	ctx := context.Background()
	var mib float64
	b.ReportAllocs()
	for b.Loop() {
		up := &countingUpstream{exp: time.Now().Add(time.Hour).Unix()}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c, err := tokencache.New(tokencache.Config{
			Namespace:     "http://127.0.0.1:9096/oauth/introspect\x00gateway\x00sub",
			MemoryEntries: n + n/10,
		}, up)
		if err != nil {
			b.Fatal(err)
		}
		for _, tok := range tokens {
			if _, err := c.Introspect(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		for _, tok := range tokens {
			if _, err := c.Introspect(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
		if got := up.calls.Load(); got != n {
			b.Fatalf("upstream calls = %d after two passes over %d tokens: some were evicted", got, n)
		}
		mib = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (1 << 20)
		runtime.KeepAlive(c)
		c.Close()
	}
	b.ReportMetric(mib, "MiB/100k-tokens")
	b.ReportMetric(mib*(1<<20)/n, "B/token")
	if testing.Verbose() {
		b.Logf("100,000 cached tokens: %.1f MiB of heap (%s B/token)", mib, strconv.FormatFloat(mib*(1<<20)/n, 'f', 0, 64))
	}
}
