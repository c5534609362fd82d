package allocator

import (
	"slices"
	"testing"
)

// FuzzBitmapOperations replays a byte string as operations on a Bitmap and on a
// map-based model of it, and fails on the first disagreement.
//
// Layout: data[0:2] pick the size (1..300, or 4097..4696 when data[2] is odd, which
// gives the bitmap a third level: 4097 bits = 65 words = 2 summary words = 1), data[3]
// the static band (up to size+1, to exercise clamping), data[4] the random seed;
// every later byte is an operation, some followed by one or two argument bytes.
// Missing bytes read as zero.
//
// The total number of bitmap calls per input is capped (workBudget) so that long
// inputs full of bursts stay in the millisecond range; otherwise the fuzzer spends
// its minimisation budget on a few slow inputs and stops exploring.
func FuzzBitmapOperations(f *testing.F) {
	f.Add([]byte{0, 10, 0, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1})
	f.Add([]byte{1, 44, 0, 16, 2, 0, 0, 3, 2, 0, 3, 1, 1, 1, 3, 0, 3})
	f.Add([]byte{0, 63, 0, 0, 3, 4, 10, 1, 5, 0, 0, 20, 1, 1})
	f.Add([]byte{0, 64, 0, 64, 4, 4, 255, 1, 2, 0, 7, 1})
	f.Add([]byte{0, 0, 0, 0, 5, 1, 1, 0, 0, 0, 1, 2, 0, 0})
	f.Add([]byte{0, 200, 1, 255, 6, 4, 255, 4, 255, 5, 0, 9, 40, 1, 4, 255, 1, 3, 1, 200})
	f.Add([]byte{15, 160, 1, 16, 7, 4, 200, 4, 200, 1, 1, 1, 2, 0, 100, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		pos := 0
		next := func() int {
			if pos >= len(data) {
				pos++
				return 0
			}
			pos++
			return int(data[pos-1])
		}
		sizeSel := next()<<8 | next()
		size := 1 + sizeSel%300
		if next()&1 == 1 {
			size = 4097 + sizeSel%600
		}
		static := next() % (size + 2)
		b := newSeededBitmap(size, static, uint64(next()), 42)
		bandEnd := min(static, size)

		work := 0 // bitmap calls so far, checked against workBudget
		model := map[int]bool{}
		upperUsed := 0 // model entries >= bandEnd
		add := func(off int) {
			model[off] = true
			if off >= bandEnd {
				upperUsed++
			}
		}
		remove := func(off int) {
			delete(model, off)
			if off >= bandEnd {
				upperUsed--
			}
		}
		// arg is an offset in [-1, size], so both ends of the range are probed
		// just outside it too.
		arg := func() int { return (next()<<8|next())%(size+2) - 1 }
		allocNext := func() {
			work++
			off, ok := b.AllocateNext()
			if !ok {
				if len(model) != size {
					t.Fatalf("AllocateNext failed with %d of %d used", len(model), size)
				}
				return
			}
			if off < 0 || off >= size || model[off] {
				t.Fatalf("AllocateNext returned %d (size %d, allocated %v)", off, size, model[off])
			}
			if off < bandEnd && upperUsed != size-bandEnd {
				t.Fatalf("AllocateNext returned static offset %d with %d of %d dynamic offsets used", off, upperUsed, size-bandEnd)
			}
			add(off)
		}
		check := func() {
			var want []int
			for off := range model {
				want = append(want, off)
			}
			slices.Sort(want)
			if got := collect(b); !slices.Equal(got, want) {
				t.Fatalf("ForEach = %v, model %v", got, want)
			}
			checkInvariants(t, b)
		}

		const workBudget = 1 << 14
		for ops := 0; pos < len(data) && work < workBudget; ops++ {
			work++
			switch next() % 6 {
			case 0:
				off := arg()
				inRange := off >= 0 && off < size
				want := inRange && !model[off]
				if got := b.Allocate(off); got != want {
					t.Fatalf("Allocate(%d) = %v, model says %v", off, got, want)
				}
				if want {
					add(off)
				}
			case 1:
				allocNext()
			case 2:
				off := arg()
				b.Release(off)
				if model[off] {
					remove(off)
				}
			case 3:
				off := arg()
				if got := b.Has(off); got != model[off] {
					t.Fatalf("Has(%d) = %v, model says %v", off, got, model[off])
				}
			case 4:
				for n := (next()%64 + 1) * 16; n > 0; n-- {
					allocNext()
				}
			case 5:
				lo := arg()
				hi := lo + (next()%64)*16
				for off := lo; off < hi; off++ {
					work++
					b.Release(off)
					if model[off] {
						remove(off)
					}
				}
			}
			if b.Used() != len(model) || b.Free() != size-len(model) {
				t.Fatalf("Used %d Free %d, model has %d of %d", b.Used(), b.Free(), len(model), size)
			}
			if ops%64 == 63 {
				check()
			}
		}
		check()
	})
}
