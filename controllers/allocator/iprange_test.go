package allocator

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// exhaust allocates until ErrFull and returns what it got, failing on duplicates or
// on addresses the range should never hand out.
func exhaust(t *testing.T, r *IPRange) []netip.Addr {
	t.Helper()
	seen := map[netip.Addr]bool{}
	var got []netip.Addr
	for {
		ip, err := r.AllocateNext()
		if errors.Is(err, ErrFull) {
			return got
		}
		if err != nil {
			t.Fatalf("AllocateNext: %v", err)
		}
		if seen[ip] || !r.Contains(ip) || !r.Has(ip) {
			t.Fatalf("AllocateNext returned %s: seen %v contains %v has %v", ip, seen[ip], r.Contains(ip), r.Has(ip))
		}
		seen[ip] = true
		got = append(got, ip)
		if len(got) > r.Size() {
			t.Fatalf("handed out %d addresses from a range of %d", len(got), r.Size())
		}
	}
}

func TestIPRange(t *testing.T) {
	tests := []struct {
		cidr        string
		size        int
		static      int
		first, last string // lowest and highest allocatable address
		excluded    []string
		exhaust     bool
	}{
		{cidr: "10.0.0.0/30", size: 2, static: 2, first: "10.0.0.1", last: "10.0.0.2", excluded: []string{"10.0.0.0", "10.0.0.3"}, exhaust: true},
		{cidr: "10.0.0.0/29", size: 6, static: 6, first: "10.0.0.1", last: "10.0.0.6", excluded: []string{"10.0.0.0", "10.0.0.7"}, exhaust: true},
		{cidr: "192.168.1.0/24", size: 254, static: 16, first: "192.168.1.1", last: "192.168.1.254", excluded: []string{"192.168.1.0", "192.168.1.255", "192.168.2.0", "192.168.0.255"}, exhaust: true},
		{cidr: "10.96.0.0/12", size: 1<<20 - 2, static: 256, first: "10.96.0.1", last: "10.111.255.254", excluded: []string{"10.96.0.0", "10.111.255.255", "10.112.0.0"}},
		{cidr: "fd00::/126", size: 3, static: 3, first: "fd00::1", last: "fd00::3", excluded: []string{"fd00::", "fd00::4"}, exhaust: true},
		{cidr: "fd00:10:96::/120", size: 255, static: 16, first: "fd00:10:96::1", last: "fd00:10:96::ff", excluded: []string{"fd00:10:96::", "fd00:10:96::100"}, exhaust: true},
		{cidr: "fd00:10:96::/108", size: 1<<20 - 1, static: 256, first: "fd00:10:96::1", last: "fd00:10:96::f:ffff", excluded: []string{"fd00:10:96::", "fd00:10:96::10:0"}},
		{cidr: "ffff:ffff:ffff:ffff:ffff:ffff:fff0:0/108", size: 1<<20 - 1, static: 256, first: "ffff:ffff:ffff:ffff:ffff:ffff:fff0:1", last: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", excluded: []string{"ffff:ffff:ffff:ffff:ffff:ffff:fff0:0"}},
		{cidr: "255.255.255.0/24", size: 254, static: 16, first: "255.255.255.1", last: "255.255.255.254", excluded: []string{"255.255.255.255", "255.255.255.0"}, exhaust: true},
	}
	for _, tc := range tests {
		t.Run(tc.cidr, func(t *testing.T) {
			prefix := netip.MustParsePrefix(tc.cidr)
			r, err := NewIPRange(prefix)
			if err != nil {
				t.Fatal(err)
			}
			if r.Size() != tc.size || r.Free() != tc.size || r.Used() != 0 || r.bits.static != tc.static {
				t.Fatalf("size %d free %d used %d static %d, want size %d static %d", r.Size(), r.Free(), r.Used(), r.bits.static, tc.size, tc.static)
			}
			if r.CIDR() != prefix || r.String() != tc.cidr || r.IsIPv6() != prefix.Addr().Is6() {
				t.Fatalf("CIDR %v String %q IsIPv6 %v", r.CIDR(), r.String(), r.IsIPv6())
			}
			first, last := netip.MustParseAddr(tc.first), netip.MustParseAddr(tc.last)
			if r.addr(0) != first || r.addr(tc.size-1) != last {
				t.Fatalf("offsets 0 and %d map to %s and %s, want %s and %s", tc.size-1, r.addr(0), r.addr(tc.size-1), first, last)
			}
			for _, s := range tc.excluded {
				ip := netip.MustParseAddr(s)
				var nir *ErrNotInRange
				if r.Contains(ip) || !errors.As(r.Allocate(ip), &nir) || r.Has(ip) {
					t.Fatalf("%s should not be allocatable", s)
				}
				r.Release(ip) // no-op, must not panic
			}
			for _, ip := range []netip.Addr{first, last} {
				if err := r.Allocate(ip); err != nil {
					t.Fatalf("Allocate(%s): %v", ip, err)
				}
				if err := r.Allocate(ip); !errors.Is(err, ErrAllocatedIP) {
					t.Fatalf("second Allocate(%s) = %v, want ErrAllocatedIP", ip, err)
				}
			}
			var got []netip.Addr
			r.ForEach(func(ip netip.Addr) { got = append(got, ip) })
			if !slices.Equal(got, []netip.Addr{first, last}) {
				t.Fatalf("ForEach = %v", got)
			}
			r.Release(first)
			r.Release(first)
			if r.Has(first) || r.Used() != 1 || r.Free() != tc.size-1 {
				t.Fatalf("after Release: has %v used %d free %d", r.Has(first), r.Used(), r.Free())
			}
			if !tc.exhaust {
				return
			}
			all := exhaust(t, r)
			if len(all) != tc.size-1 || r.Free() != 0 {
				t.Fatalf("exhausted after %d more addresses (free %d), want %d", len(all), r.Free(), tc.size-1)
			}
		})
	}
}

func TestIPRangeSlash29Exhaust(t *testing.T) {
	r, err := NewIPRange(netip.MustParsePrefix("10.1.2.0/29"))
	if err != nil {
		t.Fatal(err)
	}
	got := exhaust(t, r)
	slices.SortFunc(got, netip.Addr.Compare)
	var want []netip.Addr
	for i := 1; i <= 6; i++ {
		want = append(want, netip.AddrFrom4([4]byte{10, 1, 2, byte(i)}))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("a /29 handed out %v, want %v", got, want)
	}
	if _, err := r.AllocateNext(); !errors.Is(err, ErrFull) {
		t.Fatalf("AllocateNext on a full /29 = %v, want ErrFull", err)
	}
}

func TestIPRangeStaticBandOrder(t *testing.T) {
	// A /24 has a 16-address band: .1 to .16. Dynamic allocation must use the
	// other 238 first.
	r, err := NewIPRange(netip.MustParsePrefix("10.0.0.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 254 {
		ip, err := r.AllocateNext()
		if err != nil {
			t.Fatal(err)
		}
		inBand := ip.As4()[3] <= 16
		if inBand != (i >= 238) {
			t.Fatalf("allocation %d returned %s", i, ip)
		}
	}
}

func TestNewIPRangeErrors(t *testing.T) {
	tests := []struct {
		prefix netip.Prefix
		want   string // exact message, or "" to only require an error
	}{
		{netip.MustParsePrefix("10.0.0.0/11"), "specified --service-cluster-ip-range is too large; for 32-bit addresses, the mask must be >= 12"},
		{netip.MustParsePrefix("0.0.0.0/0"), "specified --service-cluster-ip-range is too large; for 32-bit addresses, the mask must be >= 12"},
		{netip.MustParsePrefix("fd00::/107"), "specified --service-cluster-ip-range is too large; for 128-bit addresses, the mask must be >= 108"},
		{netip.MustParsePrefix("fd00::/64"), "specified --service-cluster-ip-range is too large; for 128-bit addresses, the mask must be >= 108"},
		{netip.MustParsePrefix("10.0.0.0/31"), ""},
		{netip.MustParsePrefix("10.0.0.0/32"), ""},
		{netip.MustParsePrefix("fd00::/127"), ""},
		{netip.MustParsePrefix("fd00::/128"), ""},
		{netip.MustParsePrefix("10.0.0.1/24"), ""}, // not masked
		{netip.MustParsePrefix("fd00::1/120"), ""},
		{netip.Prefix{}, ""},
	}
	for _, tc := range tests {
		r, err := NewIPRange(tc.prefix)
		if err == nil {
			t.Errorf("NewIPRange(%v) = %v, want error", tc.prefix, r)
			continue
		}
		if tc.want != "" && err.Error() != tc.want {
			t.Errorf("NewIPRange(%v) error %q, want %q", tc.prefix, err, tc.want)
		}
	}
}

func TestIPRangeNotInRange(t *testing.T) {
	v4, _ := NewIPRange(netip.MustParsePrefix("10.96.0.0/24"))
	v6, _ := NewIPRange(netip.MustParsePrefix("fd00::/120"))
	tests := []struct {
		r    *IPRange
		ip   netip.Addr
		want string
	}{
		{v4, netip.MustParseAddr("10.97.0.1"), "the provided IP (10.97.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/24"},
		{v4, netip.MustParseAddr("10.96.0.0"), "the provided IP (10.96.0.0) is not in the valid range. The range of valid IPs is 10.96.0.0/24"},
		{v4, netip.MustParseAddr("10.96.0.255"), "the provided IP (10.96.0.255) is not in the valid range. The range of valid IPs is 10.96.0.0/24"},
		{v4, netip.MustParseAddr("fd00::5"), "the provided IP (fd00::5) is not in the valid range. The range of valid IPs is 10.96.0.0/24"},
		{v6, netip.MustParseAddr("10.96.0.5"), "the provided IP (10.96.0.5) is not in the valid range. The range of valid IPs is fd00::/120"},
		{v6, netip.MustParseAddr("fd00::"), "the provided IP (fd00::) is not in the valid range. The range of valid IPs is fd00::/120"},
		{v6, netip.MustParseAddr("fd00::5%eth0"), "the provided IP (fd00::5%eth0) is not in the valid range. The range of valid IPs is fd00::/120"},
		{v6, netip.Addr{}, "the provided IP (invalid IP) is not in the valid range. The range of valid IPs is fd00::/120"},
	}
	for _, tc := range tests {
		err := tc.r.Allocate(tc.ip)
		var nir *ErrNotInRange
		if !errors.As(err, &nir) {
			t.Fatalf("Allocate(%v) = %v, want *ErrNotInRange", tc.ip, err)
		}
		if nir.Kind != KindIP || nir.Value != tc.ip.String() || nir.ValidRange != tc.r.String() {
			t.Errorf("fields %+v", *nir)
		}
		if err.Error() != tc.want {
			t.Errorf("Allocate(%v) error\n got %q\nwant %q", tc.ip, err, tc.want)
		}
		if tc.r.Contains(tc.ip) || tc.r.Has(tc.ip) {
			t.Errorf("%v reported as contained", tc.ip)
		}
	}
}

func TestIPRangeMappedIPv4(t *testing.T) {
	r, _ := NewIPRange(netip.MustParsePrefix("10.0.0.0/24"))
	mapped := netip.MustParseAddr("::ffff:10.0.0.7")
	if err := r.Allocate(mapped); err != nil {
		t.Fatalf("Allocate(%s): %v", mapped, err)
	}
	plain := netip.MustParseAddr("10.0.0.7")
	if !r.Has(plain) || !errors.Is(r.Allocate(plain), ErrAllocatedIP) {
		t.Fatal("the mapped and plain forms are not the same address")
	}
	r.ForEach(func(ip netip.Addr) {
		if ip != plain {
			t.Fatalf("ForEach returned %s, want %s", ip, plain)
		}
	})
}

// Pool entries (ParseIPRange), as the ippool provider uses them. Addresses here are
// documentation addresses: 192.0.2.0/24, 198.51.100.0/24 and 2001:db8::/32.

func TestParseIPRange(t *testing.T) {
	tests := []struct {
		text        string
		first, last string
		size        int
		total       string
		wantErr     string
	}{
		{text: "192.0.2.10-192.0.2.20", first: "192.0.2.10", last: "192.0.2.20", size: 11, total: "11"},
		{text: "192.0.2.10 - 192.0.2.10", first: "192.0.2.10", last: "192.0.2.10", size: 1, total: "1"},
		{text: "192.0.2.0/30", first: "192.0.2.0", last: "192.0.2.3", size: 4, total: "4"},
		{text: "192.0.2.7/32", first: "192.0.2.7", last: "192.0.2.7", size: 1, total: "1"},
		{text: "2001:db8::/126", first: "2001:db8::", last: "2001:db8::3", size: 4, total: "4"},
		{text: "2001:db8::ffff:ffff:ffff:fffe-2001:db8:0:1::1", first: "2001:db8::ffff:ffff:ffff:fffe", last: "2001:db8:0:1::1", size: 4, total: "4"},
		{text: "::ffff:192.0.2.1-::ffff:192.0.2.3", first: "192.0.2.1", last: "192.0.2.3", size: 3, total: "3"},
		{text: "192.0.0.0/11", first: "192.0.0.0", last: "192.15.255.255", size: MaxIPRangeSize, total: "2097152"},
		{text: "2001:db8::/64", first: "2001:db8::", last: "2001:db8::f:ffff", size: MaxIPRangeSize, total: "18446744073709551616"},
		{text: "::/0", first: "::", last: "::f:ffff", size: MaxIPRangeSize, total: "340282366920938463463374607431768211456"},
		{text: "192.0.2.20-192.0.2.10", wantErr: "the first address (192.0.2.20) is after the last (192.0.2.10)"},
		{text: "192.0.2.1/24", wantErr: "must be a network address; the masked form is 192.0.2.0/24"},
		{text: "192.0.2.1-2001:db8::1", wantErr: "must be a range of two addresses of one IP family"},
		{text: "192.0.2.1", wantErr: "must be a CIDR"},
		{text: "192.0.2.0/33", wantErr: "must be a CIDR"},
		{text: "192.0.2.1-x", wantErr: `"x" is not a valid IP address`},
		{text: "fe80::1%eth0-fe80::2", wantErr: "is not a valid IP address"},
		{text: "::ffff:192.0.2.0/120", wantErr: "IPv4-mapped"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			r, err := ParseIPRange(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseIPRange = %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.First().String() != tt.first || r.Last().String() != tt.last || r.Size() != tt.size || r.Total() != tt.total {
				t.Errorf("ParseIPRange = [%s, %s] size %d of %s, want [%s, %s] size %d of %s", r.First(), r.Last(), r.Size(), r.Total(), tt.first, tt.last, tt.size, tt.total)
			}
			if r.Truncated() != (tt.size == MaxIPRangeSize) {
				t.Errorf("Truncated() = %v", r.Truncated())
			}
			if r.String() != tt.text {
				t.Errorf("String() = %q", r.String())
			}
		})
	}
}

func TestPoolRangeHandsOutEveryAddressOnce(t *testing.T) {
	for _, text := range []string{"192.0.2.0/30", "192.0.2.254-192.0.3.1", "2001:db8::ffff:ffff:ffff:fffe-2001:db8:0:1::1"} {
		t.Run(text, func(t *testing.T) {
			r, err := ParseIPRange(text)
			if err != nil {
				t.Fatal(err)
			}
			var got []netip.Addr
			for {
				ip, err := r.AllocateNext()
				if err != nil {
					break
				}
				if !r.Contains(ip) || !r.Has(ip) {
					t.Fatalf("AllocateNext returned %s, which the range does not hold", ip)
				}
				got = append(got, ip)
			}
			slices.SortFunc(got, netip.Addr.Compare)
			if len(got) != r.Size() || got[0] != r.First() || got[len(got)-1] != r.Last() {
				t.Fatalf("handed out %v, want every address of [%s, %s]", got, r.First(), r.Last())
			}
			for i := 1; i < len(got); i++ {
				if got[i] != got[i-1].Next() {
					t.Fatalf("handed out %v: a gap or a duplicate", got)
				}
			}
			if r.Free() != 0 || r.Used() != r.Size() {
				t.Errorf("full range: used %d, free %d", r.Used(), r.Free())
			}
			r.Release(got[1])
			if ip, err := r.AllocateNext(); err != nil || ip != got[1] {
				t.Errorf("after releasing %s, AllocateNext = %s, %v", got[1], ip, err)
			}
		})
	}
}

func TestPoolRangeBounds(t *testing.T) {
	r, err := ParseIPRange("192.0.2.10-192.0.2.20")
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{
		"192.0.2.9": false, "192.0.2.10": true, "192.0.2.15": true, "192.0.2.20": true, "192.0.2.21": false,
		"::ffff:192.0.2.12": true, "2001:db8::c000:20c": false, "198.51.100.15": false,
	} {
		if got := r.Contains(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", ip, got, want)
		}
	}
	if r.Contains(netip.Addr{}) || r.Allocate(netip.Addr{}) == nil {
		t.Error("the zero address is never in a range")
	}
	ip := netip.MustParseAddr("192.0.2.12")
	if r.Allocate(ip) != nil || !errors.Is(r.Allocate(ip), ErrAllocatedIP) {
		t.Error("Allocate takes a free address once")
	}
	if err := r.Allocate(netip.MustParseAddr("192.0.2.21")); err == nil || err.Error() != "the provided IP (192.0.2.21) is not in the valid range. The range of valid IPs is 192.0.2.10-192.0.2.20" {
		t.Errorf("Allocate outside the range: %v", err)
	}
	r.Release(netip.MustParseAddr("198.51.100.1")) // foreign: a no-op
	if r.Used() != 1 {
		t.Errorf("Used() = %d, want 1", r.Used())
	}
	var held []netip.Addr
	r.ForEach(func(a netip.Addr) { held = append(held, a) })
	if !slices.Equal(held, []netip.Addr{ip}) {
		t.Errorf("ForEach = %v", held)
	}
}

func TestPoolRangeTruncatedUsesOnlyTheFirstAddresses(t *testing.T) {
	r, err := ParseIPRange("2001:db8::/64")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Contains(netip.MustParseAddr("2001:db8::f:ffff")) || r.Contains(netip.MustParseAddr("2001:db8::10:0")) {
		t.Error("a truncated range holds exactly its first 2^20 addresses")
	}
	if r.Allocate(netip.MustParseAddr("2001:db8::1:0:0")) == nil {
		t.Error("an address beyond the cap was allocated")
	}
}

func TestIPRangeOverlaps(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"192.0.2.0/30", "192.0.2.3-192.0.2.8", true},
		{"192.0.2.0/30", "192.0.2.4-192.0.2.8", false},
		{"192.0.2.0/24", "192.0.2.128/25", true},
		{"192.0.2.0/30", "::c000:200/126", false}, // the same low bits, another family
		{"2001:db8::/120", "2001:db8::ff-2001:db8::1ff", true},
		// Only the used part counts: the second range lies beyond the first's cap.
		{"2001:db8::/64", "2001:db8::100:0/120", false},
	}
	for _, tt := range tests {
		a, errA := ParseIPRange(tt.a)
		b, errB := ParseIPRange(tt.b)
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if got := a.Overlaps(b); got != tt.want || b.Overlaps(a) != tt.want {
			t.Errorf("%s overlaps %s = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
