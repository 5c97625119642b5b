package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/testservers"
)

// startPHP runs testdata/php/router.php under PHP's built-in server on a
// free loopback port: a backend that reads requests as PHP and Symfony
// (method override enabled) do. PHP is a dependency of the tests (.ci/run
// installs it), never skipped.
func startPHP(t *testing.T) string {
	t.Helper()
	php, err := exec.LookPath("php")
	if err != nil {
		t.Fatal("php not found: install php-cli php-symfony-http-foundation, the oracle of these tests")
	}
	router, err := filepath.Abs("../testdata/php/router.php")
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(php, "-S", addr, router)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	waitFor(t, "php -S to listen", 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

// phpAnswer is what router.php says it would act on.
type phpAnswer struct {
	Backend, Sent, Method, URI, Path, Authorization, Refused string
	Get, Post                                                []string
}

// sideDoorRequest is one request of the oracle's corpus.
type sideDoorRequest struct {
	method, uri, body string
	header            []string
}

func (r sideDoorRequest) String() string {
	return fmt.Sprintf("%s %s %v %q", r.method, r.uri, r.header, r.body)
}

// sideDoorCorpus mixes, on the resource's three shapes, raw methods in
// either case, override headers, _method in the query in PHP's spellings,
// and a form body's _method, with a create/update payload whose url is the
// metadata service: no owned create or update may ever carry it to the
// backend.
func sideDoorCorpus(n int) []sideDoorRequest {
	rng := rand.New(rand.NewPCG(11, 7))
	paths := []string{collectionPath, typePath, pagePath}
	raw := []string{"GET", "get", "HEAD", "POST", "post", "PUT", "put", "DELETE", "PATCH", "OPTIONS"}
	methods := []string{"GET", "PUT", "put", "DELETE", "POST", "PATCH", "HEAD"}
	headers := []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "x-http-method-override"}
	names := []string{"_method", "%5Fmethod", "_%6Dethod", "+_method", "_method%00x", ".method", "_method[]", "%20_method", "_METHOD", "_meth%6Fd"}
	const ssrf = `{"type":"0","id":"NqeyDRqo4FtabmFj8gNWq3hsiGNYyq","method":"0","url":"http://169.254.169.254/latest/meta-data/"}`
	var out []sideDoorRequest
	for range n {
		r := sideDoorRequest{method: raw[rng.IntN(len(raw))], uri: paths[rng.IntN(len(paths))], body: ssrf}
		if rng.IntN(2) == 0 {
			r.header = append(r.header, headers[rng.IntN(len(headers))]+": "+methods[rng.IntN(len(methods))])
		}
		if rng.IntN(2) == 0 {
			r.uri += "?a=1&" + names[rng.IntN(len(names))] + "=" + methods[rng.IntN(len(methods))]
		}
		switch rng.IntN(4) {
		case 0:
			r.body = "x=1&" + names[rng.IntN(len(names))] + "=" + methods[rng.IntN(len(methods))]
			r.header = append(r.header, "Content-Type: application/x-www-form-urlencoded")
		case 1:
			r.body = "--b\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\n" + methods[rng.IntN(len(methods))] + "\r\n--b--\r\n"
			r.header = append(r.header, "Content-Type: multipart/form-data; boundary=b")
		}
		out = append(out, r)
	}
	// Multipart bodies PHP reads a _method from and Go's parser does not
	// (found by probing a build with PHP behind it).
	for _, mp := range []struct{ ct, body string }{
		{"multipart/form-data; xboundary=AAA; boundary=BBB", "--BBB\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n--AAA\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nPUT\r\n--AAA--\r\n\r\n--BBB--\r\n"},
		{"multipart/form-data; boundary=BBB", "--BBB\r\nContent-Disposition: form-data; name='_method'\r\n\r\nPUT\r\n--BBB\r\nContent-Disposition: form-data; name=\"url\"\r\n\r\nhttp://169.254.169.254/latest/meta-data/\r\n--BBB--\r\n"},
		{"multipart/form-data; boundary=BBB", "--BBB\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nhello\n--BBB\nContent-Disposition: form-data; name=\"_method\"\n\nPUT\r\n--BBB--\r\n"},
		// A Go-only RFC 2231 name beside a PHP-only single-quoted one.
		{"multipart/form-data; boundary=AAA", "--AAA\r\nContent-Disposition: form-data; name='_method'\r\n\r\nPUT\r\n--AAA\r\nContent-Disposition: form-data; name=\"url\"\r\n\r\nhttp://169.254.169.254/latest\r\n--AAA\r\nContent-Disposition: form-data; name*0=\"_met\"; name*1=\"hod\"\r\n\r\nPOST\r\n--AAA--\r\n"},
		{"multipart/form-data; boundary=AAA", "--AAA\r\nContent-Disposition: form-data; name='_method'\r\n\r\nPUT\r\n--AAA\r\nContent-Disposition: form-data; name*=utf-8'en'%5Fmethod\r\n\r\nPOST\r\n--AAA--\r\n"},
	} {
		for _, path := range paths {
			out = append(out, sideDoorRequest{method: "POST", uri: path, body: mp.body, header: []string{"Content-Type: " + mp.ct}})
		}
	}
	return out
}

var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

// sendTo sends r to base and returns PHP's answer, or nil when PHP did not
// answer (the gateway did). HEAD answers have no body: PHP's is known by
// its X-Powered-By header, and Symfony never overrides a HEAD.
func sendTo(t *testing.T, base string, r sideDoorRequest, extra ...string) *phpAnswer {
	t.Helper()
	req, err := http.NewRequest(r.method, base+r.uri, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range append(append([]string(nil), r.header...), extra...) {
		name, value, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	// PHP's built-in server closes every connection: no keep-alive, so a
	// POST is never sent on a connection it already closed.
	res, err := noKeepAlive.Do(req)
	if err != nil && r.method != strings.ToUpper(r.method) {
		return nil // PHP's built-in server refuses a method in lower case
	}
	if err != nil {
		t.Fatalf("%v to %s: %v", r, base, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if !strings.HasPrefix(res.Header.Get("X-Powered-By"), "PHP") {
		return nil
	}
	if len(b) == 0 {
		// A HEAD (as sent, or as the gateway forwarded an override).
		return &phpAnswer{Backend: "php", Sent: http.MethodHead, Method: http.MethodHead}
	}
	var a phpAnswer
	if err := json.Unmarshal(b, &a); err != nil || a.Backend != "php" {
		t.Fatalf("%v: PHP answered %d %q", r, res.StatusCode, b)
	}
	return &a
}

// With a real PHP and Symfony as the backend, no request of the corpus
// makes the backend act, unchecked, on an operation the gateway owns, and
// every request the gateway forwards is acted on as the gateway decided:
// the method it was sent, no override left, no token or _method in what
// PHP parses. Sent straight to PHP, a POST's override names the method the
// gateway forwards.
func TestSideDoorsAgainstPHP(t *testing.T) {
	php := startPHP(t)
	idp := testservers.NewIdP(t)
	idp.Grant(goodToken, "uapi", "1001")
	corpus := sideDoorCorpus(400)
	for _, ops := range []string{"", "operations update"} {
		port := freePort(t)
		newTesterFor(t, gatewayConfig(port, idp.URL(), php, ops))
		gw := fmt.Sprintf("http://127.0.0.1:%d", port)
		var reached, refused int
		for _, r := range corpus {
			direct := sendTo(t, "http://"+php, r)
			if direct == nil && r.method == strings.ToUpper(r.method) {
				t.Fatalf("PHP did not answer %v directly", r)
			}
			// Without a token.
			if p := sendTo(t, gw, r); p != nil {
				reached++
				switch {
				case ops == "" && p.Method != http.MethodOptions:
					t.Errorf("[%s] without a token, %v reached PHP, which acts on %s (sent %s)", ops, r, p.Method, p.Sent)
				case ops != "" && (p.Method == http.MethodPut || p.Sent == http.MethodPut):
					t.Errorf("[%s] without a token, %v reached PHP as an update (acts on %s, sent %s)", ops, r, p.Method, p.Sent)
				}
			} else {
				refused++
			}
			// With a valid token.
			p := sendTo(t, gw, r, "Authorization: Bearer "+goodToken)
			if p == nil {
				continue
			}
			owned := ops == "" || p.Sent == http.MethodPut || p.Method == http.MethodPut
			if owned && (p.Method == http.MethodPost || p.Method == http.MethodPut) {
				t.Errorf("[%s] %v reached PHP as a %s carrying the metadata url", ops, r, p.Method)
			}
			if ops == "" && p.Method != p.Sent {
				t.Errorf("[%s] %v: sent %s, PHP acts on %s (an override survived)", ops, r, p.Sent, p.Method)
			}
			if ops == "" && p.Sent != http.MethodOptions {
				for _, name := range append(append([]string(nil), p.Get...), p.Post...) {
					if name == "_method" || strings.EqualFold(name, "accessRequestToken") {
						t.Errorf("[%s] %v: PHP parses %s", ops, r, name)
					}
				}
				if direct != nil && r.method == http.MethodPost && direct.Method != "" && direct.Method != p.Sent &&
					direct.Method != http.MethodPost {
					t.Errorf("[%s] %v: PHP alone acts on %s, the gateway forwarded %s", ops, r, direct.Method, p.Sent)
				}
			}
		}
		// The corpus must exercise both sides, or it proves little.
		if refused < 100 || (ops != "" && reached < 50) {
			t.Errorf("[%s] %d requests reached PHP without a token, %d were refused: the corpus is too narrow", ops, reached, refused)
		}
	}
}
