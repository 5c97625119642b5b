// Package resp is a minimal RESP2 (Redis protocol) client for the test
// helpers and harnesses that run their own redis-servers: enough to ping a
// server, send a command and read its reply, plainly or over TLS. It is
// not a Redis client for the gateway (that is go-redis): it has no pool,
// no pipelining and no RESP3, so that a harness can probe a server without
// a client library's retries and reconnects hiding what the server does.
package resp

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// dialTimeout bounds a connection's set-up (and a TLS handshake): the
// servers are on loopback, so a slow dial means a server that is not up.
const dialTimeout = 500 * time.Millisecond

// Error is an error reply (-ERR ...) from the server. Do returns it as the
// error, so errors.As tells a server's refusal from a broken connection.
type Error string

func (e Error) Error() string { return string(e) }

// Conn is one client connection. Its deadline (net.Conn's SetDeadline)
// bounds each Do; no deadline means none.
type Conn struct {
	net.Conn
	r *bufio.Reader
}

// Dial connects to addr, over TLS with cfg when cfg is not nil.
func Dial(addr string, cfg *tls.Config) (*Conn, error) {
	c, err := dial(addr, cfg, dialTimeout)
	if err != nil {
		return nil, err
	}
	return &Conn{Conn: c, r: bufio.NewReader(c)}, nil
}

// dial connects over TCP, or TLS with cfg, within timeout.
func dial(addr string, cfg *tls.Config, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if cfg != nil {
		return (&tls.Dialer{NetDialer: d, Config: cfg}).Dial("tcp", addr)
	}
	return d.Dial("tcp", addr)
}

// Do sends one command and reads its reply: string for simple and bulk
// strings, int64 for integers, []any for arrays, nil for a null. An error
// reply is returned as an Error.
func (c *Conn) Do(args ...string) (any, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		return nil, err
	}
	v, err := c.read()
	if err != nil {
		return nil, err
	}
	if e, ok := v.(Error); ok {
		return nil, e
	}
	return v, nil
}

// read reads one reply; an error reply is a value (an Error) here, so
// that one inside an array does not end the array.
func (c *Conn) read() (any, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return nil, fmt.Errorf("malformed RESP line %q", line)
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return body, nil
	case '-':
		return Error(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$', '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		if n < 0 { // a null bulk string or array
			return nil, nil
		}
		if kind == '$' {
			buf := make([]byte, n+2)
			if _, err := io.ReadFull(c.r, buf); err != nil {
				return nil, err
			}
			return string(buf[:n]), nil
		}
		arr := make([]any, n)
		for i := range arr {
			if arr[i], err = c.read(); err != nil {
				return nil, err
			}
		}
		return arr, nil
	}
	return nil, fmt.Errorf("unknown RESP type %q", kind)
}

// Do sends one command to addr over a fresh connection (TLS with cfg when
// cfg is not nil) and returns the reply as Conn.Do does. The exchange
// must finish within timeout, so that a hung (SIGSTOPped) server yields a
// timeout error rather than a blocked caller.
func Do(addr string, cfg *tls.Config, timeout time.Duration, args ...string) (any, error) {
	c, err := Dial(addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	return c.Do(args...)
}

// Ping sends an inline PING to addr (TLS with cfg when cfg is not nil) and
// expects +PONG within half a second: the readiness probe of a server just
// started, short so that a poll loop notices a server that came up soon.
func Ping(addr string, cfg *tls.Config) error {
	c, err := dial(addr, cfg, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("unexpected answer to PING: %q", line)
	}
	return nil
}

// Info runs INFO section on addr (see Do) and parses the key:value lines
// of its answer; section headers (# Replication) are left out.
func Info(addr string, cfg *tls.Config, timeout time.Duration, section string) (map[string]string, error) {
	v, err := Do(addr, cfg, timeout, "INFO", section)
	if err != nil {
		return nil, err
	}
	text, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("INFO: unexpected reply %T", v)
	}
	m := map[string]string{}
	for _, l := range strings.Split(text, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(l, "#") {
			m[k] = v
		}
	}
	return m, nil
}

// FlatMaps turns an array of flat [k1 v1 k2 v2 ...] arrays, the shape of
// SENTINEL REPLICAS, SENTINELS and (wrapped in an array) MASTER, into
// maps.
func FlatMaps(v any) ([]map[string]string, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("unexpected reply %T", v)
	}
	out := make([]map[string]string, 0, len(arr))
	for _, e := range arr {
		kv, ok := e.([]any)
		if !ok || len(kv)%2 != 0 {
			return nil, errors.New("unexpected entry in reply")
		}
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			k, _ := kv[i].(string)
			val, _ := kv[i+1].(string)
			m[k] = val
		}
		out = append(out, m)
	}
	return out, nil
}
