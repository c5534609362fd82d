package allocator

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// fillRandomly allocates round(size*fill) distinct offsets chosen uniformly at
// random (a partial Fisher-Yates shuffle), so the free offsets are scattered the way
// they are after months of Services coming and going, not packed at one end.
func fillRandomly(size int, fill float64, allocate func(off int)) {
	n := int(float64(size)*fill + 0.5)
	perm := make([]int32, size)
	for i := range perm {
		perm[i] = int32(i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		j := i + rng.IntN(size-i)
		perm[i], perm[j] = perm[j], perm[i]
		allocate(int(perm[i]))
	}
}

// BenchmarkIPRangeAllocateRelease measures one AllocateNext plus the Release of the
// returned address on a /12 (2^20 addresses) at a constant fill level, and on an
// IPv6 /108 of the same size.
func BenchmarkIPRangeAllocateRelease(b *testing.B) {
	for _, c := range []struct {
		name string
		fill float64
	}{{"slash12", 0}, {"slash12", 0.5}, {"slash12", 0.99}, {"slash12", 0.999}, {"slash108", 0.5}} {
		fill := c.fill
		b.Run(fmt.Sprintf("%s/fill=%g%%", c.name, fill*100), func(b *testing.B) {
			cidr := "10.96.0.0/12"
			if c.name == "slash108" {
				cidr = "fd00:10:96::/108"
			}
			r, err := NewIPRange(netip.MustParsePrefix(cidr))
			if err != nil {
				b.Fatal(err)
			}
			fillRandomly(r.Size(), fill, func(off int) {
				if err := r.Allocate(r.addr(off)); err != nil {
					b.Fatal(err)
				}
			})
			b.ReportAllocs()
			for b.Loop() {
				ip, err := r.AllocateNext()
				if err != nil {
					b.Fatal(err)
				}
				r.Release(ip)
			}
		})
	}
}

// BenchmarkIPRangeHas measures the mapping of an address to its bit: Has on
// addresses inside a half-full range, and on addresses outside it.
func BenchmarkIPRangeHas(b *testing.B) {
	for _, cidr := range []string{"10.96.0.0/12", "fd00:10:96::/108"} {
		r, err := NewIPRange(netip.MustParsePrefix(cidr))
		if err != nil {
			b.Fatal(err)
		}
		fillRandomly(r.Size(), 0.5, func(off int) {
			if err := r.Allocate(r.addr(off)); err != nil {
				b.Fatal(err)
			}
		})
		inside := make([]netip.Addr, 1024)
		for i := range inside {
			inside[i] = r.addr(i * (r.Size() / len(inside)))
		}
		outside := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"), r.CIDR().Addr()}
		b.Run(cidr+"/inside", func(b *testing.B) {
			n := 0
			for i := 0; b.Loop(); i++ {
				if r.Has(inside[i%len(inside)]) {
					n++
				}
			}
			if n == 0 {
				b.Fatal("no address held in a half-full range")
			}
		})
		b.Run(cidr+"/outside", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if r.Has(outside[i%len(outside)]) {
					b.Fatal("an address outside the range is held")
				}
			}
		})
	}
}

// BenchmarkPortRangeAllocateRelease is the same for the default NodePort range.
func BenchmarkPortRangeAllocateRelease(b *testing.B) {
	for _, fill := range []float64{0, 0.5, 0.99} {
		b.Run(fmt.Sprintf("30000-32767/fill=%g%%", fill*100), func(b *testing.B) {
			r, err := ParsePortRange("30000-32767")
			if err != nil {
				b.Fatal(err)
			}
			fillRandomly(r.Size(), fill, func(off int) {
				if err := r.Allocate(r.Base() + off); err != nil {
					b.Fatal(err)
				}
			})
			b.ReportAllocs()
			for b.Loop() {
				p, err := r.AllocateNext()
				if err != nil {
					b.Fatal(err)
				}
				r.Release(p)
			}
		})
	}
}
