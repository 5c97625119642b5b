package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/redistest"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/testservers"
)

// One token, many requests: one introspection call, sequential or
// concurrent.
func TestOneIntrospectionPerToken(t *testing.T) {
	s := newStack(t, "")
	grantAll(s)
	for range 20 {
		s.expectForwarded(s.put(pagePath, goodToken, `{}`))
	}
	if n := s.idp.Calls.Load(); n != 1 {
		t.Errorf("20 sequential requests made %d introspection calls, want 1", n)
	}

	s.idp.Calls.Store(0)
	var wg sync.WaitGroup
	statuses := make([]int, 64)
	for i := range statuses {
		wg.Go(func() { statuses[i] = s.put(pagePath, userToken, `{}`).Status })
	}
	wg.Wait()
	for i, st := range statuses {
		if st != http.StatusOK {
			t.Errorf("concurrent request %d: status %d", i, st)
		}
	}
	if got := len(s.backend.Take()); got != 64 {
		t.Errorf("%d of 64 concurrent requests reached the backend", got)
	}
	if n := s.idp.Calls.Load(); n != 1 {
		t.Errorf("64 concurrent requests with a fresh token made %d introspection calls, want 1", n)
	}
}

// The caches keep answers, not decisions: a token cached through a lenient
// site is refused by a strict one sharing the same Redis.
func TestCacheKeepsAnswersNotDecisions(t *testing.T) {
	rs := redistest.Start(t)
	idp, backend := testservers.NewIdP(t), testservers.NewBackend(t)
	idp.Grant(goodToken, "uapi", "1001")
	lenient, strict := freePort(t), freePort(t)
	cfg := globalOptions() +
		siteBlock(lenient, idp.URL(), backend.Addr, "required_scopes uapi\n\t\tcache redis "+rs.URL()) +
		siteBlock(strict, idp.URL(), backend.Addr, "required_scopes uapi uapi.write\n\t\tcache redis "+rs.URL()+"\n\t\tcache_size 500")
	tester := newTesterFor(t, cfg)
	a := &stack{t: t, tester: tester, idp: idp, backend: backend, base: "http://127.0.0.1:" + itoa(lenient)}
	b := &stack{t: t, tester: tester, idp: idp, backend: backend, base: "http://127.0.0.1:" + itoa(strict)}

	a.expectForwarded(a.put(pagePath, goodToken, `{}`))
	b.expectError(b.put(pagePath, goodToken, `{}`), http.StatusBadRequest, "pce_access_denied")
	if n := idp.Calls.Load(); n != 1 {
		t.Errorf("%d introspection calls: the strict site must have used the answer cached in Redis", n)
	}
	// The Redis keys hold no token.
	keys := redisKeys(t, rs.URL())
	if len(keys) == 0 {
		t.Fatal("nothing cached in Redis")
	}
	for _, k := range keys {
		if strings.Contains(k, goodToken) {
			t.Errorf("Redis key %q contains the token", k)
		}
	}
}

// A revoked token is purged through Caddy's admin endpoint, from the
// in-process tier and from Redis.
func TestRevoke(t *testing.T) {
	rs := redistest.Start(t)
	s := newStack(t, "cache redis "+rs.URL())
	grantAll(s)
	s.expectForwarded(s.put(pagePath, goodToken, `{}`))
	// The identity provider revokes it; the cache still holds the answer.
	s.idp.Set(goodToken, map[string]any{"active": false})
	s.expectForwarded(s.put(pagePath, goodToken, `{}`))

	res, body := adminPost(t, "/voipnow_pce/revoke", `{"token":"`+goodToken+`"}`)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d %s", res.StatusCode, body)
	}
	var sum revokeAnswer
	if err := json.Unmarshal([]byte(body), &sum); err != nil || sum.Caches != 1 || sum.Memory != 1 || sum.Redis != 1 || len(sum.Fingerprints) != 1 {
		t.Errorf("revoke summary %s (%v)", body, err)
	}
	if strings.Contains(body, goodToken) {
		t.Error("the revoke answer shows the token")
	}
	s.expectError(s.put(pagePath, goodToken, `{}`), http.StatusUnauthorized, "access_denied")

	// By fingerprint, too, in either letter case.
	s.expectForwarded(s.put(pagePath, userToken, `{}`))
	s.idp.Set(userToken, map[string]any{"active": false})
	fp := strings.ToUpper(s.fingerprint(userToken))
	res, body = adminPost(t, "/voipnow_pce/revoke", `{"fingerprint":"`+fp+`"}`)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("revoke by fingerprint: %d %s", res.StatusCode, body)
	}
	s.expectError(s.put(pagePath, userToken, `{}`), http.StatusUnauthorized, "access_denied")

	for _, bad := range []string{`{}`, `{"token":"a","fingerprint":"b"}`, `{"fingerprint":"xyz"}`, `nope`, `{"token":"a"} {"token":"b"}`, `{"token":"a"}]`,
		`{"token":"a","token":"b"}`, `{"token":"a","Token":"a"}`, `{"fingerprint":"abcdefabcdef","fingerprint":"abcdefabcdef"}`} {
		if res, body := adminPost(t, "/voipnow_pce/revoke", bad); res.StatusCode != http.StatusBadRequest {
			t.Errorf("revoke %s: %d %s, want 400", bad, res.StatusCode, body)
		}
	}
}

// fingerprint is the token's fingerprint as this stack's logs show it.
func (s *stack) fingerprint(token string) string {
	var fp string
	sharedCaches.Range(func(_, v any) bool {
		fp = v.(*sharedCache).cache.Fingerprint(token)
		return false
	})
	return fp
}

// Redis dies and comes back: every request is still answered right, and
// the tier is used again without a reload.
func TestRedisOutage(t *testing.T) {
	rs := redistest.Start(t)
	s := newStack(t, "cache redis "+rs.URL()+" {\n timeout 50ms\n}")
	grantAll(s)
	s.expectForwarded(s.put(pagePath, goodToken, `{}`))
	rs.Stop()
	for i := range 10 {
		token := fmt.Sprintf("tok-outage-%d", i)
		s.idp.Grant(token, "uapi", "1001")
		start := time.Now()
		s.expectForwarded(s.put(pagePath, token, `{}`))
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("request %d took %v while Redis was down", i, d)
		}
	}
	s.expectForwarded(s.put(pagePath, goodToken, `{}`))
	rs.Restart()
	// Fresh tokens, so that every request needs a tier beyond memory.
	n := 0
	waitFor(t, "the Redis tier to be used again", 40*time.Second, func() bool {
		n++
		token := fmt.Sprintf("tok-after-%d", n)
		s.idp.Grant(token, "uapi", "1001")
		s.expectForwarded(s.put(pagePath, token, `{}`))
		return len(redisKeys(t, rs.URL())) > 0
	})
}

// The metrics appear at Caddy's /metrics and move.
func TestMetrics(t *testing.T) {
	s := newStack(t, "")
	grantAll(s)
	s.expectForwarded(s.put(pagePath, goodToken, `{}`))
	s.expectForwarded(s.put(pagePath, goodToken, `{}`))
	s.expectError(s.put(pagePath, "", `{}`), http.StatusUnauthorized, "access_denied")
	body := scrape(t)
	for _, want := range []string{
		`caddy_voipnow_pce_requests_total{code="forwarded",operation="update"}`,
		`caddy_voipnow_pce_requests_total{code="access_denied",operation="update"}`,
		`caddy_voipnow_pce_requests_total{code="method_not_allowed",operation="none"}`,
		`caddy_voipnow_pce_requests_total{code="pce_type_invalid",operation="list"}`,
		`caddy_voipnow_pce_cache_lookups_total{result="hit",tier="memory"}`,
		`caddy_voipnow_pce_introspection_duration_seconds_count{outcome="active"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, goodToken) {
		t.Error("/metrics shows a token")
	}
	// Each decision moves its own operation's series, and only that one.
	const fwdUpdate, fwdList = `caddy_voipnow_pce_requests_total{code="forwarded",operation="update"}`, `caddy_voipnow_pce_requests_total{code="forwarded",operation="list"}`
	const notAllowed = `caddy_voipnow_pce_requests_total{code="method_not_allowed",operation="none"}`
	before := []float64{metricValue(body, fwdUpdate), metricValue(body, fwdList), metricValue(body, notAllowed)}
	s.expectForwarded(s.put(pagePath, goodToken, `{}`))
	s.expectForwarded(s.do(http.MethodGet, collectionPath, "", "Authorization: Bearer "+goodToken))
	s.expectForwarded(s.do(http.MethodGet, collectionPath, "", "Authorization: Bearer "+goodToken))
	s.expectError(s.do(http.MethodPatch, pagePath, "{}", "Authorization: Bearer "+goodToken), http.StatusMethodNotAllowed, "method_not_allowed")
	body = scrape(t)
	after := []float64{metricValue(body, fwdUpdate), metricValue(body, fwdList), metricValue(body, notAllowed)}
	if after[0] != before[0]+1 || after[1] != before[1]+2 || after[2] != before[2]+1 {
		t.Errorf("counters went from %v to %v, want +1, +2, +1", before, after)
	}
}

func scrape(t *testing.T) string {
	t.Helper()
	res, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func metricValue(body, series string) float64 {
	for line := range strings.SplitSeq(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return -1
}

func adminPost(t *testing.T, path, body string) (*http.Response, string) {
	t.Helper()
	res, err := http.Post("http://"+adminAddr+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// redisKeys lists the cached answers' keys in a Redis: every key but the
// revocation record's.
func redisKeys(t *testing.T, url string) []string {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	all, _ := c.Keys(context.Background(), "*").Result()
	var keys []string
	for _, k := range all {
		if !strings.Contains(k, "{revocations}") {
			keys = append(keys, k)
		}
	}
	return keys
}

// With the endpoint down, cached tokens are still served; unknown ones get
// 503.
func TestEndpointDownServesCachedTokens(t *testing.T) {
	s := newStack(t, "")
	grantAll(s)
	s.expectForwarded(s.put(pagePath, goodToken, `{}`))
	s.idp.Mode.Store(testservers.Fail)
	s.expectForwarded(s.put(pagePath, goodToken, `{}`))
	s.expectError(s.put(pagePath, userToken, `{}`), http.StatusServiceUnavailable, "service_unavailable")
}

// stale_if_error: past max_ttl, a cached answer is used while the endpoint
// fails, never past exp; without it, the answer is gone at max_ttl.
func TestStaleIfError(t *testing.T) {
	for _, stale := range []bool{true, false} {
		extra := "max_ttl 1s\nskew 1ms"
		if stale {
			extra += "\nstale_if_error 1m"
		}
		s := newStack(t, extra)
		grantAll(s)
		// This one expires 2s from now.
		exp := time.Now().Add(2 * time.Second).Unix()
		s.idp.Set("tok-short", map[string]any{"active": true, "scope": "uapi", "sub": "1001", "exp": exp})
		s.expectForwarded(s.put(pagePath, goodToken, `{}`))
		s.expectForwarded(s.put(pagePath, "tok-short", `{}`))
		s.idp.Mode.Store(testservers.Fail)
		time.Sleep(1200 * time.Millisecond) // past max_ttl: the condition is time itself
		res := s.put(pagePath, goodToken, `{}`)
		if stale {
			s.expectForwarded(res)
		} else {
			s.expectError(res, http.StatusServiceUnavailable, "service_unavailable")
		}
		waitFor(t, "tok-short's exp", 5*time.Second, func() bool { return time.Now().Unix() >= exp })
		res = s.put(pagePath, "tok-short", `{}`)
		if res.Status == http.StatusOK {
			t.Errorf("stale_if_error=%v: a token past its exp was accepted", stale)
		}
		s.backend.Take()
	}
}

// `cache redis <url> <url> <url>` is a Redis Cluster: the gateway stores
// and finds its answers there.
func TestRedisClusterConfig(t *testing.T) {
	nodes := redistest.StartCluster(t, 3)
	urls := ""
	for _, n := range nodes {
		urls += " " + n.URL()
	}
	s := newStack(t, "cache redis"+urls+"\ncache_size -1")
	grantAll(s)
	for range 3 {
		s.expectForwarded(s.put(pagePath, goodToken, `{}`))
	}
	if n := s.idp.Calls.Load(); n != 1 {
		t.Errorf("%d introspection calls with the in-process tier off: the Cluster did not answer", n)
	}
	stored := 0
	for _, n := range nodes {
		stored += len(redisKeys(t, n.URL()))
	}
	if stored != 1 {
		t.Errorf("%d keys in the Cluster, want 1", stored)
	}
}

// With no gateway loaded, a revocation purges nothing and says so.
func TestRevokeWithoutGateway(t *testing.T) {
	newTesterFor(t, globalOptions()+fmt.Sprintf("\nhttp://127.0.0.1:%d {\n\trespond ok\n}\n", freePort(t)))
	res, body := adminPost(t, "/voipnow_pce/revoke", `{"token":"abc"}`)
	if res.StatusCode != http.StatusConflict {
		t.Errorf("revoke with no voipnow_pce loaded: %d %s, want 409", res.StatusCode, body)
	}
	res, err := http.Get("http://" + adminAddr + "/voipnow_pce/revoke")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != http.MethodPost {
		t.Errorf("GET revoke: %d, Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
}
