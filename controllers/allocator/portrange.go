package allocator

import (
	"fmt"
	"strconv"
	"strings"
)

// maxPort is the highest TCP/UDP port number.
const maxPort = 65535

// PortRange allocates ports in [base, base+size). Offset i of the underlying Bitmap
// is port base+i, so the static band is the lowest StaticBandPorts(size) ports.
//
// A PortRange is not safe for concurrent use; the caller must serialise access.
type PortRange struct {
	base int
	bits *Bitmap
}

// ParsePortRange parses a port range in any of the notations kube's
// --service-node-port-range accepts: "30000-32767" (first and last port,
// inclusive), "30000+2767" (first port and how many follow it, so also
// 30000-32767), or a single port "30000" (a range of one). Surrounding spaces are
// ignored. It fails on anything else, on a first port below 1, on a last port above
// 65535, and on a last port below the first.
func ParsePortRange(s string) (*PortRange, error) {
	v := strings.TrimSpace(s)
	first, last := 0, 0
	var err error
	if i := strings.IndexAny(v, "-+"); i < 0 {
		first, err = parsePort(v)
		last = first
	} else {
		var second int
		if first, err = parsePort(v[:i]); err == nil {
			second, err = parsePort(v[i+1:])
		}
		if v[i] == '+' {
			last = first + second
		} else {
			last = second
		}
	}
	if err != nil {
		return nil, fmt.Errorf("invalid port range %q: want FIRST-LAST, FIRST+COUNT or PORT", s)
	}
	if last < first {
		return nil, fmt.Errorf("invalid port range %q: last port %d is below first port %d", s, last, first)
	}
	r, err := NewPortRange(first, last-first+1)
	if err != nil {
		return nil, fmt.Errorf("invalid port range %q: %w", s, err)
	}
	return r, nil
}

// parsePort accepts only plain decimal digits: no sign, no spaces, at most five
// digits, which keeps "+5" and "-5" out and cannot overflow. Range checks are left
// to NewPortRange so that they are worded once.
func parsePort(s string) (int, error) {
	if len(s) == 0 || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.Atoi(s)
}

// NewPortRange returns an empty allocator for ports base through base+size-1. base
// must be at least 1, size at least 1, and the last port at most 65535.
func NewPortRange(base, size int) (*PortRange, error) {
	switch {
	case base < 1 || base > maxPort:
		return nil, fmt.Errorf("first port %d is outside 1-%d", base, maxPort)
	case size < 1:
		return nil, fmt.Errorf("port range size %d is not positive", size)
	case size > maxPort-base+1:
		return nil, fmt.Errorf("last port %d is above %d", base+size-1, maxPort)
	}
	return &PortRange{base: base, bits: NewBitmap(size, StaticBandPorts(size))}, nil
}

// Base returns the first port of the range.
func (r *PortRange) Base() int { return r.base }

// Size returns the number of ports in the range.
func (r *PortRange) Size() int { return r.bits.Size() }

// Used returns the number of allocated ports.
func (r *PortRange) Used() int { return r.bits.Used() }

// Free returns the number of ports still available.
func (r *PortRange) Free() int { return r.bits.Free() }

// String returns the range as "first-last", e.g. "30000-32767", the form kube
// prints in its errors.
func (r *PortRange) String() string {
	return strconv.Itoa(r.base) + "-" + strconv.Itoa(r.base+r.Size()-1)
}

// Contains reports whether port is in the range.
func (r *PortRange) Contains(port int) bool {
	return port >= r.base && port-r.base < r.Size()
}

// Has reports whether port is allocated. Ports outside the range never are.
func (r *PortRange) Has(port int) bool {
	return r.Contains(port) && r.bits.Has(port-r.base)
}

// Allocate reserves port. It returns an *ErrNotInRange for a port outside the range
// and ErrAllocatedPort if the port is already reserved.
func (r *PortRange) Allocate(port int) error {
	if !r.Contains(port) {
		return &ErrNotInRange{Value: strconv.Itoa(port), ValidRange: r.String(), Kind: KindPort}
	}
	if !r.bits.Allocate(port - r.base) {
		return ErrAllocatedPort
	}
	return nil
}

// AllocateNext reserves and returns a free port, choosing it as Bitmap.AllocateNext
// does: random start, dynamic band first, static band last. It returns ErrFull when
// no port is left.
func (r *PortRange) AllocateNext() (int, error) {
	off, ok := r.bits.AllocateNext()
	if !ok {
		return 0, ErrFull
	}
	return r.base + off, nil
}

// Release frees port. Releasing a port that is not allocated or not in the range is
// a no-op.
func (r *PortRange) Release(port int) {
	if r.Contains(port) {
		r.bits.Release(port - r.base)
	}
}

// ForEach calls fn for every allocated port in ascending order. fn must not modify
// the range.
func (r *PortRange) ForEach(fn func(port int)) {
	r.bits.ForEach(func(off int) { fn(r.base + off) })
}
