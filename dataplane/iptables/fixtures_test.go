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

package iptables

// Conventions shared by the tests in this package:
//
//   - The node is "node-a" with addresses 192.168.0.10 and fd00:192:168::10; its
//     pods are in 10.244.1.0/24 and fd00:10:244:1::/64. Pods on other nodes are in
//     10.244.2.0/24 and fd00:10:244:2::/64. The pod network (cluster CIDR) is
//     10.244.0.0/16 and fd00:10:244::/56.
//   - Cluster IPs are in 10.96.0.0/16 and fd00:10:96::/112.
//   - Load-balancer IPs are in 192.0.2.0/24 and 2001:db8:2::/64, external IPs in
//     198.51.100.0/24 and 2001:db8:51::/64, clients outside the cluster in
//     203.0.113.0/24 and 2001:db8:113::/64.
//   - Service ports are "ns/<name>:<port>"; endpoints listen on 8080.

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/svcplane/svcplane/dataplane/model"
)

var (
	nodeIPv4    = netip.MustParseAddr("192.168.0.10")
	nodeIPv6    = netip.MustParseAddr("fd00:192:168::10")
	clusterCIDR = map[model.Family]netip.Prefix{
		model.IPv4: netip.MustParsePrefix("10.244.0.0/16"),
		model.IPv6: netip.MustParsePrefix("fd00:10:244::/56"),
	}
)

// state returns a State holding ports, each in the view of its cluster IP's
// family, with the node and cluster CIDRs of the conventions.
func state(ports ...*model.ServicePort) *model.State {
	st := &model.State{
		IPv4: model.View{Family: model.IPv4, NodeName: "node-a", NodeAddresses: []netip.Addr{nodeIPv4},
			NodePortsOnAllAddresses: true, ClusterCIDR: clusterCIDR[model.IPv4]},
		IPv6: model.View{Family: model.IPv6, NodeName: "node-a", NodeAddresses: []netip.Addr{nodeIPv6},
			NodePortsOnAllAddresses: true, ClusterCIDR: clusterCIDR[model.IPv6]},
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

// svcPort returns the TCP service port "ns/<name>:http" at clusterIP:80 with eps,
// changed by opts.
func svcPort(name, clusterIP string, eps []model.Endpoint, opts ...func(*model.ServicePort)) *model.ServicePort {
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

// eps returns endpoints on port 8080 from "addr[/flag...]" strings, flags being
// "local", "notready", "terminating", "notserving". Endpoints are ready and
// serving unless a flag says otherwise.
func eps(specs ...string) []model.Endpoint {
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

func nodePort(n uint16) func(*model.ServicePort) {
	return func(p *model.ServicePort) { p.NodePort = n }
}

func protocol(proto model.Protocol, port uint16) func(*model.ServicePort) {
	return func(p *model.ServicePort) {
		p.Name.Protocol = proto
		p.Name.Port = strings.ToLower(string(proto))
		p.Port = port
	}
}

func externalIPs(ips ...string) func(*model.ServicePort) {
	return func(p *model.ServicePort) {
		for _, ip := range ips {
			p.ExternalIPs = append(p.ExternalIPs, netip.MustParseAddr(ip))
		}
	}
}

func loadBalancer(ips ...string) func(*model.ServicePort) {
	return func(p *model.ServicePort) {
		for _, ip := range ips {
			p.LoadBalancerIPs = append(p.LoadBalancerIPs, netip.MustParseAddr(ip))
		}
	}
}

func sourceRanges(cidrs ...string) func(*model.ServicePort) {
	return func(p *model.ServicePort) {
		for _, c := range cidrs {
			p.LoadBalancerSourceRanges = append(p.LoadBalancerSourceRanges, netip.MustParsePrefix(c))
		}
	}
}

func externalLocal(healthCheckNodePort uint16) func(*model.ServicePort) {
	return func(p *model.ServicePort) {
		p.ExternalTrafficPolicy = model.PolicyLocal
		p.HealthCheckNodePort = healthCheckNodePort
	}
}

func internalLocal(p *model.ServicePort) { p.InternalTrafficPolicy = model.PolicyLocal }

func affinity(seconds int32) func(*model.ServicePort) {
	return func(p *model.ServicePort) {
		p.SessionAffinity = model.SessionAffinity{ClientIP: true, TimeoutSeconds: seconds}
	}
}
