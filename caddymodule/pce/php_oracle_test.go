package pce

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
)

// phpNames asks a real PHP (php-cli, testdata/php/parse_names.php) which
// top-level names it registers for each raw query string: the oracle for
// "what PHP reads as accessRequestToken or _method". PHP is a dependency
// of the tests (.ci/run installs php-cli), never skipped.
func phpNames(t *testing.T, queries []string) [][]string {
	t.Helper()
	php, err := exec.LookPath("php")
	if err != nil {
		t.Fatal("php not found: install php-cli (apt-get install php-cli php-symfony-http-foundation), the oracle of these tests")
	}
	var in bytes.Buffer
	for _, q := range queries {
		if strings.ContainsAny(q, "\n\r") {
			t.Fatalf("query %q holds a line break", q)
		}
		in.WriteString(q + "\n")
	}
	cmd := exec.Command(php, "-n", "../../testdata/php/parse_names.php")
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("php: %v", err)
	}
	var names [][]string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var n []string
		if err := json.Unmarshal(sc.Bytes(), &n); err != nil {
			t.Fatalf("php said %q: %v", sc.Text(), err)
		}
		names = append(names, n)
	}
	if len(names) != len(queries) {
		t.Fatalf("php answered %d lines for %d queries", len(names), len(queries))
	}
	return names
}

// spellings returns name in the systematic spellings and n random ones:
// letters in either case or percent-encoded, '_' as '.', ' ', '+' or '[',
// leading blanks, and suffixes PHP cuts or reads (an array index, a NUL).
func spellings(name string, n int, rng *rand.Rand) []string {
	out := []string{name, "%20" + name, "+" + name, name + "[]", name + "[x]", name + "%00x", name + "%5B%5D",
		strings.ToUpper(name), "%" + fmt.Sprintf("%02X", name[0]) + name[1:], name + "]", name + "[", " " + name}
	prefixes := []string{"", "", "", " ", "+", "%20", "++", "%09", "%00", "%2B", "%2520"}
	suffixes := []string{"", "", "", "[]", "[0]", "[a][b]", "%00", "%00junk", "%5B%5D", "]", "[", "[x", ".", "%2E", " ", "+", "%20", "%5b]"}
	for range n {
		var b strings.Builder
		b.WriteString(prefixes[rng.IntN(len(prefixes))])
		for i := 0; i < len(name); i++ {
			c := name[i]
			if c == '_' && rng.IntN(3) == 0 {
				b.WriteString([]string{".", " ", "+", "[", "%2E", "%20", "%5B", "%5F"}[rng.IntN(8)])
				continue
			}
			if rng.IntN(6) == 0 {
				c ^= 0x20 * byte(rng.IntN(2)) // maybe the other case
				if c < 'A' || c > 'z' {
					c = name[i]
				}
			}
			if rng.IntN(7) == 0 {
				hexdigits := "0123456789ABCDEF"
				if rng.IntN(2) == 0 {
					hexdigits = "0123456789abcdef"
				}
				b.WriteByte('%')
				b.WriteByte(hexdigits[c>>4])
				b.WriteByte(hexdigits[c&0xf])
				continue
			}
			b.WriteByte(c)
		}
		b.WriteString(suffixes[rng.IntN(len(suffixes))])
		out = append(out, b.String())
	}
	return out
}

// Whatever PHP reads as accessRequestToken or _method, the gateway reads
// as the token or the method override: no spelling can slip a token past
// the gateway or hide an override from it. ParamName is PHP's reading.
func TestParamNamesAgainstPHP(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 2026))
	var pairs []string
	for _, name := range []string{TokenParam, MethodParam} {
		for _, sp := range spellings(name, 3000, rng) {
			pairs = append(pairs, sp+"=v", sp)
		}
	}
	names := phpNames(t, pairs)
	seen := map[string]int{}
	for i, pair := range pairs {
		if len(names[i]) != 1 {
			continue // PHP registered nothing (an empty name)
		}
		php := names[i][0]
		seen[php]++
		if got := ParamName(pair); got != php {
			t.Errorf("ParamName(%q) = %q, PHP reads %q", pair, got, php)
		}
		if php == TokenParam && !IsTokenPair(pair) {
			t.Errorf("PHP reads %q as %s, the gateway does not", pair, TokenParam)
		}
		if php == MethodParam && !IsMethodPair(pair) {
			t.Errorf("PHP reads %q as %s, the gateway does not", pair, MethodParam)
		}
	}
	// The corpus must reach both names many ways, or the test proves little.
	if seen[TokenParam] < 300 || seen[MethodParam] < 300 {
		t.Errorf("PHP read only %d spellings as %s and %d as %s", seen[TokenParam], TokenParam, seen[MethodParam], MethodParam)
	}
	// A whole query: every token PHP sees is among QueryTokens, and
	// CanonicalQuery leaves PHP no token and no _method.
	var queries []string
	for range 500 {
		var q []string
		for range 1 + rng.IntN(4) {
			switch rng.IntN(3) {
			case 0:
				q = append(q, pairs[rng.IntN(len(pairs))])
			case 1:
				q = append(q, fmt.Sprintf("k%d=%d", rng.IntN(9), rng.IntN(99)))
			default:
				q = append(q, pairs[rng.IntN(len(pairs))]+"x")
			}
		}
		sep := []string{"&", "&", ";"}[rng.IntN(3)]
		queries = append(queries, strings.Join(q, sep))
	}
	var canon []string
	for _, q := range queries {
		canon = append(canon, CanonicalQuery(q))
	}
	// parse_str splits on '&' only (arg_separator.input); ';' pairs are the
	// gateway's own stricter reading.
	for i, n := range phpNames(t, canon) {
		for _, name := range n {
			if name == TokenParam || name == MethodParam {
				t.Errorf("CanonicalQuery(%q) = %q: PHP still reads %s", queries[i], canon[i], name)
			}
		}
	}
}
