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

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers/allocator"
)

// txn is one Ensure: it records every value it takes from a range so that a failure
// part-way gives them all back, and the plan it builds so that commit can release what
// the Service no longer needs.
type txn struct {
	b   *Book
	key string
	old *holding

	// taken are values this txn allocated from the ranges (not ones the Service
	// already held); rollback returns exactly these.
	takenIPs   []netip.Addr
	takenPorts []int32

	// the plan
	ips         map[corev1.IPFamily]netip.Addr
	ports       []v1alpha1.ServicePortStatus
	healthCheck int32
}

func (t *txn) rollback() {
	for _, ip := range t.takenIPs {
		t.b.releaseIP(ip)
	}
	for _, p := range t.takenPorts {
		t.b.releasePort(p)
	}
}

// commit makes the plan the Service's holding and releases what it held before but
// no longer needs. It reports whether anything was released.
func (t *txn) commit(uid types.UID) bool {
	h := &holding{uid: uid, ips: t.ips, ports: t.ports, healthCheck: t.healthCheck, since: t.b.now()}
	freed := false
	if old := t.old; old != nil {
		keep := map[int32]bool{h.healthCheck: true}
		for _, p := range h.ports {
			keep[p.NodePort] = true
		}
		for fam, ip := range old.ips {
			if h.ips[fam] != ip {
				t.b.releaseIP(ip)
				freed = true
			}
		}
		release := func(port int32) {
			if port != 0 && !keep[port] && t.b.portOwner[port] == t.key {
				t.b.releasePort(port)
				freed = true
			}
		}
		for _, p := range old.ports {
			release(p.NodePort)
		}
		release(old.healthCheck)
		if sameHolding(old, h) {
			h.since = old.since
		}
	}
	t.b.holders[t.key] = h
	return freed
}

func sameHolding(a, b *holding) bool {
	if len(a.ips) != len(b.ips) || a.healthCheck != b.healthCheck || !slices.Equal(a.ports, b.ports) {
		return false
	}
	for fam, ip := range a.ips {
		if b.ips[fam] != ip {
			return false
		}
	}
	return true
}

// plan decides what the spec needs, taking new values from the ranges as it goes.
func (t *txn) plan(spec *v1alpha1.ServiceSpec) (Allocation, error) {
	t.ips = map[corev1.IPFamily]netip.Addr{}
	if spec.Type == corev1.ServiceTypeExternalName {
		return Allocation{}, nil
	}
	families, requested, headless, err := t.b.resolveFamilies(spec)
	if err != nil {
		return Allocation{}, err
	}
	alloc := Allocation{IPFamilies: families}
	if headless {
		alloc.ClusterIPs = []string{v1alpha1.ClusterIPNone}
	} else {
		for i, fam := range families {
			ip, err := t.clusterIP(fam, requested[fam], i)
			if err != nil {
				return Allocation{}, err
			}
			t.ips[fam] = ip
			alloc.ClusterIPs = append(alloc.ClusterIPs, ip.String())
		}
	}
	if err := t.planNodePorts(spec); err != nil {
		return Allocation{}, err
	}
	// t.ports is the Book's record from now on; the caller gets its own copy.
	alloc.Ports = slices.Clone(t.ports)
	alloc.HealthCheckNodePort = t.healthCheck
	return alloc, nil
}

// clusterIP returns the address of family fam: the requested one if given, else the
// one the Service already holds, else the next free one.
func (t *txn) clusterIP(fam corev1.IPFamily, requested netip.Addr, index int) (netip.Addr, error) {
	r := t.b.ipRanges[fam]
	if requested.IsValid() {
		if t.b.ipOwner[requested] == t.key {
			return requested, nil
		}
		path := ipFieldPath.Index(index)
		if err := r.Allocate(requested); err != nil {
			var nir *allocator.ErrNotInRange
			switch {
			case errors.As(err, &nir):
				return netip.Addr{}, &Error{Reason: ReasonClusterIPOutOfRange, Permanent: true,
					Message: field.Invalid(path, requested.String(), err.Error()).Error()}
			case errors.Is(err, allocator.ErrAllocatedIP):
				return netip.Addr{}, &Error{Reason: ReasonClusterIPAlreadyAllocated,
					Message: field.Invalid(path, requested.String(), fmt.Sprintf("failed to allocate IP %s: %v", requested, err)).Error()}
			default:
				return netip.Addr{}, &Error{Reason: ReasonClusterIPOutOfRange, Permanent: true,
					Message: field.Invalid(path, requested.String(), err.Error()).Error()}
			}
		}
		t.takeIP(requested)
		return requested, nil
	}
	if t.old != nil {
		if ip, ok := t.old.ips[fam]; ok {
			return ip, nil
		}
	}
	ip, err := r.AllocateNext()
	if err != nil {
		return netip.Addr{}, &Error{Reason: ReasonClusterIPRangeFull,
			Message: fmt.Sprintf("failed to allocate a serviceIP: %v (service CIDR %s)", err, r)}
	}
	t.takeIP(ip)
	return ip, nil
}

func (t *txn) takeIP(ip netip.Addr) {
	t.b.ipOwner[ip] = t.key
	t.takenIPs = append(t.takenIPs, ip)
}

// resolveFamilies applies kube's dual-stack rules: the families come from ipFamilies,
// else from the requested cluster IPs, else the cluster's primary family; the policy
// (SingleStack by default) then decides whether the other family is added.
func (b *Book) resolveFamilies(spec *v1alpha1.ServiceSpec) ([]corev1.IPFamily, map[corev1.IPFamily]netip.Addr, bool, error) {
	invalid := func(path *field.Path, value any, detail string) error {
		return &Error{Reason: ReasonInvalidIPFamilies, Permanent: true, Message: field.Invalid(path, value, detail).Error()}
	}
	requestedIPs := spec.ClusterIPs
	if len(requestedIPs) == 0 && spec.ClusterIP != "" {
		requestedIPs = []string{spec.ClusterIP}
	}
	headless := len(requestedIPs) > 0 && requestedIPs[0] == v1alpha1.ClusterIPNone

	requested := map[corev1.IPFamily]netip.Addr{}
	var wanted []corev1.IPFamily
	if !headless {
		for i, s := range requestedIPs {
			ip, err := netip.ParseAddr(s)
			if err != nil {
				return nil, nil, false, invalid(ipFieldPath.Index(i), s, "must be a valid IP address (e.g. 10.9.8.7 or 2001:db8::ffff)")
			}
			fam := familyOf(ip)
			requested[fam] = ip
			if len(spec.IPFamilies) == 0 {
				wanted = append(wanted, fam)
			}
		}
	}
	if len(spec.IPFamilies) > 0 {
		wanted = slices.Clone(spec.IPFamilies)
	}

	policy := corev1.IPFamilyPolicySingleStack
	switch {
	case spec.IPFamilyPolicy != nil:
		policy = *spec.IPFamilyPolicy
	case headless && len(spec.Selector) == 0 && len(wanted) == 0:
		// A headless Service without a selector has whatever endpoints someone
		// gives it, so by default it takes every family the cluster has.
		policy = corev1.IPFamilyPolicyPreferDualStack
	}
	familyPath := field.NewPath("spec", "ipFamilies")
	if len(wanted) == 2 && wanted[0] == wanted[1] {
		return nil, nil, false, invalid(familyPath.Index(1), string(wanted[1]), "may not contain the same IP family twice")
	}
	for i, fam := range wanted {
		if _, ok := b.ipRanges[fam]; !ok {
			return nil, nil, false, invalid(familyPath.Index(i), string(fam), "not configured on this cluster")
		}
	}
	if policy == corev1.IPFamilyPolicySingleStack && len(wanted) > 1 {
		return nil, nil, false, invalid(field.NewPath("spec", "ipFamilyPolicy"), string(policy),
			"must be RequireDualStack or PreferDualStack when multiple 'ipFamilies' are specified")
	}
	if policy == corev1.IPFamilyPolicyRequireDualStack && len(b.families) < 2 {
		return nil, nil, false, invalid(field.NewPath("spec", "ipFamilyPolicy"), string(policy),
			"this cluster is not configured for dual-stack services")
	}
	if len(wanted) == 0 {
		wanted = []corev1.IPFamily{b.families[0]}
	}
	if policy != corev1.IPFamilyPolicySingleStack && len(wanted) == 1 && len(b.families) == 2 {
		for _, fam := range b.families {
			if fam != wanted[0] {
				wanted = append(wanted, fam)
			}
		}
	}
	for fam, ip := range requested {
		if !slices.Contains(wanted, fam) {
			return nil, nil, false, invalid(ipFieldPath, ip.String(), fmt.Sprintf("the address's family %s is not one of the service's ipFamilies", fam))
		}
	}
	return wanted, requested, headless, nil
}

// use is one node port serving one protocol: a node port may serve TCP and UDP of the
// same Service, but not two ports of the same protocol.
type use struct {
	nodePort int32
	protocol corev1.Protocol
}

// planNodePorts decides every port's node port and the health check node port. Requested node ports are claimed
// first so an automatic choice never takes a value another port of the same Service
// asked for; ports that share a port number (TCP and UDP 53, say) share a node port,
// as kube does.
func (t *txn) planNodePorts(spec *v1alpha1.ServiceSpec) error {
	exposed := spec.Type == corev1.ServiceTypeNodePort || spec.Type == corev1.ServiceTypeLoadBalancer
	automatic := spec.Type == corev1.ServiceTypeNodePort ||
		(spec.Type == corev1.ServiceTypeLoadBalancer && (spec.AllocateLoadBalancerNodePorts == nil || *spec.AllocateLoadBalancerNodePorts))

	t.ports = make([]v1alpha1.ServicePortStatus, len(spec.Ports))
	used := map[use]bool{}
	byNumber := map[int32]int32{}
	portsPath := field.NewPath("spec", "ports")
	for i, p := range spec.Ports {
		t.ports[i] = v1alpha1.ServicePortStatus{Name: p.Name, Protocol: protocolOf(p), Port: p.Port}
		if !exposed || p.NodePort == 0 {
			continue
		}
		if err := t.claimPort(p.NodePort, portsPath.Index(i).Child("nodePort")); err != nil {
			return err
		}
		t.ports[i].NodePort = p.NodePort
		used[use{p.NodePort, protocolOf(p)}] = true
		byNumber[p.Port] = p.NodePort
	}
	// A requested health check node port is claimed before any automatic choice, so
	// that an automatic node port can never take it.
	if err := t.claimHealthCheck(spec); err != nil {
		return err
	}
	if t.healthCheck != 0 {
		used[use{t.healthCheck, corev1.ProtocolTCP}] = true
		used[use{t.healthCheck, corev1.ProtocolUDP}] = true
		used[use{t.healthCheck, corev1.ProtocolSCTP}] = true
	}
	if automatic {
		if err := t.allocateNodePorts(spec, used, byNumber); err != nil {
			return err
		}
	}
	return t.allocateHealthCheck(spec)
}

// allocateNodePorts gives every port that did not ask for a node port one: the one it
// held, else the next free one.
func (t *txn) allocateNodePorts(spec *v1alpha1.ServiceSpec, used map[use]bool, byNumber map[int32]int32) error {
	for i, p := range spec.Ports {
		if t.ports[i].NodePort != 0 {
			continue
		}
		proto := protocolOf(p)
		np := byNumber[p.Port]
		if np != 0 && used[use{np, proto}] {
			np = 0
		}
		if np == 0 {
			if old := t.old.nodePortFor(p.Port, p.Name, proto); old != 0 && !used[use{old, proto}] && t.b.portOwner[old] == t.key {
				np = old
			}
		}
		if np == 0 {
			next, err := t.b.nodePorts.AllocateNext()
			if err != nil {
				return &Error{Reason: ReasonNodePortRangeFull,
					Message: fmt.Sprintf("failed to allocate a nodePort: %v (port range %s)", err, t.b.nodePorts)}
			}
			np = int32(next)
			t.takePort(np)
		}
		t.ports[i].NodePort = np
		used[use{np, proto}] = true
		byNumber[p.Port] = np
	}
	return nil
}

// claimPort takes a requested node port, which the Service may already hold.
func (t *txn) claimPort(port int32, path *field.Path) error {
	if t.b.portOwner[port] == t.key {
		return nil
	}
	if err := t.b.nodePorts.Allocate(int(port)); err != nil {
		var nir *allocator.ErrNotInRange
		if errors.As(err, &nir) {
			return &Error{Reason: ReasonNodePortOutOfRange, Permanent: true, Message: field.Invalid(path, port, err.Error()).Error()}
		}
		return &Error{Reason: ReasonNodePortAlreadyAllocated, Message: field.Invalid(path, port, err.Error()).Error()}
	}
	t.takePort(port)
	return nil
}

func (t *txn) takePort(port int32) {
	t.b.portOwner[port] = t.key
	t.takenPorts = append(t.takenPorts, port)
}

// needsHealthCheck reports whether the Service gets a health check node port:
// LoadBalancer Services with externalTrafficPolicy Local.
func needsHealthCheck(spec *v1alpha1.ServiceSpec) bool {
	return spec.Type == corev1.ServiceTypeLoadBalancer && spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
}

// claimHealthCheck takes a requested health check node port. Asking for one of the
// Service's own requested node ports can never succeed, so that is permanent.
func (t *txn) claimHealthCheck(spec *v1alpha1.ServiceSpec) error {
	want := spec.HealthCheckNodePort
	if !needsHealthCheck(spec) || want == 0 {
		return nil
	}
	path := field.NewPath("spec", "healthCheckNodePort")
	if slices.ContainsFunc(t.ports, func(p v1alpha1.ServicePortStatus) bool { return p.NodePort == want }) {
		return &Error{Reason: ReasonNodePortAlreadyAllocated, Permanent: true,
			Message: field.Invalid(path, want, "may not be the same as a node port of this service").Error()}
	}
	if err := t.claimPort(want, path); err != nil {
		return err
	}
	t.healthCheck = want
	return nil
}

// allocateHealthCheck gives a Service that needs a health check node port and did
// not ask for one the one it held, else the next free one.
func (t *txn) allocateHealthCheck(spec *v1alpha1.ServiceSpec) error {
	if !needsHealthCheck(spec) || t.healthCheck != 0 {
		return nil
	}
	inPlan := func(port int32) bool {
		return slices.ContainsFunc(t.ports, func(p v1alpha1.ServicePortStatus) bool { return p.NodePort == port })
	}
	if t.old != nil && t.old.healthCheck != 0 && !inPlan(t.old.healthCheck) && t.b.portOwner[t.old.healthCheck] == t.key {
		t.healthCheck = t.old.healthCheck
		return nil
	}
	next, err := t.b.nodePorts.AllocateNext()
	if err != nil {
		return &Error{Reason: ReasonNodePortRangeFull,
			Message: fmt.Sprintf("failed to allocate a nodePort: %v (port range %s)", err, t.b.nodePorts)}
	}
	t.healthCheck = int32(next)
	t.takePort(t.healthCheck)
	return nil
}

// nodePortFor returns the node port the holding gave the port with this number and
// protocol, else the one it gave the port with this name and protocol, else 0.
func (h *holding) nodePortFor(port int32, name string, proto corev1.Protocol) int32 {
	if h == nil {
		return 0
	}
	for _, p := range h.ports {
		if p.Port == port && p.Protocol == proto && p.NodePort != 0 {
			return p.NodePort
		}
	}
	if name == "" {
		return 0
	}
	for _, p := range h.ports {
		if p.Name == name && p.Protocol == proto && p.NodePort != 0 {
			return p.NodePort
		}
	}
	return 0
}

func protocolOf(p v1alpha1.ServicePort) corev1.Protocol {
	if p.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return p.Protocol
}
