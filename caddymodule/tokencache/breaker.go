package tokencache

import (
	"sync"
	"sync/atomic"
	"time"
)

// Breaker states.
const (
	breakerClosed int32 = iota
	breakerOpen
	breakerHalfOpen
)

// breaker is a circuit breaker for Redis: after threshold consecutive
// errors it opens for a cool-down during which Redis is skipped; then one
// probe call is let through (half-open): success closes it, failure opens
// it again for twice the cool-down, up to maxCooldown.
type breaker struct {
	threshold   int
	baseCool    time.Duration
	maxCooldown time.Duration
	onChange    func(open bool)

	state     atomic.Int32 // read without the lock on the hot path
	openUntil atomic.Int64 // Unix ns: end of the cool-down, for the lock-free check

	fails atomic.Int32 // consecutive failures while closed

	mu       sync.Mutex
	cooldown time.Duration
	until    time.Time // end of the cool-down while open
	probing  bool      // a half-open probe is in flight
}

func newBreaker(threshold int, base, maxCool time.Duration, onChange func(open bool)) *breaker {
	return &breaker{threshold: threshold, baseCool: base, maxCooldown: maxCool, cooldown: base, onChange: onChange}
}

// allow reports whether a Redis call may be made now.
func (b *breaker) allow() bool {
	switch b.state.Load() {
	case breakerClosed:
		return true
	case breakerOpen:
		if time.Now().UnixNano() < b.openUntil.Load() {
			return false
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state.Load() {
	case breakerClosed:
		return true
	case breakerOpen:
		if time.Now().Before(b.until) {
			return false
		}
		b.state.Store(breakerHalfOpen)
		b.probing = true
		return true
	default: // half-open
		if b.probing {
			return false
		}
		b.probing = true
		return true
	}
}

// isOpen reports whether Redis is being skipped (open or half-open).
func (b *breaker) isOpen() bool {
	return b.state.Load() != breakerClosed
}

// success records a call that worked.
func (b *breaker) success() {
	if b.state.Load() == breakerClosed {
		if b.fails.Load() != 0 {
			b.fails.Store(0)
		}
		return
	}
	b.mu.Lock()
	wasOpen := b.state.Load() != breakerClosed
	b.state.Store(breakerClosed)
	b.fails.Store(0)
	b.probing = false
	b.cooldown = b.baseCool
	b.mu.Unlock()
	if wasOpen && b.onChange != nil {
		b.onChange(false)
	}
}

// failure records a call that failed.
func (b *breaker) failure() {
	b.mu.Lock()
	opened := false
	switch b.state.Load() {
	case breakerClosed:
		if int(b.fails.Add(1)) >= b.threshold {
			b.state.Store(breakerOpen)
			b.cooldown = b.baseCool
			b.until = time.Now().Add(b.cooldown)
			b.openUntil.Store(b.until.UnixNano())
			opened = true
		}
	case breakerHalfOpen:
		b.probing = false
		b.cooldown = min(2*b.cooldown, b.maxCooldown)
		b.until = time.Now().Add(b.cooldown)
		b.openUntil.Store(b.until.UnixNano())
		b.state.Store(breakerOpen)
	case breakerOpen:
		// A call that started before the breaker opened; nothing to add.
	}
	b.mu.Unlock()
	if opened && b.onChange != nil {
		b.onChange(true)
	}
}

// release closes an open breaker for good when its cache goes away, so
// that whoever counts open breakers counts this one no more.
func (b *breaker) release() {
	b.mu.Lock()
	wasOpen := b.state.Load() != breakerClosed
	b.state.Store(breakerClosed)
	b.mu.Unlock()
	if wasOpen && b.onChange != nil {
		b.onChange(false)
	}
}
