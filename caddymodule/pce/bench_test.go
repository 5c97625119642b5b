package pce

import "testing"

func BenchmarkMatch(b *testing.B) {
	rt := testRouter(b)
	const path = "/uapi/extensions/@me/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"
	b.ReportAllocs()
	for b.Loop() {
		if _, _, on, err := rt.Match(path); !on || err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatchEscaped(b *testing.B) {
	rt := testRouter(b)
	const path = "/uapi/extensions/%40me/0003%2A210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"
	b.ReportAllocs()
	for b.Loop() {
		if _, _, on, err := rt.Match(path); !on || err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatchPassThrough(b *testing.B) {
	rt := testRouter(b)
	const path = "/uapi/extensions/@me/0003*210/presence"
	b.ReportAllocs()
	for b.Loop() {
		if _, _, on, _ := rt.Match(path); on {
			b.Fatal("on route")
		}
	}
}

func BenchmarkAppendNormalized(b *testing.B) {
	body := []byte(pagePayload)
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := AppendNormalized(dst[:0], body, OpUpdate, pageRoute, PayloadRules{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendNormalizedFull(b *testing.B) {
	body := []byte(pageFullPayload)
	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := AppendNormalized(dst[:0], body, OpUpdate, pageRoute, PayloadRules{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExtractToken(b *testing.B) {
	auth := []string{"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMiJ9.c2lnbmF0dXJl"}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, ok := ExtractToken(auth, nil); !ok {
			b.Fatal("not ok")
		}
	}
}
