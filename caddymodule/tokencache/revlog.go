package tokencache

import (
	"strings"
	"sync"
	"sync/atomic"
)

// revLogSize is how many of the last revocations a flight can be checked
// against; a flight that saw more go by is treated as revoked.
const revLogSize = 1024

// revLog numbers the revocations this instance applies, so that a flight
// (an introspection or a Redis read in progress) can tell whether its own
// token was revoked while it ran, and then not keep or use its answer. A
// revocation of another token changes nothing for it: with revocations
// frequent, a global counter would make every flight across one start
// over, and instances stop sharing their answers.
type revLog struct {
	seq atomic.Uint64 // the last revocation's number

	mu      sync.Mutex
	targets [revLogSize]string // by number mod revLogSize: a key hash or a prefix; "" clears all
}

// mark is where a flight starts.
func (l *revLog) mark() uint64 { return l.seq.Load() }

// add notes the revocation of target (a key hash or a fingerprint
// prefix).
func (l *revLog) add(target string) {
	l.mu.Lock()
	n := l.seq.Load() + 1
	l.targets[n%revLogSize] = target
	l.seq.Store(n)
	l.mu.Unlock()
}

// clearAll notes that every token must be treated as revoked (the record
// was lost).
func (l *revLog) clearAll() { l.add("") }

// revokedSince reports whether hash was revoked after mark.
func (l *revLog) revokedSince(mark uint64, hash string) bool {
	if l.seq.Load() == mark {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	last := l.seq.Load()
	if last-mark >= revLogSize {
		return true
	}
	for n := mark + 1; n <= last; n++ {
		if strings.HasPrefix(hash, l.targets[n%revLogSize]) { // "" matches all
			return true
		}
	}
	return false
}
