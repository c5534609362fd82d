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

// Conventions shared by the tests in this package:
//
//   - Namespace "ns"; the node the agent runs on is "node-a", with addresses
//     192.168.0.10 and fd00:192:168::10; other nodes are "node-b", "node-c".
//   - Cluster IPs are in 10.96.0.0/16 and fd00:10:96::/112.
//   - Pod (endpoint) addresses are in 10.244.0.0/16 and fd00:10:244::/64.
//   - External, load-balancer and client addresses are in the documentation
//     ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32.

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// testNode has addresses of both families but a primary address of IPv4 only, so
// that tests see a family without one.
var testNode = NodeInfo{Name: "node-a", Addresses: []netip.Addr{
	netip.MustParseAddr("192.168.0.10"), netip.MustParseAddr("fd00:192:168::10"),
}, PrimaryAddresses: []netip.Addr{netip.MustParseAddr("192.168.0.10")}}

// service returns a ClusterIP Service "ns/<name>" with one TCP port "http" 80,
// allocated the IPv4 cluster IP 10.96.0.10, changed by opts.
func service(name string, opts ...func(*v1alpha1.Service)) *v1alpha1.Service {
	svc := &v1alpha1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: v1alpha1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: map[string]string{"app": name},
			Ports:    []v1alpha1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}},
		},
		Status: v1alpha1.ServiceStatus{
			ClusterIP:  "10.96.0.10",
			ClusterIPs: []string{"10.96.0.10"},
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports:      []v1alpha1.ServicePortStatus{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}},
		},
	}
	for _, o := range opts {
		o(svc)
	}
	return svc
}

func clusterIPs(ips ...string) func(*v1alpha1.Service) {
	return func(s *v1alpha1.Service) {
		s.Status.ClusterIPs = ips
		s.Status.ClusterIP = ""
		if len(ips) > 0 {
			s.Status.ClusterIP = ips[0]
		}
	}
}

func svcType(t corev1.ServiceType) func(*v1alpha1.Service) {
	return func(s *v1alpha1.Service) { s.Spec.Type = t }
}

func nodePorts(ports ...int32) func(*v1alpha1.Service) {
	return func(s *v1alpha1.Service) {
		for i := range ports {
			s.Status.Ports[i].NodePort = ports[i]
		}
	}
}

// slice returns an EndpointSlice of service svc, managed by svcplane, with the port
// "http" 8080/TCP and the given endpoints.
func slice(name, svc string, at discoveryv1.AddressType, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: map[string]string{
			v1alpha1.LabelServiceName: svc,
			v1alpha1.LabelManagedBy:   v1alpha1.ManagedByValue,
		}},
		AddressType: at,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8080)}},
		Endpoints:   eps,
	}
}

// ep returns an endpoint at addr on node; conds are any of "ready", "serving",
// "terminating", "notready", "notserving" (unset conditions stay nil).
func ep(addr, node string, conds ...string) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{addr}}
	if node != "" {
		e.NodeName = ptr.To(node)
	}
	for _, c := range conds {
		switch c {
		case "ready":
			e.Conditions.Ready = ptr.To(true)
		case "notready":
			e.Conditions.Ready = ptr.To(false)
		case "serving":
			e.Conditions.Serving = ptr.To(true)
		case "notserving":
			e.Conditions.Serving = ptr.To(false)
		case "terminating":
			e.Conditions.Terminating = ptr.To(true)
		}
	}
	return e
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// endpoint returns a model endpoint at "addr:port", ready, serving and remote
// unless changed by flags: "local", "notready", "notserving", "terminating".
func endpoint(addrPort string, flags ...string) Endpoint {
	ap := netip.MustParseAddrPort(addrPort)
	e := Endpoint{Addr: ap.Addr(), Port: ap.Port(), Ready: true, Serving: true}
	for _, f := range flags {
		switch f {
		case "local":
			e.Local = true
		case "notready":
			e.Ready = false
		case "notserving":
			e.Serving = false
		case "terminating":
			e.Terminating = true
		}
	}
	return e
}

// onNode sets the NodeName the model copies from the slice.
func onNode(e Endpoint, node string) Endpoint {
	e.NodeName = node
	return e
}

func TestBuildServicePorts(t *testing.T) {
	web := ServicePortName{Namespace: "ns", Name: "web", Port: "http", Protocol: TCP}
	tests := []struct {
		name     string
		services []*v1alpha1.Service
		slices   []*discoveryv1.EndpointSlice
		want     []*ServicePort // the IPv4 view
	}{{
		name:     "cluster IP with ready endpoints on this node and another",
		services: []*v1alpha1.Service{service("web")},
		slices: []*discoveryv1.EndpointSlice{slice("web-1", "web", discoveryv1.AddressTypeIPv4,
			ep("10.244.2.5", "node-b", "ready"), ep("10.244.1.5", "node-a"))},
		want: []*ServicePort{{
			Name: web, Port: 80, ClusterIP: netip.MustParseAddr("10.96.0.10"),
			ExternalTrafficPolicy: PolicyCluster, InternalTrafficPolicy: PolicyCluster,
			Endpoints: []Endpoint{
				onNode(endpoint("10.244.1.5:8080", "local"), "node-a"),
				onNode(endpoint("10.244.2.5:8080"), "node-b"),
			},
		}},
	}, {
		name:     "headless Services get nothing",
		services: []*v1alpha1.Service{service("web", clusterIPs("None"))},
		slices:   []*discoveryv1.EndpointSlice{slice("web-1", "web", discoveryv1.AddressTypeIPv4, ep("10.244.1.5", "node-a"))},
	}, {
		name: "ExternalName Services get nothing",
		services: []*v1alpha1.Service{service("web", clusterIPs(), svcType(corev1.ServiceTypeExternalName), func(s *v1alpha1.Service) {
			s.Spec.ExternalName = "example.com"
			s.Spec.Ports = nil
		})},
	}, {
		name:     "a Service not allocated yet gets nothing, whatever spec asks",
		services: []*v1alpha1.Service{service("web", clusterIPs(), func(s *v1alpha1.Service) { s.Spec.ClusterIP = "10.96.0.10" })},
	}, {
		name:     "status.clusterIP alone is enough",
		services: []*v1alpha1.Service{service("web", func(s *v1alpha1.Service) { s.Status.ClusterIPs = nil })},
		want: []*ServicePort{{
			Name: web, Port: 80, ClusterIP: netip.MustParseAddr("10.96.0.10"),
			ExternalTrafficPolicy: PolicyCluster, InternalTrafficPolicy: PolicyCluster,
		}},
	}, {
		name: "NodePort takes its node port from status",
		services: []*v1alpha1.Service{service("web", svcType(corev1.ServiceTypeNodePort), nodePorts(30080),
			func(s *v1alpha1.Service) { s.Spec.Ports[0].NodePort = 31000 /* asked for, not allocated */ })},
		want: []*ServicePort{{
			Name: web, Port: 80, ClusterIP: netip.MustParseAddr("10.96.0.10"), NodePort: 30080,
			ExternalTrafficPolicy: PolicyCluster, InternalTrafficPolicy: PolicyCluster,
		}},
	}, {
		name:     "a ClusterIP Service ignores a node port left in status",
		services: []*v1alpha1.Service{service("web", nodePorts(30080))},
		want: []*ServicePort{{
			Name: web, Port: 80, ClusterIP: netip.MustParseAddr("10.96.0.10"),
			ExternalTrafficPolicy: PolicyCluster, InternalTrafficPolicy: PolicyCluster,
		}},
	}, {
		name: "LoadBalancer: VIP ingress only, source ranges, health check node port with eTP Local",
		services: []*v1alpha1.Service{service("web", svcType(corev1.ServiceTypeLoadBalancer), nodePorts(30080), func(s *v1alpha1.Service) {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Spec.LoadBalancerSourceRanges = []string{"203.0.113.0/24", " 198.51.100.7 ", "2001:db8::/64", "203.0.113.9/24"}
			s.Status.HealthCheckNodePort = 32000
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{
				{IP: "192.0.2.10"},
				{IP: "192.0.2.11", IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)},
				{IP: "192.0.2.12", IPMode: ptr.To(corev1.LoadBalancerIPModeProxy)},
				{Hostname: "lb.example.com"},
				{IP: "2001:db8::10"},
			}
		})},
		want: []*ServicePort{{
			Name: web, Port: 80, ClusterIP: netip.MustParseAddr("10.96.0.10"), NodePort: 30080, HealthCheckNodePort: 32000,
			LoadBalancerIPs:          addrs("192.0.2.10", "192.0.2.11"),
			LoadBalancerSourceRanges: prefixes("203.0.113.0/24", "198.51.100.7/32"),
			ExternalTrafficPolicy:    PolicyLocal, InternalTrafficPolicy: PolicyCluster,
		}},
	}, {
		name: "a port with a protocol the API does not know is left out, not the others",
		services: []*v1alpha1.Service{service("web", func(s *v1alpha1.Service) {
			s.Spec.Ports = append(s.Spec.Ports, v1alpha1.ServicePort{Name: "bad", Protocol: "ICMP", Port: 81})
		})},
		want: []*ServicePort{{
			Name: web, Port: 80, ClusterIP: netip.MustParseAddr("10.96.0.10"),
			ExternalTrafficPolicy: PolicyCluster, InternalTrafficPolicy: PolicyCluster,
		}},
	}, {
		name: "a health check node port needs eTP Local",
		services: []*v1alpha1.Service{service("web", svcType(corev1.ServiceTypeLoadBalancer), func(s *v1alpha1.Service) {
			s.Status.HealthCheckNodePort = 32000
		})},
		want: []*ServicePort{{
			Name: web, Port: 80, ClusterIP: netip.MustParseAddr("10.96.0.10"),
			ExternalTrafficPolicy: PolicyCluster, InternalTrafficPolicy: PolicyCluster,
		}},
	}, {
		name: "external IPs, affinity with the default timeout, iTP Local",
		services: []*v1alpha1.Service{service("web", func(s *v1alpha1.Service) {
			s.Spec.ExternalIPs = []string{"198.51.100.20", "2001:db8::20", "198.51.100.20"}
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
		})},
		want: []*ServicePort{{
			Name: web, Port: 80, ClusterIP: netip.MustParseAddr("10.96.0.10"),
			ExternalIPs:           addrs("198.51.100.20"),
			SessionAffinity:       SessionAffinity{ClientIP: true, TimeoutSeconds: 10800},
			ExternalTrafficPolicy: PolicyCluster, InternalTrafficPolicy: PolicyLocal,
		}},
	}, {
		name: "affinity with an explicit timeout",
		services: []*v1alpha1.Service{service("web", func(s *v1alpha1.Service) {
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &v1alpha1.SessionAffinityConfig{ClientIP: &v1alpha1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](60)}}
		})},
		want: []*ServicePort{{
			Name: web, Port: 80, ClusterIP: netip.MustParseAddr("10.96.0.10"),
			SessionAffinity:       SessionAffinity{ClientIP: true, TimeoutSeconds: 60},
			ExternalTrafficPolicy: PolicyCluster, InternalTrafficPolicy: PolicyCluster,
		}},
	}, {
		name:     "conditions: unset ready is ready, unset serving follows ready, terminating",
		services: []*v1alpha1.Service{service("web")},
		slices: []*discoveryv1.EndpointSlice{slice("web-1", "web", discoveryv1.AddressTypeIPv4,
			ep("10.244.1.1", ""),
			ep("10.244.1.2", "", "notready"),
			ep("10.244.1.3", "", "notready", "serving", "terminating"),
			ep("10.244.1.4", "", "notready", "notserving", "terminating"),
		)},
		want: []*ServicePort{{
			Name: web, Port: 80, ClusterIP: netip.MustParseAddr("10.96.0.10"),
			ExternalTrafficPolicy: PolicyCluster, InternalTrafficPolicy: PolicyCluster,
			Endpoints: []Endpoint{
				endpoint("10.244.1.1:8080"),
				endpoint("10.244.1.2:8080", "notready", "notserving"),
				endpoint("10.244.1.3:8080", "notready", "terminating"),
				endpoint("10.244.1.4:8080", "notready", "notserving", "terminating"),
			},
		}},
	}, {
		name:     "endpoints listed twice appear once, with the most usable conditions",
		services: []*v1alpha1.Service{service("web")},
		slices: []*discoveryv1.EndpointSlice{
			slice("web-b", "web", discoveryv1.AddressTypeIPv4, ep("10.244.1.1", "node-b", "ready"), ep("10.244.1.2", "node-b", "notready")),
			slice("web-a", "web", discoveryv1.AddressTypeIPv4, ep("10.244.1.1", "node-b", "notready"), ep("10.244.1.2", "node-b", "notready", "serving")),
		},
		want: []*ServicePort{{
			Name: web, Port: 80, ClusterIP: netip.MustParseAddr("10.96.0.10"),
			ExternalTrafficPolicy: PolicyCluster, InternalTrafficPolicy: PolicyCluster,
			Endpoints: []Endpoint{
				onNode(endpoint("10.244.1.1:8080"), "node-b"),
				onNode(endpoint("10.244.1.2:8080", "notready"), "node-b"),
			},
		}},
	}, {
		name:     "hand-made slices count; unlabelled, foreign-namespace, FQDN and port-less slices do not",
		services: []*v1alpha1.Service{service("web")},
		slices: []*discoveryv1.EndpointSlice{
			func() *discoveryv1.EndpointSlice {
				s := slice("manual", "web", discoveryv1.AddressTypeIPv4, ep("10.244.9.9", ""))
				s.Labels[v1alpha1.LabelManagedBy] = "someone-else"
				return s
			}(),
			func() *discoveryv1.EndpointSlice {
				s := slice("kube", "web", discoveryv1.AddressTypeIPv4, ep("10.244.9.1", ""))
				s.Labels = map[string]string{"kubernetes.io/service-name": "web"}
				return s
			}(),
			func() *discoveryv1.EndpointSlice {
				s := slice("other-ns", "web", discoveryv1.AddressTypeIPv4, ep("10.244.9.2", ""))
				s.Namespace = "other"
				return s
			}(),
			slice("fqdn", "web", discoveryv1.AddressTypeFQDN, ep("db.example.com", "")),
			func() *discoveryv1.EndpointSlice {
				s := slice("no-port", "web", discoveryv1.AddressTypeIPv4, ep("10.244.9.3", ""))
				s.Ports = []discoveryv1.EndpointPort{{Name: ptr.To("metrics"), Port: ptr.To[int32](9090)}}
				return s
			}(),
			func() *discoveryv1.EndpointSlice {
				s := slice("udp", "web", discoveryv1.AddressTypeIPv4, ep("10.244.9.4", ""))
				s.Ports[0].Protocol = ptr.To(corev1.ProtocolUDP)
				return s
			}(),
		},
		want: []*ServicePort{{
			Name: web, Port: 80, ClusterIP: netip.MustParseAddr("10.96.0.10"),
			ExternalTrafficPolicy: PolicyCluster, InternalTrafficPolicy: PolicyCluster,
			Endpoints: []Endpoint{endpoint("10.244.9.9:8080")},
		}},
	}, {
		name: "ports resolve by name and protocol; unset slice name and protocol are \"\" and TCP",
		services: []*v1alpha1.Service{service("dns", func(s *v1alpha1.Service) {
			s.Spec.Ports = []v1alpha1.ServicePort{{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53}, {Name: "dns-tcp", Port: 53}}
			s.Status.Ports = []v1alpha1.ServicePortStatus{{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53}, {Name: "dns-tcp", Protocol: corev1.ProtocolTCP, Port: 53}}
		}), service("single", clusterIPs("10.96.0.11"), func(s *v1alpha1.Service) {
			s.Spec.Ports = []v1alpha1.ServicePort{{Port: 443, Protocol: corev1.ProtocolSCTP}}
		})},
		slices: []*discoveryv1.EndpointSlice{
			func() *discoveryv1.EndpointSlice {
				s := slice("dns-1", "dns", discoveryv1.AddressTypeIPv4, ep("10.244.3.3", ""))
				s.Ports = []discoveryv1.EndpointPort{
					{Name: ptr.To("dns"), Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To[int32](5353)},
					{Name: ptr.To("dns-tcp"), Port: ptr.To[int32](5354)},
				}
				return s
			}(),
			func() *discoveryv1.EndpointSlice {
				s := slice("single-1", "single", discoveryv1.AddressTypeIPv4, ep("10.244.4.4", ""))
				s.Ports = []discoveryv1.EndpointPort{{Protocol: ptr.To(corev1.ProtocolSCTP), Port: ptr.To[int32](8443)}}
				return s
			}(),
		},
		want: []*ServicePort{{
			Name: ServicePortName{Namespace: "ns", Name: "dns", Port: "dns", Protocol: UDP}, Port: 53,
			ClusterIP:             netip.MustParseAddr("10.96.0.10"),
			ExternalTrafficPolicy: PolicyCluster, InternalTrafficPolicy: PolicyCluster,
			Endpoints: []Endpoint{endpoint("10.244.3.3:5353")},
		}, {
			Name: ServicePortName{Namespace: "ns", Name: "dns", Port: "dns-tcp", Protocol: TCP}, Port: 53,
			ClusterIP:             netip.MustParseAddr("10.96.0.10"),
			ExternalTrafficPolicy: PolicyCluster, InternalTrafficPolicy: PolicyCluster,
			Endpoints: []Endpoint{endpoint("10.244.3.3:5354")},
		}, {
			Name: ServicePortName{Namespace: "ns", Name: "single", Protocol: SCTP}, Port: 443,
			ClusterIP:             netip.MustParseAddr("10.96.0.11"),
			ExternalTrafficPolicy: PolicyCluster, InternalTrafficPolicy: PolicyCluster,
			Endpoints: []Endpoint{endpoint("10.244.4.4:8443")},
		}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := Build(tt.services, tt.slices, testNode, Config{})
			if got := st.IPv4.ServicePorts; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("IPv4 service ports:\n got %s\nwant %s", dump(got), dump(tt.want))
			}
			if got := st.IPv6.ServicePorts; len(got) != 0 {
				t.Errorf("IPv6 service ports: got %s, want none", dump(got))
			}
		})
	}
}

func TestBuildDualStack(t *testing.T) {
	svc := service("web", clusterIPs("fd00:10:96::10", "10.96.0.10"), svcType(corev1.ServiceTypeLoadBalancer), nodePorts(30080), func(s *v1alpha1.Service) {
		s.Spec.ExternalIPs = []string{"198.51.100.20", "2001:db8::20"}
		s.Spec.LoadBalancerSourceRanges = []string{"203.0.113.0/24", "2001:db8:1::/48"}
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.0.2.10"}, {IP: "2001:db8::10"}}
	})
	epSlices := []*discoveryv1.EndpointSlice{
		slice("web-v4", "web", discoveryv1.AddressTypeIPv4, ep("10.244.1.5", "node-a")),
		slice("web-v6", "web", discoveryv1.AddressTypeIPv6, ep("fd00:10:244::5", "node-b"),
			// A v4 address in a v6 slice is not trusted into either view.
			ep("10.244.1.6", "node-b")),
	}
	st := Build([]*v1alpha1.Service{svc}, epSlices, testNode, Config{})

	name := ServicePortName{Namespace: "ns", Name: "web", Port: "http", Protocol: TCP}
	want4 := []*ServicePort{{
		Name: name, Port: 80, ClusterIP: netip.MustParseAddr("10.96.0.10"), NodePort: 30080,
		ExternalIPs: addrs("198.51.100.20"), LoadBalancerIPs: addrs("192.0.2.10"),
		LoadBalancerSourceRanges: prefixes("203.0.113.0/24"),
		ExternalTrafficPolicy:    PolicyCluster, InternalTrafficPolicy: PolicyCluster,
		Endpoints: []Endpoint{onNode(endpoint("10.244.1.5:8080", "local"), "node-a")},
	}}
	want6 := []*ServicePort{{
		Name: name, Port: 80, ClusterIP: netip.MustParseAddr("fd00:10:96::10"), NodePort: 30080,
		ExternalIPs: addrs("2001:db8::20"), LoadBalancerIPs: addrs("2001:db8::10"),
		LoadBalancerSourceRanges: prefixes("2001:db8:1::/48"),
		ExternalTrafficPolicy:    PolicyCluster, InternalTrafficPolicy: PolicyCluster,
		Endpoints: []Endpoint{onNode(endpoint("[fd00:10:244::5]:8080"), "node-b")},
	}}
	if !reflect.DeepEqual(st.IPv4.ServicePorts, want4) {
		t.Errorf("IPv4:\n got %s\nwant %s", dump(st.IPv4.ServicePorts), dump(want4))
	}
	if !reflect.DeepEqual(st.IPv6.ServicePorts, want6) {
		t.Errorf("IPv6:\n got %s\nwant %s", dump(st.IPv6.ServicePorts), dump(want6))
	}
	if st.IPv4.Family != IPv4 || st.IPv6.Family != IPv6 {
		t.Errorf("families: %v, %v", st.IPv4.Family, st.IPv6.Family)
	}

	// A single-stack IPv6 Service stays out of the IPv4 view entirely, even with an
	// IPv4 external IP: a family's rules need that family's cluster IP.
	v6only := service("v6", clusterIPs("fd00:10:96::11"), func(s *v1alpha1.Service) { s.Spec.ExternalIPs = []string{"198.51.100.21"} })
	st = Build([]*v1alpha1.Service{v6only}, nil, testNode, Config{})
	if len(st.IPv4.ServicePorts) != 0 || len(st.IPv6.ServicePorts) != 1 || len(st.IPv6.ServicePorts[0].ExternalIPs) != 0 {
		t.Errorf("IPv6-only Service: IPv4 %s, IPv6 %s", dump(st.IPv4.ServicePorts), dump(st.IPv6.ServicePorts))
	}
}

func TestBuildViews(t *testing.T) {
	tests := []struct {
		name       string
		cfg        Config
		want4      View
		want6      View
		serviceIPs []string
	}{{
		name:  "defaults: node ports on every address, no cluster CIDR",
		want4: View{Family: IPv4, NodeName: "node-a", NodeAddresses: addrs("192.168.0.10"), NodePortsOnAllAddresses: true},
		want6: View{Family: IPv6, NodeName: "node-a", NodeAddresses: addrs("fd00:192:168::10"), NodePortsOnAllAddresses: true},
	}, {
		name: "cluster CIDRs per family, masquerade-all",
		cfg:  Config{ClusterCIDRs: prefixes("10.244.0.0/16", "fd00:10:244::1/64"), MasqueradeAll: true},
		want4: View{Family: IPv4, NodeName: "node-a", NodeAddresses: addrs("192.168.0.10"), NodePortsOnAllAddresses: true,
			ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"), MasqueradeAll: true},
		want6: View{Family: IPv6, NodeName: "node-a", NodeAddresses: addrs("fd00:192:168::10"), NodePortsOnAllAddresses: true,
			ClusterCIDR: netip.MustParsePrefix("fd00:10:244::/64"), MasqueradeAll: true},
	}, {
		name: "node port addresses select node addresses; a family without a prefix keeps all",
		cfg:  Config{NodePortAddresses: prefixes("192.168.0.0/24", "10.0.0.0/8")},
		want4: View{Family: IPv4, NodeName: "node-a", NodeAddresses: addrs("192.168.0.10"),
			NodePortAddresses: addrs("192.168.0.10")},
		want6: View{Family: IPv6, NodeName: "node-a", NodeAddresses: addrs("fd00:192:168::10"), NodePortsOnAllAddresses: true},
	}, {
		name: "primary: the node's primary address of each family; none, no node ports",
		cfg:  Config{NodePortAddressesPrimary: true},
		want4: View{Family: IPv4, NodeName: "node-a", NodeAddresses: addrs("192.168.0.10"),
			NodePortAddresses: addrs("192.168.0.10")},
		want6: View{Family: IPv6, NodeName: "node-a", NodeAddresses: addrs("fd00:192:168::10")},
	}, {
		name:  "node port addresses matching nothing leave the family without node ports",
		cfg:   Config{NodePortAddresses: prefixes("10.0.0.0/8", "::/0")},
		want4: View{Family: IPv4, NodeName: "node-a", NodeAddresses: addrs("192.168.0.10")},
		want6: View{Family: IPv6, NodeName: "node-a", NodeAddresses: addrs("fd00:192:168::10"), NodePortsOnAllAddresses: true},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := Build(nil, nil, testNode, tt.cfg)
			if !reflect.DeepEqual(st.IPv4, tt.want4) {
				t.Errorf("IPv4 view:\n got %+v\nwant %+v", st.IPv4, tt.want4)
			}
			if !reflect.DeepEqual(st.IPv6, tt.want6) {
				t.Errorf("IPv6 view:\n got %+v\nwant %+v", st.IPv6, tt.want6)
			}
		})
	}
}

func TestBuildSortsAndDoesNotMutate(t *testing.T) {
	b := service("b", clusterIPs("10.96.0.2"))
	a := service("a", clusterIPs("10.96.0.1"), func(s *v1alpha1.Service) {
		s.Spec.Ports = []v1alpha1.ServicePort{{Name: "z", Port: 2}, {Name: "y", Port: 1}}
	})
	slices := []*discoveryv1.EndpointSlice{
		slice("b-2", "b", discoveryv1.AddressTypeIPv4, ep("10.244.0.2", "")),
		slice("b-1", "b", discoveryv1.AddressTypeIPv4, ep("10.244.0.1", "")),
	}
	st := Build([]*v1alpha1.Service{b, a}, slices, testNode, Config{})
	var got []string
	for _, p := range st.IPv4.ServicePorts {
		got = append(got, p.Name.String())
	}
	if want := []string{"ns/a:y", "ns/a:z", "ns/b:http"}; !reflect.DeepEqual(got, want) {
		t.Errorf("order: got %v, want %v", got, want)
	}
	if slices[0].Name != "b-2" {
		t.Errorf("Build reordered the caller's slices")
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{ClusterCIDRs: prefixes("10.244.0.0/16", "fd00:10:244::/64"), NodePortAddresses: prefixes("192.168.0.0/24")}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", ok, err)
	}
	if err := (Config{NodePortAddressesPrimary: true, NodePortAddresses: prefixes("192.168.0.0/24")}).Validate(); err == nil || !strings.Contains(err.Error(), `either "primary" or prefixes`) {
		t.Errorf("Validate(primary and prefixes) = %v", err)
	}
	bad := Config{ClusterCIDRs: append(prefixes("10.244.0.0/16", "10.245.0.0/16"), netip.Prefix{})}
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "at most one IPv4 cluster CIDR") || !strings.Contains(err.Error(), "not a valid prefix") {
		t.Errorf("Validate(two IPv4 CIDRs and an invalid one) = %v", err)
	}
}

func TestNodeInfoFromNode(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeHostName, Address: "node-a"},
		{Type: corev1.NodeInternalIP, Address: "192.168.0.10"},
		{Type: corev1.NodeInternalIP, Address: "fd00:192:168::10"},
		{Type: corev1.NodeExternalIP, Address: "203.0.113.10"},
		{Type: corev1.NodeExternalIP, Address: "192.168.0.10"},
		{Type: corev1.NodeInternalDNS, Address: "node-a.internal"},
	}}}
	want := NodeInfo{Name: "node-a", Addresses: addrs("192.168.0.10", "fd00:192:168::10", "203.0.113.10"),
		PrimaryAddresses: addrs("192.168.0.10", "fd00:192:168::10")}
	if got := NodeInfoFromNode(node); !reflect.DeepEqual(got, want) {
		t.Errorf("NodeInfoFromNode = %+v, want %+v", got, want)
	}

	// A family without an InternalIP takes its first ExternalIP; one with
	// neither has no primary address.
	node.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeExternalIP, Address: "203.0.113.10"},
		{Type: corev1.NodeInternalIP, Address: "192.168.0.10"},
		{Type: corev1.NodeExternalIP, Address: "2001:db8::10"},
		{Type: corev1.NodeExternalIP, Address: "2001:db8::11"},
	}
	if got, want := NodeInfoFromNode(node).PrimaryAddresses, addrs("192.168.0.10", "2001:db8::10"); !reflect.DeepEqual(got, want) {
		t.Errorf("PrimaryAddresses = %v, want %v", got, want)
	}
	node.Status.Addresses = node.Status.Addresses[:2]
	if got, want := NodeInfoFromNode(node).PrimaryAddresses, addrs("192.168.0.10"); !reflect.DeepEqual(got, want) {
		t.Errorf("IPv4-only node: PrimaryAddresses = %v, want %v", got, want)
	}
}

func TestServicePortNameString(t *testing.T) {
	if got := (ServicePortName{Namespace: "ns", Name: "web", Port: "http", Protocol: TCP}).String(); got != "ns/web:http" {
		t.Errorf("named port: %q", got)
	}
	if got := (ServicePortName{Namespace: "ns", Name: "web", Protocol: UDP}).String(); got != "ns/web" {
		t.Errorf("unnamed port: %q", got)
	}
}

func dump(ports []*ServicePort) string {
	var b strings.Builder
	b.WriteString("[")
	for _, p := range ports {
		fmt.Fprintf(&b, "\n  %+v", *p)
	}
	b.WriteString("]")
	return b.String()
}
