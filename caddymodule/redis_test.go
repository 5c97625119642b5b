package caddymodule

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/redistest"
)

// tlsKeys lists the cached answers in a TLS Redis.
func tlsKeys(t *testing.T, srv *redistest.TLSServer) []string {
	t.Helper()
	v, err := srv.Do("KEYS", "*")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, k := range v.([]any) {
		if s, _ := k.(string); !strings.Contains(s, "{revocations}") {
			keys = append(keys, s)
		}
	}
	return keys
}

// rediss:// with tls_ca and a client certificate the server requires:
// the answers land in Redis. With another CA nothing does, and requests
// are still served (the in-process tier and the endpoint).
func TestRedisTLS(t *testing.T) {
	srv := redistest.StartTLS(t, redistest.ClientCertRequired)
	block := func(ca string, extra string) string {
		return "cache redis " + srv.URL() + " {\n\t\t\ttls_ca " + ca + "\n\t\t\ttls_client_cert " +
			srv.Client.CertFile + " " + srv.Client.KeyFile + extra + "\n\t\t}\n\t\tcache_size -1"
	}

	s := newStack(t, block(srv.CAFile, ""))
	grantAll(s)
	s.expectForwarded(s.put(pagePath, goodToken, `{}`))
	if keys := tlsKeys(t, srv); len(keys) != 1 {
		t.Fatalf("keys over TLS with tls_ca: %v, want one answer", keys)
	}
	if _, err := srv.Do("FLUSHALL"); err != nil {
		t.Fatal(err)
	}

	s = newStack(t, block(srv.OtherCAFile, ""))
	grantAll(s)
	s.expectForwarded(s.put(pagePath, goodToken, `{}`))
	s.expectForwarded(s.put(pagePath, goodToken, `{}`))
	if keys := tlsKeys(t, srv); len(keys) != 0 {
		t.Fatalf("keys written through an untrusted certificate: %v", keys)
	}
	if n := s.idp.Calls.Load(); n != 2 {
		t.Errorf("%d introspection calls with Redis unusable and no in-process tier, want 2", n)
	}

	// The explicit switch: checks off, and it works (with a warning at load).
	s = newStack(t, block(srv.OtherCAFile, "\n\t\t\ttls_insecure_skip_verify"))
	grantAll(s)
	s.expectForwarded(s.put(pagePath, goodToken, `{}`))
	if keys := tlsKeys(t, srv); len(keys) != 1 {
		t.Fatalf("keys with tls_insecure_skip_verify: %v, want one", keys)
	}
}

// What is refused at load: skip_verify in a URL, TLS options without
// rediss://, a mix of schemes, unreadable files.
func TestRedisTLSRefusedAtLoad(t *testing.T) {
	srv := redistest.StartTLS(t, redistest.ClientCertNone)
	idp, backend := "http://127.0.0.1:1/introspect", "127.0.0.1:1"
	for _, tc := range []struct{ block, want string }{
		{"cache redis " + srv.URL() + "?skip_verify=true", "skip_verify in a Redis URL is refused"},
		{"cache redis redis://127.0.0.1:1/0 {\n\t\t\ttls_ca " + srv.CAFile + "\n\t\t}", "need rediss:// URLs"},
		{"cache redis redis://127.0.0.1:1/0 {\n\t\t\ttls_insecure_skip_verify\n\t\t}", "need rediss:// URLs"},
		{"cache redis " + srv.URL() + " redis://127.0.0.1:1/0", "TLS is all or nothing"},
		{"cache redis " + srv.URL() + " {\n\t\t\ttls_ca /nonexistent/ca.pem\n\t\t}", "tls_ca:"},
		{"cache redis " + srv.URL() + " {\n\t\t\ttls_ca " + srv.Client.KeyFile + "\n\t\t}", "tls_ca: no PEM certificate"},
		{"cache redis " + srv.URL() + " {\n\t\t\ttls_client_cert " + srv.Client.CertFile + " " + srv.CAFile + "\n\t\t}", "tls_client_cert:"},
		{"cache redis " + srv.URL() + " {\n\t\t\tmin_replicas -1\n\t\t}", "min_replicas"},
		{"revocation_grace 0s", "revocation_grace"},
	} {
		caddytest.AssertLoadError(t, gatewayConfig(freePort(t), idp, backend, tc.block), "caddyfile", tc.want)
	}
}

// A certificate the gateway does not trust is logged with its cause, not
// as the deadline of whichever command waited for the connection.
func TestRedisDialerLogsCertificateError(t *testing.T) {
	srv := redistest.StartTLS(t, redistest.ClientCertNone)
	core, logs := observer.New(zap.WarnLevel)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.OtherCA.PEM)
	dial := redisDialer(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, time.Second, zap.New(core))
	for range 3 {
		if c, err := dial(context.Background(), "tcp", srv.Addr()); err == nil {
			c.Close()
			t.Fatal("a certificate from an untrusted CA was accepted")
		}
	}
	warns := logs.FilterMessage("redis TLS connection failed").All()
	if len(warns) != 1 {
		t.Fatalf("%d warnings for 3 failed handshakes, want 1 (rate-limited)", len(warns))
	}
	if msg := warns[0].ContextMap()["error"].(string); !strings.Contains(msg, "x509") {
		t.Fatalf("the warning does not give the cause: %q", msg)
	}
	// The right CA: a connection.
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CA.PEM)
	c, err := redisDialer(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, time.Second, zap.NewNop())(context.Background(), "tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// A revocation answered 503 while Redis is unreachable is recorded once
// Redis answers, also when a config reload replaced the cache meanwhile
// (found by a probe: the reload dropped it, and the token stayed accepted
// everywhere).
func TestUnrecordedRevocationSurvivesReload(t *testing.T) {
	rs := redistest.Start(t)
	port := freePort(t)
	s := newStack(t, "") // its identity provider and backend
	load := func(grace string) {
		s.tester = newTesterFor(t, gatewayConfig(port, s.idp.URL(), s.backend.Addr,
			"cache redis "+rs.URL()+"\n\t\trevocation_grace "+grace))
		s.base = "http://127.0.0.1:" + itoa(port)
	}
	load("3s")
	grantAll(s)
	s.expectForwarded(s.put(pagePath, goodToken, `{}`))

	rs.Stop() // not a frozen connection: bytes sent meanwhile are lost
	s.idp.Set(goodToken, map[string]any{"active": false})
	if res, body := adminPost(t, "/voipnow_pce/revoke", `{"token":"`+goodToken+`"}`); res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("revoke with Redis unreachable: %d %s", res.StatusCode, body)
	}
	load("4s") // another cache: revocation_grace is part of its identity
	rs.Restart()

	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for rdb.XLen(context.Background(), "voipnow_pce:{revocations}").Val() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the revocation answered 503 before the reload was never recorded")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
