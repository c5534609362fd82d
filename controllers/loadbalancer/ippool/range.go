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
	"encoding/binary"
	"fmt"
	"math/big"
	"math/bits"
	"net/netip"
	"strings"

	"github.com/svcplane/svcplane/controllers/allocator"
)

// maxRangeBits caps the addresses used from one pool entry at 2^20, the limit
// allocator.IPRange puts on a service CIDR: the bitmap is then 128 KiB (2^20 bits),
// while an IPv6 /64 would need 2^61 bytes. Larger entries use their first 2^20
// addresses.
const maxRangeBits = 20

// MaxRangeSize is the number of addresses a pool entry can hand out at most.
const MaxRangeSize = 1 << maxRangeBits

// Range is one entry of a pool: an interval of addresses of one family, every one of
// which can be handed out (a CIDR's network and broadcast addresses included: a load
// balancer address is not a subnet). The addresses live in an allocator.Bitmap,
// offset i being first+i; only the first MaxRangeSize addresses of a larger entry are
// used.
//
// A Range is not safe for concurrent use; the Provider serialises access.
type Range struct {
	// text is the entry as written in the pool's spec.
	text string
	// first and last bound the usable part, inclusive.
	first, last netip.Addr
	// total is the number of addresses the entry names, which is more than the
	// bitmap's size when the entry was cut to MaxRangeSize.
	total *big.Int
	bits  *allocator.Bitmap
}

// ParseRange parses a pool entry: a masked CIDR ("192.0.2.0/24", "2001:db8::/120")
// or an inclusive range of two addresses of one family, first not after last
// ("192.0.2.10-192.0.2.20"). IPv4-mapped IPv6 addresses count as IPv4; zones are
// rejected.
func ParseRange(text string) (*Range, error) {
	first, last, err := parseBounds(text)
	if err != nil {
		return nil, err
	}
	total := new(big.Int).Sub(toU128(last).big(), toU128(first).big())
	total.Add(total, big.NewInt(1))
	size := MaxRangeSize
	if total.IsInt64() && total.Int64() < MaxRangeSize {
		size = int(total.Int64())
	}
	r := &Range{text: text, first: first, total: total, bits: allocator.NewBitmap(size, 0)}
	r.last = r.addr(size - 1)
	return r, nil
}

func parseBounds(text string) (first, last netip.Addr, err error) {
	if strings.Contains(text, "/") {
		p, err := netip.ParsePrefix(text)
		if err != nil {
			return first, last, fmt.Errorf("must be a CIDR (e.g. 192.0.2.0/24 or 2001:db8::/120) or a range of two addresses (e.g. 192.0.2.10-192.0.2.20)")
		}
		if p.Addr().Is4In6() {
			return first, last, fmt.Errorf("must not be an IPv4-mapped IPv6 CIDR; write it as IPv4")
		}
		if p.Masked() != p {
			return first, last, fmt.Errorf("must be a network address; the masked form is %s", p.Masked())
		}
		first = p.Addr()
		hostBits := first.BitLen() - p.Bits()
		lastU := toU128(first)
		if hostBits >= 64 {
			lastU.hi |= ^uint64(0) >> (128 - hostBits)
			lastU.lo = ^uint64(0)
		} else if hostBits > 0 {
			lastU.lo |= ^uint64(0) >> (64 - hostBits)
		}
		return first, lastU.addr(first.Is4()), nil
	}
	lo, hi, ok := strings.Cut(text, "-")
	if !ok {
		return first, last, fmt.Errorf("must be a CIDR (e.g. 192.0.2.0/24 or 2001:db8::/120) or a range of two addresses (e.g. 192.0.2.10-192.0.2.20)")
	}
	if first, err = parseAddr(strings.TrimSpace(lo)); err != nil {
		return first, last, err
	}
	if last, err = parseAddr(strings.TrimSpace(hi)); err != nil {
		return first, last, err
	}
	if first.Is4() != last.Is4() {
		return first, last, fmt.Errorf("must be a range of two addresses of one IP family")
	}
	if first.Compare(last) > 0 {
		return first, last, fmt.Errorf("the first address (%s) is after the last (%s)", first, last)
	}
	return first, last, nil
}

func parseAddr(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q is not a valid IP address", s)
	}
	return ip.Unmap(), nil
}

// String returns the entry as written.
func (r *Range) String() string { return r.text }

// Is6 reports whether the range holds IPv6 addresses.
func (r *Range) Is6() bool { return !r.first.Is4() }

// Size returns the number of usable addresses.
func (r *Range) Size() int { return r.bits.Size() }

// Used returns the number of held addresses.
func (r *Range) Used() int { return r.bits.Used() }

// Free returns the number of usable addresses nobody holds.
func (r *Range) Free() int { return r.bits.Free() }

// Truncated reports whether the entry names more than MaxRangeSize addresses, of
// which only the first MaxRangeSize are used.
func (r *Range) Truncated() bool { return !r.total.IsInt64() || r.total.Int64() != int64(r.Size()) }

// Total returns the number of addresses the entry names, in decimal.
func (r *Range) Total() string { return r.total.String() }

// Contains reports whether ip is in the usable part of the range.
func (r *Range) Contains(ip netip.Addr) bool {
	_, ok := r.offset(ip)
	return ok
}

// Overlaps reports whether the usable parts of r and o share an address.
func (r *Range) Overlaps(o *Range) bool {
	return r.first.Is4() == o.first.Is4() && r.first.Compare(o.last) <= 0 && o.first.Compare(r.last) <= 0
}

// Has reports whether ip is held.
func (r *Range) Has(ip netip.Addr) bool {
	off, ok := r.offset(ip)
	return ok && r.bits.Has(off)
}

// Allocate marks ip held. It reports false when ip is outside the usable part or
// already held.
func (r *Range) Allocate(ip netip.Addr) bool {
	off, ok := r.offset(ip)
	return ok && r.bits.Allocate(off)
}

// AllocateNext marks a free address held and returns it, starting the search at a
// random point, as ClusterIPs are chosen. It reports false when the range is full.
func (r *Range) AllocateNext() (netip.Addr, bool) {
	off, ok := r.bits.AllocateNext()
	if !ok {
		return netip.Addr{}, false
	}
	return r.addr(off), true
}

// Release frees ip; releasing a free or foreign address does nothing.
func (r *Range) Release(ip netip.Addr) {
	if off, ok := r.offset(ip); ok {
		r.bits.Release(off)
	}
}

// ForEach calls fn for every held address, in ascending order.
func (r *Range) ForEach(fn func(netip.Addr)) {
	r.bits.ForEach(func(off int) { fn(r.addr(off)) })
}

// offset maps ip to its bitmap offset, reporting false outside the usable part.
func (r *Range) offset(ip netip.Addr) (int, bool) {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.Zone() != "" || ip.Is4() != r.first.Is4() {
		return 0, false
	}
	d := toU128(ip).sub(toU128(r.first))
	if d.hi != 0 || d.lo >= uint64(r.bits.Size()) {
		// Below first wraps around to a huge difference, so one test covers both
		// ends.
		return 0, false
	}
	return int(d.lo), true
}

// addr maps a bitmap offset back to its address.
func (r *Range) addr(off int) netip.Addr {
	return toU128(r.first).add(uint64(off)).addr(r.first.Is4())
}

// u128 is an address as a 128-bit unsigned number; IPv4 addresses use the low 32
// bits.
type u128 struct{ hi, lo uint64 }

func toU128(ip netip.Addr) u128 {
	if ip.Is4() {
		a := ip.As4()
		return u128{lo: uint64(binary.BigEndian.Uint32(a[:]))}
	}
	a := ip.As16()
	return u128{hi: binary.BigEndian.Uint64(a[:8]), lo: binary.BigEndian.Uint64(a[8:])}
}

func (u u128) addr(is4 bool) netip.Addr {
	if is4 {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], uint32(u.lo))
		return netip.AddrFrom4(a)
	}
	var a [16]byte
	binary.BigEndian.PutUint64(a[:8], u.hi)
	binary.BigEndian.PutUint64(a[8:], u.lo)
	return netip.AddrFrom16(a)
}

func (u u128) add(n uint64) u128 {
	lo, carry := bits.Add64(u.lo, n, 0)
	return u128{hi: u.hi + carry, lo: lo}
}

func (u u128) sub(o u128) u128 {
	lo, borrow := bits.Sub64(u.lo, o.lo, 0)
	hi, _ := bits.Sub64(u.hi, o.hi, borrow)
	return u128{hi: hi, lo: lo}
}

func (u u128) big() *big.Int {
	b := new(big.Int).SetUint64(u.hi)
	b.Lsh(b, 64)
	return b.Or(b, new(big.Int).SetUint64(u.lo))
}
