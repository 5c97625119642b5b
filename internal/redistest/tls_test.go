package redistest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/voipnow-pce/caddy-voipnow-pce/internal/testservers"
)

func TestTLS(t *testing.T) {
	t.Parallel()
	s := StartTLS(t, ClientCertNone)
	if want := "rediss://" + s.Addr() + "/0"; s.URL() != want {
		t.Fatalf("URL = %q, want %q", s.URL(), want)
	}
	if err := ping(s.Addr()); err == nil {
		t.Fatal("plain-TCP PING answered by a TLS-only server")
	}
	trustCA := &tls.Config{RootCAs: s.CA.Pool(), ServerName: "127.0.0.1"}
	if err := pingWith(s.Addr(), trustCA); err != nil {
		t.Fatalf("TLS PING trusting the CA, no client cert: %v", err)
	}
	trustOther := &tls.Config{RootCAs: s.OtherCA.Pool(), ServerName: "127.0.0.1"}
	err := pingWith(s.Addr(), trustOther)
	var unknown x509.UnknownAuthorityError
	if err == nil || !strings.Contains(err.Error(), unknown.Error()[:20]) {
		t.Fatalf("TLS PING trusting another CA: got %v, want an unknown-authority error", err)
	}

	// go-redis with the URL and the CA file.
	opt, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	opt.TLSConfig.RootCAs = x509.NewCertPool()
	opt.TLSConfig.RootCAs.AppendCertsFromPEM(s.CA.PEM)
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("go-redis PING over %s: %v", s.URL(), err)
	}
}

func TestMutualTLS(t *testing.T) {
	t.Parallel()
	s := StartTLS(t, ClientCertRequired)
	if err := pingWith(s.Addr(), s.ClientTLS()); err != nil {
		t.Fatalf("PING with the CA's client cert: %v", err)
	}
	noCert := &tls.Config{RootCAs: s.CA.Pool(), ServerName: "127.0.0.1"}
	if err := pingWith(s.Addr(), noCert); err == nil {
		t.Fatal("mutual TLS: a client without a certificate was answered")
	}
	stranger := s.ClientTLS()
	stranger.Certificates = []tls.Certificate{s.OtherClient.TLS}
	if err := pingWith(s.Addr(), stranger); err == nil {
		t.Fatal("mutual TLS: a client with another CA's certificate was answered")
	}
	// Restart keeps the TLS setup.
	s.Restart()
	if v, err := s.Do("PING"); err != nil || v != "PONG" {
		t.Fatalf("Do(PING) after Restart: %v, %v", v, err)
	}
}

func TestOptionalClientTLS(t *testing.T) {
	t.Parallel()
	ca := testservers.NewCA(t, "shared CA")
	s := StartTLS(t, ClientCertOptional, WithCA(ca))
	if s.CA != ca {
		t.Fatal("WithCA: the server does not use the given CA")
	}
	mine := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{ca.Issue(t, "someone").TLS}}
	if err := pingWith(s.Addr(), mine); err != nil {
		t.Fatalf("optional client auth, a certificate from the shared CA: %v", err)
	}
	noCert := &tls.Config{RootCAs: s.CA.Pool(), ServerName: "127.0.0.1"}
	if err := pingWith(s.Addr(), noCert); err != nil {
		t.Fatalf("optional client auth, no certificate: %v", err)
	}
	stranger := s.ClientTLS()
	stranger.Certificates = []tls.Certificate{s.OtherClient.TLS}
	if err := pingWith(s.Addr(), stranger); err == nil {
		t.Fatal("optional client auth: another CA's certificate was accepted")
	}
}
