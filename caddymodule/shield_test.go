package caddymodule

import (
	"net/netip"
	"testing"
	"time"
)

// A full table of addresses: swept at most once per window, and a new
// address finding it still full is over budget (never let through
// unchecked, never growing the table).
func TestMissBudgetTableFull(t *testing.T) {
	b := newMissBudget(1, time.Hour)
	b.max = 3
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}) }
	for i := range 3 {
		if _, ok := b.spend(addr(i)); !ok {
			t.Fatalf("address %d refused with room in the table", i)
		}
	}
	for i := 3; i < 10; i++ {
		d, ok := b.spend(addr(i))
		if ok {
			t.Fatalf("new address %d let through with the table full of spending addresses", i)
		}
		if d <= 0 || d > time.Hour {
			t.Fatalf("Retry-After %s", d)
		}
	}
	if b.sweeps != 1 || len(b.addrs) != 3 {
		t.Fatalf("%d sweeps, %d addresses: want 1 sweep per window and a bounded table", b.sweeps, len(b.addrs))
	}
	// The known addresses keep their own budgets.
	if _, ok := b.spend(addr(0)); ok {
		t.Fatal("address 0 spent its budget twice")
	}

	// Addresses whose budget refilled are forgotten at the next sweep.
	b = newMissBudget(1, time.Millisecond)
	b.max = 3
	for i := range 3 {
		b.spend(addr(i))
	}
	time.Sleep(5 * time.Millisecond) // several windows: every budget is whole again
	if _, ok := b.spend(addr(9)); !ok {
		t.Fatal("a new address refused though every tracked budget had refilled")
	}
	if len(b.addrs) != 1 {
		t.Fatalf("%d addresses after the sweep, want 1", len(b.addrs))
	}
}
