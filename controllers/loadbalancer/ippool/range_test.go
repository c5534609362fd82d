/*
Copyright 2026 The svcplane Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package ippool

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// Addresses here are documentation addresses: 192.0.2.0/24, 198.51.100.0/24 and
// 2001:db8::/32.

func TestParseRange(t *testing.T) {
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
		{text: "192.0.0.0/11", first: "192.0.0.0", last: "192.15.255.255", size: MaxRangeSize, total: "2097152"},
		{text: "2001:db8::/64", first: "2001:db8::", last: "2001:db8::f:ffff", size: MaxRangeSize, total: "18446744073709551616"},
		{text: "::/0", first: "::", last: "::f:ffff", size: MaxRangeSize, total: "340282366920938463463374607431768211456"},
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
			r, err := ParseRange(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRange = %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.first.String() != tt.first || r.last.String() != tt.last || r.Size() != tt.size || r.Total() != tt.total {
				t.Errorf("ParseRange = [%s, %s] size %d of %s, want [%s, %s] size %d of %s", r.first, r.last, r.Size(), r.Total(), tt.first, tt.last, tt.size, tt.total)
			}
			if r.Truncated() != (tt.size == MaxRangeSize) {
				t.Errorf("Truncated() = %v", r.Truncated())
			}
			if r.String() != tt.text {
				t.Errorf("String() = %q", r.String())
			}
		})
	}
}

func TestRangeHandsOutEveryAddressOnce(t *testing.T) {
	for _, text := range []string{"192.0.2.0/30", "192.0.2.254-192.0.3.1", "2001:db8::ffff:ffff:ffff:fffe-2001:db8:0:1::1"} {
		t.Run(text, func(t *testing.T) {
			r, err := ParseRange(text)
			if err != nil {
				t.Fatal(err)
			}
			var got []netip.Addr
			for {
				ip, ok := r.AllocateNext()
				if !ok {
					break
				}
				if !r.Contains(ip) || !r.Has(ip) {
					t.Fatalf("AllocateNext returned %s, which the range does not hold", ip)
				}
				got = append(got, ip)
			}
			slices.SortFunc(got, netip.Addr.Compare)
			if len(got) != r.Size() || got[0] != r.first || got[len(got)-1] != r.last {
				t.Fatalf("handed out %v, want every address of [%s, %s]", got, r.first, r.last)
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
			if ip, ok := r.AllocateNext(); !ok || ip != got[1] {
				t.Errorf("after releasing %s, AllocateNext = %s, %v", got[1], ip, ok)
			}
		})
	}
}

func TestRangeBounds(t *testing.T) {
	r, err := ParseRange("192.0.2.10-192.0.2.20")
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
	if r.Contains(netip.Addr{}) || r.Allocate(netip.Addr{}) {
		t.Error("the zero address is never in a range")
	}
	ip := netip.MustParseAddr("192.0.2.12")
	if !r.Allocate(ip) || r.Allocate(ip) {
		t.Error("Allocate takes a free address once")
	}
	if r.Allocate(netip.MustParseAddr("192.0.2.21")) {
		t.Error("Allocate outside the range succeeded")
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

func TestRangeTruncatedUsesOnlyTheFirstAddresses(t *testing.T) {
	r, err := ParseRange("2001:db8::/64")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Contains(netip.MustParseAddr("2001:db8::f:ffff")) || r.Contains(netip.MustParseAddr("2001:db8::10:0")) {
		t.Error("a truncated range holds exactly its first 2^20 addresses")
	}
	if r.Allocate(netip.MustParseAddr("2001:db8::1:0:0")) {
		t.Error("an address beyond the cap was allocated")
	}
}

func TestRangeOverlaps(t *testing.T) {
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
		a, errA := ParseRange(tt.a)
		b, errB := ParseRange(tt.b)
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if got := a.Overlaps(b); got != tt.want || b.Overlaps(a) != tt.want {
			t.Errorf("%s overlaps %s = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
