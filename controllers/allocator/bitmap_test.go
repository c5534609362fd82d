package allocator

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// checkInvariants recomputes what every summary level should hold from the level
// below, and the used counter from level 0, and fails the test on any difference.
func checkInvariants(t testing.TB, b *Bitmap) {
	t.Helper()
	if got := len(b.levels[len(b.levels)-1]); got != 1 {
		t.Fatalf("top level has %d words, want 1", got)
	}
	n := b.size
	count := 0
	for l, lvl := range b.levels {
		if want := max((n+63)/64, 1); len(lvl) != want {
			t.Fatalf("level %d has %d words, want %d", l, len(lvl), want)
		}
		for i := n; i < len(lvl)*64; i++ {
			if lvl[i>>6]&(1<<(i&63)) == 0 {
				t.Fatalf("level %d: padding bit %d is clear", l, i)
			}
		}
		if l == 0 {
			for i := range n {
				if lvl[i>>6]&(1<<(i&63)) != 0 {
					count++
				}
			}
		} else {
			below := b.levels[l-1]
			for w := range below {
				full := below[w] == allOnes
				if got := lvl[w>>6]&(1<<(w&63)) != 0; got != full {
					t.Fatalf("level %d bit %d = %v, but level %d word %d full = %v", l, w, got, l-1, w, full)
				}
			}
		}
		n = len(lvl)
	}
	if count != b.used {
		t.Fatalf("level 0 has %d bits set, counter says %d", count, b.used)
	}
}

func collect(b *Bitmap) []int {
	var got []int
	b.ForEach(func(off int) { got = append(got, off) })
	return got
}

func TestBitmapBasics(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		static int
	}{
		{"empty", 0, 0},
		{"one", 1, 0},
		{"word minus one", 63, 0},
		{"one word", 64, 0},
		{"word plus one", 65, 16},
		{"two levels", 4096, 256},
		{"three levels", 4097, 256},
		{"ports", 2768, 86},
		{"slash 12", 1<<20 - 2, 256},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newSeededBitmap(tc.size, tc.static, 1, 2)
			checkInvariants(t, b)
			if b.Size() != tc.size || b.Free() != tc.size || b.Used() != 0 {
				t.Fatalf("new bitmap: size %d free %d used %d", b.Size(), b.Free(), b.Used())
			}
			// Out-of-range offsets are refused and never reported.
			for _, off := range []int{-1, tc.size, tc.size + 64} {
				if b.Allocate(off) || b.Has(off) {
					t.Fatalf("offset %d out of range but accepted", off)
				}
				b.Release(off)
			}
			if tc.size == 0 {
				if _, ok := b.AllocateNext(); ok {
					t.Fatal("AllocateNext on an empty bitmap succeeded")
				}
				return
			}
			last := tc.size - 1
			specific := slices.Compact([]int{0, last / 2, last})
			for _, off := range specific {
				if !b.Allocate(off) {
					t.Fatalf("Allocate(%d) failed on a free offset", off)
				}
				if b.Allocate(off) {
					t.Fatalf("Allocate(%d) succeeded twice", off)
				}
				if !b.Has(off) {
					t.Fatalf("Has(%d) false after Allocate", off)
				}
			}
			checkInvariants(t, b)
			if b.Used() != len(specific) || b.Free() != tc.size-len(specific) {
				t.Fatalf("after specific allocations: used %d free %d", b.Used(), b.Free())
			}
			if got := collect(b); !slices.Equal(got, specific) {
				t.Fatalf("ForEach = %v, want %v", got, specific)
			}
			next, ok := b.AllocateNext()
			if ok != (tc.size > len(specific)) {
				t.Fatalf("AllocateNext ok = %v with %d free", ok, tc.size-len(specific))
			}
			if ok && slices.Contains(specific, next) {
				t.Fatalf("AllocateNext returned already allocated %d", next)
			}
			b.Release(specific[0])
			b.Release(specific[0]) // second release is a no-op
			if b.Has(specific[0]) {
				t.Fatalf("Has(%d) after Release", specific[0])
			}
			checkInvariants(t, b)
		})
	}
}

// TestBitmapExhaust fills bitmaps of awkward sizes with AllocateNext alone: every
// offset must come out exactly once, then the bitmap reports full, and after freeing
// one offset that exact offset is the only one AllocateNext can return.
func TestBitmapExhaust(t *testing.T) {
	for _, size := range []int{1, 2, 63, 64, 65, 127, 128, 129, 4095, 4096, 4097, 262145} {
		for _, static := range []int{0, 1, 16, size / 2, size} {
			b := newSeededBitmap(size, static, uint64(size), uint64(static))
			seen := make([]bool, size)
			for i := range size {
				off, ok := b.AllocateNext()
				if !ok {
					t.Fatalf("size %d static %d: full after %d allocations", size, static, i)
				}
				if seen[off] {
					t.Fatalf("size %d static %d: offset %d handed out twice", size, static, off)
				}
				seen[off] = true
			}
			if _, ok := b.AllocateNext(); ok || b.Free() != 0 {
				t.Fatalf("size %d static %d: AllocateNext ok=%v free=%d when full", size, static, ok, b.Free())
			}
			checkInvariants(t, b)
			hole := (size * 7) / 11
			b.Release(hole)
			if off, ok := b.AllocateNext(); !ok || off != hole {
				t.Fatalf("size %d static %d: got (%d, %v), want only free offset %d", size, static, off, ok, hole)
			}
		}
	}
}

// TestBitmapStaticBand checks the KEP-3070/3668 ordering: dynamic allocation stays
// out of [0,static) until [static,size) is exhausted, then fills the band.
func TestBitmapStaticBand(t *testing.T) {
	tests := []struct {
		size, static int
	}{
		{30, 16},      // smaller than a word
		{254, 16},     // IPv4 /24
		{2768, 86},    // default NodePort range
		{5000, 256},   // three levels
		{100, 100},    // band covers everything: behaves as no band
		{100, 0},      // no band
		{1 << 16, 99}, // band ends mid-word
	}
	for _, tc := range tests {
		b := newSeededBitmap(tc.size, tc.static, 7, uint64(tc.size))
		// Take one static value by hand, as a user would.
		reserved := -1
		if tc.static > 0 {
			reserved = tc.static / 2
			b.Allocate(reserved)
		}
		dynamic := tc.size - tc.static
		for i := range dynamic {
			off, ok := b.AllocateNext()
			if !ok || off < tc.static {
				t.Fatalf("size %d static %d: allocation %d of the dynamic band gave (%d, %v)", tc.size, tc.static, i, off, ok)
			}
		}
		for i := 0; b.Free() > 0; i++ {
			off, ok := b.AllocateNext()
			if !ok || off >= tc.static || off == reserved {
				t.Fatalf("size %d static %d: band allocation %d gave (%d, %v)", tc.size, tc.static, i, off, ok)
			}
		}
		if _, ok := b.AllocateNext(); ok {
			t.Fatalf("size %d static %d: AllocateNext on a full bitmap succeeded", tc.size, tc.static)
		}
		checkInvariants(t, b)
	}
}

// TestBitmapRandomStart checks that AllocateNext on an empty bitmap does not simply
// return the bottom of the dynamic band, and that two bitmaps seeded differently
// choose different sequences (a restarted controller must not replay its offsets).
func TestBitmapRandomStart(t *testing.T) {
	const size, static = 1 << 16, 256
	a, b := NewBitmap(size, static), NewBitmap(size, static)
	var seqA, seqB []int
	lowest := size
	for range 32 {
		x, _ := a.AllocateNext()
		y, _ := b.AllocateNext()
		seqA, seqB = append(seqA, x), append(seqB, y)
		lowest = min(lowest, x, y)
	}
	if slices.Equal(seqA, seqB) {
		t.Fatalf("two bitmaps produced the same sequence %v", seqA)
	}
	if lowest == static {
		// 64 uniform draws over 65280 values all landing on the first one is
		// astronomically unlikely unless the start is not random.
		t.Fatalf("AllocateNext keeps starting at the bottom of the band: %v", seqA)
	}
}

// TestBitmapNearlyFullLarge fills a /12-sized bitmap except for a few scattered
// offsets (in both bands) and checks that AllocateNext finds exactly those, upper
// band first.
func TestBitmapNearlyFullLarge(t *testing.T) {
	const size, static = 1<<20 - 2, 256
	b := newSeededBitmap(size, static, 3, 4)
	holes := map[int]bool{0: true, 255: true, 256: true, 4095: true, 262143: true, 262144: true, size - 1: true}
	for off := range size {
		if !holes[off] {
			b.Allocate(off)
		}
	}
	checkInvariants(t, b)
	var got []int
	for range len(holes) {
		off, ok := b.AllocateNext()
		if !ok {
			t.Fatalf("full after %v", got)
		}
		got = append(got, off)
	}
	if _, ok := b.AllocateNext(); ok {
		t.Fatal("AllocateNext succeeded on a full bitmap")
	}
	// The two static-band holes must come last.
	if tail := got[len(got)-2:]; !(tail[0] < static && tail[1] < static) {
		t.Fatalf("static band used before the dynamic band was full: %v", got)
	}
	slices.Sort(got)
	var want []int
	for off := range holes {
		want = append(want, off)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("AllocateNext returned %v, want %v", got, want)
	}
	checkInvariants(t, b)
}

// TestBitmapNextClearMatchesLinear compares the tree search with a bit-by-bit scan
// from every start point on a randomly filled three-level bitmap.
func TestBitmapNextClearMatchesLinear(t *testing.T) {
	const size = 64*64*2 + 17
	rng := rand.New(rand.NewPCG(5, 6))
	for _, fill := range []float64{0, 0.5, 0.97, 0.999, 1} {
		b := newSeededBitmap(size, 0, 1, 1)
		for off := range size {
			if rng.Float64() < fill {
				b.Allocate(off)
			}
		}
		// Fill some whole words and summary words so the climb is exercised.
		for off := 64 * 64; off < 64*64+64*70; off++ {
			if off < size && fill > 0.9 {
				b.Allocate(off)
			}
		}
		checkInvariants(t, b)
		want := -1
		for p := size - 1; p >= 0; p-- {
			if !b.Has(p) {
				want = p
			}
			if got := b.nextClear(p); got != want {
				t.Fatalf("fill %v: nextClear(%d) = %d, want %d", fill, p, got, want)
			}
		}
	}
}

func TestStaticBand(t *testing.T) {
	tests := []struct {
		n, ips, ports int
	}{
		{0, 0, 0},
		{4, 4, 4},
		{15, 15, 15},
		{16, 16, 16},
		{17, 16, 16},
		{256, 16, 16},
		{512, 32, 16},
		{1024, 64, 32},
		{2768, 173, 86},
		{4096, 256, 128},
		{65536, 256, 128},
		{1 << 20, 256, 128},
	}
	for _, tc := range tests {
		if got := StaticBandIPs(tc.n); got != tc.ips {
			t.Errorf("StaticBandIPs(%d) = %d, want %d", tc.n, got, tc.ips)
		}
		if got := StaticBandPorts(tc.n); got != tc.ports {
			t.Errorf("StaticBandPorts(%d) = %d, want %d", tc.n, got, tc.ports)
		}
	}
}

func TestBitmapLevels(t *testing.T) {
	// The doc comment's arithmetic: 2^20 bits = 16384 words, then 256, 4, 1.
	b := NewBitmap(1<<20, 0)
	var got []int
	for _, lvl := range b.levels {
		got = append(got, len(lvl))
	}
	if want := []int{16384, 256, 4, 1}; !slices.Equal(got, want) {
		t.Fatalf("level sizes %v, want %v", got, want)
	}
}
