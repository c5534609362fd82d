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
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers/loadbalancer"
)

// Name is the name the provider is registered under, and so the loadBalancerClass
// that selects it.
const Name = "ippool"

// ReasonLoadBalancerIPAlreadyAllocated is the reason of the Problem reported for a
// Service whose status claims an address an older Service holds.
const ReasonLoadBalancerIPAlreadyAllocated = "LoadBalancerIPAlreadyAllocated"

// Provider hands out addresses from LoadBalancerIPPools. What Services hold is the
// source of truth: owners maps every held address to its Service, and every pool
// range marks the held addresses it contains, so an address shared by overlapping
// pools is taken in all of them at once and is never handed out twice. Pools come
// and go; an address stays with its Service until the Service lets it go or is
// ensured again and the address is no longer in a pool it may use.
//
// A Provider is safe for concurrent use.
type Provider struct {
	mu      sync.Mutex
	pools   map[string]*pool
	holders map[types.NamespacedName][]netip.Addr
	owners  map[netip.Addr]types.NamespacedName
	// waiting are the Services whose last ensure failed in a way a released address
	// or a pool change can cure; those events resync them.
	waiting  map[types.NamespacedName]bool
	restored bool

	resync func(...types.NamespacedName)
}

var (
	_ loadbalancer.Provider = (*Provider)(nil)
	_ loadbalancer.Restorer = (*Provider)(nil)
	_ loadbalancer.Resyncer = (*Provider)(nil)
)

// New returns a Provider with no pools and nothing held.
func New() *Provider {
	return &Provider{
		pools:   map[string]*pool{},
		holders: map[types.NamespacedName][]netip.Addr{},
		owners:  map[netip.Addr]types.NamespacedName{},
		waiting: map[types.NamespacedName]bool{},
		resync:  func(...types.NamespacedName) {},
	}
}

// SetResync implements loadbalancer.Resyncer.
func (p *Provider) SetResync(resync func(...types.NamespacedName)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resync = resync
}

// GetLoadBalancerName implements loadbalancer.Provider.
func (p *Provider) GetLoadBalancerName(svc *v1alpha1.Service) string {
	return loadbalancer.DefaultName(svc)
}

// GetLoadBalancer implements loadbalancer.Provider: a Service's load balancer exists
// while it holds addresses.
func (p *Provider) GetLoadBalancer(_ context.Context, svc *v1alpha1.Service) (*corev1.LoadBalancerStatus, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	held, ok := p.holders[keyOf(svc)]
	if !ok {
		return nil, false, nil
	}
	return status(held), true, nil
}

// UpdateLoadBalancer implements loadbalancer.Provider. The addresses do not depend on
// nodes: the nodes' agents announce and serve them.
func (p *Provider) UpdateLoadBalancer(context.Context, *v1alpha1.Service, []*corev1.Node) error {
	return nil
}

// EnsureLoadBalancer implements loadbalancer.Provider. For each of the Service's IP
// families it keeps the address the Service holds while that address is still in a
// pool the Service may use and still what it asks for, and otherwise takes the
// requested address (spec.loadBalancerIP or the load-balancer-ips annotation) or the
// next free one of the requested pool, else of the auto-assigning pools the Service
// may use, by pool name. It changes nothing unless every family succeeds.
func (p *Provider) EnsureLoadBalancer(_ context.Context, svc *v1alpha1.Service, _ []*corev1.Node) (*corev1.LoadBalancerStatus, error) {
	key := keyOf(svc)
	requested, err := loadbalancer.RequestedIPs(svc)
	if err != nil {
		return nil, err
	}
	families := serviceFamilies(svc, requested)
	want := map[bool]netip.Addr{} // by is6
	for _, ip := range requested {
		if !slices.Contains(families, ip.Is6()) {
			return nil, fmt.Errorf("requested address %s is %s, but the Service's IP families are %s", ip, familyName(ip.Is6()), familyNames(families))
		}
		want[ip.Is6()] = ip
	}
	poolName := svc.Annotations[v1alpha1.AnnotationLoadBalancerIPPool]

	p.mu.Lock()
	held, _, err := p.ensureLocked(svc, key, families, want, poolName)
	var resync []types.NamespacedName
	if err != nil {
		if isWaiting(err) {
			p.waiting[key] = true
		} else {
			delete(p.waiting, key)
		}
	} else {
		delete(p.waiting, key)
		if released := p.commitLocked(key, held); len(released) > 0 {
			resync = p.waitingLocked()
		}
	}
	notifyResync := p.resync
	p.mu.Unlock()

	p.notify(notifyResync, resync)
	if err != nil {
		return nil, err
	}
	return status(held), nil
}

// ensureLocked works out the Service's addresses, one per family in family order. It
// marks newly taken addresses (fresh) in the pools and releases them again when a
// family fails, so that a failed ensure changes nothing.
func (p *Provider) ensureLocked(svc *v1alpha1.Service, key types.NamespacedName, families []bool, want map[bool]netip.Addr, poolName string) (held, fresh []netip.Addr, err error) {
	defer func() {
		if err != nil {
			for _, ip := range fresh {
				p.unmarkLocked(ip)
			}
			held, fresh = nil, nil
		}
	}()
	usable, err := p.usablePoolsLocked(svc, poolName)
	if err != nil {
		return nil, nil, err
	}
	current := p.holders[key]
	for i, is6 := range families {
		if ip, ok := want[is6]; ok {
			if !inAny(usable, ip) {
				where := "any LoadBalancerIPPool this Service may use"
				if poolName != "" {
					where = fmt.Sprintf("LoadBalancerIPPool %q", poolName)
				}
				return nil, fresh, waiting(fmt.Errorf("the provided IP (%s) is not in %s", ip, where))
			}
			if owner, taken := p.owners[ip]; taken {
				if owner != key {
					return nil, fresh, waiting(fmt.Errorf("failed to allocate IP %s: provided IP is already allocated", ip))
				}
			} else {
				p.markLocked(ip)
				fresh = append(fresh, ip)
			}
			held = append(held, ip)
			continue
		}
		if ip, ok := ofFamily(current, is6); ok && inAny(usable, ip) {
			held = append(held, ip)
			continue
		}
		// PreferDualStack asks for a second family only where there is one, as
		// for ClusterIPs: without a free address of that family, the Service makes
		// do with its primary family.
		optional := i > 0 && svc.Spec.IPFamilyPolicy != nil && *svc.Spec.IPFamilyPolicy == corev1.IPFamilyPolicyPreferDualStack
		candidates := autoAssigning(usable, poolName, is6)
		if len(candidates) == 0 {
			if optional {
				continue
			}
			if poolName != "" {
				return nil, fresh, waiting(fmt.Errorf("LoadBalancerIPPool %q has no %s addresses", poolName, familyName(is6)))
			}
			return nil, fresh, waiting(fmt.Errorf("no LoadBalancerIPPool with %s addresses auto-assigns to this Service", familyName(is6)))
		}
		ip, ok := p.allocateNextLocked(candidates, is6)
		if !ok {
			if optional {
				continue
			}
			return nil, fresh, waiting(fmt.Errorf("failed to allocate a load balancer %s address from %s: range is full", familyName(is6), poolList(candidates)))
		}
		fresh = append(fresh, ip)
		held = append(held, ip)
	}
	return held, fresh, nil
}

// usablePoolsLocked returns the pools the Service may take addresses from: the
// requested pool, or every pool that allows it, by name.
func (p *Provider) usablePoolsLocked(svc *v1alpha1.Service, poolName string) ([]*pool, error) {
	if poolName != "" {
		pl, ok := p.pools[poolName]
		if !ok {
			return nil, waiting(fmt.Errorf("LoadBalancerIPPool %q not found", poolName))
		}
		if why := pl.allows(svc); why != "" {
			return nil, waiting(fmt.Errorf("%s", why))
		}
		return []*pool{pl}, nil
	}
	var out []*pool
	for _, name := range sortedKeys(p.pools) {
		if pl := p.pools[name]; pl.allows(svc) == "" {
			out = append(out, pl)
		}
	}
	return out, nil
}

// allocateNextLocked takes a free address from the first candidate pool that has
// one, and marks it in every other range that contains it.
func (p *Provider) allocateNextLocked(candidates []*pool, is6 bool) (netip.Addr, bool) {
	for _, pl := range candidates {
		for _, r := range pl.ranges {
			if r.IsIPv6() != is6 {
				continue
			}
			// Every held address is marked in every range that contains it, so a
			// free offset here is an address nobody holds. It is taken in this
			// range by AllocateNext and then in every other range that shares it.
			ip, err := r.AllocateNext()
			if err != nil {
				continue // full
			}
			p.markLocked(ip)
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// commitLocked records what the Service now holds and releases what it no longer
// holds, returning the released addresses.
func (p *Provider) commitLocked(key types.NamespacedName, held []netip.Addr) (released []netip.Addr) {
	for _, ip := range p.holders[key] {
		if !slices.Contains(held, ip) {
			p.unmarkLocked(ip)
			delete(p.owners, ip)
			released = append(released, ip)
		}
	}
	for _, ip := range held {
		p.owners[ip] = key
	}
	p.holders[key] = slices.Clone(held)
	return released
}

// EnsureLoadBalancerDeleted implements loadbalancer.Provider: it releases what the
// Service holds, which resyncs the Services waiting for an address.
func (p *Provider) EnsureLoadBalancerDeleted(_ context.Context, svc *v1alpha1.Service) error {
	key := keyOf(svc)
	p.mu.Lock()
	delete(p.waiting, key)
	held, ok := p.holders[key]
	var resync []types.NamespacedName
	if ok {
		for _, ip := range held {
			p.unmarkLocked(ip)
			delete(p.owners, ip)
		}
		delete(p.holders, key)
		resync = p.waitingLocked()
	}
	notifyResync := p.resync
	p.mu.Unlock()
	p.notify(notifyResync, resync)
	return nil
}

// Restore implements loadbalancer.Restorer: every IP of each Service's
// status.loadBalancer.ingress is held for it again, unless an earlier (older)
// Service already holds it. Addresses outside every known pool are held too, so
// that a pool created later never hands them out twice.
func (p *Provider) Restore(services []*v1alpha1.Service) []loadbalancer.Problem {
	p.mu.Lock()
	var problems []loadbalancer.Problem
	for _, svc := range services {
		key := keyOf(svc)
		var held []netip.Addr
		for _, in := range svc.Status.LoadBalancer.Ingress {
			ip, err := netip.ParseAddr(in.IP)
			if err != nil {
				continue
			}
			ip = ip.Unmap()
			if owner, taken := p.owners[ip]; taken && owner != key {
				problems = append(problems, loadbalancer.Problem{
					Service: key,
					Reason:  ReasonLoadBalancerIPAlreadyAllocated,
					Message: fmt.Sprintf("status.loadBalancer.ingress: Invalid value: %q: provided IP is already allocated to Service %s; a new address will be allocated", in.IP, owner),
				})
				continue
			}
			if !slices.Contains(held, ip) {
				held = append(held, ip)
			}
		}
		if len(held) > 0 {
			p.commitLocked(key, held)
			for _, ip := range held {
				p.markLocked(ip)
			}
		}
	}
	p.restored = true
	p.mu.Unlock()
	return problems
}

// Restored reports whether Restore ran, and so whether pool usage is meaningful.
func (p *Provider) Restored() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restored
}

// SetPool adds or replaces a pool. Services holding addresses inside the old or new
// ranges, and Services waiting for an address, are resynced, since the change may
// move or give them an address.
func (p *Provider) SetPool(obj *v1alpha1.LoadBalancerIPPool) {
	p.mu.Lock()
	old := p.pools[obj.Name]
	if old != nil && old.generation == obj.Generation && reflect.DeepEqual(old.spec, &obj.Spec) {
		p.mu.Unlock()
		return
	}
	np := newPool(obj)
	for ip := range p.owners {
		if r := np.rangeOf(ip); r != nil {
			// r contains ip and the pool is new: this cannot fail.
			_ = r.Allocate(ip)
		}
	}
	p.pools[obj.Name] = np
	resync := p.affectedLocked(old, np)
	notifyResync := p.resync
	p.mu.Unlock()
	p.notify(notifyResync, resync)
}

// DeletePool removes a pool. The addresses Services hold in it stay theirs until
// those Services, which are resynced, are ensured again.
func (p *Provider) DeletePool(name string) {
	p.mu.Lock()
	old, ok := p.pools[name]
	if !ok {
		p.mu.Unlock()
		return
	}
	delete(p.pools, name)
	resync := p.affectedLocked(old, nil)
	notifyResync := p.resync
	p.mu.Unlock()
	p.notify(notifyResync, resync)
}

// affectedLocked returns the waiting Services and those holding an address in
// either pool.
func (p *Provider) affectedLocked(pools ...*pool) []types.NamespacedName {
	set := map[types.NamespacedName]bool{}
	for key := range p.waiting {
		set[key] = true
	}
	for ip, key := range p.owners {
		for _, pl := range pools {
			if pl != nil && pl.rangeOf(ip) != nil {
				set[key] = true
			}
		}
	}
	return sortedNames(set)
}

// PoolStatus is what the provider knows about one pool.
type PoolStatus struct {
	// Used and Free count the pool's usable addresses.
	Used, Free int64
	// ValidReason is ReasonValid, or why some entries are ignored or cut short
	// (Problems says which).
	ValidReason string
	Problems    []string
	// Overlaps names the other pools that share addresses with this one.
	Overlaps []string
}

// Status returns the pool's status, and false when the pool is unknown.
func (p *Provider) Status(name string) (PoolStatus, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pl, ok := p.pools[name]
	if !ok {
		return PoolStatus{}, false
	}
	st := PoolStatus{ValidReason: pl.validReason, Problems: slices.Clone(pl.problems)}
	st.Used, st.Free = pl.usage()
	for _, other := range sortedKeys(p.pools) {
		if other != name && pl.overlaps(p.pools[other]) {
			st.Overlaps = append(st.Overlaps, other)
		}
	}
	return st, true
}

// PoolsContaining returns the names of the pools that contain any of the
// addresses, sorted: the pools whose use changes when those addresses are taken or
// released.
func (p *Provider) PoolsContaining(ips ...netip.Addr) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.poolsOfLocked(ips)
}

// Holds returns the addresses the Service holds, in family order.
func (p *Provider) Holds(key types.NamespacedName) []netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.holders[key])
}

// markLocked marks ip in every range that contains it.
func (p *Provider) markLocked(ip netip.Addr) {
	for _, pl := range p.pools {
		if r := pl.rangeOf(ip); r != nil {
			// Marked already when ip was taken through this range: nothing to do.
			_ = r.Allocate(ip)
		}
	}
}

// unmarkLocked releases ip in every range that contains it.
func (p *Provider) unmarkLocked(ip netip.Addr) {
	for _, pl := range p.pools {
		if r := pl.rangeOf(ip); r != nil {
			r.Release(ip)
		}
	}
}

// poolsOfLocked returns the names of the pools that contain any of the addresses.
func (p *Provider) poolsOfLocked(ips []netip.Addr) []string {
	var out []string
	for _, name := range sortedKeys(p.pools) {
		for _, ip := range ips {
			if p.pools[name].rangeOf(ip) != nil {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

func (p *Provider) waitingLocked() []types.NamespacedName {
	return sortedNames(p.waiting)
}

// notify calls resync outside the lock: it may call back into the provider.
func (p *Provider) notify(resync func(...types.NamespacedName), keys []types.NamespacedName) {
	if len(keys) > 0 {
		resync(keys...)
	}
}

// waitingError marks a failure that a released address or a pool change can cure.
type waitingError struct{ error }

func waiting(err error) error { return waitingError{err} }

func (e waitingError) Unwrap() error { return e.error }

func isWaiting(err error) bool {
	var w waitingError
	return errors.As(err, &w)
}

// serviceFamilies returns the Service's families as is6 flags, primary first: those
// the allocation recorded in status, else those of spec, else those of the requested
// addresses, else IPv4.
func serviceFamilies(svc *v1alpha1.Service, requested []netip.Addr) []bool {
	fams := svc.Status.IPFamilies
	if len(fams) == 0 {
		fams = svc.Spec.IPFamilies
	}
	var out []bool
	for _, f := range fams {
		out = append(out, f == corev1.IPv6Protocol)
	}
	if len(out) == 0 {
		for _, ip := range requested {
			out = append(out, ip.Is6())
		}
	}
	if len(out) == 0 {
		out = []bool{false}
	}
	return out
}

func status(held []netip.Addr) *corev1.LoadBalancerStatus {
	st := &corev1.LoadBalancerStatus{}
	for _, ip := range held {
		st.Ingress = append(st.Ingress, corev1.LoadBalancerIngress{IP: ip.String(), IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)})
	}
	return st
}

func keyOf(svc *v1alpha1.Service) types.NamespacedName {
	return types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
}

func ofFamily(ips []netip.Addr, is6 bool) (netip.Addr, bool) {
	for _, ip := range ips {
		if ip.Is6() == is6 {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

func inAny(pools []*pool, ip netip.Addr) bool {
	for _, pl := range pools {
		if pl.rangeOf(ip) != nil {
			return true
		}
	}
	return false
}

func autoAssigning(usable []*pool, poolName string, is6 bool) []*pool {
	var out []*pool
	for _, pl := range usable {
		if (poolName != "" || pl.autoAssign) && pl.has(is6) {
			out = append(out, pl)
		}
	}
	return out
}

func poolList(pools []*pool) string {
	names := make([]string, len(pools))
	for i, pl := range pools {
		names[i] = fmt.Sprintf("%q", pl.name)
	}
	if len(names) == 1 {
		return "LoadBalancerIPPool " + names[0]
	}
	return "LoadBalancerIPPools " + strings.Join(names, ", ")
}

func familyName(is6 bool) string {
	if is6 {
		return string(corev1.IPv6Protocol)
	}
	return string(corev1.IPv4Protocol)
}

func familyNames(fams []bool) string {
	names := make([]string, len(fams))
	for i, f := range fams {
		names[i] = familyName(f)
	}
	return "[" + strings.Join(names, ", ") + "]"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortedNames(set map[types.NamespacedName]bool) []types.NamespacedName {
	out := make([]types.NamespacedName, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b types.NamespacedName) int { return cmp.Compare(a.String(), b.String()) })
	return out
}
