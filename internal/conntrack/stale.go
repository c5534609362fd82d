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

package conntrack

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Stale returns the filters that clear the conntrack entries the change from the
// rules of prev to those of next leaves stale, sorted and without duplicates. It
// follows kube-proxy (pkg/proxy/conntrack and the endpoints change tracker that
// feeds it) for UDP service ports, family by family:
//
//  1. An endpoint that was serving and no longer is, because it was removed or its
//     serving condition turned false: the flows DNATed to it from each frontend of
//     its port (cluster IP, external IPs, load-balancer IPs, node port) are
//     cleared, so that the client's next datagram picks a live endpoint. As in
//     kube-proxy, only the serving condition counts, not readiness, traffic
//     policies or topology: a terminating endpoint that still serves keeps its
//     flows, like TCP connections drain, and a rules change that merely stops
//     choosing an endpoint for new flows leaves the old ones alone. kube-proxy
//     matches the endpoint by address only (the reply's source), so the flows
//     of that address behind the same frontend go, whatever their target port.
//  2. A port that had no serving endpoint and now has one: every flow to its
//     frontends is cleared. While it had none, packets were rejected, or before
//     the agent knew the port they went wherever the routing table sent them;
//     an entry confirmed then carries no DNAT, and conntrack would keep applying
//     it after the port gets endpoints. A port that is new in next counts as
//     having had none, as in kube-proxy, whose endpoints map starts empty.
//  3. A frontend that no longer exists, because its Service or port was deleted
//     or the port lost that address: every flow to it is cleared, so that a
//     cluster IP or node port handed to another Service does not keep reaching
//     the old one's endpoints. kube-proxy does this for deleted service ports;
//     a port that loses an external IP, a load-balancer IP or its node port is
//     treated the same here.
//
// A node port that answers on every local address is matched on its port alone,
// as kube-proxy matches it: the node's addresses are not all known to the model.
// TCP and SCTP ports get nothing, as in kube-proxy: their connections end with
// the endpoint, and a new connection is a new DNAT decision.
//
// A nil prev returns nil: without the state the kernel had, nothing can be shown
// to be stale (see Backend for the first sync).
func Stale(prev, next *model.State) []Filter {
	if prev == nil || next == nil {
		return nil
	}
	set := map[Filter]bool{}
	for _, family := range model.Families {
		staleInView(prev.View(family), next.View(family), set)
	}
	return slices.SortedFunc(maps.Keys(set), Filter.Compare)
}

// staleInView adds to set the filters of one family.
func staleInView(prev, next *model.View, set map[Filter]bool) {
	gone := map[model.ServicePortName]*model.ServicePort{}
	for _, sp := range prev.ServicePorts {
		if needsCleanup(sp.Name.Protocol) {
			gone[sp.Name] = sp
		}
	}
	for _, sp := range next.ServicePorts {
		if !needsCleanup(sp.Name.Protocol) {
			continue
		}
		was := gone[sp.Name]
		delete(gone, sp.Name)
		now := frontends(next, sp)
		if was == nil || !anyServing(was) {
			if anyServing(sp) { // 2
				for _, f := range now {
					set[f] = true
				}
			}
			if was == nil {
				continue
			}
		}

		before := frontends(prev, was)
		var kept []Filter
		for _, f := range before {
			if slices.Contains(now, f) {
				kept = append(kept, f)
			} else {
				set[f] = true // 3
			}
		}
		for _, ep := range was.Endpoints {
			if !ep.Serving || stillServing(sp, ep.AddrPort()) {
				continue
			}
			for _, f := range kept { // 1; frontends that went are cleared whole
				f.DNAT = ep.Addr
				set[f] = true
			}
		}
	}
	for _, sp := range gone { // 3: the port itself went
		for _, f := range frontends(prev, sp) {
			set[f] = true
		}
	}
}

// needsCleanup reports whether flows of protocol outlive a change of endpoints:
// only UDP's do, kube-proxy clears no other protocol.
func needsCleanup(protocol model.Protocol) bool {
	return protocol == model.UDP
}

// frontends returns a filter for every address and port sp's rules catch in view,
// with no DNAT address.
func frontends(view *model.View, sp *model.ServicePort) []Filter {
	base := Filter{Family: view.Family, Protocol: sp.Name.Protocol, Port: sp.Port}
	var out []Filter
	add := func(addr netip.Addr, port uint16) {
		f := base
		f.Dst, f.Port = addr, port
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if sp.ClusterIP.IsValid() {
		add(sp.ClusterIP, sp.Port)
	}
	for _, addr := range sp.ExternalIPs {
		add(addr, sp.Port)
	}
	for _, addr := range sp.LoadBalancerIPs {
		add(addr, sp.Port)
	}
	if sp.NodePort != 0 {
		if view.NodePortsOnAllAddresses {
			add(netip.Addr{}, sp.NodePort)
		} else {
			for _, addr := range view.NodePortAddresses {
				add(addr, sp.NodePort)
			}
		}
	}
	return out
}

// anyServing reports whether sp has a serving endpoint.
func anyServing(sp *model.ServicePort) bool {
	return slices.ContainsFunc(sp.Endpoints, func(ep model.Endpoint) bool { return ep.Serving })
}

// stillServing reports whether sp has a serving endpoint at ap.
func stillServing(sp *model.ServicePort, ap netip.AddrPort) bool {
	return slices.ContainsFunc(sp.Endpoints, func(ep model.Endpoint) bool {
		return ep.Serving && ep.AddrPort() == ap
	})
}

// needsScan returns the families of st whose entries Scan would look at: those
// with a UDP service port that has a serving endpoint.
func needsScan(st *model.State) []model.Family {
	var out []model.Family
	for _, family := range model.Families {
		if slices.ContainsFunc(st.View(family).ServicePorts, func(sp *model.ServicePort) bool {
			return needsCleanup(sp.Name.Protocol) && anyServing(sp)
		}) {
			out = append(out, family)
		}
	}
	return out
}

// Scan returns the filters that clear the entries of one family that st's rules
// would not have made: flows to a UDP service frontend with a serving endpoint
// that were DNATed to an address that is no serving endpoint of it, or not DNATed
// at all. It is how the first sync after a start repairs what changed while no
// agent ran, when there is no earlier state to compare with (Stale); kube-proxy
// runs the same check after every sync. Ports without a serving endpoint are left
// alone: their traffic is rejected, whatever conntrack holds. A node port matches
// entries sent to the node's addresses (NodeAddresses, or NodePortAddresses when
// those are limited) and to loopback, not every address, so that flows the node
// merely forwards are not touched.
func Scan(st *model.State, family model.Family, entries []Entry) []Filter {
	view := st.View(family)
	type frontend struct {
		addr netip.Addr
		port uint16
	}
	byFrontend := map[frontend]*model.ServicePort{}
	// byNodePort holds the node ports open on every local address, which
	// frontends gives without an address.
	byNodePort := map[uint16]*model.ServicePort{}
	for _, sp := range view.ServicePorts {
		if !needsCleanup(sp.Name.Protocol) || !anyServing(sp) {
			continue
		}
		for _, f := range frontends(view, sp) {
			if f.Dst.IsValid() {
				byFrontend[frontend{f.Dst, f.Port}] = sp
			} else {
				byNodePort[f.Port] = sp
			}
		}
	}
	onNode := func(addr netip.Addr) bool {
		return addr.IsLoopback() || slices.Contains(view.NodeAddresses, addr)
	}

	set := map[Filter]bool{}
	for _, e := range entries {
		if e.Family != family || !needsCleanup(e.Protocol) {
			continue
		}
		sp := byFrontend[frontend{e.Dst.Addr(), e.Dst.Port()}]
		if sp == nil {
			if np := byNodePort[e.Dst.Port()]; np != nil && onNode(e.Dst.Addr()) {
				sp = np
			}
		}
		if sp == nil {
			continue
		}
		f := Filter{Family: family, Protocol: e.Protocol, Dst: e.Dst.Addr(), Port: e.Dst.Port()}
		switch {
		case !e.DNAT.IsValid():
			f.Src = e.Src
		case !stillServing(sp, e.DNAT):
			f.DNAT = e.DNAT.Addr()
		default:
			continue
		}
		set[f] = true
	}
	return slices.SortedFunc(maps.Keys(set), Filter.Compare)
}
