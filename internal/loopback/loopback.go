// Package loopback gives the harnesses (cmd/pce-load, cmd/pce-chaos)
// ports and HTTP stubs on 127.0.0.1: everything they run stays on the
// machine and off the ports a developer's own services use.
package loopback

import (
	"net"
	"net/http"
	"time"
)

// listen opens a listener on a free loopback port.
func listen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// FreePort returns a loopback port nobody listens on right now, for a
// child process to bind. It is never 6379 or 26379: a Redis or Sentinel
// that is not ours may run there, and a harness must not talk to it. The
// port is free only until someone binds it, so a caller whose child fails
// to bind should try another.
func FreePort() (int, error) {
	for {
		l, err := listen()
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if p != 6379 && p != 26379 {
			return p, nil
		}
	}
}

// Serve runs h on a fresh loopback port and returns its host:port; stop
// closes the server and its connections. The listener is bound before
// Serve returns, so the address answers at once.
func Serve(h http.Handler) (addr string, stop func(), err error) {
	l, err := listen()
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	go func() { _ = srv.Serve(l) }()
	return l.Addr().String(), func() { _ = srv.Close() }, nil
}
