package resp

import (
	"errors"
	"net"
	"reflect"
	"testing"
	"time"
)

// serveOnce answers the first command on a loopback listener with reply
// and records what the client sent.
func serveOnce(t *testing.T, reply string) (addr string, sent <-chan string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		n, _ := c.Read(buf)
		ch <- string(buf[:n])
		_, _ = c.Write([]byte(reply))
	}()
	return l.Addr().String(), ch
}

func TestDoReplies(t *testing.T) {
	for _, tc := range []struct {
		name, reply string
		want        any
	}{
		{"simple", "+OK\r\n", "OK"},
		{"integer", ":42\r\n", int64(42)},
		{"bulk", "$5\r\nhello\r\n", "hello"},
		{"null bulk", "$-1\r\n", nil},
		{"null array", "*-1\r\n", nil},
		{"nested", "*2\r\n*2\r\n$1\r\na\r\n:1\r\n-ERR inside\r\n", []any{[]any{"a", int64(1)}, Error("ERR inside")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, sent := serveOnce(t, tc.reply)
			got, err := Do(addr, nil, time.Second, "GET", "key")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
			if s := <-sent; s != "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n" {
				t.Fatalf("sent %q", s)
			}
		})
	}
}

func TestDoErrorReply(t *testing.T) {
	addr, _ := serveOnce(t, "-NOGOODSLAVE no suitable replica\r\n")
	_, err := Do(addr, nil, time.Second, "SENTINEL", "FAILOVER", "m")
	var re Error
	if !errors.As(err, &re) || string(re) != "NOGOODSLAVE no suitable replica" {
		t.Fatalf("err = %v, want the error reply", err)
	}
}

func TestFlatMaps(t *testing.T) {
	got, err := FlatMaps([]any{[]any{"ip", "127.0.0.1", "port", "6380"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []map[string]string{{"ip": "127.0.0.1", "port": "6380"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := FlatMaps([]any{[]any{"odd"}}); err == nil {
		t.Fatal("an odd entry: no error")
	}
}
