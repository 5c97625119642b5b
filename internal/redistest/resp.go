package redistest

import (
	"crypto/tls"
	"time"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/resp"
)

// cmdTimeout bounds one command of the tiny RESP client: a hung server
// (see Pause) makes it fail rather than block the test.
const cmdTimeout = 2 * time.Second

// RedisError is an error reply (-ERR ...) from the server.
type RedisError = resp.Error

// Do sends one command to the server over a fresh connection (TLS with the
// server's client configuration for a TLS server) and returns the reply:
// string for simple and bulk strings, int64 for integers, []any for
// arrays, nil for a null, and a RedisError for an error reply. It gives up
// after a couple of seconds, so a paused server yields a timeout error.
func (s *Server) Do(args ...string) (any, error) {
	return resp.Do(s.Addr(), s.clientTLS, cmdTimeout, args...)
}

// info runs INFO section and parses its key:value lines.
func info(addr string, cfg *tls.Config, section string) (map[string]string, error) {
	return resp.Info(addr, cfg, cmdTimeout, section)
}
