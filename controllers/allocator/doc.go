// Package allocator holds the in-memory allocators behind Service ClusterIPs,
// NodePorts and load balancer pool addresses: a hierarchical Bitmap of offsets, an
// IPRange that maps an interval of addresses (a service CIDR, or a pool entry given
// as a CIDR or a first-last range) onto a Bitmap, and a PortRange that maps a port
// interval onto one.
//
// The semantics of service CIDRs follow kube-apiserver's service allocators: the network address (and,
// for IPv4, the broadcast address) is never handed out, dynamic allocation starts at a
// random point so that a restarted controller does not immediately reuse values that
// were just released, and a low "static" band of each range is kept for explicitly
// requested values until the rest of the range is exhausted (KEP-3070 for ClusterIPs,
// KEP-3668 for NodePorts).
//
// What differs from kube is the cost model. kube keeps a math/big.Int and probes it
// bit by bit, so AllocateNext on a nearly full /12 walks up to a million bits. Here
// every level of the bitmap summarises the level below it one bit per 64-bit word, so
// finding a free offset touches a handful of words whatever the fill level, and
// Allocate, AllocateNext and Release never allocate heap memory.
//
// None of the types in this package are safe for concurrent use. The caller (the
// Service reconciler) serialises access with its own lock, which it needs anyway to
// keep an allocator consistent with the objects it reads.
package allocator
