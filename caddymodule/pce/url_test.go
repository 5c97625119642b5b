package pce

import "testing"

func TestCheckWebhookURL(t *testing.T) {
	public := []string{
		"http://myevent.com/SaveMyPhoneCallDetails",
		"https://example.com",
		"HTTPS://Example.COM:8443/a/b?c=d#e",
		"http://example.com./x",
		"http://user:pass@example.com/x",
		"http://8.8.8.8/x",
		"http://8.8.8.8:80/x",
		"http://134744072/x", // 8.8.8.8 as one number
		"http://[2001:4860:4860::8888]/x",
		"http://[2001:4860:4860::8888]:8080/x",
		"http://xn--bcher-kva.example/x",
		"http://my_host.example.com/",
		"http://100.63.255.255/",
		"http://100.128.0.0/",
		"http://172.15.255.255/",
		"http://172.32.0.0/",
		"http://localhost.example.com/",
		"http://[::ffff:8.8.8.8]/",
		"http://[2002:808:808::1]/",
		"http://example.com/a%20b",
		"http://example.com:65535/",
		"http://example.com:1/",
	}
	for _, u := range public {
		if !CheckWebhookURL(u, false) {
			t.Errorf("CheckWebhookURL(%q, false) = false, want true", u)
		}
		if !CheckWebhookURL(u, true) {
			t.Errorf("CheckWebhookURL(%q, true) = false, want true", u)
		}
	}
	private := []string{
		"http://127.0.0.1/",
		"http://127.0.0.1:8080/admin",
		"http://127.1/",
		"http://2130706433/",
		"http://0x7f000001/",
		"http://0x7f.1/",
		"http://0177.0.0.1/",
		"http://0177.1/",
		"http://127.0.0.1./",
		"http://0/",
		"http://0.0.0.0/",
		"http://10.0.0.1/",
		"http://172.16.0.1/",
		"http://172.31.255.255/",
		"http://192.168.1.1/",
		"http://169.254.169.254/latest/meta-data/",
		"http://100.64.0.1/",
		"http://100.127.255.255/",
		"http://224.0.0.1/",
		"http://255.255.255.255/",
		"http://[::1]/",
		"http://[::]/",
		"http://[0:0:0:0:0:0:0:1]/",
		"http://[::ffff:127.0.0.1]/",
		"http://[::ffff:7f00:1]/",
		"http://[::ffff:10.0.0.1]/",
		"http://[::127.0.0.1]/",
		"http://[64:ff9b::7f00:1]/",
		"http://[2002:7f00:1::1]/",
		"http://[2002:a00:1::]/",
		"http://[fe80::1%25eth0]/",
		"http://[fe80::1]/",
		"http://[fc00::1]/",
		"http://[fd12:3456::1]/",
		"http://[ff02::1]/",
		"http://localhost/",
		"http://LOCALHOST:8080/",
		"http://localhost./",
		"http://foo.localhost/",
		"http://a.b.LocalHost./",
		"http://user@127.0.0.1/",
	}
	for _, u := range private {
		if CheckWebhookURL(u, false) {
			t.Errorf("CheckWebhookURL(%q, false) = true, want false", u)
		}
		if !CheckWebhookURL(u, true) {
			t.Errorf("CheckWebhookURL(%q, true) = false, want true (private allowed)", u)
		}
	}
	invalid := []string{
		"",
		"myevent.com/x",
		"//myevent.com/x",
		"ftp://myevent.com/x",
		"javascript:alert(1)",
		"http:myevent.com",
		"http:/myevent.com",
		"http://",
		"http:///x",
		"http://:80/",
		"http://exa mple.com/",
		"http://example.com/a b",
		" http://example.com/",
		"http://example.com/\n",
		"http://example.com/\x00",
		"http://example.com/\u00a0",
		"http://example.com/\u200b",
		"http://example.com\\@127.0.0.1/",
		"http://a@b@example.com/",
		"http://exa_mple.com..",
		"http://example..com/",
		"http://.example.com/",
		"http://bücher.example/",
		"http://%31%32%37.0.0.1/",
		"http://1.2.3.4.5/",
		"http://256.0.0.1/",
		"http://4294967296/",
		"http://1.2.3.999/",
		"http://08.0.0.1/",
		"http://[::1/",
		"http://[127.0.0.1]/",
		"http://[example.com]/",
		"http://example.com:abc/",
	}
	for _, u := range invalid {
		if CheckWebhookURL(u, false) || CheckWebhookURL(u, true) {
			t.Errorf("CheckWebhookURL(%q) = true, want false", u)
		}
	}
}

// The forms refused since the guard follows the contract's url rule in
// full: names that cannot be public, single-label names, SIIT
// (::ffff:0:0:0/96) by the embedded IPv4 address, and Teredo (2001::/32).
// Each refused form was accepted before.
func TestCheckWebhookURLNonPublic(t *testing.T) {
	names := []string{
		"http://localhost.localdomain/",
		"http://LOCALHOST.LOCALDOMAIN./",
		"http://localhost.localdomain4/",
		"http://localhost.localdomain6:8080/",
		"http://localhost4/",
		"http://localhost6/",
		"http://LocalHost4./",
		"http://localhost4.localdomain4/",
		"http://localhost6.localdomain6./",
		"http://localdomain/",
		"http://localdomain4/",
		"http://localdomain6./",
		"http://nas.localdomain/",
		"http://local/",
		"http://printer.local/",
		"http://Printer.LOCAL./",
		"http://internal/",
		"http://db.internal/",
		"http://metadata.google.internal/computeMetadata/v1/",
		"http://home.arpa/",
		"http://HOME.ARPA./",
		"http://router.home.arpa/",
		"http://a.b.Home.Arpa:8443/x",
	}
	singleLabel := []string{
		"http://intranet/",
		"http://metadata/",
		"http://intranet./",
		"HTTPS://Intranet:8443/hook",
		"http://user@intranet/",
		"http://my_host/",
		"http://a-b/",
		"http://xn--bcher-kva/",
		"http://x/",
	}
	addrs := []string{
		"http://[::ffff:0:7f00:1]/",        // SIIT 127.0.0.1
		"http://[::ffff:0:127.0.0.1]/",     // the same, dotted
		"http://[0:0:0:0:ffff:0:a00:1]/",   // SIIT 10.0.0.1
		"http://[::ffff:0:a9fe:a9fe]/",     // SIIT 169.254.169.254
		"http://[::ffff:0:c0a8:101]:8080/", // SIIT 192.168.1.1
		"http://[::ffff:0:6440:1]/",        // SIIT 100.64.0.1
		"http://[::ffff:0:e000:1]/",        // SIIT 224.0.0.1
		"http://[::ffff:0:0:0]/",           // SIIT 0.0.0.0
		"http://[::ffff:0:7f00:1%25eth0]/", // SIIT 127.0.0.1 with a zone
		"http://[2001::]/",                 // Teredo
		"http://[2001::1]/",
		"http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", // RFC 4380's example, public server and client
		"http://[2001:0:ffff:ffff:ffff:ffff:ffff:ffff]/",
	}
	for _, list := range [][]string{names, singleLabel, addrs} {
		for _, u := range list {
			if CheckWebhookURL(u, false) {
				t.Errorf("CheckWebhookURL(%q, false) = true, want false", u)
			}
			if !CheckWebhookURL(u, true) {
				t.Errorf("CheckWebhookURL(%q, true) = false, want true (private allowed)", u)
			}
		}
	}
	// Near misses stay public.
	for _, u := range []string{
		"http://local.example.com/",
		"http://internal.example.com/",
		"http://home.arpa.example.com/",
		"http://localhost4.example.com/",
		"http://x.localdomain.example/",
		"http://printer.mylocal/",
		"http://db.notinternal/",
		"http://134744072/",          // a number is an address, not a single-label name
		"http://0x8080808/",          // 8.8.8.8
		"http://[::ffff:0:808:808]/", // SIIT 8.8.8.8
		"http://[::ffff:0:8.8.8.8]/", // the same, dotted
		"http://[2001:200::1]/",      // outside 2001::/32
		"http://[2001:4860:4860::8888]/",
	} {
		if !CheckWebhookURL(u, false) || !CheckWebhookURL(u, true) {
			t.Errorf("CheckWebhookURL(%q) = false, want true", u)
		}
	}
}

func TestCheckWebhookURLPort(t *testing.T) {
	for _, u := range []string{"https://example.com:99999/", "https://example.com:0/", "https://example.com:65536/", "https://example.com:080/", "https://example.com:8a/"} {
		if CheckWebhookURL(u, true) {
			t.Errorf("CheckWebhookURL(%q) = true: not a port", u)
		}
	}
}
