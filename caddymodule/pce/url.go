package pce

import (
	"net/netip"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// CheckWebhookURL reports whether s (a decoded string) is an acceptable
// webhook URL: absolute, scheme http or https (any case), a non-empty host,
// no whitespace, control characters or backslashes, and parseable by
// net/url. The host must be a DNS name in ASCII (letters, digits, '-', '_'
// and '.', one trailing dot allowed) or an IP literal; a host that ends in a
// number must be a valid IPv4 address in any form inet_aton accepts
// (2130706433, 0x7f.1, 0177.0.0.1, 127.1).
//
// Unless allowPrivate, the host must not be a loopback, private (RFC 1918,
// fc00::/7), link-local, unspecified, CGNAT, multicast or otherwise reserved
// address, in any spelling: IPv4-mapped, IPv4-compatible, SIIT
// (::ffff:0:0:0/96) and NAT64 (64:ff9b::/96) IPv6 are judged by the embedded
// IPv4 address, 6to4 (2002::/16) by the embedded one too, and the local NAT64
// prefix 64:ff9b:1::/48 and Teredo (2001::/32) are refused whole; a zone is
// ignored. Nor may it be a name that cannot be public: a single label (no
// dot once a trailing dot is dropped, so reachable only through search
// domains: localhost, localhost4, localhost6, ip6-localhost, ip6-loopback,
// intranet) or, in any letter case, one of localhost, local, internal,
// home.arpa, localdomain, localdomain4 and localdomain6 or a name under one
// (foo.localhost, printer.local, db.internal, localhost.localdomain,
// localhost4.localdomain4, localhost6.localdomain6). Names are not resolved.
//
// With allowPrivate, only the syntax is checked.
func CheckWebhookURL(s string, allowPrivate bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f || c == '\\' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r) ||
			unicode.Is(unicode.Cf, r) {
			return false
		}
		i += size
	}
	// The scheme must be followed by "//": an absolute URL with an authority.
	colon := strings.IndexByte(s, ':')
	if colon < 0 {
		return false
	}
	scheme := s[:colon]
	if !strings.EqualFold(scheme, "http") && !strings.EqualFold(scheme, "https") {
		return false
	}
	if !strings.HasPrefix(s[colon+1:], "//") {
		return false
	}
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return false
	}
	// One '@' at most in the authority: parsers disagree on which one ends
	// the userinfo.
	if u.User != nil && strings.Contains(u.User.String(), "@") {
		return false
	}
	authority := s[colon+3:]
	if i := strings.IndexAny(authority, "/?#"); i >= 0 {
		authority = authority[:i]
	}
	if strings.Count(authority, "@") > 1 {
		return false
	}
	if !validPort(u.Port()) {
		return false
	}
	return checkHost(u.Host, allowPrivate)
}

// validPort: none, or 1 to 65535 in plain decimal.
func validPort(p string) bool {
	if p == "" {
		return true
	}
	if len(p) > 5 || p[0] == '0' {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n >= 1 && n <= 65535
}

// checkHost checks the host[:port] of a parsed URL.
func checkHost(hostport string, allowPrivate bool) bool {
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return false
		}
		lit := hostport[1:end]
		if zone := strings.IndexByte(lit, '%'); zone >= 0 {
			lit = lit[:zone] // the zone is irrelevant to what the address is
		}
		addr, err := netip.ParseAddr(lit)
		if err != nil || !addr.Is6() {
			return false
		}
		return allowPrivate || publicAddr(addr)
	}
	host := hostport
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	if host == "" || len(host) > 253 {
		return false
	}
	lastLabel := host
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
		lastLabel = label
	}
	if endsInNumber(lastLabel) {
		addr, ok := parseInetAton(host)
		if !ok {
			return false
		}
		return allowPrivate || publicAddr(addr)
	}
	if allowPrivate {
		return true
	}
	return publicName(host)
}

// nonPublicDomains are the domains whose names cannot be public (RFC 6761
// localhost, RFC 6762 local, ICANN's internal, RFC 8375 home.arpa, and the
// localdomain names of /etc/hosts), each with its leading dot.
var nonPublicDomains = []string{
	".localhost",
	".local",
	".internal",
	".home.arpa",
	".localdomain",
	".localdomain4",
	".localdomain6",
}

// publicName reports whether host, a syntactically valid DNS name without
// its trailing dot, may be public: it has two labels or more and is neither
// one of nonPublicDomains nor under one. A single label (localhost,
// localhost4, ip6-loopback, intranet) is resolved through the search
// domains or /etc/hosts, never as a public name.
func publicName(host string) bool {
	if strings.IndexByte(host, '.') < 0 {
		return false
	}
	lower := strings.ToLower(host)
	for _, d := range nonPublicDomains {
		if lower == d[1:] || strings.HasSuffix(lower, d) {
			return false
		}
	}
	return true
}

// endsInNumber reports whether a host label is numeric in the WHATWG sense
// (decimal digits, or 0x followed by hex digits): such a host is an IPv4
// address or invalid.
func endsInNumber(label string) bool {
	if isDigits(label) {
		return true
	}
	if len(label) >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X') {
		for i := 2; i < len(label); i++ {
			if _, ok := unhex(label[i]); !ok {
				return false
			}
		}
		return true
	}
	return false
}

// parseInetAton parses the IPv4 forms inet_aton accepts: 1 to 4 parts,
// each decimal, octal (leading 0) or hex (0x), the last part filling the
// remaining bytes.
func parseInetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var vals [4]uint64
	for i, p := range parts {
		v, ok := parseAtonPart(p)
		if !ok {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	n := len(parts)
	var ip uint64
	for i := 0; i < n-1; i++ {
		if vals[i] > 0xff {
			return netip.Addr{}, false
		}
		ip |= vals[i] << (8 * (3 - i))
	}
	last := vals[n-1]
	if last >= 1<<(8*(5-n)) {
		return netip.Addr{}, false
	}
	ip |= last
	return netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}), true
}

func parseAtonPart(p string) (uint64, bool) {
	if p == "" {
		return 0, false
	}
	base, digits := uint64(10), p
	switch {
	case len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		base, digits = 16, p[2:]
		if digits == "" { // "0x" is 0 for browsers
			return 0, true
		}
	case len(p) >= 2 && p[0] == '0':
		base, digits = 8, p[1:]
	}
	var v uint64
	for i := 0; i < len(digits); i++ {
		d, ok := unhex(digits[i])
		if !ok || uint64(d) >= base {
			return 0, false
		}
		v = v*base + uint64(d)
		if v > 0xffffffff {
			return 0, false
		}
	}
	return v, true
}

var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network", unspecified
	netip.MustParsePrefix("10.0.0.0/8"),     // RFC 1918
	netip.MustParsePrefix("100.64.0.0/10"),  // CGNAT
	netip.MustParsePrefix("127.0.0.0/8"),    // loopback
	netip.MustParsePrefix("169.254.0.0/16"), // link-local
	netip.MustParsePrefix("172.16.0.0/12"),  // RFC 1918
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("192.168.0.0/16"), // RFC 1918
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("224.0.0.0/4"),    // multicast
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, broadcast
	netip.MustParsePrefix("::/128"),         // unspecified
	netip.MustParsePrefix("::1/128"),        // loopback
	netip.MustParsePrefix("fc00::/7"),       // unique local
	netip.MustParsePrefix("fe80::/10"),      // link-local
	netip.MustParsePrefix("fec0::/10"),      // site-local (deprecated)
	netip.MustParsePrefix("ff00::/8"),       // multicast
	netip.MustParsePrefix("100::/64"),       // discard-only
	netip.MustParsePrefix("2001::/32"),      // Teredo: embeds a server and an obfuscated client IPv4
}

var (
	ipv4Compatible = netip.MustParsePrefix("::/96")
	ipv4Translated = netip.MustParsePrefix("::ffff:0:0:0/96") // SIIT, RFC 2765
	nat64          = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local     = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour      = netip.MustParsePrefix("2002::/16")
)

// publicAddr reports whether addr is none of the blocked addresses. IPv6
// addresses that embed an IPv4 address (mapped, compatible, SIIT
// translated, NAT64, 6to4) are judged by the embedded address as well.
func publicAddr(addr netip.Addr) bool {
	addr = addr.WithZone("").Unmap()
	if addr.Is6() {
		if ipv4Compatible.Contains(addr) || ipv4Translated.Contains(addr) || nat64.Contains(addr) {
			b := addr.As16()
			if !publicAddr(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})) {
				return false
			}
		}
		if sixToFour.Contains(addr) {
			b := addr.As16()
			if !publicAddr(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})) {
				return false
			}
		}
		if nat64Local.Contains(addr) {
			return false
		}
	}
	for _, p := range blockedPrefixes {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}
