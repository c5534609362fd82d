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

package dataplanetest

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/svcplane/svcplane/dataplane/model"
)

// The node's addresses and the pod network of the conventions.
var (
	NodeIPv4    = netip.MustParseAddr("192.168.0.10")
	NodeIPv6    = netip.MustParseAddr("fd00:192:168::10")
	ClusterCIDR = map[model.Family]netip.Prefix{
		model.IPv4: netip.MustParsePrefix("10.244.0.0/16"),
		model.IPv6: netip.MustParsePrefix("fd00:10:244::/56"),
	}
)

// NodeAddr returns the node's address of family.
func NodeAddr(family model.Family) netip.Addr {
	if family == model.IPv6 {
		return NodeIPv6
	}
	return NodeIPv4
}

// State returns a State holding ports, each in the view of its cluster IP's
// family, with the node and cluster CIDRs of the conventions.
func State(ports ...*model.ServicePort) *model.State {
	st := &model.State{
		IPv4: model.View{Family: model.IPv4, NodeName: "node-a", NodeAddresses: []netip.Addr{NodeIPv4},
			NodePortsOnAllAddresses: true, ClusterCIDR: ClusterCIDR[model.IPv4]},
		IPv6: model.View{Family: model.IPv6, NodeName: "node-a", NodeAddresses: []netip.Addr{NodeIPv6},
			NodePortsOnAllAddresses: true, ClusterCIDR: ClusterCIDR[model.IPv6]},
	}
	for _, p := range ports {
		v := st.View(model.FamilyOf(p.ClusterIP))
		v.ServicePorts = append(v.ServicePorts, p)
	}
	for _, f := range model.Families {
		slices.SortFunc(st.View(f).ServicePorts, func(a, b *model.ServicePort) int { return a.Name.Compare(b.Name) })
	}
	return st
}

// Families returns the families st has service ports in.
func Families(st *model.State) []model.Family {
	var out []model.Family
	for _, f := range model.Families {
		if len(st.View(f).ServicePorts) > 0 {
			out = append(out, f)
		}
	}
	return out
}

// SvcPort returns the TCP service port "ns/<name>:http" at clusterIP:80 with eps,
// changed by opts.
func SvcPort(name, clusterIP string, eps []model.Endpoint, opts ...func(*model.ServicePort)) *model.ServicePort {
	p := &model.ServicePort{
		Name:                  model.ServicePortName{Namespace: "ns", Name: name, Port: "http", Protocol: model.TCP},
		Port:                  80,
		ClusterIP:             netip.MustParseAddr(clusterIP),
		ExternalTrafficPolicy: model.PolicyCluster,
		InternalTrafficPolicy: model.PolicyCluster,
		Endpoints:             eps,
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Eps returns endpoints on port 8080 from "addr[/flag...]" strings, flags being
// "local", "notready", "terminating", "notserving". Endpoints are ready and
// serving unless a flag says otherwise.
func Eps(specs ...string) []model.Endpoint {
	var out []model.Endpoint
	for _, s := range specs {
		parts := strings.Split(s, "/")
		e := model.Endpoint{Addr: netip.MustParseAddr(parts[0]), Port: 8080, Ready: true, Serving: true, NodeName: "node-b"}
		for _, f := range parts[1:] {
			switch f {
			case "local":
				e.Local, e.NodeName = true, "node-a"
			case "notready":
				e.Ready = false
			case "notserving":
				e.Serving = false
			case "terminating":
				e.Terminating = true
			default:
				panic("unknown endpoint flag " + f)
			}
		}
		out = append(out, e)
	}
	return out
}

// NodePort gives the port node port n.
func NodePort(n uint16) func(*model.ServicePort) {
	return func(p *model.ServicePort) { p.NodePort = n }
}

// Protocol makes the port proto on port, named after the protocol.
func Protocol(proto model.Protocol, port uint16) func(*model.ServicePort) {
	return func(p *model.ServicePort) {
		p.Name.Protocol = proto
		p.Name.Port = strings.ToLower(string(proto))
		p.Port = port
	}
}

// ExternalIPs gives the port external IPs.
func ExternalIPs(ips ...string) func(*model.ServicePort) {
	return func(p *model.ServicePort) {
		for _, ip := range ips {
			p.ExternalIPs = append(p.ExternalIPs, netip.MustParseAddr(ip))
		}
	}
}

// LoadBalancer gives the port load-balancer IPs.
func LoadBalancer(ips ...string) func(*model.ServicePort) {
	return func(p *model.ServicePort) {
		for _, ip := range ips {
			p.LoadBalancerIPs = append(p.LoadBalancerIPs, netip.MustParseAddr(ip))
		}
	}
}

// SourceRanges gives the port loadBalancerSourceRanges.
func SourceRanges(cidrs ...string) func(*model.ServicePort) {
	return func(p *model.ServicePort) {
		for _, c := range cidrs {
			p.LoadBalancerSourceRanges = append(p.LoadBalancerSourceRanges, netip.MustParsePrefix(c))
		}
	}
}

// ExternalLocal sets externalTrafficPolicy Local and the health check node port.
func ExternalLocal(healthCheckNodePort uint16) func(*model.ServicePort) {
	return func(p *model.ServicePort) {
		p.ExternalTrafficPolicy = model.PolicyLocal
		p.HealthCheckNodePort = healthCheckNodePort
	}
}

// InternalLocal sets internalTrafficPolicy Local.
func InternalLocal(p *model.ServicePort) { p.InternalTrafficPolicy = model.PolicyLocal }

// Affinity sets ClientIP affinity with a timeout.
func Affinity(seconds int32) func(*model.ServicePort) {
	return func(p *model.ServicePort) {
		p.SessionAffinity = model.SessionAffinity{ClientIP: true, TimeoutSeconds: seconds}
	}
}

// GoldenCases are the states every backend keeps its rendered rules of in
// testdata/<name>.golden, as its fake dumps them after one sync on a clean node.
// Only the families a case has services in are synced, to keep the files short.
func GoldenCases() map[string]*model.State {
	return map[string]*model.State{
		"clusterip": State(
			SvcPort("web", "10.96.0.10", Eps("10.244.1.5/local", "10.244.2.6", "10.244.2.7", "10.244.2.8/notready/notserving")),
		),
		"nodeport": State(
			SvcPort("web", "10.96.0.10", Eps("10.244.1.5/local", "10.244.2.6"), NodePort(30080)),
		),
		"loadbalancer-source-ranges": State(
			// The node's own network is allowed, so is the VIP looping back from it.
			SvcPort("web", "10.96.0.10", Eps("10.244.2.6"), NodePort(30080), LoadBalancer("192.0.2.10", "192.0.2.11"),
				SourceRanges("203.0.113.0/24", "192.168.0.0/24")),
			SvcPort("api", "10.96.0.11", Eps("10.244.2.7"), NodePort(30081), LoadBalancer("192.0.2.12"),
				SourceRanges("203.0.113.128/25")),
		),
		"external-ips": State(
			SvcPort("web", "10.96.0.10", Eps("10.244.2.6"), ExternalIPs("198.51.100.20", "198.51.100.21")),
		),
		"affinity": State(
			SvcPort("web", "10.96.0.10", Eps("10.244.1.5/local", "10.244.2.6"), Affinity(10800)),
		),
		"etp-local": State(
			SvcPort("web", "10.96.0.10", Eps("10.244.1.5/local", "10.244.2.6"), NodePort(30080), LoadBalancer("192.0.2.10"),
				ExternalLocal(32000)),
		),
		"etp-local-no-local-endpoints": State(
			SvcPort("web", "10.96.0.10", Eps("10.244.2.6"), NodePort(30080), LoadBalancer("192.0.2.10"),
				ExternalIPs("198.51.100.20"), ExternalLocal(32000)),
		),
		"itp-local": State(
			SvcPort("web", "10.96.0.10", Eps("10.244.1.5/local", "10.244.2.6"), InternalLocal),
			SvcPort("remote", "10.96.0.11", Eps("10.244.2.7"), InternalLocal),
		),
		"no-endpoints": State(
			SvcPort("web", "10.96.0.10", Eps("10.244.2.6/notready/notserving"), NodePort(30080), LoadBalancer("192.0.2.10"),
				SourceRanges("203.0.113.0/24"), ExternalIPs("198.51.100.20")),
		),
		"terminating-fallback": State(
			SvcPort("web", "10.96.0.10", Eps("10.244.1.5/local/notready/terminating", "10.244.2.6/notready/terminating",
				"10.244.2.7/notready/notserving/terminating")),
		),
		"dual-stack": State(
			SvcPort("web", "10.96.0.10", Eps("10.244.1.5/local"), NodePort(30080), LoadBalancer("192.0.2.10")),
			SvcPort("web", "fd00:10:96::10", Eps("fd00:10:244:1::5/local", "fd00:10:244:2::6"), NodePort(30080),
				LoadBalancer("2001:db8:2::10"), Affinity(600)),
			SvcPort("empty", "fd00:10:96::11", nil),
		),
		"udp-sctp": State(
			SvcPort("dns", "10.96.0.10", Eps("10.244.2.6"), Protocol(model.UDP, 53)),
			SvcPort("dns", "10.96.0.10", Eps("10.244.2.6"), Protocol(model.TCP, 53)),
			SvcPort("signal", "10.96.0.11", Eps("10.244.1.5/local"), Protocol(model.SCTP, 3868), NodePort(30868)),
		),
		"node-port-addresses-masquerade-all": func() *model.State {
			st := State(SvcPort("web", "10.96.0.10", Eps("10.244.2.6"), NodePort(30080)))
			st.IPv4.NodePortsOnAllAddresses = false
			st.IPv4.NodePortAddresses = []netip.Addr{NodeIPv4}
			st.IPv4.MasqueradeAll = true
			return st
		}(),
	}
}
