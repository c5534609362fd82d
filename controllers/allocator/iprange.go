package allocator

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// maxHostBits caps a range at 2^20 addresses, as kube-apiserver's
// --service-cluster-ip-range validation does. At that size the bitmap is 128 KiB
// (2^20 bits = 16384 words); anything larger costs memory for addresses no cluster
// will ever use.
const maxHostBits = 20

// IPRange allocates addresses from one CIDR, IPv4 or IPv6. The network address is
// never handed out, and for IPv4 neither is the broadcast address; IPv6 has no
// broadcast, so its last address is usable, as in kube. Offset i of the underlying
// Bitmap is the address network+1+i.
//
// Because the range holds at most 2^20 addresses, every host bit lives in the last
// 32 bits of the address (IPv4: all of it; IPv6: the last four bytes), so mapping
// between addresses and offsets is 32-bit arithmetic on a copy of the network
// address, with no allocation.
//
// An IPRange is not safe for concurrent use; the caller must serialise access.
type IPRange struct {
	cidr netip.Prefix
	// netAddr is the network address as 16 bytes (IPv4 in the last four) so that
	// an offset can be turned back into an address by rewriting bytes 12..15.
	netAddr [16]byte
	// first is the low 32 bits of the first allocatable address, network+1.
	first uint32
	is6   bool
	bits  *Bitmap
}

// NewIPRange returns an empty allocator for cidr. cidr must be valid and masked
// (cidr.Masked() == cidr), must leave at least two allocatable addresses (so /31,
// /32, /127 and /128 are rejected), and must hold at most 2^20 addresses, which is
// the limit kube-apiserver enforces and words the same way. The static band is
// StaticBandIPs of the CIDR size, as in kube.
func NewIPRange(cidr netip.Prefix) (*IPRange, error) {
	if !cidr.IsValid() {
		return nil, fmt.Errorf("invalid service IP range %q", cidr.String())
	}
	if cidr.Masked() != cidr {
		return nil, fmt.Errorf("service IP range %s is not a network address; the masked form is %s", cidr, cidr.Masked())
	}
	addrBits := cidr.Addr().BitLen()
	hostBits := addrBits - cidr.Bits()
	if hostBits > maxHostBits {
		return nil, fmt.Errorf("specified --service-cluster-ip-range is too large; for %d-bit addresses, the mask must be >= %d", addrBits, addrBits-maxHostBits)
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
	r := &IPRange{
		cidr:    cidr,
		netAddr: cidr.Addr().As16(),
		is6:     is6,
		bits:    NewBitmap(usable, StaticBandIPs(total)),
	}
	r.first = binary.BigEndian.Uint32(r.netAddr[12:]) + 1
	return r, nil
}

// CIDR returns the prefix the range was built from.
func (r *IPRange) CIDR() netip.Prefix { return r.cidr }

// String returns the CIDR in its canonical text form, e.g. "10.96.0.0/12".
func (r *IPRange) String() string { return r.cidr.String() }

// IsIPv6 reports whether the range holds IPv6 addresses.
func (r *IPRange) IsIPv6() bool { return r.is6 }

// Size returns the number of allocatable addresses: the CIDR size minus the network
// address, and minus the broadcast address for IPv4.
func (r *IPRange) Size() int { return r.bits.Size() }

// Used returns the number of allocated addresses.
func (r *IPRange) Used() int { return r.bits.Used() }

// Free returns the number of addresses still available.
func (r *IPRange) Free() int { return r.bits.Free() }

// Contains reports whether ip is in the allocatable part of the range: inside the
// CIDR, of the same family, and neither the network nor (IPv4) the broadcast
// address. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) counts as its IPv4 address
// in an IPv4 range, matching kube's net.IP handling. Addresses with an IPv6 zone are
// never contained.
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
// (outside the CIDR, wrong family, network or broadcast address) and ErrAllocatedIP
// if ip is already reserved. Any address in the range may be requested, including
// those in the static band.
func (r *IPRange) Allocate(ip netip.Addr) error {
	off, ok := r.offset(ip)
	if !ok {
		return &ErrNotInRange{Value: ip.String(), ValidRange: r.cidr.String(), Kind: KindIP}
	}
	if !r.bits.Allocate(off) {
		return ErrAllocatedIP
	}
	return nil
}

// AllocateNext reserves and returns a free address, choosing it as Bitmap.AllocateNext
// does: random start, dynamic band first, static band last. It returns ErrFull when
// no address is left.
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
	if !r.is6 && ip.Is4In6() {
		ip = ip.Unmap()
	}
	// Prefix.Contains rejects the other family, zoned and invalid addresses.
	if !r.cidr.Contains(ip) {
		return 0, false
	}
	a := ip.As16()
	// Both values share the prefix bits above the last 32, so the difference is
	// the distance from the first allocatable address; the network address wraps
	// to 2^32-1 and fails the size check along with the broadcast address.
	off := binary.BigEndian.Uint32(a[12:]) - r.first
	if off >= uint32(r.bits.Size()) {
		return 0, false
	}
	return int(off), true
}

// addr maps a bitmap offset back to its address.
func (r *IPRange) addr(off int) netip.Addr {
	a := r.netAddr
	binary.BigEndian.PutUint32(a[12:], r.first+uint32(off))
	if !r.is6 {
		return netip.AddrFrom4([4]byte(a[12:]))
	}
	return netip.AddrFrom16(a)
}
