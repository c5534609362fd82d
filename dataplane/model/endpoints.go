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

// EndpointSets are the endpoints a service port sends traffic to under each traffic
// policy, chosen the way kube-proxy's CategorizeEndpoints chooses them (topology
// hints aside). Every backend uses them, so that an iptables node and an nftables
// node pick the same endpoints.
type EndpointSets struct {
	// Cluster are the endpoints used under the Cluster policy: every ready endpoint,
	// or, when none is ready anywhere, every serving endpoint that is terminating (so
	// that a rolling update's last connections still land somewhere). Empty when no
	// traffic to the port uses the Cluster policy.
	Cluster []Endpoint
	// Local are the endpoints used under the Local policy: the ready endpoints on this
	// node, or, when none is, its serving terminating ones. Empty when no traffic to
	// the port uses the Local policy.
	Local []Endpoint
	// Reachable is the union of Cluster and Local, sorted like ServicePort.Endpoints:
	// every endpoint some traffic may reach, i.e. every endpoint that needs rules.
	Reachable []Endpoint
	// Any reports whether the port has a usable endpoint anywhere in the cluster. A
	// port without one rejects connections; a port with one but none usable under a
	// Local policy drops that policy's traffic instead (the client may retry
	// another node).
	Any bool
}

// UsesClusterEndpoints reports whether some traffic to the port uses the Cluster
// policy: cluster IP traffic under internalTrafficPolicy Cluster, and any externally
// accessible port, because even under externalTrafficPolicy Local, traffic from pods
// and from the node itself to an external address takes the Cluster path (as if it
// had left the cluster and come back through a balancer).
func (p *ServicePort) UsesClusterEndpoints() bool {
	return !p.InternalPolicyLocal() || p.ExternallyAccessible()
}

// UsesLocalEndpoints reports whether some traffic to the port uses the Local policy.
func (p *ServicePort) UsesLocalEndpoints() bool {
	return p.InternalPolicyLocal() || p.ExternalPolicyLocal()
}

// EndpointSets returns the port's endpoints grouped by the traffic policy that uses
// them.
func (p *ServicePort) EndpointSets() EndpointSets {
	var sets EndpointSets
	if p.UsesClusterEndpoints() {
		sets.Cluster = filter(p.Endpoints, func(ep Endpoint) bool { return ep.Ready })
		if len(sets.Cluster) == 0 {
			sets.Cluster = filter(p.Endpoints, servingTerminating)
		}
		sets.Any = len(sets.Cluster) > 0
	}
	if !p.UsesLocalEndpoints() {
		sets.Reachable = sets.Cluster
		return sets
	}

	for _, ep := range p.Endpoints {
		if ep.Ready || servingTerminating(ep) {
			sets.Any = true
			break
		}
	}
	sets.Local = filter(p.Endpoints, func(ep Endpoint) bool { return ep.Local && ep.Ready })
	if len(sets.Local) == 0 {
		sets.Local = filter(p.Endpoints, func(ep Endpoint) bool { return ep.Local && servingTerminating(ep) })
	}

	if !p.UsesClusterEndpoints() {
		sets.Reachable = sets.Local
		return sets
	}
	// Both lists are subsequences of p.Endpoints, so walking p.Endpoints keeps the
	// union sorted without a sort.
	inCluster := make(map[Endpoint]bool, len(sets.Cluster))
	for _, ep := range sets.Cluster {
		inCluster[ep] = true
	}
	inLocal := make(map[Endpoint]bool, len(sets.Local))
	for _, ep := range sets.Local {
		inLocal[ep] = true
	}
	sets.Reachable = filter(p.Endpoints, func(ep Endpoint) bool { return inCluster[ep] || inLocal[ep] })
	return sets
}

// servingTerminating reports whether ep is a fallback endpoint: still serving while
// it shuts down.
func servingTerminating(ep Endpoint) bool {
	return ep.Serving && ep.Terminating
}

// filter returns the endpoints keep accepts. When it accepts all of them (the
// common case: every endpoint ready) it returns eps itself, capped so that an
// append cannot write into the caller's array, instead of a copy: backends call
// EndpointSets for every port on every sync.
func filter(eps []Endpoint, keep func(Endpoint) bool) []Endpoint {
	n := 0
	for _, ep := range eps {
		if keep(ep) {
			n++
		}
	}
	switch n {
	case 0:
		return nil
	case len(eps):
		return eps[:n:n]
	}
	out := make([]Endpoint, 0, n)
	for _, ep := range eps {
		if keep(ep) {
			out = append(out, ep)
		}
	}
	return out
}
