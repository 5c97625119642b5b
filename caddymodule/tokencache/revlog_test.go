package tokencache

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// A flight is told of its own token's revocation, a prefix covering it or
// a clear-all, and of nothing else; past the log's length, conservatively
// of everything.
func TestRevLog(t *testing.T) {
	var l revLog
	const h = "3f1c0b9e27aa0000000000000000000000000000000000000000000000000000"
	m := l.mark()
	l.add("aaaa0b9e27aa0000000000000000000000000000000000000000000000000000")
	l.add("bbbbbbbbbbbb")
	if l.revokedSince(m, h) {
		t.Fatal("revocations of other tokens count for this one")
	}
	l.add("3f1c0b9e27aa")
	if !l.revokedSince(m, h) {
		t.Fatal("a fingerprint covering the token does not count")
	}
	m = l.mark()
	if l.revokedSince(m, h) {
		t.Fatal("a flight started after the revocation is told of it")
	}
	l.add(h)
	if !l.revokedSince(m, h) {
		t.Fatal("the token's own revocation does not count")
	}
	m = l.mark()
	l.clearAll()
	if !l.revokedSince(m, h) {
		t.Fatal("a clear-all does not count")
	}
	m = l.mark()
	for i := range revLogSize {
		l.add(fmt.Sprintf("%064x", i+1))
	}
	if !l.revokedSince(m, h) {
		t.Fatal("a flight that saw the whole log go by is not treated as revoked")
	}
}

// Revocations of other tokens while a token's introspection is in flight
// change nothing: one call across two instances, and the answer is kept.
// (With one counter for all revocations, each instance called for itself.)
func TestCoalescingAcrossOtherRevocations(t *testing.T) {
	_, rdb := newRedis(t)
	up := newUpstream()
	up.delay = 300 * time.Millisecond
	now := time.Now()
	cfg := Config{Redis: rdb, LockWait: 3 * time.Second, LockTTL: 4 * time.Second}
	a, b := newCache(t, cfg, up), newCache(t, cfg, up)
	for _, c := range []*Cache{a, b} {
		c.Start(t.Context())
		waitSubscribed(t, c)
	}
	up.set("fresh", active(time.Hour, now))
	up.set("other", active(time.Hour, now))
	first := make(chan error, 1)
	go func() { _, err := a.Introspect(context.Background(), "fresh"); first <- err }()
	eventually(t, 2*time.Second, "a's call to start", func() bool { return up.count("fresh") == 1 })
	second := make(chan error, 1)
	go func() { _, err := b.Introspect(context.Background(), "fresh"); second <- err }()
	for range 5 {
		if _, err := a.Revoke(context.Background(), "other", ""); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, ch := range []chan error{first, second} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	if n := up.count("fresh"); n != 1 {
		t.Errorf("%d calls for one token across two instances while other tokens were revoked, want 1", n)
	}
	if !inMemory(a, "fresh") || !inMemory(b, "fresh") {
		t.Error("an answer fetched while another token was revoked was not kept")
	}
}
