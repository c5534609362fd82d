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
	"strconv"
)

// Family is an IP address family. Backends render each family separately, because
// the kernel interfaces they drive are per family.
type Family uint8

const (
	// IPv4 is the IPv4 family.
	IPv4 Family = 4
	// IPv6 is the IPv6 family.
	IPv6 Family = 6
)

// Families lists every Family, IPv4 first.
var Families = []Family{IPv4, IPv6}

// String returns "IPv4" or "IPv6", the spelling of core v1.IPFamily.
func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return "Family(" + strconv.Itoa(int(f)) + ")"
}

// FamilyOf returns the family of addr; an IPv4-mapped IPv6 address is IPv6, as the
// kernel treats it.
func FamilyOf(addr netip.Addr) Family {
	if addr.Is4() {
		return IPv4
	}
	return IPv6
}

// Protocol is the transport protocol of a service port.
type Protocol string

const (
	// TCP is the default protocol of a service port.
	TCP Protocol = "TCP"
	// UDP is the UDP protocol.
	UDP Protocol = "UDP"
	// SCTP is the SCTP protocol.
	SCTP Protocol = "SCTP"
)

// Valid reports whether p is one of the protocols a service port may use.
func (p Protocol) Valid() bool {
	return p == TCP || p == UDP || p == SCTP
}

// TrafficPolicy is how a service port picks endpoints for one kind of traffic.
type TrafficPolicy string

const (
	// PolicyCluster sends traffic to any usable endpoint in the cluster; it is the
	// default of both traffic policies.
	PolicyCluster TrafficPolicy = "Cluster"
	// PolicyLocal sends traffic only to usable endpoints on this node.
	PolicyLocal TrafficPolicy = "Local"
)

// ServicePortName identifies one port of one Service. It is the key of a
// ServicePort and the input of every per-service name a backend derives.
type ServicePortName struct {
	Namespace string
	Name      string
	// Port is the port's name; empty for the single unnamed port of a Service.
	Port     string
	Protocol Protocol
}

// String returns "namespace/name:port", or "namespace/name" for an unnamed port: the
// spelling kube-proxy uses in its rule comments and logs. The protocol is left out
// because port names are unique within a Service.
func (n ServicePortName) String() string {
	s := n.Namespace + "/" + n.Name
	if n.Port != "" {
		s += ":" + n.Port
	}
	return s
}

// Compare orders names by namespace, name, port name and protocol.
func (n ServicePortName) Compare(o ServicePortName) int {
	return cmp.Or(
		cmp.Compare(n.Namespace, o.Namespace),
		cmp.Compare(n.Name, o.Name),
		cmp.Compare(n.Port, o.Port),
		cmp.Compare(n.Protocol, o.Protocol),
	)
}

// State is the desired dataplane of one node: one View per IP family.
type State struct {
	IPv4 View
	IPv6 View
}

// View returns the state of one family.
func (s *State) View(f Family) *View {
	if f == IPv6 {
		return &s.IPv6
	}
	return &s.IPv4
}

// View is the desired dataplane of one IP family. Every address in it belongs to
// Family.
type View struct {
	Family Family

	// NodeName is the name of the node the agent runs on.
	NodeName string
	// NodeAddresses are the node's addresses of this family (InternalIP, ExternalIP),
	// in the order the Node lists them.
	NodeAddresses []netip.Addr

	// NodePortsOnAllAddresses makes node ports answer on every local address of
	// the node (kube-proxy's default, "-m addrtype --dst-type LOCAL"). When false,
	// node ports answer only on NodePortAddresses, which may be empty.
	NodePortsOnAllAddresses bool
	// NodePortAddresses are the node addresses selected by Config.NodePortAddresses.
	NodePortAddresses []netip.Addr

	// ClusterCIDR is the pod network of this family. Traffic to a service from
	// outside it is masqueraded; invalid (the zero Prefix) when not configured, in
	// which case only MasqueradeAll masquerades service traffic.
	ClusterCIDR netip.Prefix
	// MasqueradeAll masquerades all traffic sent to a cluster IP.
	MasqueradeAll bool

	// ServicePorts are the service ports that have a cluster IP of this family,
	// sorted by Name.
	ServicePorts []*ServicePort
}

// ServicePort is everything a backend needs to program one port of one Service in
// one family.
type ServicePort struct {
	Name ServicePortName
	// Port is the service port number, the destination port at every service
	// address except node ports.
	Port uint16

	// ClusterIP is the Service's cluster IP of this family.
	ClusterIP netip.Addr
	// NodePort is the port opened on the node's addresses; 0 when there is none.
	NodePort uint16
	// HealthCheckNodePort is the Service's health check node port; 0 when there is
	// none. It is the same on every port of a Service.
	HealthCheckNodePort uint16
	// ExternalIPs are the spec's external IPs of this family.
	ExternalIPs []netip.Addr
	// LoadBalancerIPs are the status' load-balancer ingress IPs of this family whose
	// ipMode is VIP (or unset). Ingress in Proxy mode is left to the load balancer,
	// as kube-proxy does: capturing it here would skip the balancer's proxying.
	LoadBalancerIPs []netip.Addr
	// LoadBalancerSourceRanges are the client prefixes of this family allowed to
	// reach LoadBalancerIPs; empty allows everyone.
	LoadBalancerSourceRanges []netip.Prefix

	// SessionAffinity is the ClientIP affinity of the port, if any.
	SessionAffinity SessionAffinity
	// ExternalTrafficPolicy applies to node ports, external IPs and load-balancer
	// IPs; see ExternalPolicyLocal.
	ExternalTrafficPolicy TrafficPolicy
	// InternalTrafficPolicy applies to the cluster IP.
	InternalTrafficPolicy TrafficPolicy

	// Endpoints are the port's endpoints of this family, every condition included,
	// sorted by address and port and unique by them.
	Endpoints []Endpoint
}

// SessionAffinity is the ClientIP session affinity of a service port.
type SessionAffinity struct {
	// ClientIP sends a client's connections to the endpoint its last one used.
	ClientIP bool
	// TimeoutSeconds is how long that memory lasts after the client's last packet.
	TimeoutSeconds int32
}

// ExternallyAccessible reports whether the port has any address reachable from
// outside the cluster network: a node port, an external IP or a load-balancer IP.
func (p *ServicePort) ExternallyAccessible() bool {
	return p.NodePort != 0 || len(p.ExternalIPs) > 0 || len(p.LoadBalancerIPs) > 0
}

// ExternalPolicyLocal reports whether external traffic goes only to local endpoints.
// externalTrafficPolicy means nothing for a port that is not externally accessible.
func (p *ServicePort) ExternalPolicyLocal() bool {
	return p.ExternalTrafficPolicy == PolicyLocal && p.ExternallyAccessible()
}

// InternalPolicyLocal reports whether cluster IP traffic goes only to local endpoints.
func (p *ServicePort) InternalPolicyLocal() bool {
	return p.InternalTrafficPolicy == PolicyLocal
}

// Endpoint is one address a service port may send traffic to.
type Endpoint struct {
	Addr netip.Addr
	Port uint16

	// Ready, Serving and Terminating are the EndpointSlice conditions, with unset
	// values resolved as EndpointSlice consumers must: Ready unset is ready, Serving
	// unset is Ready, Terminating unset is false.
	Ready       bool
	Serving     bool
	Terminating bool

	// Local reports whether the endpoint runs on this node.
	Local bool
	// NodeName and Zone are where the endpoint runs, when the slice says.
	NodeName string
	Zone     string
}

// AddrPort returns the endpoint's address and port.
func (e Endpoint) AddrPort() netip.AddrPort {
	return netip.AddrPortFrom(e.Addr, e.Port)
}

// String returns "addr:port", or "[addr]:port" for IPv6.
func (e Endpoint) String() string {
	return e.AddrPort().String()
}
