package tokencache

import (
	"testing"
	"time"
)

// A cache closed while its breaker is open reports the breaker closed, so
// a gauge of open breakers does not keep counting a cache that is gone.
func TestCloseReleasesOpenBreaker(t *testing.T) {
	srv, rdb := newRedis(t)
	rec := newRecorder()
	up := newUpstream()
	c, err := New(Config{Redis: rdb, Observer: rec, RedisTimeout: 20 * time.Millisecond}, up)
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	for i := 0; !rec.breakerOpened() && i < 50; i++ {
		tok := "tok-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		up.set(tok, active(time.Hour, time.Now()))
		_, _ = c.Introspect(t.Context(), tok)
	}
	if !rec.breakerOpened() {
		t.Fatal("the breaker never opened with Redis stopped")
	}
	c.Close()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if n := len(rec.breaker); n < 2 || rec.breaker[n-1] {
		t.Errorf("breaker reports %v: want a final false after Close", rec.breaker)
	}
}
