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
	"net/netip"
	"slices"
)

// Verdict is what a backend does with one kind of traffic to a service port.
type Verdict uint8

const (
	// Forward sends the traffic to one of the Route's endpoints.
	Forward Verdict = iota
	// Reject refuses the traffic with an ICMP port unreachable: the port has no
	// usable endpoint anywhere, so the client should fail at once.
	Reject
	// Drop discards the traffic silently: the port has usable endpoints, but none
	// the traffic's Local policy allows on this node. Dropping rather than
	// rejecting lets a client (or a load balancer's health check) retry another
	// node.
	Drop
)

// String returns the verdict's name.
func (v Verdict) String() string {
	switch v {
	case Forward:
		return "Forward"
	case Reject:
		return "Reject"
	case Drop:
		return "Drop"
	}
	return "Verdict(?)"
}

// Route is where one kind of traffic (internal: to the cluster IP; external: to a
// node port, an external IP or a load-balancer IP) to a service port goes.
type Route struct {
	// Policy is the endpoint set the traffic uses: PolicyLocal for Local
	// endpoints, PolicyCluster for Cluster ones.
	Policy TrafficPolicy
	// Endpoints are that set's endpoints; empty when Verdict is not Forward.
	Endpoints []Endpoint
	// Verdict is Forward when Endpoints has any, else Reject or Drop.
	Verdict Verdict
}

// PortPolicy is every decision about one service port that does not depend on the
// kernel interface a backend drives. Backends render it; they decide nothing
// themselves, so that every backend sends the same packet to the same place.
type PortPolicy struct {
	// Sets are the port's endpoints grouped by traffic policy.
	Sets EndpointSets

	// ClusterEndpoints and LocalEndpoints report whether some traffic picks among
	// Sets.Cluster or Sets.Local: whether a backend needs that endpoint choice
	// (kube-proxy's SVC and SVL chains) at all.
	ClusterEndpoints, LocalEndpoints bool

	// Internal is where cluster IP traffic goes.
	Internal Route
	// External is where node port, external IP and load-balancer IP traffic from
	// outside the cluster goes. Under externalTrafficPolicy Local, traffic to
	// those addresses from a pod or from the node itself takes ShortCircuit
	// instead, as if it had left through a load balancer and come back.
	External Route

	// ExternalEntry reports whether external addresses are captured at all: the
	// port has one and some endpoint is usable. When false and the port has
	// external addresses, their traffic gets External.Verdict in the filter stage.
	ExternalEntry bool
	// MasqueradeExternal reports whether external traffic is masqueraded, so that
	// the reply of an endpoint on another node comes back through this one:
	// always, except under externalTrafficPolicy Local, which keeps the client's
	// address.
	MasqueradeExternal bool
	// ShortCircuit reports whether pod and node-originated traffic to external
	// addresses goes to Sets.Cluster (and is masqueraded when it comes from the
	// node) rather than to External: true under externalTrafficPolicy Local.
	ShortCircuit bool

	// Firewall reports whether load-balancer IP traffic is filtered by source:
	// the port has load-balancer IPs, loadBalancerSourceRanges and a usable
	// endpoint. Traffic from elsewhere is dropped. Node ports and external IPs
	// ignore source ranges, as in Kubernetes.
	Firewall bool
	// SourceRanges are the client prefixes allowed to reach load-balancer IPs
	// when Firewall is set.
	SourceRanges []netip.Prefix
	// AllowLoadBalancerSources reports whether traffic whose source is one of the
	// port's own load-balancer IPs passes the firewall: a balancer that routes its
	// VIP to the node sends the node's own requests back with the VIP as source,
	// so they pass when one of the node's addresses is in SourceRanges.
	AllowLoadBalancerSources bool

	// Affinity is the port's ClientIP session affinity: a backend sends a client
	// back to the endpoint of its last connection, among the endpoints of the
	// Route its traffic takes, when that connection was at most
	// Affinity.TimeoutSeconds ago.
	Affinity SessionAffinity
}

// Decide returns the policy of service port p in view v.
func Decide(v *View, p *ServicePort) PortPolicy {
	sets := p.EndpointSets()
	pp := PortPolicy{
		Sets:             sets,
		ClusterEndpoints: len(sets.Cluster) > 0,
		LocalEndpoints:   len(sets.Local) > 0,
		Affinity:         p.SessionAffinity,
	}
	route := func(local bool) Route {
		if local {
			return Route{Policy: PolicyLocal, Endpoints: sets.Local, Verdict: verdict(sets.Any, len(sets.Local) > 0)}
		}
		return Route{Policy: PolicyCluster, Endpoints: sets.Cluster, Verdict: verdict(sets.Any, len(sets.Cluster) > 0)}
	}
	pp.Internal = route(p.InternalPolicyLocal())
	pp.External = route(p.ExternalPolicyLocal())

	// The entry exists whenever anything is reachable, even when external
	// traffic has no local endpoint: it still short-circuits traffic from pods
	// and from the node itself to the Cluster endpoints.
	pp.ExternalEntry = sets.Any && p.ExternallyAccessible()
	pp.MasqueradeExternal = !p.ExternalPolicyLocal()
	pp.ShortCircuit = p.ExternalPolicyLocal()

	pp.Firewall = sets.Any && len(p.LoadBalancerIPs) > 0 && len(p.LoadBalancerSourceRanges) > 0
	if pp.Firewall {
		pp.SourceRanges = p.LoadBalancerSourceRanges
		for _, src := range p.LoadBalancerSourceRanges {
			if slices.ContainsFunc(v.NodeAddresses, src.Contains) {
				pp.AllowLoadBalancerSources = true
				break
			}
		}
	}
	return pp
}

// verdict returns Forward when the route has endpoints, Reject when the port has
// none usable anywhere, and Drop when only the route's Local policy leaves it
// without.
func verdict(any, has bool) Verdict {
	switch {
	case has:
		return Forward
	case !any:
		return Reject
	}
	return Drop
}
