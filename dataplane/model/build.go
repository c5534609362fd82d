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

package model

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// Build returns the desired dataplane of node for services and the EndpointSlices
// around them.
//
// A Service contributes nothing while it has no cluster IP of a family in status (not
// allocated yet), when it is headless, and when it is of type ExternalName: none of
// them has an address to program. Its endpoints come from every slice in its
// namespace labelled networking.svcplane.io/service-name with its name, whoever
// manages the slice: svcplane's own slices for Services with a selector, hand-made
// ones for Services without. An endpoint listed by more than one slice (as happens
// while slices are rebalanced) appears once, with the most usable conditions any
// slice gives it.
func Build(services []*v1alpha1.Service, epSlices []*discoveryv1.EndpointSlice, node NodeInfo, cfg Config) State {
	st := State{IPv4: newView(IPv4, node, cfg), IPv6: newView(IPv6, node, cfg)}

	bySvc := map[serviceKey][]*discoveryv1.EndpointSlice{}
	for _, s := range epSlices {
		name := s.Labels[v1alpha1.LabelServiceName]
		if name == "" {
			continue
		}
		k := serviceKey{s.Namespace, name}
		bySvc[k] = append(bySvc[k], s)
	}

	for _, svc := range services {
		svcSlices := bySvc[serviceKey{svc.Namespace, svc.Name}]
		// Sorting by name makes the tie-break between duplicate endpoints stable
		// whatever order the informer lists slices in.
		slices.SortFunc(svcSlices, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) })
		for _, f := range Families {
			v := st.View(f)
			v.ServicePorts = append(v.ServicePorts, servicePorts(svc, f, svcSlices, node.Name)...)
		}
	}
	for _, f := range Families {
		slices.SortFunc(st.View(f).ServicePorts, func(a, b *ServicePort) int { return a.Name.Compare(b.Name) })
	}
	return st
}

type serviceKey struct{ namespace, name string }

// newView returns the empty view of family f with its node-wide settings.
func newView(f Family, node NodeInfo, cfg Config) View {
	v := View{Family: f, NodeName: node.Name, MasqueradeAll: cfg.MasqueradeAll}
	for _, a := range node.Addresses {
		if FamilyOf(a) == f {
			v.NodeAddresses = append(v.NodeAddresses, a)
		}
	}
	for _, p := range cfg.ClusterCIDRs {
		if p.IsValid() && FamilyOf(p.Addr()) == f {
			v.ClusterCIDR = p.Masked()
			break
		}
	}

	if cfg.NodePortAddressesPrimary {
		for _, a := range node.PrimaryAddresses {
			if FamilyOf(a) == f {
				v.NodePortAddresses = append(v.NodePortAddresses, a)
			}
		}
		return v
	}
	// As kube-proxy's --nodeport-addresses: a family the flag says nothing about,
	// or whose all-addresses prefix it names, keeps node ports on every address.
	var prefixes []netip.Prefix
	all := false
	for _, p := range cfg.NodePortAddresses {
		if !p.IsValid() || FamilyOf(p.Addr()) != f {
			continue
		}
		prefixes = append(prefixes, p.Masked())
		all = all || p.Bits() == 0
	}
	if len(prefixes) == 0 || all {
		v.NodePortsOnAllAddresses = true
		return v
	}
	for _, a := range v.NodeAddresses {
		if slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Contains(a) }) {
			v.NodePortAddresses = append(v.NodePortAddresses, a)
		}
	}
	return v
}

// servicePorts returns the ports of svc in family f, or nil when svc has nothing to
// program in f.
func servicePorts(svc *v1alpha1.Service, f Family, svcSlices []*discoveryv1.EndpointSlice, nodeName string) []*ServicePort {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	clusterIP, ok := clusterIPOf(svc, f)
	if !ok {
		return nil
	}

	isLB := svc.Spec.Type == corev1.ServiceTypeLoadBalancer
	hasNodePorts := isLB || svc.Spec.Type == corev1.ServiceTypeNodePort
	externalPolicy := PolicyCluster
	if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		externalPolicy = PolicyLocal
	}
	internalPolicy := PolicyCluster
	if p := svc.Spec.InternalTrafficPolicy; p != nil && *p == corev1.ServiceInternalTrafficPolicyLocal {
		internalPolicy = PolicyLocal
	}
	var healthCheckNodePort uint16
	if isLB && externalPolicy == PolicyLocal {
		healthCheckNodePort = port16(svc.Status.HealthCheckNodePort)
	}
	var lbIPs []netip.Addr
	var sourceRanges []netip.Prefix
	if isLB {
		lbIPs = loadBalancerIPs(svc.Status.LoadBalancer.Ingress, f)
		sourceRanges = prefixesOf(svc.Spec.LoadBalancerSourceRanges, f)
	}
	externalIPs := addrsOf(svc.Spec.ExternalIPs, f)
	affinity := sessionAffinity(svc)

	var out []*ServicePort
	for _, sp := range svc.Spec.Ports {
		proto := protocolOf(sp.Protocol)
		port := port16(sp.Port)
		// The CRD admits only TCP, UDP and SCTP and ports 1-65535; a port that
		// got past it anyway (an older schema, a direct etcd write) is left out
		// rather than failing the whole family's rules.
		if port == 0 || !proto.Valid() {
			continue
		}
		p := &ServicePort{
			Name:                     ServicePortName{Namespace: svc.Namespace, Name: svc.Name, Port: sp.Name, Protocol: proto},
			Port:                     port,
			ClusterIP:                clusterIP,
			HealthCheckNodePort:      healthCheckNodePort,
			ExternalIPs:              externalIPs,
			LoadBalancerIPs:          lbIPs,
			LoadBalancerSourceRanges: sourceRanges,
			SessionAffinity:          affinity,
			ExternalTrafficPolicy:    externalPolicy,
			InternalTrafficPolicy:    internalPolicy,
			Endpoints:                endpointsOf(svcSlices, f, sp.Name, proto, nodeName),
		}
		if hasNodePorts {
			p.NodePort = nodePortOf(svc.Status.Ports, port, proto)
		}
		out = append(out, p)
	}
	return out
}

// clusterIPOf returns the cluster IP of svc in family f from status: what svcplane
// allocated, not what spec asked for. A headless Service has none.
func clusterIPOf(svc *v1alpha1.Service, f Family) (netip.Addr, bool) {
	ips := svc.Status.ClusterIPs
	if len(ips) == 0 && svc.Status.ClusterIP != "" {
		ips = []string{svc.Status.ClusterIP}
	}
	for _, s := range ips {
		if s == v1alpha1.ClusterIPNone {
			return netip.Addr{}, false
		}
		if a, err := netip.ParseAddr(s); err == nil && FamilyOf(a) == f {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// nodePortOf returns the node port status records for the spec port (port, proto).
func nodePortOf(ports []v1alpha1.ServicePortStatus, port uint16, proto Protocol) uint16 {
	for _, ps := range ports {
		if port16(ps.Port) == port && protocolOf(ps.Protocol) == proto {
			return port16(ps.NodePort)
		}
	}
	return 0
}

// loadBalancerIPs returns the VIP-mode ingress IPs of family f.
func loadBalancerIPs(ingress []corev1.LoadBalancerIngress, f Family) []netip.Addr {
	var ips []string
	for _, in := range ingress {
		if in.IP == "" || (in.IPMode != nil && *in.IPMode != corev1.LoadBalancerIPModeVIP) {
			continue
		}
		ips = append(ips, in.IP)
	}
	return addrsOf(ips, f)
}

func sessionAffinity(svc *v1alpha1.Service) SessionAffinity {
	if svc.Spec.SessionAffinity != corev1.ServiceAffinityClientIP {
		return SessionAffinity{}
	}
	timeout := v1alpha1.DefaultClientIPTimeoutSeconds
	if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil && *c.ClientIP.TimeoutSeconds > 0 {
		timeout = *c.ClientIP.TimeoutSeconds
	}
	return SessionAffinity{ClientIP: true, TimeoutSeconds: timeout}
}

// endpointsOf returns the endpoints of family f that the slices give the service
// port (portName, proto), sorted and unique by address and port.
func endpointsOf(svcSlices []*discoveryv1.EndpointSlice, f Family, portName string, proto Protocol, nodeName string) []Endpoint {
	best := map[netip.AddrPort]Endpoint{}
	for _, s := range svcSlices {
		if !addressTypeIs(s.AddressType, f) {
			continue
		}
		port, ok := slicePort(s.Ports, portName, proto)
		if !ok {
			continue
		}
		for _, e := range s.Endpoints {
			// Like kube-proxy, only the first address counts: the API defines the
			// others as interchangeable duplicates of it.
			if len(e.Addresses) == 0 {
				continue
			}
			addr, err := netip.ParseAddr(e.Addresses[0])
			if err != nil || FamilyOf(addr) != f {
				continue
			}
			ep := Endpoint{Addr: addr, Port: port}
			ep.Ready = e.Conditions.Ready == nil || *e.Conditions.Ready
			ep.Serving = ep.Ready
			if e.Conditions.Serving != nil {
				ep.Serving = *e.Conditions.Serving
			}
			ep.Terminating = e.Conditions.Terminating != nil && *e.Conditions.Terminating
			if e.NodeName != nil {
				ep.NodeName = *e.NodeName
				ep.Local = nodeName != "" && ep.NodeName == nodeName
			}
			if e.Zone != nil {
				ep.Zone = *e.Zone
			}
			key := ep.AddrPort()
			if old, dup := best[key]; dup && usability(old) >= usability(ep) {
				continue
			}
			best[key] = ep
		}
	}
	if len(best) == 0 {
		return nil
	}
	out := make([]Endpoint, 0, len(best))
	for _, ep := range best {
		out = append(out, ep)
	}
	slices.SortFunc(out, func(a, b Endpoint) int {
		return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port))
	})
	return out
}

// usability ranks the conditions of duplicate endpoints: ready beats serving beats
// neither.
func usability(ep Endpoint) int {
	switch {
	case ep.Ready:
		return 2
	case ep.Serving:
		return 1
	}
	return 0
}

// slicePort returns the number a slice gives the port named name with protocol
// proto; unset name is "" and unset protocol TCP, as the API defines them.
func slicePort(ports []discoveryv1.EndpointPort, name string, proto Protocol) (uint16, bool) {
	for _, p := range ports {
		pName := ""
		if p.Name != nil {
			pName = *p.Name
		}
		var pProto corev1.Protocol
		if p.Protocol != nil {
			pProto = *p.Protocol
		}
		if pName != name || protocolOf(pProto) != proto || p.Port == nil {
			continue
		}
		if n := port16(*p.Port); n != 0 {
			return n, true
		}
	}
	return 0, false
}

func addressTypeIs(t discoveryv1.AddressType, f Family) bool {
	return (t == discoveryv1.AddressTypeIPv4 && f == IPv4) || (t == discoveryv1.AddressTypeIPv6 && f == IPv6)
}

// protocolOf returns p with the API default applied.
func protocolOf(p corev1.Protocol) Protocol {
	if p == "" {
		return TCP
	}
	return Protocol(p)
}

// port16 returns p as a port number, or 0 when it is not one.
func port16(p int32) uint16 {
	if p <= 0 || p > 65535 {
		return 0
	}
	return uint16(p)
}

// addrsOf parses the addresses of family f in ss, in order and without duplicates.
func addrsOf(ss []string, f Family) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil || FamilyOf(a) != f || slices.Contains(out, a) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// prefixesOf parses the prefixes of family f in ss, in order and without duplicates;
// a bare address is the prefix of that one address, as core Services accept it.
func prefixesOf(ss []string, f Family) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		s = strings.TrimSpace(s)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		p = p.Masked()
		if FamilyOf(p.Addr()) != f || slices.Contains(out, p) {
			continue
		}
		out = append(out, p)
	}
	return out
}
