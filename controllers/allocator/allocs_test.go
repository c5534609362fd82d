package allocator

import (
	"net/netip"
	"testing"
)

// TestZeroAllocs pins the zero-allocation promise of the hot paths: a reconciler
// allocating for thousands of Services must not churn the heap.
func TestZeroAllocs(t *testing.T) {
	b := NewBitmap(1<<20, 256)
	ipr, err := NewIPRange(netip.MustParsePrefix("fd00::/108"))
	if err != nil {
		t.Fatal(err)
	}
	ip4, err := NewIPRange(netip.MustParsePrefix("10.96.0.0/12"))
	if err != nil {
		t.Fatal(err)
	}
	pr, err := ParsePortRange("30000-32767")
	if err != nil {
		t.Fatal(err)
	}
	// Half-fill so the searches do real work.
	for range b.Size() / 2 {
		b.AllocateNext()
		ipr.AllocateNext()
		ip4.AllocateNext()
	}
	for range pr.Size() / 2 {
		pr.AllocateNext()
	}
	fixedIP4 := netip.MustParseAddr("10.100.1.2")
	fixedIP6 := netip.MustParseAddr("fd00::a:b")
	ip4.Release(fixedIP4)
	ipr.Release(fixedIP6)
	pr.Release(31000)
	b.Release(777)

	tests := []struct {
		name string
		fn   func()
	}{
		{"Bitmap.AllocateNext+Release", func() { off, _ := b.AllocateNext(); b.Release(off) }},
		{"Bitmap.Allocate+Release", func() { b.Allocate(777); b.Release(777) }},
		{"Bitmap.Has", func() { b.Has(12345) }},
		{"IPRange(v4).AllocateNext+Release", func() { ip, _ := ip4.AllocateNext(); ip4.Release(ip) }},
		{"IPRange(v4).Allocate+Release", func() { _ = ip4.Allocate(fixedIP4); ip4.Release(fixedIP4) }},
		{"IPRange(v6).AllocateNext+Release", func() { ip, _ := ipr.AllocateNext(); ipr.Release(ip) }},
		{"IPRange(v6).Allocate+Release", func() { _ = ipr.Allocate(fixedIP6); ipr.Release(fixedIP6) }},
		{"IPRange.Allocate already allocated", func() { _ = ipr.Allocate(fixedIP6); _ = ipr.Allocate(fixedIP6); ipr.Release(fixedIP6) }},
		{"IPRange.Has", func() { ipr.Has(fixedIP6) }},
		{"PortRange.AllocateNext+Release", func() { p, _ := pr.AllocateNext(); pr.Release(p) }},
		{"PortRange.Allocate+Release", func() { _ = pr.Allocate(31000); pr.Release(31000) }},
		{"PortRange.Has", func() { pr.Has(31000) }},
	}
	for _, tc := range tests {
		if n := testing.AllocsPerRun(1000, tc.fn); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tc.name, n)
		}
	}
	// AllocateNext on a full range returns a sentinel: no allocation either.
	full, _ := NewPortRange(1000, 3)
	for range 3 {
		full.AllocateNext()
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = full.AllocateNext() }); n != 0 {
		t.Errorf("AllocateNext on a full range: %v allocations per run", n)
	}
}
