package redistest

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

// cmdTimeout bounds one command of the tiny RESP client: a hung server
// (see Pause) makes it fail rather than block the test.
const cmdTimeout = 2 * time.Second

// RedisError is an error reply (-ERR ...) from the server.
type RedisError string

func (e RedisError) Error() string { return string(e) }

// Do sends one command to the server over a fresh connection (TLS with the
// server's client configuration for a TLS server) and returns the reply:
// string for simple and bulk strings, int64 for integers, []any for
// arrays, nil for a null, and a RedisError for an error reply. It gives up
// after a couple of seconds, so a paused server yields a timeout error.
func (s *Server) Do(args ...string) (any, error) {
	return do(s.Addr(), s.clientTLS, args...)
}

// do runs one command against addr on a fresh connection.
func do(addr string, cfg *tls.Config, args ...string) (any, error) {
	c, err := dial(addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.do(args...)
}

// respConn is a minimal RESP2 client connection.
type respConn struct {
	net.Conn
	r *bufio.Reader
}

func dial(addr string, cfg *tls.Config) (*respConn, error) {
	d := &net.Dialer{Timeout: 500 * time.Millisecond}
	var (
		c   net.Conn
		err error
	)
	if cfg != nil {
		c, err = (&tls.Dialer{NetDialer: d, Config: cfg}).Dial("tcp", addr)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	return &respConn{Conn: c, r: bufio.NewReader(c)}, nil
}

func (c *respConn) do(args ...string) (any, error) {
	_ = c.SetDeadline(time.Now().Add(cmdTimeout))
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
	if e, ok := v.(RedisError); ok {
		return nil, e
	}
	return v, nil
}

func (c *respConn) read() (any, error) {
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
		return RedisError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
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

// info runs INFO section and parses its key:value lines.
func info(addr string, cfg *tls.Config, section string) (map[string]string, error) {
	v, err := do(addr, cfg, "INFO", section)
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

// flatMaps turns an array of flat [k1 v1 k2 v2 ...] arrays (SENTINEL
// replicas / sentinels / masters) into maps.
func flatMaps(v any) ([]map[string]string, error) {
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
