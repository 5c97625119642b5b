package tokencache

import (
	"sync"
	"testing"
	"time"
)

func TestBreaker(t *testing.T) {
	var mu sync.Mutex
	var changes []bool
	b := newBreaker(3, 20*time.Millisecond, 80*time.Millisecond, func(open bool) {
		mu.Lock()
		changes = append(changes, open)
		mu.Unlock()
	})
	for range 2 {
		b.failure()
	}
	b.success() // resets the count
	for range 2 {
		b.failure()
	}
	if !b.allow() || b.isOpen() {
		t.Fatal("opened before 3 consecutive failures")
	}
	b.failure()
	if b.allow() || !b.isOpen() {
		t.Fatal("not open after 3 consecutive failures")
	}
	eventually(t, time.Second, "half-open", b.allow)
	if b.allow() {
		t.Fatal("a second probe was let through while half-open")
	}
	b.failure() // probe failed: open again, for longer
	if b.allow() {
		t.Fatal("not open after a failed probe")
	}
	eventually(t, time.Second, "half-open again", b.allow)
	b.success()
	if !b.allow() || b.isOpen() || !b.allow() {
		t.Fatal("not closed after a successful probe")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 2 || !changes[0] || changes[1] {
		t.Fatalf("state changes = %v, want [true false]", changes)
	}
}
