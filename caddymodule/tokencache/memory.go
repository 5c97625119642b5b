package tokencache

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/introspect"
)

// entry is one cached answer. Everything but ref is immutable once the
// entry is in the table; claims is shared with callers and never modified.
type entry struct {
	key     string
	claims  *introspect.Claims
	expires int64 // Unix ns: a normal lookup treats the entry as a miss from here on
	stale   int64 // Unix ns, >= expires: the entry may serve as a stale answer until here
	checked int64 // Unix ns: when the answer came from the endpoint or Redis
	ref     atomic.Bool
	// pending is set while the answer is not in Redis because Redis was
	// skipped or failed when it was stored; a later hit writes it behind.
	pending atomic.Bool
}

// negative reports whether the entry is an "active": false answer.
func (e *entry) negative() bool { return !e.claims.Active }

// memory is the in-process tier: a table of shards, each bounded and
// evicting with CLOCK (second chance), so a hit takes only its shard's read
// lock and sets a bit, and tokens hit between two sweeps stay.
type memory struct {
	shards []shard
	mask   uint32
}

type shard struct {
	mu    sync.RWMutex
	m     map[string]int // key -> index in slots
	slots []*entry
	hand  int
	cap   int
}

// newMemory makes a tier holding at most size entries (size >= 1).
func newMemory(size int) *memory {
	n := 1
	for n < 64 && size/(n*2) >= 16 {
		n *= 2
	}
	mem := &memory{shards: make([]shard, n), mask: uint32(n - 1)}
	per := size / n
	for i := range mem.shards {
		mem.shards[i] = shard{m: make(map[string]int, per), slots: make([]*entry, 0, per), cap: per}
	}
	return mem
}

// shardFor picks a shard by the first hex digits of the key hash (which is
// uniformly distributed).
func (m *memory) shardFor(key string) *shard {
	var v uint32
	for i := 0; i < 4 && i < len(key); i++ {
		v = v<<4 | uint32(unhex(key[i]))
	}
	return &m.shards[v&m.mask]
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return 0
}

// get returns the entry for key if it can still serve at now, fresh or
// stale; fresh reports whether it is within its normal expiry. Only fresh
// hits count as use for eviction.
func (m *memory) get(key string, now int64) (e *entry, fresh bool) {
	s := m.shardFor(key)
	s.mu.RLock()
	i, ok := s.m[key]
	if ok {
		e = s.slots[i]
	}
	s.mu.RUnlock()
	if e == nil || now >= e.stale {
		return nil, false
	}
	if now < e.expires {
		if !e.ref.Load() {
			e.ref.Store(true)
		}
		return e, true
	}
	return e, false
}

// put stores e, replacing an entry with the same key, evicting another
// one when the shard is full.
func (m *memory) put(e *entry, now int64) {
	s := m.shardFor(e.key)
	// A new entry starts unreferenced: one that is never hit again is the
	// first to go, ahead of the hot ones.
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.m[e.key]; ok {
		s.slots[i] = e
		return
	}
	if s.cap <= 0 {
		return
	}
	if len(s.slots) < s.cap {
		s.m[e.key] = len(s.slots)
		s.slots = append(s.slots, e)
		return
	}
	// CLOCK: sweep from the hand; an entry that is past use or was not
	// referenced since the last sweep goes, a referenced one gets a second
	// chance. Two rounds at most.
	for {
		if s.hand >= len(s.slots) {
			s.hand = 0
		}
		old := s.slots[s.hand]
		if now >= old.stale || !old.ref.Load() {
			delete(s.m, old.key)
			s.slots[s.hand] = e
			s.m[e.key] = s.hand
			s.hand++
			return
		}
		old.ref.Store(false)
		s.hand++
	}
}

// del removes the entry for key; it reports whether there was one.
func (m *memory) del(key string) bool {
	s := m.shardFor(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.m[key]
	if ok {
		s.removeAt(i)
	}
	return ok
}

// delPrefix removes every entry whose key starts with prefix and returns
// how many it removed.
func (m *memory) delPrefix(prefix string) int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		for j := 0; j < len(s.slots); {
			if strings.HasPrefix(s.slots[j].key, prefix) {
				s.removeAt(j)
				n++
				continue // slot j now holds what was the last entry
			}
			j++
		}
		s.mu.Unlock()
	}
	return n
}

// clear removes every entry and returns how many it removed.
func (m *memory) clear() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.slots)
		clear(s.slots)
		s.slots = s.slots[:0]
		clear(s.m)
		s.hand = 0
		s.mu.Unlock()
	}
	return n
}

// len is the number of entries held.
func (m *memory) len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		n += len(s.slots)
		s.mu.RUnlock()
	}
	return n
}

// removeAt removes slot i by moving the last slot into it. Callers hold
// the write lock.
func (s *shard) removeAt(i int) {
	old := s.slots[i]
	delete(s.m, old.key)
	last := len(s.slots) - 1
	if i != last {
		s.slots[i] = s.slots[last]
		s.m[s.slots[i].key] = i
	}
	s.slots[last] = nil
	s.slots = s.slots[:last]
	if s.hand > len(s.slots) {
		s.hand = 0
	}
}
