package allocator

import (
	"errors"
	"fmt"
)

// ErrFull is returned by AllocateNext when every value in the range is taken.
// The text matches kube-apiserver's so that status messages read the same.
var ErrFull = errors.New("range is full")

// ErrAllocatedIP is returned by IPRange.Allocate when the requested address is already
// taken.
var ErrAllocatedIP = errors.New("provided IP is already allocated")

// ErrAllocatedPort is returned by PortRange.Allocate when the requested port is
// already taken.
var ErrAllocatedPort = errors.New("provided port is already allocated")

// Kinds of value an ErrNotInRange can describe.
const (
	// KindIP marks an ErrNotInRange produced by an IPRange.
	KindIP = "IP"
	// KindPort marks an ErrNotInRange produced by a PortRange.
	KindPort = "port"
)

// ErrNotInRange reports a requested value that the range can never hand out: outside
// it, of the wrong address family, or one of the reserved network/broadcast addresses.
// One type serves both allocators so a caller needs a single errors.As target.
type ErrNotInRange struct {
	// Value is the rejected value as text (an address or a decimal port).
	Value string
	// ValidRange is the range as the user configured it, e.g. "10.96.0.0/12" or
	// "30000-32767".
	ValidRange string
	// Kind is KindIP or KindPort and selects the wording of Error.
	Kind string
}

// Error words the message as kube-apiserver does for the same condition.
func (e *ErrNotInRange) Error() string {
	if e.Kind == KindPort {
		return fmt.Sprintf("the provided port (%s) is not in the valid range. The range of valid ports is %s", e.Value, e.ValidRange)
	}
	return fmt.Sprintf("the provided IP (%s) is not in the valid range. The range of valid IPs is %s", e.Value, e.ValidRange)
}
