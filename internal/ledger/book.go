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

package ledger

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers/allocator"
)

// Reasons used in the Allocated condition and in events. The repair reasons are
// kube-apiserver's own repair-loop event reasons.
const (
	ReasonAllocated                 = "Allocated"
	ReasonInvalidIPFamilies         = "InvalidIPFamilies"
	ReasonClusterIPAlreadyAllocated = "ClusterIPAlreadyAllocated"
	ReasonClusterIPOutOfRange       = "ClusterIPOutOfRange"
	ReasonClusterIPRangeFull        = "ClusterIPRangeFull"
	ReasonNodePortAlreadyAllocated  = "PortAlreadyAllocated"
	ReasonNodePortOutOfRange        = "PortOutOfRange"
	ReasonNodePortRangeFull         = "NodePortRangeFull"
	ReasonClusterIPNotAllocated     = "ClusterIPNotAllocated"
	ReasonNodePortNotAllocated      = "PortNotAllocated"
)

// Error is why a Service could not get what it asked for. Its message is worded as
// kube-apiserver words the same rejection.
type Error struct {
	// Reason is a CamelCase reason for a condition or an event.
	Reason string
	// Message says what failed, naming the field and value.
	Message string
	// Permanent is true when retrying cannot help until the spec or the manager's
	// configuration changes (an address outside the range, a family not configured);
	// false when the conflict can clear by itself (a value another Service holds, a
	// full range).
	Permanent bool
}

func (e *Error) Error() string { return e.Message }

// Allocation is what a Service holds after a successful Ensure.
type Allocation struct {
	// ClusterIPs are the addresses, primary first; ["None"] for a headless Service,
	// empty for ExternalName.
	ClusterIPs []string
	// IPFamilies are the families the Service uses, primary first.
	IPFamilies []corev1.IPFamily
	// Ports are the Service's ports with their node ports (0 where none applies).
	Ports []v1alpha1.ServicePortStatus
	// HealthCheckNodePort is set for LoadBalancer Services with
	// externalTrafficPolicy Local.
	HealthCheckNodePort int32
}

// Problem is an inconsistency found while restoring or repairing: what a Service's
// status claims but cannot keep.
type Problem struct {
	// Key is the namespace/name of the Service concerned.
	Key string
	// Reason is a CamelCase event reason, one of the Reason* repair reasons.
	Reason string
	// Message says what was found and what svcplane does about it.
	Message string
}

// holding is what one Service holds. The owner maps of the Book are its index.
type holding struct {
	uid         types.UID
	ips         map[corev1.IPFamily]netip.Addr
	ports       []v1alpha1.ServicePortStatus
	healthCheck int32
	// since is when this holding last changed; the repair pass only reclaims
	// holdings that are older than its listing of Services.
	since time.Time
}

// Book holds the cluster-wide allocations. It is safe for concurrent use.
type Book struct {
	mu        sync.Mutex
	families  []corev1.IPFamily
	ipRanges  map[corev1.IPFamily]*allocator.IPRange
	nodePorts *allocator.PortRange
	holders   map[string]*holding
	ipOwner   map[netip.Addr]string
	portOwner map[int32]string
	// waiting are the Services whose last Ensure failed for a reason that can clear
	// by itself, with when they started waiting; they are retried, longest waiting
	// first, when something is released.
	waiting map[string]time.Time
	now     func() time.Time
}

// NewBook returns an empty Book over the given service CIDRs (primary first, at most
// one per family) and node port range (e.g. "30000-32767").
func NewBook(serviceCIDRs []netip.Prefix, nodePortRange string) (*Book, error) {
	if len(serviceCIDRs) == 0 || len(serviceCIDRs) > 2 {
		return nil, fmt.Errorf("need one or two service CIDRs, got %d", len(serviceCIDRs))
	}
	b := &Book{
		ipRanges:  map[corev1.IPFamily]*allocator.IPRange{},
		holders:   map[string]*holding{},
		ipOwner:   map[netip.Addr]string{},
		portOwner: map[int32]string{},
		waiting:   map[string]time.Time{},
		now:       time.Now,
	}
	for _, cidr := range serviceCIDRs {
		r, err := allocator.NewIPRange(cidr)
		if err != nil {
			return nil, err
		}
		fam := familyOf(cidr.Addr())
		if _, dup := b.ipRanges[fam]; dup {
			return nil, fmt.Errorf("two service CIDRs of family %s", fam)
		}
		b.ipRanges[fam] = r
		b.families = append(b.families, fam)
	}
	ports, err := allocator.ParsePortRange(nodePortRange)
	if err != nil {
		return nil, err
	}
	b.nodePorts = ports
	return b, nil
}

// Families returns the configured IP families, primary first.
func (b *Book) Families() []corev1.IPFamily { return slices.Clone(b.families) }

// Usage reports the size and use of each range, for metrics.
type Usage struct {
	// Range is the CIDR or port range.
	Range string
	// Kind is "clusterIP" or "nodePort".
	Kind       string
	Size, Used int
}

// Usage returns the size and use of every range.
func (b *Book) Usage() []Usage {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Usage
	for _, fam := range b.families {
		r := b.ipRanges[fam]
		out = append(out, Usage{Range: r.String(), Kind: "clusterIP", Size: r.Size(), Used: r.Used()})
	}
	return append(out, Usage{Range: b.nodePorts.String(), Kind: "nodePort", Size: b.nodePorts.Size(), Used: b.nodePorts.Used()})
}

func familyOf(a netip.Addr) corev1.IPFamily {
	if a.Is4() {
		return corev1.IPv4Protocol
	}
	return corev1.IPv6Protocol
}

// Ensure gives the Service key (with uid) what its spec needs: it keeps what the
// Service already holds where that still fits, allocates what is newly needed and
// releases what is no longer needed. It is all or nothing: on error the Service keeps
// exactly what it held before. freed reports whether any value went back to a range,
// which is the moment to retry Waiting Services.
func (b *Book) Ensure(key string, uid types.UID, spec *v1alpha1.ServiceSpec) (alloc Allocation, freed bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()

	if h := b.holders[key]; h != nil && h.uid != uid {
		// The name now belongs to a new object: what the old one held is free.
		freed = b.releaseLocked(key)
	}
	t := &txn{b: b, key: key, old: b.holders[key]}
	alloc, err = t.plan(spec)
	if err != nil {
		t.rollback()
		var ae *Error
		if errors.As(err, &ae) && !ae.Permanent {
			if _, already := b.waiting[key]; !already {
				b.waiting[key] = b.now()
			}
		} else {
			delete(b.waiting, key)
		}
		return Allocation{}, freed, err
	}
	delete(b.waiting, key)
	return alloc, t.commit(uid) || freed, nil
}

// Release frees everything the Service key holds. It reports whether any value went
// back to a range.
func (b *Book) Release(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.waiting, key)
	return b.releaseLocked(key)
}

func (b *Book) releaseLocked(key string) bool {
	h := b.holders[key]
	if h == nil {
		return false
	}
	freed := false
	for _, ip := range h.ips {
		b.releaseIP(ip)
		freed = true
	}
	release := func(port int32) {
		if port != 0 && b.portOwner[port] == key {
			b.releasePort(port)
			freed = true
		}
	}
	for _, p := range h.ports {
		release(p.NodePort)
	}
	release(h.healthCheck)
	delete(b.holders, key)
	return freed
}

func (b *Book) releaseIP(ip netip.Addr) {
	delete(b.ipOwner, ip)
	if r := b.ipRanges[familyOf(ip)]; r != nil {
		r.Release(ip)
	}
}

func (b *Book) releasePort(port int32) {
	delete(b.portOwner, port)
	b.nodePorts.Release(int(port))
}

// Waiting returns the Services whose last Ensure failed for a reason that can clear
// by itself (a value held by another Service, a full range), longest waiting first,
// so that retrying them in this order serves them first come, first served.
func (b *Book) Waiting() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	keys := make([]string, 0, len(b.waiting))
	for k := range b.waiting {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y string) int {
		if c := b.waiting[x].Compare(b.waiting[y]); c != 0 {
			return c
		}
		return strings.Compare(x, y)
	})
	return keys
}

// Restore records what an existing Service's status says it holds, for rebuilding the
// Book when the manager starts. Call it for every Service, oldest first, before any
// Ensure: of two Services that claim the same value, the first restored keeps it. A
// value that is out of range or already claimed is not restored and is reported; the
// Service's next Ensure gives it a new one unless its spec asks for that very value.
func (b *Book) Restore(key string, uid types.UID, status *v1alpha1.ServiceStatus) []Problem {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.restoreLocked(key, uid, status)
}

// Adopt makes the Book follow a status written by someone else (another manager):
// when status shows allocated values that differ from what the Service key (with uid)
// holds, and every one of them is in range and free or already the Service's, the
// Service then holds exactly what status shows, and Adopt reports true. It changes
// nothing and reports false when status shows no value (a write that never happened
// or was lost: the Book's record stands), already matches, or claims a value that is
// out of range or held by another Service; conflict then names that Service.
func (b *Book) Adopt(key string, uid types.UID, status *v1alpha1.ServiceStatus) (adopted bool, conflict string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ips, ports := ipsOf(status), nodePortsOf(status)
	if status.HealthCheckNodePort != 0 {
		ports = append(ports, status.HealthCheckNodePort)
	}
	if len(ips) == 0 && len(ports) == 0 {
		return false, ""
	}
	if b.inSyncLocked(key, uid, status) {
		return false, ""
	}
	seen := map[corev1.IPFamily]bool{}
	for _, ip := range ips {
		fam := familyOf(ip)
		r := b.ipRanges[fam]
		if r == nil || !r.Contains(ip) || seen[fam] {
			return false, ""
		}
		seen[fam] = true
		if owner, taken := b.ipOwner[ip]; taken && owner != key {
			return false, owner
		}
	}
	for _, port := range ports {
		if !b.nodePorts.Contains(int(port)) {
			return false, ""
		}
		if owner, taken := b.portOwner[port]; taken && owner != key {
			return false, owner
		}
	}
	b.releaseLocked(key)
	return len(b.restoreLocked(key, uid, status)) == 0, ""
}

func (b *Book) restoreLocked(key string, uid types.UID, status *v1alpha1.ServiceStatus) []Problem {
	if h := b.holders[key]; h != nil && h.uid != uid {
		b.releaseLocked(key)
	}
	h := b.holders[key]
	if h == nil {
		h = &holding{uid: uid, ips: map[corev1.IPFamily]netip.Addr{}, since: b.now()}
	}
	var problems []Problem
	report := func(reason, format string, args ...any) {
		problems = append(problems, Problem{Key: key, Reason: reason, Message: fmt.Sprintf(format, args...)})
	}
	for _, s := range status.ClusterIPs {
		if s == v1alpha1.ClusterIPNone || s == "" {
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			report(ReasonClusterIPOutOfRange, "Cluster IP %q in status is not an IP address; a new one will be allocated", s)
			continue
		}
		fam := familyOf(ip)
		r := b.ipRanges[fam]
		switch owner, taken := b.ipOwner[ip]; {
		case taken && owner == key:
		case h.ips[fam].IsValid():
			report(ReasonClusterIPOutOfRange, "Cluster IP %s is a second address of family %s (the service holds %s); it is not kept", ip, fam, h.ips[fam])
		case taken:
			report(ReasonClusterIPAlreadyAllocated, "Cluster IP %s was assigned to multiple services; it stays with %s and this service gets another one", ip, owner)
		case r == nil || !r.Contains(ip):
			report(ReasonClusterIPOutOfRange, "Cluster IP %s is not within the configured service CIDR %s; a new one will be allocated", ip, b.cidrsText())
		default:
			if err := r.Allocate(ip); err != nil {
				report(ReasonClusterIPOutOfRange, "Cluster IP %s could not be restored: %v", ip, err)
				continue
			}
			b.ipOwner[ip] = key
			h.ips[fam] = ip
		}
	}
	claim := func(port int32) bool {
		switch owner, taken := b.portOwner[port]; {
		case taken && owner == key:
			return true
		case taken:
			report(ReasonNodePortAlreadyAllocated, "Port %d was assigned to multiple services; it stays with %s and this service gets another one", port, owner)
		case !b.nodePorts.Contains(int(port)):
			report(ReasonNodePortOutOfRange, "Port %d is not within the port range %s; a new one will be allocated", port, b.nodePorts)
		default:
			if err := b.nodePorts.Allocate(int(port)); err != nil {
				report(ReasonNodePortOutOfRange, "Port %d could not be restored: %v", port, err)
				return false
			}
			b.portOwner[port] = key
			return true
		}
		return false
	}
	for _, p := range status.Ports {
		if p.NodePort != 0 && claim(p.NodePort) {
			h.ports = append(h.ports, p)
		}
	}
	if hc := status.HealthCheckNodePort; hc != 0 && claim(hc) {
		h.healthCheck = hc
	}
	b.holders[key] = h
	return problems
}

func (b *Book) cidrsText() string {
	s := ""
	for i, fam := range b.families {
		if i > 0 {
			s += ","
		}
		s += b.ipRanges[fam].String()
	}
	return s
}

// InSync reports whether status shows exactly the cluster IPs, node ports and health
// check node port that the Book has the Service key (with uid) holding.
func (b *Book) InSync(key string, uid types.UID, status *v1alpha1.ServiceStatus) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inSyncLocked(key, uid, status)
}

func (b *Book) inSyncLocked(key string, uid types.UID, status *v1alpha1.ServiceStatus) bool {
	h := b.holders[key]
	if h == nil || h.uid != uid {
		return len(ipsOf(status)) == 0 && len(nodePortsOf(status)) == 0 && status.HealthCheckNodePort == 0
	}
	held := make([]netip.Addr, 0, len(h.ips))
	for _, ip := range h.ips {
		held = append(held, ip)
	}
	var heldPorts []int32
	for _, p := range h.ports {
		if p.NodePort != 0 {
			heldPorts = append(heldPorts, p.NodePort)
		}
	}
	return sameSet(held, ipsOf(status)) && sameSet(heldPorts, nodePortsOf(status)) && h.healthCheck == status.HealthCheckNodePort
}

// Audit explains why status disagrees with what the Service key (with uid) holds:
// one Problem per address or port that status claims but the Service does not hold.
func (b *Book) Audit(key string, uid types.UID, status *v1alpha1.ServiceStatus) []Problem {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.holders[key]
	if h != nil && h.uid != uid {
		h = nil
	}
	var problems []Problem
	report := func(reason, format string, args ...any) {
		problems = append(problems, Problem{Key: key, Reason: reason, Message: fmt.Sprintf(format, args...)})
	}
	for _, ip := range ipsOf(status) {
		owner, taken := b.ipOwner[ip]
		r := b.ipRanges[familyOf(ip)]
		switch {
		case taken && owner == key && h != nil:
		case taken && owner != key:
			report(ReasonClusterIPAlreadyAllocated, "Cluster IP %s was assigned to multiple services; it stays with %s and this service gets another one", ip, owner)
		case r == nil || !r.Contains(ip):
			report(ReasonClusterIPOutOfRange, "Cluster IP %s is not within the configured service CIDR %s; a new one will be allocated", ip, b.cidrsText())
		default:
			report(ReasonClusterIPNotAllocated, "Cluster IP %s is shown in status but not allocated; repairing", ip)
		}
	}
	ports := nodePortsOf(status)
	if status.HealthCheckNodePort != 0 {
		ports = append(ports, status.HealthCheckNodePort)
	}
	for _, port := range ports {
		owner, taken := b.portOwner[port]
		switch {
		case taken && owner == key && h != nil:
		case taken && owner != key:
			report(ReasonNodePortAlreadyAllocated, "Port %d was assigned to multiple services; it stays with %s and this service gets another one", port, owner)
		case !b.nodePorts.Contains(int(port)):
			report(ReasonNodePortOutOfRange, "Port %d is not within the port range %s; a new one will be allocated", port, b.nodePorts)
		default:
			report(ReasonNodePortNotAllocated, "Port %d is shown in status but not allocated; repairing", port)
		}
	}
	return problems
}

func ipsOf(status *v1alpha1.ServiceStatus) []netip.Addr {
	var out []netip.Addr
	for _, s := range status.ClusterIPs {
		if ip, err := netip.ParseAddr(s); err == nil {
			out = append(out, ip)
		}
	}
	return out
}

func nodePortsOf(status *v1alpha1.ServiceStatus) []int32 {
	var out []int32
	for _, p := range status.Ports {
		if p.NodePort != 0 {
			out = append(out, p.NodePort)
		}
	}
	return out
}

func sameSet[T comparable](a, b []T) bool {
	in := func(v T, s []T) bool { return slices.Contains(s, v) }
	for _, v := range a {
		if !in(v, b) {
			return false
		}
	}
	for _, v := range b {
		if !in(v, a) {
			return false
		}
	}
	return true
}

// Reclaim releases what is held by Services that no longer exist: keys absent from
// existing (namespace/name → uid) or present with another uid. Only holdings that
// last changed before listedAt are reclaimed, so a Service created after the listing
// was taken is never mistaken for a leak. It returns the keys it reclaimed.
func (b *Book) Reclaim(existing map[string]types.UID, listedAt time.Time) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var leaked []string
	for key, h := range b.holders {
		if uid, ok := existing[key]; ok && uid == h.uid {
			continue
		}
		if !h.since.Before(listedAt) {
			continue
		}
		leaked = append(leaked, key)
	}
	slices.Sort(leaked)
	for _, key := range leaked {
		b.releaseLocked(key)
		delete(b.waiting, key)
	}
	return leaked
}

// ipFieldPath is where kube-apiserver reports a cluster IP problem.
var ipFieldPath = field.NewPath("spec", "clusterIPs")
