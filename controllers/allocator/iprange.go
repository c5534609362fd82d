package allocator

import (
	"encoding/binary"
	"fmt"
	"math/big"
	"math/bits"
	"net/netip"
	"strings"
)

// MaxIPRangeBits caps a range at 2^MaxIPRangeBits addresses, as kube-apiserver's
// --service-cluster-ip-range validation does. At that size the bitmap is 128 KiB
// (2^20 bits = 16384 words); anything larger costs memory for addresses no cluster
// will ever use.
const MaxIPRangeBits = 20

// MaxIPRangeSize is the number of addresses a range holds at most.
const MaxIPRangeSize = 1 << MaxIPRangeBits

// IPRange allocates addresses from an interval of one IP family, kept in a Bitmap:
// offset i is the address first+i. It comes in two kinds:
//
//   - NewIPRange: a service CIDR, as kube allocates ClusterIPs from it. The network
//     address is never handed out, and for IPv4 neither is the broadcast address;
//     IPv6 has no broadcast, so its last address is usable. The static band is
//     StaticBandIPs of the CIDR size. More than MaxIPRangeSize addresses is an error.
//   - ParseIPRange: a load balancer pool entry, a CIDR or a first-last range, every
//     address of which can be handed out (a load balancer address is not a subnet).
//     There is no static band, and a larger entry uses its first MaxIPRangeSize
//     addresses (Truncated).
//
// Addresses are netip.Addr throughout. An offset is the distance from first,
// taken over the two 64-bit halves of the addresses' 16-byte forms with
// math/bits' borrow and carry; since a range holds at most 2^20 addresses, the
// low half holds every offset. Neither direction allocates.
//
// An IPRange is not safe for concurrent use; the caller must serialise access.
type IPRange struct {
	// first and last bound the usable addresses, inclusive.
	first, last netip.Addr
	// firstHi and firstLo are first as two 64-bit halves of its 16-byte form.
	firstHi, firstLo uint64
	is6              bool
	// cidr is the service CIDR of a NewIPRange range, text the entry of a
	// ParseIPRange one, as written.
	cidr netip.Prefix
	text string
	// total is the number of addresses a ParseIPRange entry names, more than
	// Size when it was cut to MaxIPRangeSize; nil for a NewIPRange range.
	total *big.Int
	bits  *Bitmap
}

// NewIPRange returns an empty allocator for the service CIDR cidr. cidr must be
// valid and masked (cidr.Masked() == cidr), must leave at least two allocatable
// addresses (so /31, /32, /127 and /128 are rejected), and must hold at most 2^20
// addresses, which is the limit kube-apiserver enforces and words the same way. The
// static band is StaticBandIPs of the CIDR size, as in kube.
func NewIPRange(cidr netip.Prefix) (*IPRange, error) {
	if !cidr.IsValid() {
		return nil, fmt.Errorf("invalid service IP range %q", cidr.String())
	}
	if cidr.Masked() != cidr {
		return nil, fmt.Errorf("service IP range %s is not a network address; the masked form is %s", cidr, cidr.Masked())
	}
	addrBits := cidr.Addr().BitLen()
	hostBits := addrBits - cidr.Bits()
	if hostBits > MaxIPRangeBits {
		return nil, fmt.Errorf("specified --service-cluster-ip-range is too large; for %d-bit addresses, the mask must be >= %d", addrBits, addrBits-MaxIPRangeBits)
	}
	total := 1 << hostBits
	usable := total - 1 // the network address
	is6 := cidr.Addr().Is6()
	if !is6 {
		usable-- // the broadcast address
	}
	if usable < 2 {
		return nil, fmt.Errorf("service IP range %s is too small: it has %d allocatable addresses, at least 2 are required", cidr, max(usable, 0))
	}
	return newIPRange(cidr.Addr().Next(), usable, StaticBandIPs(total), func(r *IPRange) { r.cidr = cidr }), nil
}

// ParseIPRange parses a load balancer pool entry: a masked CIDR ("192.0.2.0/24",
// "2001:db8::/120") or an inclusive range of two addresses of one family, first not
// after last ("192.0.2.10-192.0.2.20"). Every address of it is usable, up to the
// first MaxIPRangeSize. IPv4-mapped IPv6 addresses count as IPv4; zones are
// rejected.
func ParseIPRange(text string) (*IPRange, error) {
	first, last, err := parseBounds(text)
	if err != nil {
		return nil, err
	}
	f, l := first.As16(), last.As16()
	total := new(big.Int).Sub(new(big.Int).SetBytes(l[:]), new(big.Int).SetBytes(f[:]))
	total.Add(total, big.NewInt(1))
	size := MaxIPRangeSize
	if total.IsInt64() && total.Int64() < MaxIPRangeSize {
		size = int(total.Int64())
	}
	return newIPRange(first, size, 0, func(r *IPRange) { r.text, r.total = text, total }), nil
}

// newIPRange returns the range of size addresses from first, with a static band of
// static addresses, after set filled in how it was written.
func newIPRange(first netip.Addr, size, static int, set func(*IPRange)) *IPRange {
	a := first.As16()
	r := &IPRange{
		first:   first,
		firstHi: binary.BigEndian.Uint64(a[:8]),
		firstLo: binary.BigEndian.Uint64(a[8:]),
		is6:     first.Is6(),
		bits:    NewBitmap(size, static),
	}
	set(r)
	r.last = r.addr(size - 1)
	return r
}

// parseBounds returns the first and last address of a pool entry.
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
		return p.Addr(), lastOf(p), nil
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

// lastOf returns the last address of the masked prefix p: its address with every
// host bit set.
func lastOf(p netip.Prefix) netip.Addr {
	a := p.Addr().As16()
	offset := 128 - p.Addr().BitLen() // IPv4 lives in the last four bytes
	for i := offset + p.Bits(); i < 128; i++ {
		a[i/8] |= 0x80 >> (i % 8)
	}
	if p.Addr().Is4() {
		return netip.AddrFrom4([4]byte(a[12:]))
	}
	return netip.AddrFrom16(a)
}

func parseAddr(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q is not a valid IP address", s)
	}
	return ip.Unmap(), nil
}

// CIDR returns the service CIDR a NewIPRange range was built from; the zero Prefix
// for a ParseIPRange one.
func (r *IPRange) CIDR() netip.Prefix { return r.cidr }

// String returns the range as configured: the CIDR in its canonical text form
// ("10.96.0.0/12"), or the pool entry as written.
func (r *IPRange) String() string {
	if r.cidr.IsValid() {
		return r.cidr.String()
	}
	return r.text
}

// IsIPv6 reports whether the range holds IPv6 addresses.
func (r *IPRange) IsIPv6() bool { return r.is6 }

// First and Last return the first and last usable address.
func (r *IPRange) First() netip.Addr { return r.first }

// Last returns the last usable address; see First.
func (r *IPRange) Last() netip.Addr { return r.last }

// Size returns the number of allocatable addresses: for a service CIDR its size
// minus the network address, and minus the broadcast address for IPv4.
func (r *IPRange) Size() int { return r.bits.Size() }

// Used returns the number of allocated addresses.
func (r *IPRange) Used() int { return r.bits.Used() }

// Free returns the number of addresses still available.
func (r *IPRange) Free() int { return r.bits.Free() }

// Truncated reports whether a pool entry names more than MaxIPRangeSize addresses,
// of which only the first MaxIPRangeSize are used.
func (r *IPRange) Truncated() bool {
	return r.total != nil && (!r.total.IsInt64() || r.total.Int64() != int64(r.Size()))
}

// Total returns the number of addresses the range names, in decimal: more than
// Size for a truncated pool entry.
func (r *IPRange) Total() string {
	if r.total == nil {
		return fmt.Sprint(r.Size())
	}
	return r.total.String()
}

// Overlaps reports whether the usable parts of r and o share an address.
func (r *IPRange) Overlaps(o *IPRange) bool {
	return r.is6 == o.is6 && r.first.Compare(o.last) <= 0 && o.first.Compare(r.last) <= 0
}

// Contains reports whether ip is in the allocatable part of the range: between
// First and Last and of the same family (so, for a service CIDR, neither the
// network nor the IPv4 broadcast address). An IPv4-mapped IPv6 address
// (::ffff:a.b.c.d) counts as its IPv4 address in an IPv4 range, matching kube's
// net.IP handling. Addresses with an IPv6 zone are never contained.
func (r *IPRange) Contains(ip netip.Addr) bool {
	_, ok := r.offset(ip)
	return ok
}

// Has reports whether ip is allocated. Addresses outside the allocatable range are
// never allocated.
func (r *IPRange) Has(ip netip.Addr) bool {
	off, ok := r.offset(ip)
	return ok && r.bits.Has(off)
}

// Allocate reserves ip. It returns an *ErrNotInRange if Contains(ip) is false
// (outside the range, wrong family, network or broadcast address) and
// ErrAllocatedIP if ip is already reserved. Any address in the range may be
// requested, including those in the static band.
func (r *IPRange) Allocate(ip netip.Addr) error {
	off, ok := r.offset(ip)
	if !ok {
		return &ErrNotInRange{Value: ip.String(), ValidRange: r.String(), Kind: KindIP}
	}
	if !r.bits.Allocate(off) {
		return ErrAllocatedIP
	}
	return nil
}

// AllocateNext reserves and returns a free address, choosing it as
// Bitmap.AllocateNext does: random start, dynamic band first, static band last. It
// returns ErrFull when no address is left.
func (r *IPRange) AllocateNext() (netip.Addr, error) {
	off, ok := r.bits.AllocateNext()
	if !ok {
		return netip.Addr{}, ErrFull
	}
	return r.addr(off), nil
}

// Release frees ip. Releasing an address that is not allocated or not in the range
// is a no-op.
func (r *IPRange) Release(ip netip.Addr) {
	if off, ok := r.offset(ip); ok {
		r.bits.Release(off)
	}
}

// ForEach calls fn for every allocated address in ascending order. fn must not
// modify the range.
func (r *IPRange) ForEach(fn func(netip.Addr)) {
	r.bits.ForEach(func(off int) { fn(r.addr(off)) })
}

// offset maps ip to its bitmap offset, reporting false if ip is not allocatable.
func (r *IPRange) offset(ip netip.Addr) (int, bool) {
	if r.is6 {
		if !ip.Is6() || ip.Zone() != "" {
			return 0, false
		}
	} else if ip = ip.Unmap(); !ip.Is4() {
		return 0, false
	}
	// ip - first over the two 64-bit halves of their 16-byte forms: the high
	// halves must match once the low halves' borrow is taken, and the low
	// difference must be below the size. An address below first wraps around to
	// a huge difference, so one test covers both ends.
	a := ip.As16()
	lo, borrow := bits.Sub64(binary.BigEndian.Uint64(a[8:]), r.firstLo, 0)
	if binary.BigEndian.Uint64(a[:8])-r.firstHi != borrow || lo >= uint64(r.bits.Size()) {
		return 0, false
	}
	return int(lo), true
}

// addr maps a bitmap offset back to its address.
func (r *IPRange) addr(off int) netip.Addr {
	lo, carry := bits.Add64(r.firstLo, uint64(off), 0)
	var a [16]byte
	binary.BigEndian.PutUint64(a[:8], r.firstHi+carry)
	binary.BigEndian.PutUint64(a[8:], lo)
	if !r.is6 {
		return netip.AddrFrom4([4]byte(a[12:]))
	}
	return netip.AddrFrom16(a)
}
