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

package ipvs

// IP conventions of these tests: node 192.168.0.10 and fd00::10, cluster IPs in
// 10.96.0.0/16 and fd00:10:96::/112, pods in 10.244.0.0/16 (10.244.1.0/24 on this
// node), external IPs in 198.51.100.0/24 and load-balancer IPs in 192.0.2.0/24
// (documentation ranges), node ports 30000-32767.

import (
	"net/netip"

	"github.com/svcplane/svcplane/dataplane/model"
	"github.com/svcplane/svcplane/internal/dataplanetest"
)

var (
	nodeIPv4 = netip.MustParseAddr("192.168.0.10")
	nodeIPv6 = netip.MustParseAddr("fd00::10")
)

// state returns a dual-stack node state holding ports, each in the view of its
// cluster IP's family, sorted as the model sorts them.
func state(ports ...*model.ServicePort) *model.State {
	st := &model.State{
		IPv4: model.View{Family: model.IPv4, NodeName: "node-a", NodeAddresses: []netip.Addr{nodeIPv4},
			NodePortsOnAllAddresses: true, ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16")},
		IPv6: model.View{Family: model.IPv6, NodeName: "node-a", NodeAddresses: []netip.Addr{nodeIPv6},
			NodePortsOnAllAddresses: true, ClusterCIDR: netip.MustParsePrefix("fd00:10:244::/48")},
	}
	for _, p := range ports {
		v := st.View(model.FamilyOf(p.ClusterIP))
		v.ServicePorts = append(v.ServicePorts, p)
	}
	return st
}

// svcPort returns port "http" (TCP 80) of Service default/name with a cluster IP.
func svcPort(name, clusterIP string, eps []model.Endpoint, opts ...func(*model.ServicePort)) *model.ServicePort {
	p := &model.ServicePort{
		Name:                  model.ServicePortName{Namespace: "default", Name: name, Port: "http", Protocol: model.TCP},
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

// eps and nodePort are the shared fixtures' helpers; svcPort and protocol stay
// local because the IPVS goldens name Services in "default" and ports by "http".
var (
	eps      = dataplanetest.Eps
	nodePort = dataplanetest.NodePort
)

func protocol(proto model.Protocol, port uint16) func(*model.ServicePort) {
	return func(p *model.ServicePort) { p.Name.Protocol, p.Port = proto, port }
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

func externalLocal(p *model.ServicePort) { p.ExternalTrafficPolicy = model.PolicyLocal }

func internalLocal(p *model.ServicePort) { p.InternalTrafficPolicy = model.PolicyLocal }

func affinity(seconds int32) func(*model.ServicePort) {
	return func(p *model.ServicePort) {
		p.SessionAffinity = model.SessionAffinity{ClientIP: true, TimeoutSeconds: seconds}
	}
}

// fixture is the state of the golden file: every kind of virtual server.
func fixture() *model.State {
	return state(
		svcPort("web", "10.96.0.10", eps("10.244.1.5/local", "10.244.2.6", "10.244.2.7", "10.244.2.8/notready/notserving"),
			nodePort(30080), loadBalancer("192.0.2.10"), sourceRanges("203.0.113.0/24", "192.168.0.0/24"), externalIPs("198.51.100.20")),
		svcPort("draining", "10.96.0.11", eps("10.244.2.9/notready/terminating", "10.244.2.10/notready/notserving/terminating")),
		svcPort("local-none", "10.96.0.12", eps("10.244.2.11"), nodePort(30082), loadBalancer("192.0.2.12"), externalLocal),
		svcPort("local-some", "10.96.0.13", eps("10.244.1.13/local", "10.244.2.13"), nodePort(30083), externalLocal),
		svcPort("empty", "10.96.0.14", nil, nodePort(30084)),
		svcPort("itp", "10.96.0.15", eps("10.244.1.15/local", "10.244.2.15"), internalLocal),
		svcPort("dns", "10.96.0.17", eps("10.244.2.17"), protocol(model.UDP, 53)),
		svcPort("diameter", "10.96.0.18", eps("10.244.2.18"), protocol(model.SCTP, 3868)),
		svcPort("sticky", "10.96.0.19", eps("10.244.1.19/local", "10.244.2.19"), affinity(10800)),
		svcPort("web", "fd00:10:96::10", eps("fd00:10:244:1::5/local", "fd00:10:244:2::6"), nodePort(30080)),
	)
}

// netipPrefix parses s, or returns the zero Prefix for "".
func netipPrefix(s string) netip.Prefix {
	if s == "" {
		return netip.Prefix{}
	}
	return netip.MustParsePrefix(s)
}
