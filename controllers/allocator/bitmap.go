package allocator

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
)

// allOnes is a 64-bit word with every bit set: a full word at any level.
const allOnes = ^uint64(0)

// Bitmap is a fixed-size set of offsets [0,size) with a static band [0,static)
// reserved for explicitly requested values. AllocateNext hands out offsets from the
// dynamic band [static,size) first, starting at a random point and wrapping within
// that band, and only falls back to the static band, again from a random point, once
// the dynamic band is full. Allocate accepts any offset in [0,size). This is the
// KEP-3070 (ClusterIP) and KEP-3668 (NodePort) behaviour: users who pick values by
// hand pick them from the bottom of the range, and dynamic allocation stays out of
// their way for as long as it can.
//
// Internally the set is a tree of 64-bit words. levels[0] has one bit per offset;
// each higher level has one bit per word of the level below, set when that word is
// full. For 2^20 offsets (an IPv4 /12) that is 16384 words, then 256, then 4, then 1,
// so finding a free offset from any starting point reads at most four words going up
// and three coming down, no matter how full the bitmap is.
//
// A Bitmap is not safe for concurrent use; the caller must serialise access.
type Bitmap struct {
	// levels[0] is the offset bitmap; levels[i+1] has bit w set iff levels[i][w] is
	// full. The last level is always a single word. Bits beyond the end of a level
	// (offsets >= size, or words that do not exist below) are kept permanently set,
	// so a partial last word can read as full and searches never return them.
	levels [][]uint64
	size   int
	static int
	used   int
	rng    *rand.Rand
}

// NewBitmap returns an empty Bitmap of size offsets whose lowest static offsets form
// the static band. static is clamped to [0,size]; a band that covers the whole
// bitmap behaves like no band at all (a single random-start band). The random start
// points come from a PCG generator seeded from the runtime's random source, so
// separate processes (and separate Bitmaps) walk the range differently. NewBitmap
// panics if size is negative.
func NewBitmap(size, static int) *Bitmap {
	return newSeededBitmap(size, static, rand.Uint64(), rand.Uint64())
}

// newSeededBitmap is NewBitmap with a caller-chosen seed, so tests and the fuzzer
// can replay a sequence of random start points exactly.
func newSeededBitmap(size, static int, seed1, seed2 uint64) *Bitmap {
	if size < 0 {
		panic(fmt.Sprintf("allocator: negative bitmap size %d", size))
	}
	static = min(max(static, 0), size)
	b := &Bitmap{
		size:   size,
		static: static,
		rng:    rand.New(rand.NewPCG(seed1, seed2)),
	}
	// Build levels bottom-up until one word summarises everything. n is the number
	// of meaningful bits in the level being built.
	for n := size; ; {
		words := make([]uint64, max((n+63)/64, 1))
		// Pad the tail of the last word. n%64 == 0 means the last word is fully
		// meaningful, except when n == 0, where the lone word is all padding.
		if r := n % 64; r != 0 || n == 0 {
			words[len(words)-1] = allOnes << r
		}
		b.levels = append(b.levels, words)
		if len(words) == 1 {
			break
		}
		n = len(words)
	}
	return b
}

// Size returns the number of offsets in the bitmap.
func (b *Bitmap) Size() int { return b.size }

// Used returns the number of allocated offsets.
func (b *Bitmap) Used() int { return b.used }

// Free returns the number of unallocated offsets. It is a subtraction, not a count.
func (b *Bitmap) Free() int { return b.size - b.used }

// Has reports whether offset is allocated. Offsets outside [0,size) are never
// allocated, so Has returns false for them.
func (b *Bitmap) Has(offset int) bool {
	if uint(offset) >= uint(b.size) {
		return false
	}
	return b.levels[0][offset>>6]&(1<<(offset&63)) != 0
}

// Allocate marks offset as allocated. It returns false if offset is already
// allocated or lies outside [0,size); it does not panic on bad input, because the
// offsets usually come from user-supplied Service specs.
func (b *Bitmap) Allocate(offset int) bool {
	if uint(offset) >= uint(b.size) || b.Has(offset) {
		return false
	}
	b.set(offset)
	b.used++
	return true
}

// AllocateNext allocates and returns a free offset, preferring the dynamic band
// [static,size): it picks a random offset in that band and takes the first free one
// at or after it, wrapping to the start of the band. Only when the dynamic band is
// full does it do the same within the static band [0,static). It returns false when
// the bitmap is full.
func (b *Bitmap) AllocateNext() (int, bool) {
	if b.used >= b.size {
		return 0, false
	}
	off, ok := -1, false
	if b.static < b.size {
		off, ok = b.scanBand(b.static, b.size)
	}
	if !ok && b.static > 0 {
		off, ok = b.scanBand(0, b.static)
	}
	if !ok {
		// used < size guarantees a clear bit somewhere; reaching here means the
		// summary levels disagree with the counter.
		panic("allocator: bitmap counter and contents disagree")
	}
	b.set(off)
	b.used++
	return off, true
}

// Release marks offset as free. Releasing a free offset, or one outside [0,size), is
// a no-op, so callers can release unconditionally when a Service goes away.
func (b *Bitmap) Release(offset int) {
	if !b.Has(offset) {
		return
	}
	b.clear(offset)
	b.used--
}

// ForEach calls fn for every allocated offset in ascending order. fn must not modify
// the bitmap. Whole empty words are skipped, so the cost is one read per 64 offsets
// plus one call per allocated offset.
func (b *Bitmap) ForEach(fn func(offset int)) {
	for w, word := range b.levels[0] {
		for word != 0 {
			off := w<<6 | bits.TrailingZeros64(word)
			if off >= b.size {
				// Only the padding of the last word remains.
				return
			}
			fn(off)
			word &= word - 1 // drop the lowest set bit
		}
	}
}

// scanBand returns the first free offset at or after a random start in [lo,hi),
// wrapping around to lo. It does not allocate it. lo < hi is required.
func (b *Bitmap) scanBand(lo, hi int) (int, bool) {
	start := lo + b.rng.IntN(hi-lo)
	// nextClear is not band-aware; a result at or past hi means [start,hi) is full.
	if off := b.nextClear(start); off >= 0 && off < hi {
		return off, true
	}
	if off := b.nextClear(lo); off >= 0 && off < start {
		return off, true
	}
	return 0, false
}

// nextClear returns the lowest free offset >= p, or -1 if there is none. It climbs
// while the rest of the current word is full and, at the first level that has a
// clear bit (a word below that is not full), descends taking the lowest clear bit of
// each word. Each step is one word, so the cost is at most 2*len(levels) words.
func (b *Bitmap) nextClear(p int) int {
	l := 0
	for {
		lvl := b.levels[l]
		w := p >> 6
		if w >= len(lvl) {
			return -1
		}
		if m := ^lvl[w] & (allOnes << (p & 63)); m != 0 {
			p = w<<6 | bits.TrailingZeros64(m)
			break
		}
		// Everything from p to the end of word w is taken; continue from the
		// next word, which is bit w+1 one level up.
		l++
		if l == len(b.levels) {
			return -1
		}
		p = w + 1
	}
	// p is a clear bit at level l, so word p of level l-1 has a clear bit, and so on
	// down to level 0.
	for l > 0 {
		l--
		p = p<<6 | bits.TrailingZeros64(^b.levels[l][p])
	}
	return p
}

// set sets bit off at level 0 and marks each word that became full in the level
// above, stopping at the first word that still has room.
func (b *Bitmap) set(off int) {
	for _, lvl := range b.levels {
		w := off >> 6
		lvl[w] |= 1 << (off & 63)
		if lvl[w] != allOnes {
			return
		}
		off = w
	}
}

// clear clears bit off at level 0 and unmarks each word in the levels above that
// was full until now, stopping at the first word that already had room.
func (b *Bitmap) clear(off int) {
	for _, lvl := range b.levels {
		w := off >> 6
		wasFull := lvl[w] == allOnes
		lvl[w] &^= 1 << (off & 63)
		if !wasFull {
			return
		}
		off = w
	}
}

// StaticBandIPs returns the KEP-3070 static band for a ClusterIP range of n
// addresses: n/16, but at least 16 and at most 256, and never more than n. So a /24
// (256) gets 16, a /20 (4096) gets 256, and a /12 (2^20) also gets 256. kube passes
// the CIDR size here, network and broadcast included, as IPRange does.
//
// kube returns 0 for n <= 16 where this returns n; the two are equivalent, because a
// band covering the whole range leaves a single random-start band, exactly as no
// band does.
func StaticBandIPs(n int) int {
	return staticBand(n, 16, 16, 256)
}

// StaticBandPorts returns the KEP-3668 static band for a NodePort range of n ports:
// n/32, but at least 16 and at most 128, and never more than n. The default
// 30000-32767 (2768 ports) gets 86; a full 1-65535 range gets 128. As with
// StaticBandIPs, kube's 0 for n <= 16 is equivalent to the n returned here.
func StaticBandPorts(n int) int {
	return staticBand(n, 32, 16, 128)
}

// staticBand computes min(max(lo, n/step), hi) capped at n (and at least 0).
func staticBand(n, step, lo, hi int) int {
	if n <= 0 {
		return 0
	}
	return min(max(lo, n/step), hi, n)
}
