package introspect

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/testservers"
)

// client_secret_post: the credentials in the form, no Authorization.
func TestClientSecretPost(t *testing.T) {
	srv, last := newServer(t, 200, `{"active":true}`)
	c := newTestClient(t, srv.URL, func(c *Config) { c.AuthMethod = ClientSecretPost })
	if _, err := c.Introspect(context.Background(), testToken); err != nil {
		t.Fatal(err)
	}
	s := last()
	if s.rawAuth != "" || s.form.Get("client_id") != testID || s.form.Get("client_secret") != testSecret || s.form.Get("token") != testToken {
		t.Errorf("request: Authorization %q, form %v", s.rawAuth, s.form)
	}
	if _, err := NewClient(Config{Endpoint: srv.URL, ClientID: "a", AuthMethod: "private_key_jwt"}); err == nil {
		t.Error("an unknown client authentication was accepted")
	}
}

// 429 and 5xx are outages (never the gateway's fault), with the endpoint's
// Retry-After when it gives one.
func TestRetryAfter(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		status int
		header string
		want   time.Duration
		ok     bool
	}{
		{429, "7", 7 * time.Second, true},
		{503, "120", 120 * time.Second, true},
		{503, date, 90 * time.Second, true},
		{502, "", 0, false},
		{429, "soon", 0, false},
		{503, "-3", 0, false},
		{503, "999999999", time.Hour, true},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tc.header != "" {
				w.Header().Set("Retry-After", tc.header)
			}
			w.WriteHeader(tc.status)
		}))
		c := newTestClient(t, srv.URL, nil)
		_, err := c.Introspect(context.Background(), testToken)
		srv.Close()
		checkUnavailable(t, err)
		if errors.Is(err, ErrRefused) {
			t.Errorf("%d is an outage, not a refusal", tc.status)
		}
		d, ok := RetryAfter(err)
		if ok != tc.ok || (ok && (d < tc.want-2*time.Second || d > tc.want)) {
			t.Errorf("%d Retry-After %q: %v %v, want %v", tc.status, tc.header, d, ok, tc.want)
		}
	}
}

// A private CA, mutual TLS, and a certificate the client cannot trust.
func TestIntrospectionTLS(t *testing.T) {
	ca := testservers.NewCA(t, "idp-ca")
	other := testservers.NewCA(t, "other-ca")
	serverCert := ca.Issue(t, "idp")
	clientCert := ca.Issue(t, "gateway")
	strangerCert := other.Issue(t, "stranger")
	start := func(requireClient bool) string {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"active":true,"sub":"1"}`))
		}))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert.TLS}}
		if requireClient {
			srv.TLS.ClientAuth, srv.TLS.ClientCAs = tls.RequireAndVerifyClientCert, ca.Pool()
		}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.URL
	}
	plain, mutual := start(false), start(true)
	for _, tc := range []struct {
		name     string
		endpoint string
		tls      *tls.Config
		ok       bool
		cause    string
	}{
		{"private CA", plain, &tls.Config{RootCAs: ca.Pool()}, true, ""},
		{"system roots only", plain, nil, false, "certificate"},
		{"wrong CA", plain, &tls.Config{RootCAs: other.Pool()}, false, "certificate"},
		{"mutual TLS", mutual, &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{clientCert.TLS}}, true, ""},
		{"mutual TLS without a certificate", mutual, &tls.Config{RootCAs: ca.Pool()}, false, "certificate"},
		{"mutual TLS, a stranger's certificate", mutual, &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{strangerCert.TLS}}, false, ""},
	} {
		c := newTestClient(t, tc.endpoint, func(c *Config) { c.TLS = tc.tls })
		got, err := c.Introspect(context.Background(), testToken)
		if tc.ok {
			if err != nil || !got.Active {
				t.Errorf("%s: %v %v", tc.name, got, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		checkUnavailable(t, err)
		if tc.cause != "" && !strings.Contains(err.Error(), tc.cause) {
			t.Errorf("%s: error %q does not say why", tc.name, err)
		}
	}
	if _, err := NewClient(Config{Endpoint: "http://127.0.0.1:1/i", ClientID: "a", TLS: &tls.Config{}}); err == nil {
		t.Error("TLS settings with an http endpoint were accepted")
	}
}
