package redistest

import (
	"crypto/tls"
	"testing"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/testservers"
)

// ClientAuth is redis-server's tls-auth-clients: whether a client must
// present a certificate issued by the server's CA.
type ClientAuth string

const (
	// ClientCertNone: plain server-authenticated TLS; a client
	// certificate is not asked for (tls-auth-clients no).
	ClientCertNone ClientAuth = "no"
	// ClientCertRequired: mutual TLS; a client without a certificate
	// from the CA is refused (tls-auth-clients yes).
	ClientCertRequired ClientAuth = "yes"
	// ClientCertOptional: a client may go without a certificate, but one
	// it presents must verify (tls-auth-clients optional).
	ClientCertOptional ClientAuth = "optional"
)

// CertFiles is a certificate with its key, in memory and as PEM files.
type CertFiles struct {
	testservers.Issued
	CertFile, KeyFile string
}

// TLSServer is a redis-server that speaks TLS only (--port 0 --tls-port
// N), with a certificate for 127.0.0.1/localhost from CA. Its URL is
// rediss://127.0.0.1:N/0; Addr, Stop, Restart, Pause, Resume and Do work as
// for any Server (Do and readiness use ClientTLS).
type TLSServer struct {
	*Server
	// CA issued the server's certificate and Client; the server trusts
	// it for client certificates. CAFile is its PEM file.
	CA     *testservers.CA
	CAFile string
	// Client is a client certificate from CA: good for mutual TLS.
	Client CertFiles
	// OtherCA is an unrelated CA, for negative tests: a client trusting
	// only OtherCA (OtherCAFile) must reject the server, and the server
	// must reject OtherClient, a client certificate from OtherCA.
	OtherCA     *testservers.CA
	OtherCAFile string
	OtherClient CertFiles
	// Auth is the server's tls-auth-clients.
	Auth ClientAuth
}

// TLSOption configures StartTLS.
type TLSOption func(*tlsOptions)

type tlsOptions struct{ ca *testservers.CA }

// WithCA makes StartTLS use ca (for instance one shared with other test
// servers) instead of generating its own.
func WithCA(ca *testservers.CA) TLSOption {
	return func(o *tlsOptions) { o.ca = ca }
}

// StartTLS runs a private TLS-only redis-server on a free loopback port
// with tls-auth-clients set to auth, and waits until it answers PING over
// TLS (trusting CA, presenting Client). The CA is generated unless WithCA
// gives one. The server is killed when the test ends.
func StartTLS(t testing.TB, auth ClientAuth, opts ...TLSOption) *TLSServer {
	t.Helper()
	switch auth {
	case ClientCertNone, ClientCertRequired, ClientCertOptional:
	default:
		t.Fatalf("redistest: StartTLS: unknown ClientAuth %q", auth)
	}
	var o tlsOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.ca == nil {
		o.ca = testservers.NewCA(t, "redistest CA")
	}
	s := newServer(t)
	dir := t.TempDir() // not s.dir: redis-server's working directory
	ts := &TLSServer{
		Server:  s,
		CA:      o.ca,
		CAFile:  testservers.WriteFile(t, dir, "ca.pem", o.ca.PEM),
		Client:  certFiles(t, dir, "client", o.ca.Issue(t, "redistest client")),
		OtherCA: testservers.NewCA(t, "redistest other CA"),
		Auth:    auth,
	}
	ts.OtherCAFile = testservers.WriteFile(t, dir, "other-ca.pem", ts.OtherCA.PEM)
	ts.OtherClient = certFiles(t, dir, "other-client", ts.OtherCA.Issue(t, "redistest stranger"))
	srv := certFiles(t, dir, "server", o.ca.Issue(t, "redistest server"))
	s.args = []string{
		"--tls-cert-file", srv.CertFile,
		"--tls-key-file", srv.KeyFile,
		"--tls-ca-cert-file", ts.CAFile,
		"--tls-auth-clients", string(auth),
	}
	s.clientTLS = ts.ClientTLS()
	if err := s.launch(freePort); err != nil {
		t.Fatalf("redistest: TLS server: %v", err)
	}
	return ts
}

// ClientTLS is a client configuration that trusts CA and presents Client:
// it connects whatever Auth is. Each call returns a fresh copy.
func (s *TLSServer) ClientTLS() *tls.Config {
	return &tls.Config{
		RootCAs:      s.CA.Pool(),
		Certificates: []tls.Certificate{s.Client.TLS},
		ServerName:   "127.0.0.1",
		MinVersion:   tls.VersionTLS12,
	}
}

func certFiles(t testing.TB, dir, name string, is testservers.Issued) CertFiles {
	t.Helper()
	return CertFiles{
		Issued:   is,
		CertFile: testservers.WriteFile(t, dir, name+".pem", is.CertPEM),
		KeyFile:  testservers.WriteFile(t, dir, name+"-key.pem", is.KeyPEM),
	}
}
