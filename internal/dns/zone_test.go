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

package dns

// Addresses: the specification's own examples (10.3.0.0/24 for kubernetes,
// headless), documentation ranges elsewhere: cluster IPs 10.96.0.0/12 and
// fd00:10:96::/112, pods 10.244.0.0/16 and fd00:10:244::/48, external names
// under example.com.

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// svc returns a Service; clusterIPs "None" makes it headless.
func svc(ns, name string, clusterIPs []string, ports ...v1alpha1.ServicePort) *v1alpha1.Service {
	s := &v1alpha1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	s.Spec.Ports = ports
	if len(clusterIPs) == 1 && clusterIPs[0] == v1alpha1.ClusterIPNone {
		s.Spec.ClusterIP = v1alpha1.ClusterIPNone
		s.Status.ClusterIP = v1alpha1.ClusterIPNone
		return s
	}
	s.Status.ClusterIPs = clusterIPs
	if len(clusterIPs) > 0 {
		s.Status.ClusterIP = clusterIPs[0]
	}
	return s
}

func externalName(ns, name, target string) *v1alpha1.Service {
	s := &v1alpha1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	s.Spec.Type = corev1.ServiceTypeExternalName
	s.Spec.ExternalName = target
	return s
}

func svcPort(name string, proto corev1.Protocol, port int32) v1alpha1.ServicePort {
	return v1alpha1.ServicePort{Name: name, Protocol: proto, Port: port}
}

type ep struct {
	addrs    []string
	hostname string
	notReady bool
}

func slice(ns, name, service string, family discoveryv1.AddressType, eps []ep, ports ...discoveryv1.EndpointPort) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{
			v1alpha1.LabelServiceName: service,
			v1alpha1.LabelManagedBy:   v1alpha1.ManagedByValue,
		}},
		AddressType: family,
		Ports:       ports,
	}
	for _, e := range eps {
		e2 := discoveryv1.Endpoint{Addresses: e.addrs, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(!e.notReady)}}
		if e.hostname != "" {
			e2.Hostname = ptr.To(e.hostname)
		}
		s.Endpoints = append(s.Endpoints, e2)
	}
	return s
}

func epPort(name string, port int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr.To(name), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}
}

// specZone is a zone holding the specification's examples and a few more.
func specZone() *Zone {
	z := NewZone("cluster.local", 30)
	z.SetService(svc("default", "kubernetes", []string{"10.3.0.1"}, svcPort("https", corev1.ProtocolTCP, 443)))
	z.SetService(svc("default", "headless", []string{"None"}, svcPort("https", corev1.ProtocolTCP, 443), svcPort("", corev1.ProtocolTCP, 80)))
	z.SetEndpointSlice(slice("default", "headless-abc", "headless", discoveryv1.AddressTypeIPv4, []ep{
		{addrs: []string{"10.3.0.100"}, hostname: "my-pet"},
		{addrs: []string{"10.3.0.101"}, hostname: "my-pet-2"},
		{addrs: []string{"10.3.0.102"}},
		{addrs: []string{"10.3.0.103"}, hostname: "sick-pet", notReady: true},
	}, epPort("https", 8443)))
	z.SetService(externalName("default", "foo", "www.example.com"))
	// Dual-stack, with a UDP port and a capitalised port name.
	z.SetService(svc("shop", "web", []string{"10.96.0.10", "fd00:10:96::a"},
		svcPort("HTTP", corev1.ProtocolTCP, 80), svcPort("dns", corev1.ProtocolUDP, 53), svcPort("", corev1.ProtocolTCP, 81)))
	// A headless Service without ready endpoints, and one publishing them all.
	z.SetService(svc("shop", "empty", []string{"None"}, svcPort("http", corev1.ProtocolTCP, 80)))
	z.SetEndpointSlice(slice("shop", "empty-1", "empty", discoveryv1.AddressTypeIPv4, []ep{{addrs: []string{"10.244.1.20"}, notReady: true}}))
	all := svc("shop", "all", []string{"None"})
	all.Spec.PublishNotReadyAddresses = true
	z.SetService(all)
	z.SetEndpointSlice(slice("shop", "all-1", "all", discoveryv1.AddressTypeIPv4, []ep{{addrs: []string{"10.244.1.20"}, notReady: true}, {addrs: []string{"10.244.1.21"}}}))
	// A dual-stack headless Service: one slice per family, the pod's hostname in both.
	z.SetService(svc("shop", "db", []string{"None"}, svcPort("pg", corev1.ProtocolTCP, 5432)))
	z.SetEndpointSlice(slice("shop", "db-v4", "db", discoveryv1.AddressTypeIPv4, []ep{{addrs: []string{"10.244.1.30"}, hostname: "db-0"}}))
	z.SetEndpointSlice(slice("shop", "db-v6", "db", discoveryv1.AddressTypeIPv6, []ep{{addrs: []string{"fd00:10:244:1::30"}, hostname: "db-0"}}))
	// Not allocated yet.
	z.SetService(svc("shop", "pending", nil))
	return z
}

const soa = "cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 30"

func rrStrings(rrs []mdns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		s := strings.Join(strings.Fields(rr.String()), " ")
		if soa, ok := rr.(*mdns.SOA); ok {
			s = strings.Replace(s, " "+strconv.FormatUint(uint64(soa.Serial), 10)+" ", " SERIAL ", 1)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func TestLookup(t *testing.T) {
	z := specZone()
	nx, nodata := mdns.RcodeNameError, mdns.RcodeSuccess
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		notOur bool
		rcode  int
		answer []string
		extra  []string
		soa    bool // the SOA in the authority section
		chase  string
	}{
		// Specification 2.2.
		{name: "schema version", qname: "dns-version.cluster.local.", qtype: mdns.TypeTXT,
			answer: []string{`dns-version.cluster.local. 30 IN TXT "1.0.1"`}},
		{name: "schema version, other type", qname: "dns-version.cluster.local.", qtype: mdns.TypeA, rcode: nodata, soa: true},
		// Specification 2.3.1-2.3.3: a Service with a cluster IP.
		{name: "2.3.1 A", qname: "kubernetes.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"kubernetes.default.svc.cluster.local. 30 IN A 10.3.0.1"}},
		{name: "case-insensitive, the question's case kept", qname: "Kubernetes.DEFAULT.svc.Cluster.Local.", qtype: mdns.TypeA,
			answer: []string{"Kubernetes.DEFAULT.svc.Cluster.Local. 30 IN A 10.3.0.1"}},
		{name: "2.3.1 AAAA of an IPv4-only Service is NODATA", qname: "kubernetes.default.svc.cluster.local.", qtype: mdns.TypeAAAA, rcode: nodata, soa: true},
		{name: "2.3.2 SRV", qname: "_https._tcp.kubernetes.default.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{"_https._tcp.kubernetes.default.svc.cluster.local. 30 IN SRV 0 100 443 kubernetes.default.svc.cluster.local."},
			extra:  []string{"kubernetes.default.svc.cluster.local. 30 IN A 10.3.0.1"}},
		{name: "2.3.2 SRV of an unknown port", qname: "_http._tcp.kubernetes.default.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: nx, soa: true},
		{name: "2.3.2 SRV of the wrong protocol", qname: "_https._udp.kubernetes.default.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: nx, soa: true},
		{name: "2.3.2 SRV name, A asked", qname: "_https._tcp.kubernetes.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: nodata, soa: true},
		{name: "_tcp below a Service is an empty non-terminal", qname: "_tcp.kubernetes.default.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: nodata, soa: true},
		{name: "_udp without a named UDP port does not exist", qname: "_udp.kubernetes.default.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: nx, soa: true},
		{name: "2.3.3 PTR", qname: "1.0.3.10.in-addr.arpa.", qtype: mdns.TypePTR,
			answer: []string{"1.0.3.10.in-addr.arpa. 30 IN PTR kubernetes.default.svc.cluster.local."}},
		{name: "names below a ClusterIP Service do not exist", qname: "x.kubernetes.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: nx, soa: true},
		// Dual-stack.
		{name: "dual-stack A", qname: "web.shop.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"web.shop.svc.cluster.local. 30 IN A 10.96.0.10"}},
		{name: "dual-stack AAAA", qname: "web.shop.svc.cluster.local.", qtype: mdns.TypeAAAA,
			answer: []string{"web.shop.svc.cluster.local. 30 IN AAAA fd00:10:96::a"}},
		{name: "ANY has both", qname: "web.shop.svc.cluster.local.", qtype: mdns.TypeANY,
			answer: []string{"web.shop.svc.cluster.local. 30 IN A 10.96.0.10", "web.shop.svc.cluster.local. 30 IN AAAA fd00:10:96::a"}},
		{name: "MX of a Service is NODATA", qname: "web.shop.svc.cluster.local.", qtype: mdns.TypeMX, rcode: nodata, soa: true},
		{name: "SRV of a capitalised port name", qname: "_http._tcp.web.shop.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{"_http._tcp.web.shop.svc.cluster.local. 30 IN SRV 0 100 80 web.shop.svc.cluster.local."},
			extra:  []string{"web.shop.svc.cluster.local. 30 IN A 10.96.0.10", "web.shop.svc.cluster.local. 30 IN AAAA fd00:10:96::a"}},
		{name: "SRV of a UDP port", qname: "_dns._udp.web.shop.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{"_dns._udp.web.shop.svc.cluster.local. 30 IN SRV 0 100 53 web.shop.svc.cluster.local."},
			extra:  []string{"web.shop.svc.cluster.local. 30 IN A 10.96.0.10", "web.shop.svc.cluster.local. 30 IN AAAA fd00:10:96::a"}},
		{name: "IPv6 PTR", qname: "a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.", qtype: mdns.TypePTR,
			answer: []string{"a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa. 30 IN PTR web.shop.svc.cluster.local."}},
		{name: "PTR name, A asked", qname: "10.0.96.10.in-addr.arpa.", qtype: mdns.TypeA, rcode: nodata, soa: true},
		{name: "a Service not allocated yet exists without addresses", qname: "pending.shop.svc.cluster.local.", qtype: mdns.TypeA, rcode: nodata, soa: true},
		// Specification 2.4: a headless Service.
		{name: "2.4.1 A of the ready endpoints", qname: "headless.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{
				"headless.default.svc.cluster.local. 30 IN A 10.3.0.100",
				"headless.default.svc.cluster.local. 30 IN A 10.3.0.101",
				"headless.default.svc.cluster.local. 30 IN A 10.3.0.102",
			}},
		{name: "2.4.1 A of a hostname", qname: "my-pet.headless.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"my-pet.headless.default.svc.cluster.local. 30 IN A 10.3.0.100"}},
		{name: "2.4.1 an endpoint without hostname is named by its address", qname: "10-3-0-102.headless.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"10-3-0-102.headless.default.svc.cluster.local. 30 IN A 10.3.0.102"}},
		{name: "2.4.1 an unready endpoint has no name", qname: "sick-pet.headless.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: nx, soa: true},
		{name: "2.4.1 no ready endpoints: NXDOMAIN", qname: "empty.shop.svc.cluster.local.", qtype: mdns.TypeA, rcode: nx, soa: true},
		{name: "2.4.1 no ready endpoints: no SRV either", qname: "_http._tcp.empty.shop.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: nx, soa: true},
		{name: "publishNotReadyAddresses answers every endpoint", qname: "all.shop.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"all.shop.svc.cluster.local. 30 IN A 10.244.1.20", "all.shop.svc.cluster.local. 30 IN A 10.244.1.21"}},
		{name: "a hostname with an address of each family: AAAA", qname: "db-0.db.shop.svc.cluster.local.", qtype: mdns.TypeAAAA,
			answer: []string{"db-0.db.shop.svc.cluster.local. 30 IN AAAA fd00:10:244:1::30"}},
		{name: "a hostname with an address of each family: A", qname: "db-0.db.shop.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"db-0.db.shop.svc.cluster.local. 30 IN A 10.244.1.30"}},
		{name: "2.4.2 SRV per ready endpoint, on the endpoints' port", qname: "_https._tcp.headless.default.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{
				"_https._tcp.headless.default.svc.cluster.local. 30 IN SRV 0 33 8443 10-3-0-102.headless.default.svc.cluster.local.",
				"_https._tcp.headless.default.svc.cluster.local. 30 IN SRV 0 33 8443 my-pet-2.headless.default.svc.cluster.local.",
				"_https._tcp.headless.default.svc.cluster.local. 30 IN SRV 0 33 8443 my-pet.headless.default.svc.cluster.local.",
			},
			extra: []string{
				"10-3-0-102.headless.default.svc.cluster.local. 30 IN A 10.3.0.102",
				"my-pet-2.headless.default.svc.cluster.local. 30 IN A 10.3.0.101",
				"my-pet.headless.default.svc.cluster.local. 30 IN A 10.3.0.100",
			}},
		{name: "2.4.3 PTR of a headless endpoint", qname: "100.0.3.10.in-addr.arpa.", qtype: mdns.TypePTR,
			answer: []string{"100.0.3.10.in-addr.arpa. 30 IN PTR my-pet.headless.default.svc.cluster.local."}},
		{name: "2.4.3 an unready endpoint has no PTR: not ours", qname: "103.0.3.10.in-addr.arpa.", qtype: mdns.TypePTR, notOur: true},
		// Specification 2.5: ExternalName.
		{name: "2.5 CNAME, A asked", qname: "foo.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"foo.default.svc.cluster.local. 30 IN CNAME www.example.com."}, chase: "www.example.com."},
		{name: "2.5 CNAME asked", qname: "foo.default.svc.cluster.local.", qtype: mdns.TypeCNAME,
			answer: []string{"foo.default.svc.cluster.local. 30 IN CNAME www.example.com."}},
		// Specification 2.6: pod records.
		{name: "2.6 pod A", qname: "10-244-1-10.shop.pod.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"10-244-1-10.shop.pod.cluster.local. 30 IN A 10.244.1.10"}},
		{name: "pod AAAA", qname: "fd00-10-244-1--a.shop.pod.cluster.local.", qtype: mdns.TypeAAAA,
			answer: []string{"fd00-10-244-1--a.shop.pod.cluster.local. 30 IN AAAA fd00:10:244:1::a"}},
		{name: "pod name that is no address", qname: "web-1.shop.pod.cluster.local.", qtype: mdns.TypeA, rcode: nx, soa: true},
		// The rest of the zone.
		{name: "apex SOA", qname: "cluster.local.", qtype: mdns.TypeSOA, answer: []string{soa}},
		{name: "apex A", qname: "cluster.local.", qtype: mdns.TypeA, rcode: nodata, soa: true},
		{name: "svc is an empty non-terminal", qname: "svc.cluster.local.", qtype: mdns.TypeA, rcode: nodata, soa: true},
		{name: "a namespace with Services is an empty non-terminal", qname: "shop.svc.cluster.local.", qtype: mdns.TypeA, rcode: nodata, soa: true},
		{name: "a namespace without Services does not exist", qname: "nowhere.svc.cluster.local.", qtype: mdns.TypeA, rcode: nx, soa: true},
		{name: "an unknown Service", qname: "nope.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: nx, soa: true},
		{name: "an unknown name in the zone", qname: "www.cluster.local.", qtype: mdns.TypeA, rcode: nx, soa: true},
		{name: "too deep", qname: "a._https._tcp.kubernetes.default.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: nx, soa: true},
		// Not the zone's: upstream.
		{name: "outside the cluster domain", qname: "www.example.com.", qtype: mdns.TypeA, notOur: true},
		{name: "a suffix that only looks alike", qname: "xcluster.local.", qtype: mdns.TypeA, notOur: true},
		{name: "reverse of an unknown address", qname: "1.2.0.192.in-addr.arpa.", qtype: mdns.TypePTR, notOur: true},
		{name: "reverse zone itself", qname: "10.in-addr.arpa.", qtype: mdns.TypePTR, notOur: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := z.Lookup(tc.qname, tc.qtype)
			if res.Ours == tc.notOur {
				t.Fatalf("Ours = %v, want %v", res.Ours, !tc.notOur)
			}
			if tc.notOur {
				return
			}
			if res.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", mdns.RcodeToString[res.Rcode], mdns.RcodeToString[tc.rcode])
			}
			if got := rrStrings(res.Answer); !slices.Equal(got, tc.answer) && !(len(got) == 0 && len(tc.answer) == 0) {
				t.Errorf("answer\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.answer, "\n"))
			}
			if got := rrStrings(res.Extra); !slices.Equal(got, tc.extra) && !(len(got) == 0 && len(tc.extra) == 0) {
				t.Errorf("extra\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.extra, "\n"))
			}
			wantNs := []string{}
			if tc.soa {
				wantNs = []string{soa}
			}
			if got := rrStrings(res.Ns); !slices.Equal(got, wantNs) {
				t.Errorf("authority %q, want %q", got, wantNs)
			}
			if res.Chase != tc.chase {
				t.Errorf("chase %q, want %q", res.Chase, tc.chase)
			}
		})
	}
}

func TestZoneUpdates(t *testing.T) {
	z := NewZone("cluster.local.", 5)
	a := func(qname string) []string {
		t.Helper()
		return rrStrings(z.Lookup(qname, mdns.TypeA).Answer)
	}
	ptrOf := func(qname string) []string {
		t.Helper()
		return rrStrings(z.Lookup(qname, mdns.TypePTR).Answer)
	}

	// A slice may arrive before its Service.
	z.SetEndpointSlice(slice("ns", "h-1", "h", discoveryv1.AddressTypeIPv4, []ep{{addrs: []string{"10.244.1.10"}}}))
	if got := z.Lookup("h.ns.svc.cluster.local.", mdns.TypeA); got.Rcode != mdns.RcodeNameError {
		t.Fatalf("before the Service: %v", got)
	}
	z.SetService(svc("ns", "h", []string{"None"}))
	if got := a("h.ns.svc.cluster.local."); !slices.Equal(got, []string{"h.ns.svc.cluster.local. 5 IN A 10.244.1.10"}) {
		t.Fatalf("after the Service: %q", got)
	}
	if got := ptrOf("10.1.244.10.in-addr.arpa."); len(got) != 1 {
		t.Fatalf("PTR: %q", got)
	}
	// A second slice adds, an update replaces, a deletion removes.
	z.SetEndpointSlice(slice("ns", "h-2", "h", discoveryv1.AddressTypeIPv4, []ep{{addrs: []string{"10.244.1.11"}}}))
	z.SetEndpointSlice(slice("ns", "h-1", "h", discoveryv1.AddressTypeIPv4, []ep{{addrs: []string{"10.244.1.12"}}}))
	if got := a("h.ns.svc.cluster.local."); len(got) != 2 || !strings.HasSuffix(got[0], "10.244.1.11") || !strings.HasSuffix(got[1], "10.244.1.12") {
		t.Fatalf("after the updates: %q", got)
	}
	if z.Lookup("10.1.244.10.in-addr.arpa.", mdns.TypePTR).Ours {
		t.Fatal("the replaced address keeps its PTR")
	}
	z.DeleteEndpointSlice("ns", "h-2")
	// A slice that loses its service-name label leaves its Service.
	unlabelled := slice("ns", "h-1", "", discoveryv1.AddressTypeIPv4, []ep{{addrs: []string{"10.244.1.12"}}})
	z.SetEndpointSlice(unlabelled)
	if got := z.Lookup("h.ns.svc.cluster.local.", mdns.TypeA); got.Rcode != mdns.RcodeNameError {
		t.Fatalf("without slices: %v", got)
	}
	if s := z.Sizes(); s.EndpointSlices != 0 || s.Services != 1 || s.ReverseNames != 0 {
		t.Fatalf("sizes %+v", s)
	}

	// A Service that changes type, and is deleted.
	z.SetService(svc("ns", "web", []string{"10.96.0.10"}))
	if got := ptrOf("10.0.96.10.in-addr.arpa."); len(got) != 1 {
		t.Fatalf("PTR: %q", got)
	}
	z.SetService(externalName("ns", "web", "db.example.com."))
	if z.Lookup("10.0.96.10.in-addr.arpa.", mdns.TypePTR).Ours {
		t.Fatal("an ExternalName Service keeps its old cluster IP's PTR")
	}
	if got := rrStrings(z.Lookup("web.ns.svc.cluster.local.", mdns.TypeA).Answer); !slices.Equal(got, []string{"web.ns.svc.cluster.local. 5 IN CNAME db.example.com."}) {
		t.Fatalf("ExternalName: %q", got)
	}
	z.DeleteService("ns", "web")
	z.DeleteService("ns", "h")
	z.DeleteService("ns", "never-existed")
	if got := z.Lookup("ns.svc.cluster.local.", mdns.TypeA); got.Rcode != mdns.RcodeNameError {
		t.Fatalf("a namespace without Services: %v", got)
	}
	if s := z.Sizes(); s != (Sizes{}) {
		t.Fatalf("sizes after deleting everything: %+v", s)
	}

	// Two Services sharing a cluster IP (a manual address reused while the old
	// one goes away): both names answer the PTR, and each leaves with its own.
	z.SetService(svc("ns", "a", []string{"10.96.0.20"}))
	z.SetService(svc("ns", "b", []string{"10.96.0.20"}))
	if got := ptrOf("20.0.96.10.in-addr.arpa."); len(got) != 2 {
		t.Fatalf("shared PTR: %q", got)
	}
	z.DeleteService("ns", "a")
	if got := ptrOf("20.0.96.10.in-addr.arpa."); !slices.Equal(got, []string{"20.0.96.10.in-addr.arpa. 5 IN PTR b.ns.svc.cluster.local."}) {
		t.Fatalf("shared PTR after one left: %q", got)
	}
}

func TestInvalidInputs(t *testing.T) {
	z := NewZone("cluster.local", 30)
	// An ExternalName that is no domain name: the name exists, with nothing.
	z.SetService(externalName("ns", "bad", "not a name!"))
	if got := z.Lookup("bad.ns.svc.cluster.local.", mdns.TypeA); got.Rcode != mdns.RcodeSuccess || len(got.Answer) != 0 {
		t.Fatalf("invalid externalName: %v", got)
	}
	// Unparsable addresses and ports are skipped, not fatal.
	s := svc("ns", "odd", []string{"10.96.0.300", "10.96.0.30"}, svcPort("big", corev1.ProtocolTCP, 70000))
	z.SetService(s)
	if got := rrStrings(z.Lookup("odd.ns.svc.cluster.local.", mdns.TypeA).Answer); len(got) != 1 {
		t.Fatalf("odd: %q", got)
	}
	if got := z.Lookup("_big._tcp.odd.ns.svc.cluster.local.", mdns.TypeSRV); got.Rcode != mdns.RcodeNameError {
		t.Fatalf("port 70000: %v", got)
	}
	z.SetEndpointSlice(slice("ns", "odd-1", "odd", discoveryv1.AddressTypeIPv4, []ep{{addrs: []string{"nonsense"}}}))
	fqdn := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "f", Labels: map[string]string{v1alpha1.LabelServiceName: "odd"}},
		AddressType: discoveryv1.AddressTypeFQDN, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"example.com"}}}}
	z.SetEndpointSlice(fqdn)
	// Reverse names that are no address.
	for _, q := range []string{"300.0.96.10.in-addr.arpa.", "01.0.96.10.in-addr.arpa.", "x.0.96.10.in-addr.arpa.", "g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa."} {
		if z.Lookup(q, mdns.TypePTR).Ours {
			t.Errorf("%s is the zone's", q)
		}
	}
}

// TestConcurrentLookups has lookups race a watch's updates; run it with -race.
func TestConcurrentLookups(t *testing.T) {
	z := specZone()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			ip := "10.96.1." + strconv.Itoa(i%250+1)
			z.SetService(svc("shop", "churn", []string{ip}, svcPort("http", corev1.ProtocolTCP, 80)))
			z.SetEndpointSlice(slice("shop", "db-v4", "db", discoveryv1.AddressTypeIPv4, []ep{{addrs: []string{"10.244.1." + strconv.Itoa(i%250+1)}, hostname: "db-0"}}))
			if i%3 == 0 {
				z.DeleteService("shop", "churn")
			}
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		for _, q := range []struct {
			name  string
			qtype uint16
		}{
			{"churn.shop.svc.cluster.local.", mdns.TypeA},
			{"_http._tcp.churn.shop.svc.cluster.local.", mdns.TypeSRV},
			{"db-0.db.shop.svc.cluster.local.", mdns.TypeA},
			{"1.1.96.10.in-addr.arpa.", mdns.TypePTR},
			{"shop.svc.cluster.local.", mdns.TypeA},
		} {
			res := z.Lookup(q.name, q.qtype)
			if !res.Ours && q.qtype != mdns.TypePTR {
				t.Fatalf("%s not ours", q.name)
			}
			_ = z.Sizes()
		}
	}
}
