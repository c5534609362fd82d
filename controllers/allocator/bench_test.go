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
// returned address on a /12 (2^20 addresses) at a constant fill level.
func BenchmarkIPRangeAllocateRelease(b *testing.B) {
	for _, fill := range []float64{0, 0.5, 0.99, 0.999} {
		b.Run(fmt.Sprintf("slash12/fill=%g%%", fill*100), func(b *testing.B) {
			r, err := NewIPRange(netip.MustParsePrefix("10.96.0.0/12"))
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
