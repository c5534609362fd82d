package allocator

import (
	"errors"
	"slices"
	"testing"
)

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in         string
		base, size int
		str        string
	}{
		{"30000-32767", 30000, 2768, "30000-32767"},
		{" 30000-32767 ", 30000, 2768, "30000-32767"},
		{"30000", 30000, 1, "30000-30000"},
		{"30000+5", 30000, 6, "30000-30005"},
		{"30000+0", 30000, 1, "30000-30000"},
		{"1-65535", 1, 65535, "1-65535"},
		{"65535", 65535, 1, "65535-65535"},
		{"00080-00090", 80, 11, "80-90"},
	}
	for _, tc := range tests {
		r, err := ParsePortRange(tc.in)
		if err != nil {
			t.Errorf("ParsePortRange(%q): %v", tc.in, err)
			continue
		}
		if r.Base() != tc.base || r.Size() != tc.size || r.String() != tc.str {
			t.Errorf("ParsePortRange(%q) = base %d size %d %q, want %d %d %q", tc.in, r.Base(), r.Size(), r.String(), tc.base, tc.size, tc.str)
		}
	}
}

func TestParsePortRangeErrors(t *testing.T) {
	for _, in := range []string{
		"", " ", "abc", "30000-", "-32767", "30000-32767-1", "30000--5", "30000+-5", "+5",
		"30000-abc", "0-100", "0", "32767-30000", "30000-65536", "65535+1", "65536",
		"99999999999999999999", "1.5-2", "30000 - 32767", "30000-3276x", "-1",
	} {
		if r, err := ParsePortRange(in); err == nil {
			t.Errorf("ParsePortRange(%q) = %v, want error", in, r)
		}
	}
}

func TestNewPortRangeErrors(t *testing.T) {
	for _, tc := range []struct{ base, size int }{
		{0, 10}, {-1, 10}, {1, 0}, {1, -1}, {65535, 2}, {65536, 1}, {30000, 1 << 40},
	} {
		if _, err := NewPortRange(tc.base, tc.size); err == nil {
			t.Errorf("NewPortRange(%d, %d) succeeded", tc.base, tc.size)
		}
	}
}

func TestPortRange(t *testing.T) {
	r, err := ParsePortRange("30000-32767")
	if err != nil {
		t.Fatal(err)
	}
	if r.Size() != 2768 || r.Free() != 2768 || r.Used() != 0 || r.bits.static != 86 {
		t.Fatalf("size %d free %d used %d static %d", r.Size(), r.Free(), r.Used(), r.bits.static)
	}
	for _, p := range []int{29999, 32768, 0, -1, 80} {
		if r.Contains(p) || r.Has(p) {
			t.Fatalf("port %d reported in range", p)
		}
		r.Release(p)
	}
	for _, p := range []int{30000, 31000, 32767} {
		if !r.Contains(p) {
			t.Fatalf("Contains(%d) false", p)
		}
		if err := r.Allocate(p); err != nil {
			t.Fatalf("Allocate(%d): %v", p, err)
		}
		if err := r.Allocate(p); !errors.Is(err, ErrAllocatedPort) {
			t.Fatalf("second Allocate(%d) = %v", p, err)
		}
	}
	var got []int
	r.ForEach(func(p int) { got = append(got, p) })
	if !slices.Equal(got, []int{30000, 31000, 32767}) {
		t.Fatalf("ForEach = %v", got)
	}
	r.Release(31000)
	r.Release(31000)
	if r.Has(31000) || r.Used() != 2 || r.Free() != 2766 {
		t.Fatalf("after Release: has %v used %d free %d", r.Has(31000), r.Used(), r.Free())
	}
	// Exhaust: the 86-port band 30000-30085 comes last.
	seen := map[int]bool{30000: true, 32767: true}
	for i := 0; ; i++ {
		p, err := r.AllocateNext()
		if errors.Is(err, ErrFull) {
			if i != 2766 {
				t.Fatalf("full after %d allocations, want 2766", i)
			}
			break
		}
		if err != nil || seen[p] || !r.Contains(p) {
			t.Fatalf("AllocateNext = %d, %v (seen %v)", p, err, seen[p])
		}
		if inBand := p < 30086; inBand != (i >= 2768-86-1) {
			t.Fatalf("allocation %d returned port %d", i, p)
		}
		seen[p] = true
	}
}

func TestPortRangeNotInRange(t *testing.T) {
	r, _ := ParsePortRange("30000-32767")
	for _, tc := range []struct {
		port int
		want string
	}{
		{29999, "the provided port (29999) is not in the valid range. The range of valid ports is 30000-32767"},
		{32768, "the provided port (32768) is not in the valid range. The range of valid ports is 30000-32767"},
		{-5, "the provided port (-5) is not in the valid range. The range of valid ports is 30000-32767"},
	} {
		err := r.Allocate(tc.port)
		var nir *ErrNotInRange
		if !errors.As(err, &nir) || nir.Kind != KindPort {
			t.Fatalf("Allocate(%d) = %v, want *ErrNotInRange", tc.port, err)
		}
		if err.Error() != tc.want {
			t.Errorf("Allocate(%d) error\n got %q\nwant %q", tc.port, err, tc.want)
		}
	}
}

func TestSinglePortRange(t *testing.T) {
	r, err := NewPortRange(8080, 1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.AllocateNext()
	if err != nil || p != 8080 {
		t.Fatalf("AllocateNext = %d, %v", p, err)
	}
	if _, err := r.AllocateNext(); !errors.Is(err, ErrFull) {
		t.Fatalf("second AllocateNext = %v, want ErrFull", err)
	}
}
