//go:build !race

// The race detector makes sync.Pool drop items at random, so allocation
// counts are only meaningful without it: `go test ./caddymodule/pce/`.

package pce

import "testing"

func TestAppendNormalizedAllocs(t *testing.T) {
	body := []byte(pageFullPayload)
	dst := make([]byte, 0, 512)
	n := testing.AllocsPerRun(100, func() {
		AppendNormalized(dst[:0], body, OpUpdate, pageRoute, PayloadRules{})
	})
	t.Logf("allocs for the full page payload: %v", n)
	page := []byte(pagePayload)
	n = testing.AllocsPerRun(100, func() {
		AppendNormalized(dst[:0], page, OpUpdate, pageRoute, PayloadRules{})
	})
	if n != 0 {
		t.Errorf("page example payload: %v allocs, want 0", n)
	}
}
