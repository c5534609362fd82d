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

package ledger

// Address conventions used by every test in this package:
//
//   - Service CIDRs are 10.96.0.0/24 (254 usable addresses, 10.96.0.1-10.96.0.254)
//     and fd00:10:96::/120 (255 usable addresses; IPv6 has no broadcast address).
//     A dual-stack Book is "10.96.0.0/24,fd00:10:96::/120", IPv4 primary, unless a
//     test says otherwise.
//   - The /24 has a KEP-3070 static band of 16 addresses (10.96.0.1-10.96.0.16) that
//     automatic allocation only touches when the rest of the range is full. Tests that
//     mix automatic allocation with requested addresses request addresses from that
//     band (10.96.0.10, 10.96.0.11, ...), so an automatic choice can never collide with
//     them by chance. 10.96.0.50 is used where only requests are involved.
//   - Exhaustion tests use tiny ranges: 10.0.0.0/29 has 6 usable addresses
//     (10.0.0.1-10.0.0.6; .0 is the network and .7 the broadcast address).
//   - The node port range is 30000-30009 (10 ports). It is smaller than the minimum
//     static band, so automatic node ports may be any of the ten: tests request node
//     ports before anything is allocated automatically, or only after checking that
//     the port they request is free.
//   - 192.0.2.0/24 (TEST-NET-1, RFC 5737) is "outside the range"; 40000 and 29999 are
//     node ports outside the range.

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers/allocator"
)

const (
	v4CIDR        = "10.96.0.0/24"
	v6CIDR        = "fd00:10:96::/120"
	dualCIDRs     = v4CIDR + "," + v6CIDR
	dualV6First   = v6CIDR + "," + v4CIDR
	tinyCIDR      = "10.0.0.0/29"
	testNodePorts = "30000-30009"
	outsideIP     = "192.0.2.1"

	// autoV4 and autoV6 in a wanted ClusterIPs list stand for "an address that was
	// allocated automatically from the IPv4 (IPv6) range".
	autoV4 = "<auto IPv4>"
	autoV6 = "<auto IPv6>"
	// anyNodePort as a wanted node port stands for "some port of 30000-30009".
	anyNodePort int32 = -1
)

const (
	ipv4 = corev1.IPv4Protocol
	ipv6 = corev1.IPv6Protocol
)

// ---------------------------------------------------------------------------------
// helpers

func newBook(t testing.TB, cidrs string) *Book {
	t.Helper()
	return newBookPorts(t, cidrs, testNodePorts)
}

func newBookPorts(t testing.TB, cidrs, ports string) *Book {
	t.Helper()
	p, err := ParseServiceCIDRs(cidrs)
	if err != nil {
		t.Fatalf("ParseServiceCIDRs(%q): %v", cidrs, err)
	}
	b, err := NewBook(p, ports)
	if err != nil {
		t.Fatalf("NewBook(%q, %q): %v", cidrs, ports, err)
	}
	return b
}

func uidOf(key string) types.UID { return types.UID("uid-" + key) }

func tcp(name string, port int32) v1alpha1.ServicePort {
	return v1alpha1.ServicePort{Name: name, Protocol: corev1.ProtocolTCP, Port: port}
}

func udp(name string, port int32) v1alpha1.ServicePort {
	return v1alpha1.ServicePort{Name: name, Protocol: corev1.ProtocolUDP, Port: port}
}

// np returns p with a requested node port.
func np(p v1alpha1.ServicePort, nodePort int32) v1alpha1.ServicePort {
	p.NodePort = nodePort
	return p
}

func clusterIPSvc(ports ...v1alpha1.ServicePort) *v1alpha1.ServiceSpec {
	return &v1alpha1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: ports, Selector: map[string]string{"app": "x"}}
}

func nodePortSvc(ports ...v1alpha1.ServicePort) *v1alpha1.ServiceSpec {
	s := clusterIPSvc(ports...)
	s.Type = corev1.ServiceTypeNodePort
	return s
}

func lbSvc(ports ...v1alpha1.ServicePort) *v1alpha1.ServiceSpec {
	s := clusterIPSvc(ports...)
	s.Type = corev1.ServiceTypeLoadBalancer
	return s
}

func lbLocalSvc(ports ...v1alpha1.ServicePort) *v1alpha1.ServiceSpec {
	s := lbSvc(ports...)
	s.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	return s
}

func headlessSvc(withSelector bool, ports ...v1alpha1.ServicePort) *v1alpha1.ServiceSpec {
	s := clusterIPSvc(ports...)
	s.ClusterIP = v1alpha1.ClusterIPNone
	s.ClusterIPs = []string{v1alpha1.ClusterIPNone}
	if !withSelector {
		s.Selector = nil
	}
	return s
}

func externalNameSvc() *v1alpha1.ServiceSpec {
	return &v1alpha1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"}
}

// withIPs sets clusterIP and clusterIPs as a user would.
func withIPs(s *v1alpha1.ServiceSpec, ips ...string) *v1alpha1.ServiceSpec {
	s.ClusterIP = ips[0]
	s.ClusterIPs = ips
	return s
}

func withPolicy(s *v1alpha1.ServiceSpec, p corev1.IPFamilyPolicy) *v1alpha1.ServiceSpec {
	s.IPFamilyPolicy = &p
	return s
}

func withFamilies(s *v1alpha1.ServiceSpec, fams ...corev1.IPFamily) *v1alpha1.ServiceSpec {
	s.IPFamilies = fams
	return s
}

func withHealthCheck(s *v1alpha1.ServiceSpec, port int32) *v1alpha1.ServiceSpec {
	s.HealthCheckNodePort = port
	return s
}

func withAllocateLBNodePorts(s *v1alpha1.ServiceSpec, v bool) *v1alpha1.ServiceSpec {
	s.AllocateLoadBalancerNodePorts = &v
	return s
}

// ensure runs Ensure for key (with uidOf(key)) and fails the test on error.
func ensure(t testing.TB, b *Book, key string, spec *v1alpha1.ServiceSpec) Allocation {
	t.Helper()
	a, _, err := b.Ensure(key, uidOf(key), spec)
	if err != nil {
		t.Fatalf("Ensure(%s): %v", key, err)
	}
	return a
}

// hold returns a setup step that makes key hold what spec asks for.
func hold(key string, spec *v1alpha1.ServiceSpec) func(testing.TB, *Book) {
	return func(t testing.TB, b *Book) { ensure(t, b, key, spec) }
}

// fillIPs makes n single-port ClusterIP Services hold an automatic address each.
func fillIPs(n int) func(testing.TB, *Book) {
	return func(t testing.TB, b *Book) {
		for i := range n {
			ensure(t, b, fmt.Sprintf("fill/ip-%d", i), clusterIPSvc(tcp("http", 80)))
		}
	}
}

// holdPorts makes one NodePort Service hold exactly the given node ports.
func holdPorts(key string, nodePorts ...int32) func(testing.TB, *Book) {
	var ports []v1alpha1.ServicePort
	for i, p := range nodePorts {
		ports = append(ports, np(tcp(fmt.Sprintf("p%d", i), int32(1000+i)), p))
	}
	return hold(key, nodePortSvc(ports...))
}

// usage returns Usage().Used by range text ("10.96.0.0/24", "30000-30009").
func usage(b *Book) map[string]int {
	out := map[string]int{}
	for _, u := range b.Usage() {
		out[u.Range] = u.Used
	}
	return out
}

func usedIPs(b *Book) int {
	n := 0
	for _, u := range b.Usage() {
		if u.Kind == "clusterIP" {
			n += u.Used
		}
	}
	return n
}

func usedPorts(b *Book) int {
	for _, u := range b.Usage() {
		if u.Kind == "nodePort" {
			return u.Used
		}
	}
	return -1
}

// wantError checks that err is an *Error with the given reason and permanence.
func wantError(t testing.TB, err error, reason string, permanent bool) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", reason)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if e.Reason != reason {
		t.Errorf("Reason = %q, want %q (message %q)", e.Reason, reason, e.Message)
	}
	if e.Permanent != permanent {
		t.Errorf("Permanent = %v, want %v (message %q)", e.Permanent, permanent, e.Message)
	}
	if e.Error() != e.Message {
		t.Errorf("Error() = %q, want the Message %q", e.Error(), e.Message)
	}
	return e
}

// statusOf is the status the allocation reconciler writes for a.
func statusOf(a Allocation) *v1alpha1.ServiceStatus {
	s := &v1alpha1.ServiceStatus{
		ClusterIPs:          slices.Clone(a.ClusterIPs),
		IPFamilies:          slices.Clone(a.IPFamilies),
		Ports:               slices.Clone(a.Ports),
		HealthCheckNodePort: a.HealthCheckNodePort,
	}
	if len(a.ClusterIPs) > 0 {
		s.ClusterIP = a.ClusterIPs[0]
	}
	return s
}

// heldValues is the set of values an Allocation holds: "ip:<addr>" and "port:<n>".
func heldValues(a *Allocation) map[string]bool {
	out := map[string]bool{}
	if a == nil {
		return out
	}
	for _, s := range a.ClusterIPs {
		if s != v1alpha1.ClusterIPNone {
			out["ip:"+s] = true
		}
	}
	for _, p := range a.Ports {
		if p.NodePort != 0 {
			out[fmt.Sprintf("port:%d", p.NodePort)] = true
		}
	}
	if a.HealthCheckNodePort != 0 {
		out[fmt.Sprintf("port:%d", a.HealthCheckNodePort)] = true
	}
	return out
}

// allocatable reports whether s is an address the range cidr can hand out.
func allocatable(t testing.TB, cidr, s string) bool {
	t.Helper()
	r, err := allocator.NewIPRange(netip.MustParsePrefix(cidr))
	if err != nil {
		t.Fatal(err)
	}
	ip, err := netip.ParseAddr(s)
	return err == nil && r.Contains(ip)
}

func inNodePortRange(p int32) bool { return p >= 30000 && p <= 30009 }

// wantAlloc describes an expected Allocation; see autoV4, autoV6 and anyNodePort.
type wantAlloc struct {
	ips   []string
	fams  []corev1.IPFamily
	ports []v1alpha1.ServicePortStatus
	hc    int32
}

func checkAlloc(t testing.TB, got Allocation, want wantAlloc) {
	t.Helper()
	if len(got.ClusterIPs) != len(want.ips) {
		t.Fatalf("ClusterIPs = %q, want %q", got.ClusterIPs, want.ips)
	}
	for i, w := range want.ips {
		switch w {
		case autoV4:
			if !allocatable(t, v4CIDR, got.ClusterIPs[i]) {
				t.Errorf("ClusterIPs[%d] = %q, want an address of %s", i, got.ClusterIPs[i], v4CIDR)
			}
		case autoV6:
			if !allocatable(t, v6CIDR, got.ClusterIPs[i]) {
				t.Errorf("ClusterIPs[%d] = %q, want an address of %s", i, got.ClusterIPs[i], v6CIDR)
			}
		default:
			if got.ClusterIPs[i] != w {
				t.Errorf("ClusterIPs[%d] = %q, want %q", i, got.ClusterIPs[i], w)
			}
		}
	}
	if !slices.Equal(got.IPFamilies, want.fams) {
		t.Errorf("IPFamilies = %v, want %v", got.IPFamilies, want.fams)
	}
	if len(got.Ports) != len(want.ports) {
		t.Fatalf("Ports = %+v, want %+v", got.Ports, want.ports)
	}
	for i, w := range want.ports {
		g := got.Ports[i]
		if g.Name != w.Name || g.Protocol != w.Protocol || g.Port != w.Port {
			t.Errorf("Ports[%d] = %+v, want %+v", i, g, w)
		}
		if w.NodePort == anyNodePort {
			if !inNodePortRange(g.NodePort) {
				t.Errorf("Ports[%d].NodePort = %d, want a port of %s", i, g.NodePort, testNodePorts)
			}
		} else if g.NodePort != w.NodePort {
			t.Errorf("Ports[%d].NodePort = %d, want %d", i, g.NodePort, w.NodePort)
		}
	}
	if want.hc == anyNodePort {
		if !inNodePortRange(got.HealthCheckNodePort) {
			t.Errorf("HealthCheckNodePort = %d, want a port of %s", got.HealthCheckNodePort, testNodePorts)
		}
	} else if got.HealthCheckNodePort != want.hc {
		t.Errorf("HealthCheckNodePort = %d, want %d", got.HealthCheckNodePort, want.hc)
	}
}

func ps(name string, proto corev1.Protocol, port, nodePort int32) v1alpha1.ServicePortStatus {
	return v1alpha1.ServicePortStatus{Name: name, Protocol: proto, Port: port, NodePort: nodePort}
}

const (
	pTCP  = corev1.ProtocolTCP
	pUDP  = corev1.ProtocolUDP
	pSCTP = corev1.ProtocolSCTP
)

// distinctNodePorts fails unless the node ports of the given port indexes and, if
// withHC, the health check node port are pairwise distinct.
func distinctNodePorts(t testing.TB, a Allocation, idx []int, withHC bool) {
	t.Helper()
	seen := map[int32]string{}
	add := func(p int32, what string) {
		if prev, dup := seen[p]; dup {
			t.Errorf("node port %d used by both %s and %s: %+v", p, prev, what, a)
		}
		seen[p] = what
	}
	for _, i := range idx {
		add(a.Ports[i].NodePort, fmt.Sprintf("ports[%d]", i))
	}
	if withHC {
		add(a.HealthCheckNodePort, "healthCheckNodePort")
	}
}

// ---------------------------------------------------------------------------------
// NewBook

func TestNewBook(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		name    string
		cidrs   []netip.Prefix
		ports   string
		wantErr string
		want    []Usage
	}{
		{
			name:  "IPv4",
			cidrs: []netip.Prefix{p(v4CIDR)},
			ports: testNodePorts,
			want: []Usage{
				{Range: v4CIDR, Kind: "clusterIP", Size: 254},
				{Range: testNodePorts, Kind: "nodePort", Size: 10},
			},
		},
		{
			name:  "dual-stack, IPv6 primary",
			cidrs: []netip.Prefix{p(v6CIDR), p(v4CIDR)},
			ports: "30000-32767",
			want: []Usage{
				{Range: v6CIDR, Kind: "clusterIP", Size: 255},
				{Range: v4CIDR, Kind: "clusterIP", Size: 254},
				{Range: "30000-32767", Kind: "nodePort", Size: 2768},
			},
		},
		{
			name:  "tiny",
			cidrs: []netip.Prefix{p(tinyCIDR)},
			ports: "30000+9",
			want: []Usage{
				{Range: tinyCIDR, Kind: "clusterIP", Size: 6},
				{Range: testNodePorts, Kind: "nodePort", Size: 10},
			},
		},
		{name: "no CIDR", ports: testNodePorts, wantErr: "need one or two service CIDRs, got 0"},
		{name: "three CIDRs", cidrs: []netip.Prefix{p(v4CIDR), p(v6CIDR), p("10.97.0.0/24")}, ports: testNodePorts, wantErr: "need one or two service CIDRs, got 3"},
		{name: "same family twice", cidrs: []netip.Prefix{p(v4CIDR), p("10.97.0.0/24")}, ports: testNodePorts, wantErr: "two service CIDRs of family IPv4"},
		{name: "unmasked", cidrs: []netip.Prefix{p("10.96.0.1/24")}, ports: testNodePorts, wantErr: "the masked form is 10.96.0.0/24"},
		{name: "too large", cidrs: []netip.Prefix{p("10.0.0.0/8")}, ports: testNodePorts, wantErr: "too large"},
		{name: "too small", cidrs: []netip.Prefix{p("10.0.0.0/31")}, ports: testNodePorts, wantErr: "too small"},
		{name: "bad port range", cidrs: []netip.Prefix{p(v4CIDR)}, ports: "30009-30000", wantErr: "invalid port range"},
		{name: "empty port range", cidrs: []netip.Prefix{p(v4CIDR)}, ports: "", wantErr: "invalid port range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := NewBook(tc.cidrs, tc.ports)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("NewBook error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewBook: %v", err)
			}
			if got := b.Usage(); !slices.Equal(got, tc.want) {
				t.Errorf("Usage() = %+v, want %+v", got, tc.want)
			}
			var fams []corev1.IPFamily
			for _, c := range tc.cidrs {
				fams = append(fams, familyOf(c.Addr()))
			}
			if got := b.Families(); !slices.Equal(got, fams) {
				t.Errorf("Families() = %v, want %v", got, fams)
			}
			// Families returns a copy.
			b.Families()[0] = "mangled"
			if got := b.Families(); !slices.Equal(got, fams) {
				t.Errorf("Families() after mangling a returned slice = %v, want %v", got, fams)
			}
		})
	}
}

// ---------------------------------------------------------------------------------
// Ensure: what each kind of Service gets

func TestEnsureByType(t *testing.T) {
	tests := []struct {
		name  string
		cidrs string
		setup func(testing.TB, *Book)
		spec  *v1alpha1.ServiceSpec
		want  wantAlloc
		// exact is compared with reflect.DeepEqual when set (want is then ignored).
		exact           *Allocation
		usedIP, usedNP  int
		check           func(t *testing.T, a Allocation)
		nodePortsUnique []int // indexes whose node ports must differ (and from HC if hc set)
	}{
		{
			name:   "ClusterIP, automatic address",
			spec:   clusterIPSvc(tcp("http", 80)),
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			usedIP: 1,
		},
		{
			name:   "empty type is ClusterIP",
			spec:   &v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{tcp("http", 80)}},
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			usedIP: 1,
		},
		{
			name:   "ClusterIP, empty protocol is TCP",
			spec:   clusterIPSvc(v1alpha1.ServicePort{Port: 80}),
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("", pTCP, 80, 0)}},
			usedIP: 1,
		},
		{
			name:   "ClusterIP, several ports and protocols, no node ports",
			spec:   clusterIPSvc(tcp("http", 80), udp("dns", 53), v1alpha1.ServicePort{Name: "sctp", Protocol: pSCTP, Port: 9}),
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0), ps("dns", pUDP, 53, 0), ps("sctp", pSCTP, 9, 0)}},
			usedIP: 1,
		},
		{
			name:   "ClusterIP, requested clusterIP honoured",
			spec:   withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.10"),
			want:   wantAlloc{ips: []string{"10.96.0.10"}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			usedIP: 1,
		},
		{
			name: "ClusterIP, requested through clusterIPs only",
			spec: func() *v1alpha1.ServiceSpec {
				s := clusterIPSvc(tcp("http", 80))
				s.ClusterIPs = []string{"10.96.0.11"}
				return s
			}(),
			want:   wantAlloc{ips: []string{"10.96.0.11"}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			usedIP: 1,
		},
		{
			name: "ClusterIP, requested through clusterIP only",
			spec: func() *v1alpha1.ServiceSpec {
				s := clusterIPSvc(tcp("http", 80))
				s.ClusterIP = "10.96.0.254"
				return s
			}(),
			want:   wantAlloc{ips: []string{"10.96.0.254"}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			usedIP: 1,
		},
		{
			name:  "ClusterIP, requested clusterIP on a range that is otherwise full",
			cidrs: tinyCIDR,
			setup: func(t testing.TB, b *Book) {
				for i := 2; i <= 6; i++ {
					ensure(t, b, fmt.Sprintf("fill/%d", i), withIPs(clusterIPSvc(tcp("http", 80)), fmt.Sprintf("10.0.0.%d", i)))
				}
			},
			spec:   withIPs(clusterIPSvc(tcp("http", 80)), "10.0.0.1"),
			want:   wantAlloc{ips: []string{"10.0.0.1"}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			usedIP: 6,
		},
		{
			name:   "ClusterIP ignores a requested nodePort",
			spec:   clusterIPSvc(np(tcp("http", 80), 30005)),
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			usedIP: 1,
		},
		{
			name: "headless with selector",
			spec: headlessSvc(true, tcp("http", 80)),
			want: wantAlloc{ips: []string{"None"}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
		},
		{
			name: "headless through clusterIP only, no ports",
			spec: func() *v1alpha1.ServiceSpec {
				s := headlessSvc(true)
				s.ClusterIPs = nil
				return s
			}(),
			want: wantAlloc{ips: []string{"None"}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{}},
		},
		{
			name: "headless without selector on a single-stack book",
			spec: headlessSvc(false, tcp("http", 80)),
			want: wantAlloc{ips: []string{"None"}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
		},
		{
			name:  "ExternalName",
			spec:  externalNameSvc(),
			exact: &Allocation{},
		},
		{
			name: "ExternalName with ports",
			spec: func() *v1alpha1.ServiceSpec {
				s := externalNameSvc()
				s.Ports = []v1alpha1.ServicePort{tcp("http", 80)}
				return s
			}(),
			exact: &Allocation{},
		},
		{
			name:            "NodePort, one automatic node port per port",
			spec:            nodePortSvc(tcp("http", 80), tcp("https", 443), udp("dns", 53)),
			want:            wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, anyNodePort), ps("https", pTCP, 443, anyNodePort), ps("dns", pUDP, 53, anyNodePort)}},
			usedIP:          1,
			usedNP:          3,
			nodePortsUnique: []int{0, 1, 2},
		},
		{
			name:            "NodePort, requested node port honoured",
			spec:            nodePortSvc(tcp("http", 80), np(tcp("https", 443), 30005)),
			want:            wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, anyNodePort), ps("https", pTCP, 443, 30005)}},
			usedIP:          1,
			usedNP:          2,
			nodePortsUnique: []int{0, 1},
		},
		{
			name:   "NodePort, every port requested",
			spec:   nodePortSvc(np(tcp("http", 80), 30000), np(tcp("https", 443), 30009)),
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 30000), ps("https", pTCP, 443, 30009)}},
			usedIP: 1,
			usedNP: 2,
		},
		{
			name:   "NodePort, TCP and UDP on one port number share a node port",
			spec:   nodePortSvc(tcp("dns-tcp", 53), udp("dns", 53)),
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("dns-tcp", pTCP, 53, anyNodePort), ps("dns", pUDP, 53, anyNodePort)}},
			usedIP: 1,
			usedNP: 1,
			check: func(t *testing.T, a Allocation) {
				if a.Ports[0].NodePort != a.Ports[1].NodePort {
					t.Errorf("TCP 53 got node port %d and UDP 53 got %d, want one shared node port", a.Ports[0].NodePort, a.Ports[1].NodePort)
				}
			},
		},
		{
			name:   "NodePort, UDP listed before TCP still shares",
			spec:   nodePortSvc(udp("dns", 53), tcp("dns-tcp", 53), tcp("http", 80)),
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("dns", pUDP, 53, anyNodePort), ps("dns-tcp", pTCP, 53, anyNodePort), ps("http", pTCP, 80, anyNodePort)}},
			usedIP: 1,
			usedNP: 2,
			check: func(t *testing.T, a Allocation) {
				if a.Ports[0].NodePort != a.Ports[1].NodePort {
					t.Errorf("UDP 53 and TCP 53 got node ports %d and %d, want one shared node port", a.Ports[0].NodePort, a.Ports[1].NodePort)
				}
				if a.Ports[2].NodePort == a.Ports[0].NodePort {
					t.Errorf("TCP 80 shares node port %d with port 53", a.Ports[2].NodePort)
				}
			},
		},
		{
			name:   "NodePort, requested TCP node port is shared with the automatic UDP twin",
			spec:   nodePortSvc(np(tcp("dns-tcp", 53), 30005), udp("dns", 53)),
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("dns-tcp", pTCP, 53, 30005), ps("dns", pUDP, 53, 30005)}},
			usedIP: 1,
			usedNP: 1,
		},
		{
			name:   "NodePort, requested UDP node port listed second is shared with the TCP twin",
			spec:   nodePortSvc(tcp("dns-tcp", 53), np(udp("dns", 53), 30005)),
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("dns-tcp", pTCP, 53, 30005), ps("dns", pUDP, 53, 30005)}},
			usedIP: 1,
			usedNP: 1,
		},
		{
			name:   "NodePort, the same requested node port for TCP and UDP twins",
			spec:   nodePortSvc(np(tcp("dns-tcp", 53), 30005), np(udp("dns", 53), 30005)),
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("dns-tcp", pTCP, 53, 30005), ps("dns", pUDP, 53, 30005)}},
			usedIP: 1,
			usedNP: 1,
		},
		{
			name:   "NodePort, distinct requested node ports for TCP and UDP twins",
			spec:   nodePortSvc(np(tcp("dns-tcp", 53), 30005), np(udp("dns", 53), 30006)),
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("dns-tcp", pTCP, 53, 30005), ps("dns", pUDP, 53, 30006)}},
			usedIP: 1,
			usedNP: 2,
		},
		{
			name:   "NodePort, the last free node port",
			setup:  holdPorts("ns/other", 30000, 30001, 30002, 30003, 30004, 30005, 30006, 30008, 30009),
			spec:   nodePortSvc(tcp("http", 80)),
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 30007)}},
			usedIP: 2,
			usedNP: 10,
		},
		{
			name:            "LoadBalancer allocates node ports by default",
			spec:            lbSvc(tcp("http", 80), tcp("https", 443)),
			want:            wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, anyNodePort), ps("https", pTCP, 443, anyNodePort)}},
			usedIP:          1,
			usedNP:          2,
			nodePortsUnique: []int{0, 1},
		},
		{
			name:            "LoadBalancer with allocateLoadBalancerNodePorts=true",
			spec:            withAllocateLBNodePorts(lbSvc(tcp("http", 80), tcp("https", 443)), true),
			want:            wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, anyNodePort), ps("https", pTCP, 443, anyNodePort)}},
			usedIP:          1,
			usedNP:          2,
			nodePortsUnique: []int{0, 1},
		},
		{
			name:   "LoadBalancer with allocateLoadBalancerNodePorts=false gets no automatic node ports",
			spec:   withAllocateLBNodePorts(lbSvc(tcp("http", 80), tcp("https", 443)), false),
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0), ps("https", pTCP, 443, 0)}},
			usedIP: 1,
		},
		{
			name:   "LoadBalancer with allocateLoadBalancerNodePorts=false honours a requested node port",
			spec:   withAllocateLBNodePorts(lbSvc(tcp("http", 80), np(tcp("https", 443), 30005)), false),
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0), ps("https", pTCP, 443, 30005)}},
			usedIP: 1,
			usedNP: 1,
		},
		{
			name:            "LoadBalancer Local gets a distinct health check node port",
			spec:            lbLocalSvc(tcp("http", 80), tcp("https", 443)),
			want:            wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, anyNodePort), ps("https", pTCP, 443, anyNodePort)}, hc: anyNodePort},
			usedIP:          1,
			usedNP:          3,
			nodePortsUnique: []int{0, 1},
		},
		{
			name: "LoadBalancer Local, requested health check node port honoured",
			// Every node port is requested: see TestBugHealthCheckRequestLosesToAutomaticNodePort.
			spec:   withHealthCheck(lbLocalSvc(np(tcp("http", 80), 30001), np(tcp("https", 443), 30002)), 30007),
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 30001), ps("https", pTCP, 443, 30002)}, hc: 30007},
			usedIP: 1,
			usedNP: 3,
		},
		{
			name:   "LoadBalancer Local with allocateLoadBalancerNodePorts=false still gets a health check node port",
			spec:   withAllocateLBNodePorts(lbLocalSvc(tcp("http", 80)), false),
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}, hc: anyNodePort},
			usedIP: 1,
			usedNP: 1,
		},
		{
			name:   "LoadBalancer Local, TCP/UDP twins share, health check distinct",
			spec:   lbLocalSvc(tcp("dns-tcp", 53), udp("dns", 53)),
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("dns-tcp", pTCP, 53, anyNodePort), ps("dns", pUDP, 53, anyNodePort)}, hc: anyNodePort},
			usedIP: 1,
			usedNP: 2,
			check: func(t *testing.T, a Allocation) {
				if a.Ports[0].NodePort != a.Ports[1].NodePort || a.HealthCheckNodePort == a.Ports[0].NodePort {
					t.Errorf("got %+v, want TCP/UDP 53 sharing a node port and a distinct health check node port", a)
				}
			},
		},
		{
			name: "LoadBalancer Cluster gets no health check node port",
			spec: func() *v1alpha1.ServiceSpec {
				s := lbSvc(tcp("http", 80))
				s.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
				return s
			}(),
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, anyNodePort)}},
			usedIP: 1,
			usedNP: 1,
		},
		{
			name:   "LoadBalancer Cluster ignores a requested health check node port",
			spec:   withHealthCheck(lbSvc(tcp("http", 80)), 30007),
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, anyNodePort)}},
			usedIP: 1,
			usedNP: 1,
		},
		{
			name: "NodePort with externalTrafficPolicy Local gets no health check node port",
			spec: func() *v1alpha1.ServiceSpec {
				s := lbLocalSvc(tcp("http", 80))
				s.Type = corev1.ServiceTypeNodePort
				return s
			}(),
			want:   wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, anyNodePort)}},
			usedIP: 1,
			usedNP: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBook(t, cmpOr(tc.cidrs, v4CIDR))
			if tc.setup != nil {
				tc.setup(t, b)
			}
			a, freed, err := b.Ensure("ns/svc", uidOf("ns/svc"), tc.spec)
			if err != nil {
				t.Fatalf("Ensure: %v", err)
			}
			if freed {
				t.Errorf("freed = true for a first Ensure")
			}
			if tc.exact != nil {
				if !reflect.DeepEqual(a, *tc.exact) {
					t.Errorf("Ensure = %#v, want %#v", a, *tc.exact)
				}
			} else {
				checkAlloc(t, a, tc.want)
			}
			if tc.nodePortsUnique != nil {
				distinctNodePorts(t, a, tc.nodePortsUnique, tc.want.hc != 0)
			}
			if tc.check != nil {
				tc.check(t, a)
			}
			// The wanted usage includes whatever setup holds.
			if got := usedIPs(b); got != tc.usedIP {
				t.Errorf("clusterIP Used = %d, want %d", got, tc.usedIP)
			}
			if got := usedPorts(b); got != tc.usedNP {
				t.Errorf("nodePort Used = %d, want %d", got, tc.usedNP)
			}
			if !b.InSync("ns/svc", uidOf("ns/svc"), statusOf(a)) {
				t.Errorf("InSync is false for the status written from %+v", a)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ---------------------------------------------------------------------------------
// Ensure: errors and their wording

type msgMatch int

const (
	exactly msgMatch = iota
	prefixed
	containing
)

func checkMessage(t testing.TB, got string, how msgMatch, want string) {
	t.Helper()
	ok := false
	switch how {
	case exactly:
		ok = got == want
	case prefixed:
		ok = strings.HasPrefix(got, want)
	case containing:
		ok = strings.Contains(got, want)
	}
	if !ok {
		t.Errorf("message = %q\nwant (%s)   %q", got, [...]string{"exactly", "prefix", "containing"}[how], want)
	}
}

func TestEnsureErrors(t *testing.T) {
	tests := []struct {
		name      string
		cidrs     string
		setup     func(testing.TB, *Book)
		spec      *v1alpha1.ServiceSpec
		reason    string
		permanent bool
		how       msgMatch
		msg       string
		also      string // a second substring, optional
	}{
		{
			name:   "requested clusterIP held by another Service",
			setup:  hold("ns/other", withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.50")),
			spec:   withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.50"),
			reason: ReasonClusterIPAlreadyAllocated,
			msg:    `spec.clusterIPs[0]: Invalid value: "10.96.0.50": failed to allocate IP 10.96.0.50: provided IP is already allocated`,
		},
		{
			name:   "requested clusterIP held automatically by another Service",
			cidrs:  tinyCIDR,
			setup:  fillIPs(6),
			spec:   withIPs(clusterIPSvc(tcp("http", 80)), "10.0.0.3"),
			reason: ReasonClusterIPAlreadyAllocated,
			msg:    `spec.clusterIPs[0]: Invalid value: "10.0.0.3": failed to allocate IP 10.0.0.3: provided IP is already allocated`,
		},
		{
			name:   "requested secondary clusterIP held by another Service",
			cidrs:  dualCIDRs,
			setup:  hold("ns/other", withIPs(clusterIPSvc(tcp("http", 80)), "fd00:10:96::50")),
			spec:   withPolicy(withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.10", "fd00:10:96::50"), corev1.IPFamilyPolicyRequireDualStack),
			reason: ReasonClusterIPAlreadyAllocated,
			msg:    `spec.clusterIPs[1]: Invalid value: "fd00:10:96::50": failed to allocate IP fd00:10:96::50: provided IP is already allocated`,
		},
		{
			name:      "requested clusterIP outside the range",
			spec:      withIPs(clusterIPSvc(tcp("http", 80)), outsideIP),
			reason:    ReasonClusterIPOutOfRange,
			permanent: true,
			how:       containing,
			msg:       "the provided IP (192.0.2.1) is not in the valid range. The range of valid IPs is 10.96.0.0/24",
			also:      `spec.clusterIPs[0]: Invalid value: "192.0.2.1": `,
		},
		{
			name:      "requested clusterIP is the network address",
			spec:      withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.0"),
			reason:    ReasonClusterIPOutOfRange,
			permanent: true,
			msg:       `spec.clusterIPs[0]: Invalid value: "10.96.0.0": the provided IP (10.96.0.0) is not in the valid range. The range of valid IPs is 10.96.0.0/24`,
		},
		{
			name:      "requested clusterIP is the broadcast address",
			spec:      withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.255"),
			reason:    ReasonClusterIPOutOfRange,
			permanent: true,
			how:       containing,
			msg:       "the provided IP (10.96.0.255) is not in the valid range",
		},
		{
			name:      "requested IPv6 clusterIP outside the IPv6 range",
			cidrs:     dualCIDRs,
			spec:      withIPs(clusterIPSvc(tcp("http", 80)), "fd00:10:97::1"),
			reason:    ReasonClusterIPOutOfRange,
			permanent: true,
			msg:       `spec.clusterIPs[0]: Invalid value: "fd00:10:97::1": the provided IP (fd00:10:97::1) is not in the valid range. The range of valid IPs is fd00:10:96::/120`,
		},
		{
			name:      "requested clusterIP is not an IP",
			spec:      withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.300"),
			reason:    ReasonInvalidIPFamilies,
			permanent: true,
			msg:       `spec.clusterIPs[0]: Invalid value: "10.96.0.300": must be a valid IP address (e.g. 10.9.8.7 or 2001:db8::ffff)`,
		},
		{
			name:      "requested IPv6 clusterIP on an IPv4-only book",
			spec:      withIPs(clusterIPSvc(tcp("http", 80)), "fd00:10:96::10"),
			reason:    ReasonInvalidIPFamilies,
			permanent: true,
			msg:       `spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster`,
		},
		{
			name:   "clusterIP range full",
			cidrs:  tinyCIDR,
			setup:  fillIPs(6),
			spec:   clusterIPSvc(tcp("http", 80)),
			reason: ReasonClusterIPRangeFull,
			how:    prefixed,
			msg:    "failed to allocate a serviceIP: range is full",
			also:   "10.0.0.0/29",
		},
		{
			name:   "secondary family full",
			cidrs:  "10.96.0.0/24,fd00::/126",
			setup:  func(t testing.TB, b *Book) { fillV6(t, b, 3) },
			spec:   withPolicy(clusterIPSvc(tcp("http", 80)), corev1.IPFamilyPolicyPreferDualStack),
			reason: ReasonClusterIPRangeFull,
			how:    prefixed,
			msg:    "failed to allocate a serviceIP: range is full",
			also:   "fd00::/126",
		},
		{
			name:   "requested node port held by another Service",
			setup:  holdPorts("ns/other", 30005),
			spec:   nodePortSvc(np(tcp("http", 80), 30005)),
			reason: ReasonNodePortAlreadyAllocated,
			msg:    `spec.ports[0].nodePort: Invalid value: 30005: provided port is already allocated`,
		},
		{
			name:   "second port's requested node port held by another Service",
			setup:  holdPorts("ns/other", 30005),
			spec:   nodePortSvc(tcp("http", 80), np(tcp("https", 443), 30005)),
			reason: ReasonNodePortAlreadyAllocated,
			msg:    `spec.ports[1].nodePort: Invalid value: 30005: provided port is already allocated`,
		},
		{
			name:   "requested node port held by another Service's health check",
			setup:  hold("ns/other", withHealthCheck(withAllocateLBNodePorts(lbLocalSvc(tcp("http", 80)), false), 30005)),
			spec:   withAllocateLBNodePorts(lbSvc(np(tcp("http", 80), 30005)), false),
			reason: ReasonNodePortAlreadyAllocated,
			msg:    `spec.ports[0].nodePort: Invalid value: 30005: provided port is already allocated`,
		},
		{
			name:      "requested node port outside the range",
			spec:      nodePortSvc(np(tcp("http", 80), 40000)),
			reason:    ReasonNodePortOutOfRange,
			permanent: true,
			msg:       `spec.ports[0].nodePort: Invalid value: 40000: the provided port (40000) is not in the valid range. The range of valid ports is 30000-30009`,
		},
		{
			name:      "requested node port just below the range",
			spec:      nodePortSvc(tcp("http", 80), np(tcp("https", 443), 29999)),
			reason:    ReasonNodePortOutOfRange,
			permanent: true,
			msg:       `spec.ports[1].nodePort: Invalid value: 29999: the provided port (29999) is not in the valid range. The range of valid ports is 30000-30009`,
		},
		{
			name:   "node port range full",
			setup:  holdPorts("ns/other", 30000, 30001, 30002, 30003, 30004, 30005, 30006, 30007, 30008, 30009),
			spec:   nodePortSvc(tcp("http", 80)),
			reason: ReasonNodePortRangeFull,
			how:    prefixed,
			msg:    "failed to allocate a nodePort: range is full",
			also:   "30000-30009",
		},
		{
			name:   "node port range full for the second port",
			setup:  holdPorts("ns/other", 30000, 30001, 30002, 30003, 30004, 30005, 30006, 30007, 30008),
			spec:   nodePortSvc(tcp("http", 80), tcp("https", 443)),
			reason: ReasonNodePortRangeFull,
			how:    prefixed,
			msg:    "failed to allocate a nodePort: range is full",
		},
		{
			name:   "node port range full for the health check node port",
			setup:  holdPorts("ns/other", 30000, 30001, 30002, 30003, 30004, 30005, 30006, 30007, 30008),
			spec:   lbLocalSvc(tcp("http", 80)),
			reason: ReasonNodePortRangeFull,
			how:    prefixed,
			msg:    "failed to allocate a nodePort: range is full",
		},
		{
			// Only a spec change can fix it, so it is permanent.
			name:      "requested health check node port equal to one of the Service's own node ports",
			spec:      withHealthCheck(lbLocalSvc(np(tcp("http", 80), 30005)), 30005),
			reason:    ReasonNodePortAlreadyAllocated,
			permanent: true,
			msg:       `spec.healthCheckNodePort: Invalid value: 30005: may not be the same as a node port of this service`,
		},
		{
			name:      "requested health check node port equal to the UDP twin's shared node port",
			spec:      withHealthCheck(lbLocalSvc(np(tcp("dns-tcp", 53), 30005), udp("dns", 53)), 30005),
			reason:    ReasonNodePortAlreadyAllocated,
			permanent: true,
			msg:       `spec.healthCheckNodePort: Invalid value: 30005: may not be the same as a node port of this service`,
		},
		{
			name:   "requested health check node port held by another Service",
			setup:  holdPorts("ns/other", 30005),
			spec:   withHealthCheck(lbLocalSvc(np(tcp("http", 80), 30001)), 30005),
			reason: ReasonNodePortAlreadyAllocated,
			msg:    `spec.healthCheckNodePort: Invalid value: 30005: provided port is already allocated`,
		},
		{
			name:      "requested health check node port outside the range",
			spec:      withHealthCheck(lbLocalSvc(tcp("http", 80)), 40000),
			reason:    ReasonNodePortOutOfRange,
			permanent: true,
			msg:       `spec.healthCheckNodePort: Invalid value: 40000: the provided port (40000) is not in the valid range. The range of valid ports is 30000-30009`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBook(t, cmpOr(tc.cidrs, v4CIDR))
			if tc.setup != nil {
				tc.setup(t, b)
			}
			before := usage(b)
			a, freed, err := b.Ensure("ns/svc", uidOf("ns/svc"), tc.spec)
			e := wantError(t, err, tc.reason, tc.permanent)
			checkMessage(t, e.Message, tc.how, tc.msg)
			if tc.also != "" {
				checkMessage(t, e.Message, containing, tc.also)
			}
			if !reflect.DeepEqual(a, Allocation{}) {
				t.Errorf("Ensure returned %+v with its error, want an empty Allocation", a)
			}
			if freed {
				t.Errorf("freed = true on a failed first Ensure")
			}
			if after := usage(b); !maps.Equal(after, before) {
				t.Errorf("usage changed by a failed Ensure: %v -> %v", before, after)
			}
			if got, want := slices.Contains(b.Waiting(), "ns/svc"), !tc.permanent; got != want {
				t.Errorf("ns/svc in Waiting() = %v, want %v", got, want)
			}
			if b.Release("ns/svc") {
				t.Errorf("Release after a failed first Ensure = true: the Service holds something")
			}
		})
	}
}

// fillV6 makes n IPv6-only Services hold an automatic IPv6 address each.
func fillV6(t testing.TB, b *Book, n int) {
	t.Helper()
	for i := range n {
		ensure(t, b, fmt.Sprintf("fill/v6-%d", i), withFamilies(clusterIPSvc(tcp("http", 80)), ipv6))
	}
}

// ---------------------------------------------------------------------------------
// Ensure: IP families

func TestEnsureIPFamilies(t *testing.T) {
	tests := []struct {
		name  string
		cidrs string
		spec  *v1alpha1.ServiceSpec
		// want is checked when reason is empty.
		want wantAlloc
		// used is the wanted Usage().Used per range on success.
		used      map[string]int
		reason    string
		permanent bool
		how       msgMatch
		msg       string
	}{
		{
			name:      "RequireDualStack on a single-stack book",
			cidrs:     v4CIDR,
			spec:      withPolicy(clusterIPSvc(tcp("http", 80)), corev1.IPFamilyPolicyRequireDualStack),
			reason:    ReasonInvalidIPFamilies,
			permanent: true,
			how:       containing,
			msg:       "not configured for dual-stack",
		},
		{
			name:      "RequireDualStack on an IPv6-only book, exact wording",
			cidrs:     v6CIDR,
			spec:      withPolicy(clusterIPSvc(tcp("http", 80)), corev1.IPFamilyPolicyRequireDualStack),
			reason:    ReasonInvalidIPFamilies,
			permanent: true,
			msg:       `spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services`,
		},
		{
			name:      "RequireDualStack headless on a single-stack book",
			cidrs:     v4CIDR,
			spec:      withPolicy(headlessSvc(false), corev1.IPFamilyPolicyRequireDualStack),
			reason:    ReasonInvalidIPFamilies,
			permanent: true,
			how:       containing,
			msg:       "not configured for dual-stack",
		},
		{
			name:      "ipFamilies [IPv6] on an IPv4-only book",
			cidrs:     v4CIDR,
			spec:      withFamilies(clusterIPSvc(tcp("http", 80)), ipv6),
			reason:    ReasonInvalidIPFamilies,
			permanent: true,
			msg:       `spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster`,
		},
		{
			name:      "ipFamilies [IPv4] on an IPv6-only book",
			cidrs:     v6CIDR,
			spec:      withFamilies(clusterIPSvc(tcp("http", 80)), ipv4),
			reason:    ReasonInvalidIPFamilies,
			permanent: true,
			msg:       `spec.ipFamilies[0]: Invalid value: "IPv4": not configured on this cluster`,
		},
		{
			name:      "ipFamilies [IPv4, IPv6] with PreferDualStack on an IPv4-only book",
			cidrs:     v4CIDR,
			spec:      withPolicy(withFamilies(clusterIPSvc(tcp("http", 80)), ipv4, ipv6), corev1.IPFamilyPolicyPreferDualStack),
			reason:    ReasonInvalidIPFamilies,
			permanent: true,
			msg:       `spec.ipFamilies[1]: Invalid value: "IPv6": not configured on this cluster`,
		},
		{
			name:      "headless with ipFamilies [IPv6] on an IPv4-only book",
			cidrs:     v4CIDR,
			spec:      withFamilies(headlessSvc(true), ipv6),
			reason:    ReasonInvalidIPFamilies,
			permanent: true,
			msg:       `spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster`,
		},
		{
			name:      "SingleStack with two ipFamilies",
			cidrs:     dualCIDRs,
			spec:      withPolicy(withFamilies(clusterIPSvc(tcp("http", 80)), ipv4, ipv6), corev1.IPFamilyPolicySingleStack),
			reason:    ReasonInvalidIPFamilies,
			permanent: true,
			msg:       `spec.ipFamilyPolicy: Invalid value: "SingleStack": must be RequireDualStack or PreferDualStack when multiple 'ipFamilies' are specified`,
		},
		{
			name:      "no policy with two clusterIPs",
			cidrs:     dualCIDRs,
			spec:      withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.10", "fd00:10:96::10"),
			reason:    ReasonInvalidIPFamilies,
			permanent: true,
			how:       containing,
			msg:       "must be RequireDualStack or PreferDualStack",
		},
		{
			name:      "requested clusterIP of a family not in ipFamilies",
			cidrs:     dualCIDRs,
			spec:      withFamilies(withIPs(clusterIPSvc(tcp("http", 80)), "fd00:10:96::10"), ipv4),
			reason:    ReasonInvalidIPFamilies,
			permanent: true,
			how:       containing,
			msg:       "the address's family IPv6 is not one of the service's ipFamilies",
		},
		{
			name:  "PreferDualStack on a single-stack book gets one family",
			cidrs: v4CIDR,
			spec:  withPolicy(clusterIPSvc(tcp("http", 80)), corev1.IPFamilyPolicyPreferDualStack),
			want:  wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			used:  map[string]int{v4CIDR: 1},
		},
		{
			name:  "PreferDualStack on a dual-stack book gets both, primary first",
			cidrs: dualCIDRs,
			spec:  withPolicy(clusterIPSvc(tcp("http", 80)), corev1.IPFamilyPolicyPreferDualStack),
			want:  wantAlloc{ips: []string{autoV4, autoV6}, fams: []corev1.IPFamily{ipv4, ipv6}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			used:  map[string]int{v4CIDR: 1, v6CIDR: 1},
		},
		{
			name:  "PreferDualStack with ipFamilies [IPv6] on a dual-stack book",
			cidrs: dualCIDRs,
			spec:  withFamilies(withPolicy(clusterIPSvc(tcp("http", 80)), corev1.IPFamilyPolicyPreferDualStack), ipv6),
			want:  wantAlloc{ips: []string{autoV6, autoV4}, fams: []corev1.IPFamily{ipv6, ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			used:  map[string]int{v4CIDR: 1, v6CIDR: 1},
		},
		{
			name:  "RequireDualStack on a dual-stack book",
			cidrs: dualCIDRs,
			spec:  withPolicy(clusterIPSvc(tcp("http", 80)), corev1.IPFamilyPolicyRequireDualStack),
			want:  wantAlloc{ips: []string{autoV4, autoV6}, fams: []corev1.IPFamily{ipv4, ipv6}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			used:  map[string]int{v4CIDR: 1, v6CIDR: 1},
		},
		{
			name:  "RequireDualStack with ipFamilies [IPv6, IPv4]",
			cidrs: dualCIDRs,
			spec:  withFamilies(withPolicy(clusterIPSvc(tcp("http", 80)), corev1.IPFamilyPolicyRequireDualStack), ipv6, ipv4),
			want:  wantAlloc{ips: []string{autoV6, autoV4}, fams: []corev1.IPFamily{ipv6, ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			used:  map[string]int{v4CIDR: 1, v6CIDR: 1},
		},
		{
			name:  "RequireDualStack on an IPv6-primary book",
			cidrs: dualV6First,
			spec:  withPolicy(clusterIPSvc(tcp("http", 80)), corev1.IPFamilyPolicyRequireDualStack),
			want:  wantAlloc{ips: []string{autoV6, autoV4}, fams: []corev1.IPFamily{ipv6, ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			used:  map[string]int{v4CIDR: 1, v6CIDR: 1},
		},
		{
			name:  "no policy on a dual-stack book is single-stack, primary family",
			cidrs: dualCIDRs,
			spec:  clusterIPSvc(tcp("http", 80)),
			want:  wantAlloc{ips: []string{autoV4}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			used:  map[string]int{v4CIDR: 1},
		},
		{
			name:  "no policy on an IPv6-primary book",
			cidrs: dualV6First,
			spec:  clusterIPSvc(tcp("http", 80)),
			want:  wantAlloc{ips: []string{autoV6}, fams: []corev1.IPFamily{ipv6}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			used:  map[string]int{v6CIDR: 1},
		},
		{
			name:  "SingleStack with ipFamilies [IPv6] on a dual-stack book",
			cidrs: dualCIDRs,
			spec:  withFamilies(withPolicy(clusterIPSvc(tcp("http", 80)), corev1.IPFamilyPolicySingleStack), ipv6),
			want:  wantAlloc{ips: []string{autoV6}, fams: []corev1.IPFamily{ipv6}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			used:  map[string]int{v6CIDR: 1},
		},
		{
			name:  "requested clusterIPs [v6, v4] with RequireDualStack, in that order",
			cidrs: dualCIDRs,
			spec:  withPolicy(withIPs(clusterIPSvc(tcp("http", 80)), "fd00:10:96::10", "10.96.0.10"), corev1.IPFamilyPolicyRequireDualStack),
			want:  wantAlloc{ips: []string{"fd00:10:96::10", "10.96.0.10"}, fams: []corev1.IPFamily{ipv6, ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			used:  map[string]int{v4CIDR: 1, v6CIDR: 1},
		},
		{
			name:  "requested clusterIP [v4] with PreferDualStack gets an automatic IPv6",
			cidrs: dualCIDRs,
			spec:  withPolicy(withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.10"), corev1.IPFamilyPolicyPreferDualStack),
			want:  wantAlloc{ips: []string{"10.96.0.10", autoV6}, fams: []corev1.IPFamily{ipv4, ipv6}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			used:  map[string]int{v4CIDR: 1, v6CIDR: 1},
		},
		{
			name:  "requested IPv6 clusterIP without policy picks the IPv6 family",
			cidrs: dualCIDRs,
			spec:  withIPs(clusterIPSvc(tcp("http", 80)), "fd00:10:96::10"),
			want:  wantAlloc{ips: []string{"fd00:10:96::10"}, fams: []corev1.IPFamily{ipv6}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			used:  map[string]int{v6CIDR: 1},
		},
		{
			name:  "requested IPv6 clusterIP in non-canonical form is reported canonically",
			cidrs: dualCIDRs,
			spec:  withIPs(clusterIPSvc(tcp("http", 80)), "FD00:10:96:0:0:0:0:10"),
			want:  wantAlloc{ips: []string{"fd00:10:96::10"}, fams: []corev1.IPFamily{ipv6}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			used:  map[string]int{v6CIDR: 1},
		},
		{
			name:  "headless without selector and without policy on a dual-stack book gets both families",
			cidrs: dualCIDRs,
			spec:  headlessSvc(false, tcp("http", 80)),
			want:  wantAlloc{ips: []string{"None"}, fams: []corev1.IPFamily{ipv4, ipv6}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
		},
		{
			name:  "headless without selector on an IPv6-primary book",
			cidrs: dualV6First,
			spec:  headlessSvc(false),
			want:  wantAlloc{ips: []string{"None"}, fams: []corev1.IPFamily{ipv6, ipv4}, ports: []v1alpha1.ServicePortStatus{}},
		},
		{
			name:  "headless with selector and without policy on a dual-stack book is single-stack",
			cidrs: dualCIDRs,
			spec:  headlessSvc(true, tcp("http", 80)),
			want:  wantAlloc{ips: []string{"None"}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
		},
		{
			name:  "headless without selector, explicit SingleStack",
			cidrs: dualCIDRs,
			spec:  withPolicy(headlessSvc(false), corev1.IPFamilyPolicySingleStack),
			want:  wantAlloc{ips: []string{"None"}, fams: []corev1.IPFamily{ipv4}, ports: []v1alpha1.ServicePortStatus{}},
		},
		{
			name:  "headless without selector, ipFamilies [IPv6], no policy",
			cidrs: dualCIDRs,
			spec:  withFamilies(headlessSvc(false), ipv6),
			want:  wantAlloc{ips: []string{"None"}, fams: []corev1.IPFamily{ipv6}, ports: []v1alpha1.ServicePortStatus{}},
		},
		{
			name:  "headless with RequireDualStack and selector",
			cidrs: dualCIDRs,
			spec:  withPolicy(headlessSvc(true), corev1.IPFamilyPolicyRequireDualStack),
			want:  wantAlloc{ips: []string{"None"}, fams: []corev1.IPFamily{ipv4, ipv6}, ports: []v1alpha1.ServicePortStatus{}},
		},
		{
			name:  "ExternalName ignores the dual-stack fields",
			cidrs: v4CIDR,
			spec:  withPolicy(withFamilies(externalNameSvc(), ipv6), corev1.IPFamilyPolicyRequireDualStack),
			want:  wantAlloc{},
		},
		{
			name:  "NodePort dual-stack: node ports are per Service, not per family",
			cidrs: dualCIDRs,
			spec:  withPolicy(nodePortSvc(tcp("http", 80)), corev1.IPFamilyPolicyRequireDualStack),
			want:  wantAlloc{ips: []string{autoV4, autoV6}, fams: []corev1.IPFamily{ipv4, ipv6}, ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, anyNodePort)}},
			used:  map[string]int{v4CIDR: 1, v6CIDR: 1, testNodePorts: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBook(t, tc.cidrs)
			a, _, err := b.Ensure("ns/svc", uidOf("ns/svc"), tc.spec)
			if tc.reason != "" {
				e := wantError(t, err, tc.reason, tc.permanent)
				checkMessage(t, e.Message, tc.how, tc.msg)
				if usedIPs(b) != 0 || usedPorts(b) != 0 {
					t.Errorf("a failed Ensure left values allocated: %+v", b.Usage())
				}
				return
			}
			if err != nil {
				t.Fatalf("Ensure: %v", err)
			}
			checkAlloc(t, a, tc.want)
			got := usage(b)
			for rng, n := range got {
				if n != tc.used[rng] {
					t.Errorf("Used(%s) = %d, want %d", rng, n, tc.used[rng])
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------------
// Ensure: stability across passes

func TestEnsureIsIdempotent(t *testing.T) {
	specs := []struct {
		name  string
		cidrs string
		spec  *v1alpha1.ServiceSpec
	}{
		{"ClusterIP", v4CIDR, clusterIPSvc(tcp("http", 80))},
		{"ClusterIP requested", v4CIDR, withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.10")},
		{"headless", v4CIDR, headlessSvc(true, tcp("http", 80))},
		{"headless dual", dualCIDRs, headlessSvc(false)},
		{"ExternalName", v4CIDR, externalNameSvc()},
		{"NodePort", v4CIDR, nodePortSvc(tcp("http", 80), tcp("https", 443))},
		{"NodePort requested", v4CIDR, nodePortSvc(np(tcp("http", 80), 30005), tcp("https", 443))},
		{"NodePort TCP/UDP twins", v4CIDR, nodePortSvc(tcp("dns-tcp", 53), udp("dns", 53), tcp("http", 80))},
		{"LoadBalancer", v4CIDR, lbSvc(tcp("http", 80))},
		{"LoadBalancer without node ports", v4CIDR, withAllocateLBNodePorts(lbSvc(tcp("http", 80), np(tcp("https", 443), 30003)), false)},
		{"LoadBalancer Local", v4CIDR, lbLocalSvc(tcp("http", 80), udp("dns", 53))},
		{"LoadBalancer Local requested HC", v4CIDR, withHealthCheck(lbLocalSvc(np(tcp("http", 80), 30001)), 30002)},
		{"dual-stack", dualCIDRs, withPolicy(nodePortSvc(tcp("http", 80)), corev1.IPFamilyPolicyRequireDualStack)},
		{"dual-stack IPv6 first", dualCIDRs, withFamilies(withPolicy(lbLocalSvc(tcp("http", 80)), corev1.IPFamilyPolicyPreferDualStack), ipv6)},
	}
	for _, tc := range specs {
		t.Run(tc.name, func(t *testing.T) {
			b := newBook(t, tc.cidrs)
			clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			b.now = func() time.Time { return clock }
			first := ensure(t, b, "ns/svc", tc.spec)
			since := b.holders["ns/svc"].since
			before := usage(b)
			for pass := range 3 {
				clock = clock.Add(time.Minute)
				got, freed, err := b.Ensure("ns/svc", uidOf("ns/svc"), tc.spec)
				if err != nil {
					t.Fatalf("pass %d: %v", pass, err)
				}
				if freed {
					t.Errorf("pass %d: freed = true for an unchanged spec", pass)
				}
				if !reflect.DeepEqual(got, first) {
					t.Errorf("pass %d: Ensure = %+v, want %+v", pass, got, first)
				}
			}
			if after := usage(b); !maps.Equal(after, before) {
				t.Errorf("usage changed by repeated Ensure: %v -> %v", before, after)
			}
			// An unchanged holding keeps its age, which Reclaim relies on.
			if got := b.holders["ns/svc"].since; !got.Equal(since) {
				t.Errorf("since = %v after unchanged passes, want %v", got, since)
			}
		})
	}
}

func TestEnsurePortChanges(t *testing.T) {
	tests := []struct {
		name   string
		before *v1alpha1.ServiceSpec
		// after builds the new spec; it sees the first Allocation so it can request
		// a node port the Service holds.
		after func(prev Allocation) *v1alpha1.ServiceSpec
		// keep maps an index of the new ports to the index of the old port whose
		// node port it must keep; new ports not listed get a node port the Service
		// did not hold (or none, if zero is listed in none).
		keep      map[int]int
		none      []int // indexes of new ports that get no node port
		wantFreed bool
		wantUsed  int
	}{
		{
			name:     "adding a port keeps the existing node port",
			before:   nodePortSvc(tcp("http", 80)),
			after:    func(Allocation) *v1alpha1.ServiceSpec { return nodePortSvc(tcp("http", 80), tcp("https", 443)) },
			keep:     map[int]int{0: 0},
			wantUsed: 2,
		},
		{
			name:      "removing a port keeps the others and frees its node port",
			before:    nodePortSvc(tcp("http", 80), tcp("https", 443)),
			after:     func(Allocation) *v1alpha1.ServiceSpec { return nodePortSvc(tcp("https", 443)) },
			keep:      map[int]int{0: 1},
			wantFreed: true,
			wantUsed:  1,
		},
		{
			name:   "reordering ports keeps every node port",
			before: nodePortSvc(tcp("http", 80), tcp("https", 443), udp("dns", 53)),
			after: func(Allocation) *v1alpha1.ServiceSpec {
				return nodePortSvc(udp("dns", 53), tcp("https", 443), tcp("http", 80))
			},
			keep:     map[int]int{0: 2, 1: 1, 2: 0},
			wantUsed: 3,
		},
		{
			name:     "renumbered port keeps its node port by name",
			before:   nodePortSvc(tcp("http", 80), tcp("https", 443)),
			after:    func(Allocation) *v1alpha1.ServiceSpec { return nodePortSvc(tcp("http", 8080), tcp("https", 443)) },
			keep:     map[int]int{0: 0, 1: 1},
			wantUsed: 2,
		},
		{
			name:     "renamed port keeps its node port by number",
			before:   nodePortSvc(tcp("http", 80)),
			after:    func(Allocation) *v1alpha1.ServiceSpec { return nodePortSvc(tcp("web", 80)) },
			keep:     map[int]int{0: 0},
			wantUsed: 1,
		},
		{
			name:   "number match wins over name match",
			before: nodePortSvc(tcp("a", 80), tcp("b", 81)),
			// "b" now has number 80: it keeps a's node port (matched by number);
			// "a" now has 81: it keeps b's old node port (matched by number).
			after:    func(Allocation) *v1alpha1.ServiceSpec { return nodePortSvc(tcp("b", 80), tcp("a", 81)) },
			keep:     map[int]int{0: 0, 1: 1},
			wantUsed: 2,
		},
		{
			name:      "renamed and renumbered port gets a new node port",
			before:    nodePortSvc(tcp("http", 80)),
			after:     func(Allocation) *v1alpha1.ServiceSpec { return nodePortSvc(tcp("web", 8080)) },
			wantFreed: true,
			wantUsed:  1,
		},
		{
			name:      "changed protocol gets a new node port",
			before:    nodePortSvc(tcp("dns", 53)),
			after:     func(Allocation) *v1alpha1.ServiceSpec { return nodePortSvc(udp("dns", 53)) },
			wantFreed: true,
			wantUsed:  1,
		},
		{
			name:     "adding a UDP twin shares the TCP node port",
			before:   nodePortSvc(tcp("dns-tcp", 53)),
			after:    func(Allocation) *v1alpha1.ServiceSpec { return nodePortSvc(tcp("dns-tcp", 53), udp("dns", 53)) },
			keep:     map[int]int{0: 0, 1: 0},
			wantUsed: 1,
		},
		{
			name:     "dropping the TCP twin keeps the shared node port for UDP",
			before:   nodePortSvc(tcp("dns-tcp", 53), udp("dns", 53)),
			after:    func(Allocation) *v1alpha1.ServiceSpec { return nodePortSvc(udp("dns", 53)) },
			keep:     map[int]int{0: 1},
			wantUsed: 1,
		},
		{
			name:   "requesting the node port the port already holds changes nothing",
			before: nodePortSvc(tcp("http", 80), tcp("https", 443)),
			after: func(prev Allocation) *v1alpha1.ServiceSpec {
				return nodePortSvc(np(tcp("http", 80), prev.Ports[0].NodePort), tcp("https", 443))
			},
			keep:     map[int]int{0: 0, 1: 1},
			wantUsed: 2,
		},
		{
			name:   "requesting another port's node port moves it and gives that port a new one",
			before: nodePortSvc(tcp("http", 80), tcp("https", 443)),
			after: func(prev Allocation) *v1alpha1.ServiceSpec {
				return nodePortSvc(np(tcp("http", 80), prev.Ports[1].NodePort), tcp("https", 443))
			},
			keep:      map[int]int{0: 1},
			wantFreed: true,
			wantUsed:  2,
		},
		{
			name:     "NodePort to LoadBalancer keeps node ports",
			before:   nodePortSvc(tcp("http", 80), tcp("https", 443)),
			after:    func(Allocation) *v1alpha1.ServiceSpec { return lbSvc(tcp("http", 80), tcp("https", 443)) },
			keep:     map[int]int{0: 0, 1: 1},
			wantUsed: 2,
		},
		{
			name:   "LoadBalancer turning allocateLoadBalancerNodePorts off releases automatic node ports",
			before: lbSvc(tcp("http", 80), tcp("https", 443)),
			after: func(Allocation) *v1alpha1.ServiceSpec {
				return withAllocateLBNodePorts(lbSvc(tcp("http", 80), tcp("https", 443)), false)
			},
			none:      []int{0, 1},
			wantFreed: true,
			wantUsed:  0,
		},
		{
			name:   "LoadBalancer turning allocateLoadBalancerNodePorts off keeps a node port requested by value",
			before: lbSvc(tcp("http", 80), tcp("https", 443)),
			after: func(prev Allocation) *v1alpha1.ServiceSpec {
				return withAllocateLBNodePorts(lbSvc(np(tcp("http", 80), prev.Ports[0].NodePort), tcp("https", 443)), false)
			},
			keep:      map[int]int{0: 0},
			none:      []int{1},
			wantFreed: true,
			wantUsed:  1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBook(t, v4CIDR)
			first := ensure(t, b, "ns/svc", tc.before)
			oldPorts := map[int32]bool{}
			for _, p := range first.Ports {
				oldPorts[p.NodePort] = true
			}
			spec := tc.after(first)
			got, freed, err := b.Ensure("ns/svc", uidOf("ns/svc"), spec)
			if err != nil {
				t.Fatalf("Ensure: %v", err)
			}
			if freed != tc.wantFreed {
				t.Errorf("freed = %v, want %v", freed, tc.wantFreed)
			}
			if !slices.Equal(got.ClusterIPs, first.ClusterIPs) {
				t.Errorf("ClusterIPs changed: %v -> %v", first.ClusterIPs, got.ClusterIPs)
			}
			if len(got.Ports) != len(spec.Ports) {
				t.Fatalf("Ports = %+v, want %d ports", got.Ports, len(spec.Ports))
			}
			for i, p := range got.Ports {
				if p.Name != spec.Ports[i].Name || p.Port != spec.Ports[i].Port || p.Protocol != protocolOf(spec.Ports[i]) {
					t.Errorf("Ports[%d] = %+v does not describe spec port %+v", i, p, spec.Ports[i])
				}
				switch j, ok := tc.keep[i]; {
				case ok:
					if p.NodePort != first.Ports[j].NodePort {
						t.Errorf("Ports[%d].NodePort = %d, want %d (kept from old port %d) [old %+v]", i, p.NodePort, first.Ports[j].NodePort, j, first.Ports)
					}
				case slices.Contains(tc.none, i):
					if p.NodePort != 0 {
						t.Errorf("Ports[%d].NodePort = %d, want 0", i, p.NodePort)
					}
				default:
					if !inNodePortRange(p.NodePort) || oldPorts[p.NodePort] {
						t.Errorf("Ports[%d].NodePort = %d, want a new node port (old ones: %+v)", i, p.NodePort, first.Ports)
					}
				}
			}
			if got := usedPorts(b); got != tc.wantUsed {
				t.Errorf("nodePort Used = %d, want %d", got, tc.wantUsed)
			}
			if usedIPs(b) != 1 {
				t.Errorf("clusterIP Used = %d, want 1", usedIPs(b))
			}
			// Whatever was freed can be requested by another Service.
			still := heldValues(&got)
			for p := range oldPorts {
				if still[fmt.Sprintf("port:%d", p)] {
					continue
				}
				if _, _, err := b.Ensure("ns/taker", uidOf("ns/taker"), nodePortSvc(np(tcp("x", 1), p))); err != nil {
					t.Errorf("node port %d was released but cannot be requested: %v", p, err)
				}
				b.Release("ns/taker")
			}
		})
	}
}

// step is one Ensure in a scenario.
type step struct {
	key       string
	uid       types.UID // uidOf(key) when empty
	spec      *v1alpha1.ServiceSpec
	wantErr   string // a Reason; empty for success
	wantFreed bool
}

func (s step) run(t *testing.T, b *Book) (Allocation, error) {
	t.Helper()
	uid := s.uid
	if uid == "" {
		uid = uidOf(s.key)
	}
	a, freed, err := b.Ensure(s.key, uid, s.spec)
	if s.wantErr == "" && err != nil {
		t.Fatalf("Ensure(%s): %v", s.key, err)
	}
	if s.wantErr != "" {
		var e *Error
		if !errors.As(err, &e) || e.Reason != s.wantErr {
			t.Fatalf("Ensure(%s) error = %v, want reason %s", s.key, err, s.wantErr)
		}
	}
	if freed != s.wantFreed {
		t.Errorf("Ensure(%s) freed = %v, want %v", s.key, freed, s.wantFreed)
	}
	return a, err
}

func TestEnsureSpecChanges(t *testing.T) {
	t.Run("NodePort to ClusterIP releases node ports and keeps the cluster IP", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		np1 := step{key: "ns/a", spec: nodePortSvc(tcp("http", 80), tcp("dns-tcp", 53), udp("dns", 53))}
		a1, _ := np1.run(t, b)
		if usedPorts(b) != 2 {
			t.Fatalf("nodePort Used = %d, want 2", usedPorts(b))
		}
		a2, _ := step{key: "ns/a", spec: clusterIPSvc(tcp("http", 80), tcp("dns-tcp", 53), udp("dns", 53)), wantFreed: true}.run(t, b)
		if !slices.Equal(a2.ClusterIPs, a1.ClusterIPs) {
			t.Errorf("ClusterIPs changed: %v -> %v", a1.ClusterIPs, a2.ClusterIPs)
		}
		for _, p := range a2.Ports {
			if p.NodePort != 0 {
				t.Errorf("ClusterIP Service still has node port %+v", p)
			}
		}
		if usedPorts(b) != 0 || usedIPs(b) != 1 {
			t.Errorf("usage = %+v, want 1 address and no node port", b.Usage())
		}
		for _, p := range a1.Ports {
			step{key: "ns/b", spec: nodePortSvc(np(tcp("x", 1), p.NodePort))}.run(t, b)
			b.Release("ns/b")
		}
	})
	t.Run("ClusterIP to ExternalName releases the address", func(t *testing.T) {
		b := newBook(t, dualCIDRs)
		a1, _ := step{key: "ns/a", spec: withPolicy(nodePortSvc(tcp("http", 80)), corev1.IPFamilyPolicyRequireDualStack)}.run(t, b)
		a2, _ := step{key: "ns/a", spec: externalNameSvc(), wantFreed: true}.run(t, b)
		if !reflect.DeepEqual(a2, Allocation{}) {
			t.Errorf("ExternalName Allocation = %+v, want empty", a2)
		}
		if usedIPs(b) != 0 || usedPorts(b) != 0 {
			t.Errorf("usage = %+v, want nothing used", b.Usage())
		}
		// The released values can be requested by another Service.
		step{key: "ns/b", spec: withPolicy(withIPs(nodePortSvc(np(tcp("http", 80), a1.Ports[0].NodePort)), a1.ClusterIPs...), corev1.IPFamilyPolicyRequireDualStack)}.run(t, b)
		// ... and back to ClusterIP gets new values.
		a3, _ := step{key: "ns/a", spec: clusterIPSvc(tcp("http", 80))}.run(t, b)
		if a3.ClusterIPs[0] == a1.ClusterIPs[0] {
			t.Errorf("ns/a got back %s, which ns/b holds", a3.ClusterIPs[0])
		}
	})
	t.Run("ClusterIP to headless and back", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		step{key: "ns/a", spec: clusterIPSvc(tcp("http", 80))}.run(t, b)
		a2, _ := step{key: "ns/a", spec: headlessSvc(true, tcp("http", 80)), wantFreed: true}.run(t, b)
		if !slices.Equal(a2.ClusterIPs, []string{"None"}) || usedIPs(b) != 0 {
			t.Errorf("headless: %+v, usage %+v", a2, b.Usage())
		}
		a3, _ := step{key: "ns/a", spec: clusterIPSvc(tcp("http", 80))}.run(t, b)
		if !allocatable(t, v4CIDR, a3.ClusterIPs[0]) || usedIPs(b) != 1 {
			t.Errorf("back to ClusterIP: %+v, usage %+v", a3, b.Usage())
		}
	})
	t.Run("changing the requested clusterIP from A to B takes B and releases A", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		step{key: "ns/a", spec: withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.10")}.run(t, b)
		a2, _ := step{key: "ns/a", spec: withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.11"), wantFreed: true}.run(t, b)
		if !slices.Equal(a2.ClusterIPs, []string{"10.96.0.11"}) || usedIPs(b) != 1 {
			t.Errorf("got %v with usage %+v, want [10.96.0.11] and one address used", a2.ClusterIPs, b.Usage())
		}
		step{key: "ns/b", spec: withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.10")}.run(t, b)
		step{key: "ns/c", spec: withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.11"), wantErr: ReasonClusterIPAlreadyAllocated}.run(t, b)
	})
	t.Run("requesting the automatic address the Service holds changes nothing", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		a1, _ := step{key: "ns/a", spec: clusterIPSvc(tcp("http", 80))}.run(t, b)
		a2, _ := step{key: "ns/a", spec: withIPs(clusterIPSvc(tcp("http", 80)), a1.ClusterIPs[0])}.run(t, b)
		if !reflect.DeepEqual(a1, a2) || usedIPs(b) != 1 {
			t.Errorf("%+v -> %+v, usage %+v", a1, a2, b.Usage())
		}
		// Dropping the request again keeps it too.
		a3, _ := step{key: "ns/a", spec: clusterIPSvc(tcp("http", 80))}.run(t, b)
		if !reflect.DeepEqual(a1, a3) {
			t.Errorf("%+v -> %+v", a1, a3)
		}
	})
	t.Run("LoadBalancer Local to Cluster releases the health check node port", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		a1, _ := step{key: "ns/a", spec: lbLocalSvc(tcp("http", 80))}.run(t, b)
		a2, _ := step{key: "ns/a", spec: lbSvc(tcp("http", 80)), wantFreed: true}.run(t, b)
		if a2.HealthCheckNodePort != 0 || a2.Ports[0].NodePort != a1.Ports[0].NodePort || usedPorts(b) != 1 {
			t.Errorf("%+v -> %+v, usage %+v", a1, a2, b.Usage())
		}
		// Back to Local: a health check node port again, the node port kept.
		a3, _ := step{key: "ns/a", spec: lbLocalSvc(tcp("http", 80))}.run(t, b)
		if a3.HealthCheckNodePort == 0 || a3.HealthCheckNodePort == a3.Ports[0].NodePort || a3.Ports[0].NodePort != a1.Ports[0].NodePort {
			t.Errorf("back to Local: %+v", a3)
		}
	})
	t.Run("requesting the held health check node port changes nothing", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		a1, _ := step{key: "ns/a", spec: lbLocalSvc(tcp("http", 80))}.run(t, b)
		a2, _ := step{key: "ns/a", spec: withHealthCheck(lbLocalSvc(tcp("http", 80)), a1.HealthCheckNodePort)}.run(t, b)
		if !reflect.DeepEqual(a1, a2) {
			t.Errorf("%+v -> %+v", a1, a2)
		}
	})
	t.Run("moving the health check node port to a node port", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		a1, _ := step{key: "ns/a", spec: lbLocalSvc(tcp("http", 80))}.run(t, b)
		// The port requests the old health check node port; the health check
		// gets a new one and the old node port of the port is freed.
		a2, _ := step{key: "ns/a", spec: lbLocalSvc(np(tcp("http", 80), a1.HealthCheckNodePort)), wantFreed: true}.run(t, b)
		if a2.Ports[0].NodePort != a1.HealthCheckNodePort || a2.HealthCheckNodePort == a1.HealthCheckNodePort ||
			a2.HealthCheckNodePort == a1.Ports[0].NodePort || usedPorts(b) != 2 {
			t.Errorf("%+v -> %+v, usage %+v", a1, a2, b.Usage())
		}
	})
	t.Run("PreferDualStack to SingleStack releases the secondary address", func(t *testing.T) {
		b := newBook(t, dualCIDRs)
		a1, _ := step{key: "ns/a", spec: withPolicy(clusterIPSvc(tcp("http", 80)), corev1.IPFamilyPolicyPreferDualStack)}.run(t, b)
		a2, _ := step{key: "ns/a", spec: withPolicy(clusterIPSvc(tcp("http", 80)), corev1.IPFamilyPolicySingleStack), wantFreed: true}.run(t, b)
		if !slices.Equal(a2.ClusterIPs, a1.ClusterIPs[:1]) || !slices.Equal(a2.IPFamilies, []corev1.IPFamily{ipv4}) {
			t.Errorf("%+v -> %+v", a1, a2)
		}
		if u := usage(b); u[v4CIDR] != 1 || u[v6CIDR] != 0 {
			t.Errorf("usage = %v", u)
		}
	})
	t.Run("SingleStack to PreferDualStack keeps the primary and adds the secondary", func(t *testing.T) {
		b := newBook(t, dualCIDRs)
		a1, _ := step{key: "ns/a", spec: clusterIPSvc(tcp("http", 80))}.run(t, b)
		a2, _ := step{key: "ns/a", spec: withPolicy(clusterIPSvc(tcp("http", 80)), corev1.IPFamilyPolicyPreferDualStack)}.run(t, b)
		if len(a2.ClusterIPs) != 2 || a2.ClusterIPs[0] != a1.ClusterIPs[0] || !allocatable(t, v6CIDR, a2.ClusterIPs[1]) {
			t.Errorf("%+v -> %+v", a1, a2)
		}
	})
	t.Run("a Service may move to the value another Service just released", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		step{key: "ns/a", spec: withIPs(nodePortSvc(np(tcp("http", 80), 30005)), "10.96.0.10")}.run(t, b)
		step{key: "ns/b", spec: withIPs(nodePortSvc(np(tcp("http", 80), 30005)), "10.96.0.10"), wantErr: ReasonClusterIPAlreadyAllocated}.run(t, b)
		step{key: "ns/a", spec: withIPs(nodePortSvc(np(tcp("http", 80), 30006)), "10.96.0.11"), wantFreed: true}.run(t, b)
		a, _ := step{key: "ns/b", spec: withIPs(nodePortSvc(np(tcp("http", 80), 30005)), "10.96.0.10")}.run(t, b)
		if a.ClusterIPs[0] != "10.96.0.10" || a.Ports[0].NodePort != 30005 {
			t.Errorf("ns/b got %+v", a)
		}
	})
}

func TestEnsureUIDChange(t *testing.T) {
	t.Run("same spec under a new uid: old values freed first, then allocated again", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		spec := withHealthCheck(withIPs(lbLocalSvc(np(tcp("http", 80), 30005)), "10.96.0.10"), 30006)
		a1, _ := step{key: "ns/a", uid: "uid-1", spec: spec}.run(t, b)
		before := usage(b)
		// Requesting the very values the old object held works because they were
		// released before the new object is planned.
		a2, _ := step{key: "ns/a", uid: "uid-2", spec: spec, wantFreed: true}.run(t, b)
		if !reflect.DeepEqual(a1, a2) {
			t.Errorf("%+v -> %+v", a1, a2)
		}
		if after := usage(b); !maps.Equal(before, after) {
			t.Errorf("usage %v -> %v", before, after)
		}
		if b.InSync("ns/a", "uid-1", statusOf(a1)) {
			t.Errorf("InSync for the old uid is true")
		}
		if !b.InSync("ns/a", "uid-2", statusOf(a2)) {
			t.Errorf("InSync for the new uid is false")
		}
	})
	t.Run("automatic values under a new uid", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		step{key: "ns/a", uid: "uid-1", spec: nodePortSvc(tcp("http", 80))}.run(t, b)
		step{key: "ns/a", uid: "uid-2", spec: nodePortSvc(tcp("http", 80)), wantFreed: true}.run(t, b)
		if usedIPs(b) != 1 || usedPorts(b) != 1 {
			t.Errorf("usage = %+v, want one address and one node port", b.Usage())
		}
		// And the uid sticks: the next pass frees nothing.
		step{key: "ns/a", uid: "uid-2", spec: nodePortSvc(tcp("http", 80))}.run(t, b)
	})
	t.Run("new uid with a spec that fails still releases the old object's values", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		a1, _ := step{key: "ns/a", uid: "uid-1", spec: nodePortSvc(tcp("http", 80))}.run(t, b)
		_, err := step{key: "ns/a", uid: "uid-2", spec: withIPs(nodePortSvc(tcp("http", 80)), outsideIP), wantErr: ReasonClusterIPOutOfRange, wantFreed: true}.run(t, b)
		if err == nil {
			t.Fatal("want an error")
		}
		if usedIPs(b) != 0 || usedPorts(b) != 0 {
			t.Errorf("usage = %+v, want nothing used", b.Usage())
		}
		step{key: "ns/b", spec: withIPs(nodePortSvc(np(tcp("http", 80), a1.Ports[0].NodePort)), a1.ClusterIPs[0])}.run(t, b)
	})
	t.Run("new uid of a headless Service does not report freed: nothing went back to a range", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		step{key: "ns/a", uid: "uid-1", spec: headlessSvc(true)}.run(t, b)
		step{key: "ns/a", uid: "uid-2", spec: headlessSvc(true), wantFreed: false}.run(t, b)
	})
}

func TestEnsureAllOrNothing(t *testing.T) {
	t.Run("new NodePort Service whose requested node port is taken consumes no address", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		holdPorts("ns/other", 30005)(t, b)
		before := usage(b)
		for _, spec := range []*v1alpha1.ServiceSpec{
			nodePortSvc(tcp("http", 80), np(tcp("https", 443), 30005)),
			withIPs(nodePortSvc(tcp("http", 80), np(tcp("https", 443), 30005)), "10.96.0.10"),
		} {
			step{key: "ns/svc", spec: spec, wantErr: ReasonNodePortAlreadyAllocated}.run(t, b)
			if after := usage(b); !maps.Equal(before, after) {
				t.Errorf("usage changed by a failed Ensure: %v -> %v", before, after)
			}
		}
		// The address it would have taken is free.
		step{key: "ns/third", spec: withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.10")}.run(t, b)
	})
	t.Run("dual-stack: a full secondary range gives the primary address back", func(t *testing.T) {
		b := newBook(t, "10.96.0.0/24,fd00::/126")
		fillV6(t, b, 3)
		before := usage(b)
		step{key: "ns/svc", spec: withPolicy(withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.10"), corev1.IPFamilyPolicyRequireDualStack), wantErr: ReasonClusterIPRangeFull}.run(t, b)
		if after := usage(b); !maps.Equal(before, after) {
			t.Errorf("usage changed by a failed Ensure: %v -> %v", before, after)
		}
		step{key: "ns/third", spec: withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.10")}.run(t, b)
	})
	t.Run("health check failure gives back node ports and address", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		holdPorts("ns/other", 30000, 30001, 30002, 30003, 30004, 30005, 30006, 30007, 30008)(t, b)
		before := usage(b)
		step{key: "ns/svc", spec: lbLocalSvc(tcp("http", 80)), wantErr: ReasonNodePortRangeFull}.run(t, b)
		if after := usage(b); !maps.Equal(before, after) {
			t.Errorf("usage changed by a failed Ensure: %v -> %v", before, after)
		}
		step{key: "ns/third", spec: nodePortSvc(np(tcp("http", 80), 30009))}.run(t, b)
	})
	t.Run("a failed update keeps exactly the old values", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		holdPorts("ns/other", 30005)(t, b)
		oldSpec := lbLocalSvc(tcp("http", 80), tcp("dns-tcp", 53), udp("dns", 53))
		old, _ := step{key: "ns/a", spec: oldSpec}.run(t, b)
		before := usage(b)
		failing := []struct {
			spec   *v1alpha1.ServiceSpec
			reason string
		}{
			// New address (free) + taken node port: the new address must not leak.
			{withIPs(lbLocalSvc(tcp("http", 80), np(tcp("https", 443), 30005)), "10.96.0.10"), ReasonNodePortAlreadyAllocated},
			// Out-of-range address after nothing else changed.
			{withIPs(lbLocalSvc(tcp("http", 80), tcp("dns-tcp", 53), udp("dns", 53)), outsideIP), ReasonClusterIPOutOfRange},
			// A family that is not configured.
			{withFamilies(lbLocalSvc(tcp("http", 80)), ipv6), ReasonInvalidIPFamilies},
			// New ports that need more node ports than there are.
			{lbLocalSvc(tcp("a", 1), tcp("b", 2), tcp("c", 3), tcp("d", 4), tcp("e", 5), tcp("f", 6), tcp("g", 7)), ReasonNodePortRangeFull},
			// Health check request that is taken, after node ports were moved.
			{withHealthCheck(lbLocalSvc(tcp("web", 8080)), 30005), ReasonNodePortAlreadyAllocated},
			// Becoming headless (which would free the address) with a family that
			// is not configured.
			{withFamilies(headlessSvc(true), ipv6), ReasonInvalidIPFamilies},
		}
		for i, f := range failing {
			step{key: "ns/a", spec: f.spec, wantErr: f.reason}.run(t, b)
			if after := usage(b); !maps.Equal(before, after) {
				t.Fatalf("failure %d: usage changed: %v -> %v", i, before, after)
			}
			if !b.InSync("ns/a", uidOf("ns/a"), statusOf(old)) {
				t.Fatalf("failure %d: the Book no longer holds the old values %+v", i, old)
			}
		}
		// Nobody else can take the old values ...
		step{key: "ns/c", spec: withIPs(clusterIPSvc(tcp("http", 80)), old.ClusterIPs[0]), wantErr: ReasonClusterIPAlreadyAllocated}.run(t, b)
		for _, p := range []int32{old.Ports[0].NodePort, old.Ports[1].NodePort, old.HealthCheckNodePort} {
			step{key: "ns/c", spec: nodePortSvc(np(tcp("http", 80), p)), wantErr: ReasonNodePortAlreadyAllocated}.run(t, b)
		}
		// ... but the address the failed update would have taken is free.
		step{key: "ns/c", spec: withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.10")}.run(t, b)
		// The old spec gives back the old values, freeing nothing.
		again, _ := step{key: "ns/a", spec: oldSpec}.run(t, b)
		if !reflect.DeepEqual(again, old) {
			t.Errorf("after failed updates Ensure(old spec) = %+v, want %+v", again, old)
		}
	})
}

func TestRelease(t *testing.T) {
	tests := []struct {
		name  string
		cidrs string
		spec  *v1alpha1.ServiceSpec
	}{
		{"ClusterIP", v4CIDR, clusterIPSvc(tcp("http", 80))},
		{"NodePort", v4CIDR, nodePortSvc(tcp("http", 80), np(tcp("https", 443), 30005))},
		{"NodePort with shared TCP/UDP node port", v4CIDR, nodePortSvc(tcp("dns-tcp", 53), udp("dns", 53))},
		{"NodePort with shared requested TCP/UDP node port", v4CIDR, nodePortSvc(np(tcp("dns-tcp", 53), 30005), np(udp("dns", 53), 30005))},
		{"LoadBalancer Local", v4CIDR, lbLocalSvc(tcp("http", 80), tcp("dns-tcp", 53), udp("dns", 53))},
		{"dual-stack", dualCIDRs, withPolicy(nodePortSvc(tcp("http", 80)), corev1.IPFamilyPolicyRequireDualStack)},
		{"headless", v4CIDR, headlessSvc(true, tcp("http", 80))},
		{"ExternalName", v4CIDR, externalNameSvc()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBook(t, tc.cidrs)
			other := ensure(t, b, "ns/other", clusterIPSvc(tcp("http", 80)))
			a := ensure(t, b, "ns/svc", tc.spec)
			// Release reports whether a value went back to a range: never for an
			// empty holding (headless, ExternalName).
			if got, want := b.Release("ns/svc"), holdsValues(a); got != want {
				t.Errorf("Release = %v for a key that held %+v, want %v", got, a, want)
			}
			if usedIPs(b) != 1 || usedPorts(b) != 0 {
				t.Errorf("usage after Release = %+v, want only ns/other's address", b.Usage())
			}
			if b.Release("ns/svc") {
				t.Errorf("second Release = true")
			}
			if !b.InSync("ns/other", uidOf("ns/other"), statusOf(other)) {
				t.Errorf("Release of ns/svc disturbed ns/other")
			}
			if !b.InSync("ns/svc", uidOf("ns/svc"), &v1alpha1.ServiceStatus{}) {
				t.Errorf("a released key is not in sync with an empty status")
			}
			// Everything released can be requested again, by anyone: first the
			// addresses (by value), then the node ports (by a Service whose own
			// automatic address can then no longer collide with them).
			if ips := slices.DeleteFunc(slices.Clone(a.ClusterIPs), func(s string) bool { return s == "None" }); len(ips) > 0 {
				spec := withIPs(clusterIPSvc(tcp("http", 80)), ips...)
				if len(ips) == 2 {
					withPolicy(spec, corev1.IPFamilyPolicyRequireDualStack)
				}
				ensure(t, b, "ns/taker-ips", spec)
			}
			var ports []v1alpha1.ServicePort
			for i, p := range slices.Sorted(maps.Keys(heldValues(&a))) {
				if n, ok := strings.CutPrefix(p, "port:"); ok {
					var port int32
					if _, err := fmt.Sscan(n, &port); err != nil {
						t.Fatal(err)
					}
					ports = append(ports, np(tcp(fmt.Sprintf("p%d", i), int32(1000+i)), port))
				}
			}
			if len(ports) > 0 {
				ensure(t, b, "ns/taker-ports", nodePortSvc(ports...))
			}
		})
	}
	t.Run("unknown key", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		if b.Release("ns/nobody") {
			t.Error("Release of an unknown key = true")
		}
	})
	t.Run("Release of a key with a TCP/UDP shared port leaves the range empty", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		a := ensure(t, b, "ns/svc", nodePortSvc(tcp("dns-tcp", 53), udp("dns", 53), tcp("http", 80)))
		if usedPorts(b) != 2 {
			t.Fatalf("nodePort Used = %d, want 2", usedPorts(b))
		}
		b.Release("ns/svc")
		if usedPorts(b) != 0 || usedIPs(b) != 0 {
			t.Errorf("usage = %+v, want empty", b.Usage())
		}
		// No double release bookkeeping: both ranges behave normally afterwards.
		ensure(t, b, "ns/x", nodePortSvc(np(tcp("dns-tcp", 53), a.Ports[0].NodePort), udp("dns", 53)))
		if usedPorts(b) != 1 {
			t.Errorf("nodePort Used = %d, want 1", usedPorts(b))
		}
	})
}

func TestWaiting(t *testing.T) {
	b := newBook(t, tinyCIDR)
	wantWaiting := func(want ...string) {
		t.Helper()
		if got := b.Waiting(); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("Waiting() = %q, want %q", got, want)
		}
	}
	wantWaiting()
	step{key: "ns/ports", spec: withIPs(nodePortSvc(np(tcp("http", 80), 30005)), "10.0.0.1")}.run(t, b)
	step{key: "ns/ip", spec: withIPs(clusterIPSvc(tcp("http", 80)), "10.0.0.6")}.run(t, b)

	// A taken value: waiting.
	step{key: "ns/b-ip-taken", spec: withIPs(clusterIPSvc(tcp("http", 80)), "10.0.0.6"), wantErr: ReasonClusterIPAlreadyAllocated}.run(t, b)
	step{key: "ns/a-port-taken", spec: nodePortSvc(np(tcp("http", 80), 30005)), wantErr: ReasonNodePortAlreadyAllocated}.run(t, b)
	// Longest waiting first, whatever the names: first come, first served.
	wantWaiting("ns/b-ip-taken", "ns/a-port-taken")

	// Permanent failures never wait.
	step{key: "ns/c-out-of-range", spec: withIPs(clusterIPSvc(tcp("http", 80)), outsideIP), wantErr: ReasonClusterIPOutOfRange}.run(t, b)
	step{key: "ns/d-family", spec: withFamilies(clusterIPSvc(tcp("http", 80)), ipv6), wantErr: ReasonInvalidIPFamilies}.run(t, b)
	wantWaiting("ns/b-ip-taken", "ns/a-port-taken")

	// A waiting key whose next failure is permanent stops waiting.
	step{key: "ns/b-ip-taken", spec: withIPs(clusterIPSvc(tcp("http", 80)), outsideIP), wantErr: ReasonClusterIPOutOfRange}.run(t, b)
	wantWaiting("ns/a-port-taken")

	// A full range: waiting.
	for i := range 4 {
		step{key: fmt.Sprintf("ns/fill-%d", i), spec: clusterIPSvc(tcp("http", 80))}.run(t, b)
	}
	step{key: "ns/e-full", spec: clusterIPSvc(tcp("http", 80)), wantErr: ReasonClusterIPRangeFull}.run(t, b)
	wantWaiting("ns/a-port-taken", "ns/e-full")

	// Success removes a key: the taken port is released, the waiter gets it.
	if !b.Release("ns/ports") {
		t.Fatal("Release(ns/ports) = false")
	}
	step{key: "ns/a-port-taken", spec: nodePortSvc(np(tcp("http", 80), 30005))}.run(t, b)
	wantWaiting("ns/e-full")

	// A key that holds values and fails an update waits too, and Release removes it.
	step{key: "ns/fill-0", spec: withIPs(clusterIPSvc(tcp("http", 80)), "10.0.0.6"), wantErr: ReasonClusterIPAlreadyAllocated}.run(t, b)
	wantWaiting("ns/e-full", "ns/fill-0")
	if !b.Release("ns/fill-0") {
		t.Fatal("Release(ns/fill-0) = false")
	}
	wantWaiting("ns/e-full")

	// Release of a key that holds nothing but waits removes it as well.
	if b.Release("ns/e-full") {
		t.Error("Release(ns/e-full) = true, but it held nothing")
	}
	wantWaiting()
}

// ---------------------------------------------------------------------------------
// Restore

func TestRestore(t *testing.T) {
	type restore struct {
		key    string
		uid    types.UID // uidOf(key) when empty
		status v1alpha1.ServiceStatus
		want   []Problem
	}
	ips := func(s ...string) v1alpha1.ServiceStatus { return v1alpha1.ServiceStatus{ClusterIPs: s} }
	ports := func(p ...v1alpha1.ServicePortStatus) v1alpha1.ServiceStatus { return v1alpha1.ServiceStatus{Ports: p} }
	tests := []struct {
		name     string
		cidrs    string
		restores []restore
		used     map[string]int
	}{
		{
			name:  "duplicate cluster IP: the first restored keeps it",
			cidrs: v4CIDR,
			restores: []restore{
				{key: "ns/a", status: ips("10.96.0.50")},
				{key: "ns/b", status: ips("10.96.0.50"), want: []Problem{{Key: "ns/b", Reason: ReasonClusterIPAlreadyAllocated,
					Message: "Cluster IP 10.96.0.50 was assigned to multiple services; it stays with ns/a and this service gets another one"}}},
			},
			used: map[string]int{v4CIDR: 1},
		},
		{
			name:  "cluster IP outside the range",
			cidrs: v4CIDR,
			restores: []restore{
				{key: "ns/a", status: ips(outsideIP), want: []Problem{{Key: "ns/a", Reason: ReasonClusterIPOutOfRange,
					Message: "Cluster IP 192.0.2.1 is not within the configured service CIDR 10.96.0.0/24; a new one will be allocated"}}},
			},
		},
		{
			name:  "IPv6 cluster IP outside a dual-stack book's IPv6 range",
			cidrs: dualCIDRs,
			restores: []restore{
				{key: "ns/a", status: ips("10.96.0.20", "fd00:10:97::1"), want: []Problem{{Key: "ns/a", Reason: ReasonClusterIPOutOfRange,
					Message: "Cluster IP fd00:10:97::1 is not within the configured service CIDR 10.96.0.0/24,fd00:10:96::/120; a new one will be allocated"}}},
			},
			used: map[string]int{v4CIDR: 1},
		},
		{
			name:  "IPv6 cluster IP on an IPv4-only book",
			cidrs: v4CIDR,
			restores: []restore{
				{key: "ns/a", status: ips("10.96.0.20", "fd00:10:96::20"), want: []Problem{{Key: "ns/a", Reason: ReasonClusterIPOutOfRange,
					Message: "Cluster IP fd00:10:96::20 is not within the configured service CIDR 10.96.0.0/24; a new one will be allocated"}}},
			},
			used: map[string]int{v4CIDR: 1},
		},
		{
			name:  "network and broadcast addresses",
			cidrs: v4CIDR,
			restores: []restore{
				{key: "ns/a", status: ips("10.96.0.0"), want: []Problem{{Key: "ns/a", Reason: ReasonClusterIPOutOfRange,
					Message: "Cluster IP 10.96.0.0 is not within the configured service CIDR 10.96.0.0/24; a new one will be allocated"}}},
				{key: "ns/b", status: ips("10.96.0.255"), want: []Problem{{Key: "ns/b", Reason: ReasonClusterIPOutOfRange,
					Message: "Cluster IP 10.96.0.255 is not within the configured service CIDR 10.96.0.0/24; a new one will be allocated"}}},
			},
		},
		{
			name:  "not an IP",
			cidrs: v4CIDR,
			restores: []restore{
				{key: "ns/a", status: ips("garbage"), want: []Problem{{Key: "ns/a", Reason: ReasonClusterIPOutOfRange,
					Message: `Cluster IP "garbage" in status is not an IP address; a new one will be allocated`}}},
			},
		},
		{
			name:  "None and empty entries are skipped",
			cidrs: v4CIDR,
			restores: []restore{
				{key: "ns/a", status: ips("None")},
				{key: "ns/b", status: ips("")},
				{key: "ns/c", status: v1alpha1.ServiceStatus{}},
			},
		},
		{
			name:  "duplicate node port: the first restored keeps it",
			cidrs: v4CIDR,
			restores: []restore{
				{key: "ns/a", status: ports(ps("http", pTCP, 80, 30005))},
				{key: "ns/b", status: ports(ps("http", pTCP, 80, 30005), ps("https", pTCP, 443, 30006)), want: []Problem{{Key: "ns/b", Reason: ReasonNodePortAlreadyAllocated,
					Message: "Port 30005 was assigned to multiple services; it stays with ns/a and this service gets another one"}}},
			},
			used: map[string]int{testNodePorts: 2},
		},
		{
			name:  "node port outside the range",
			cidrs: v4CIDR,
			restores: []restore{
				{key: "ns/a", status: ports(ps("http", pTCP, 80, 40000), ps("https", pTCP, 443, 30006)), want: []Problem{{Key: "ns/a", Reason: ReasonNodePortOutOfRange,
					Message: "Port 40000 is not within the port range 30000-30009; a new one will be allocated"}}},
			},
			used: map[string]int{testNodePorts: 1},
		},
		{
			name:  "health check node port duplicates a node port restored earlier",
			cidrs: v4CIDR,
			restores: []restore{
				{key: "ns/a", status: ports(ps("http", pTCP, 80, 30005))},
				{key: "ns/b", status: v1alpha1.ServiceStatus{HealthCheckNodePort: 30005}, want: []Problem{{Key: "ns/b", Reason: ReasonNodePortAlreadyAllocated,
					Message: "Port 30005 was assigned to multiple services; it stays with ns/a and this service gets another one"}}},
			},
			used: map[string]int{testNodePorts: 1},
		},
		{
			name:  "node port duplicates a health check node port restored earlier",
			cidrs: v4CIDR,
			restores: []restore{
				{key: "ns/a", status: v1alpha1.ServiceStatus{HealthCheckNodePort: 30005}},
				{key: "ns/b", status: ports(ps("http", pTCP, 80, 30005)), want: []Problem{{Key: "ns/b", Reason: ReasonNodePortAlreadyAllocated,
					Message: "Port 30005 was assigned to multiple services; it stays with ns/a and this service gets another one"}}},
			},
			used: map[string]int{testNodePorts: 1},
		},
		{
			name:  "health check node port outside the range",
			cidrs: v4CIDR,
			restores: []restore{
				{key: "ns/a", status: v1alpha1.ServiceStatus{HealthCheckNodePort: 29999}, want: []Problem{{Key: "ns/a", Reason: ReasonNodePortOutOfRange,
					Message: "Port 29999 is not within the port range 30000-30009; a new one will be allocated"}}},
			},
		},
		{
			name:  "TCP/UDP twins sharing a node port are one claim",
			cidrs: v4CIDR,
			restores: []restore{
				{key: "ns/a", status: ports(ps("dns-tcp", pTCP, 53, 30005), ps("dns", pUDP, 53, 30005))},
			},
			used: map[string]int{testNodePorts: 1},
		},
		{
			name:  "several problems in one status, the rest restored",
			cidrs: dualCIDRs,
			restores: []restore{
				{key: "ns/a", status: v1alpha1.ServiceStatus{ClusterIPs: []string{"10.96.0.50"}, Ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 30005)}}},
				{key: "ns/b", status: v1alpha1.ServiceStatus{
					ClusterIPs:          []string{"10.96.0.50", "fd00:10:96::50"},
					Ports:               []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 30005), ps("https", pTCP, 443, 30006)},
					HealthCheckNodePort: 40000,
				}, want: []Problem{
					{Key: "ns/b", Reason: ReasonClusterIPAlreadyAllocated, Message: "Cluster IP 10.96.0.50 was assigned to multiple services; it stays with ns/a and this service gets another one"},
					{Key: "ns/b", Reason: ReasonNodePortAlreadyAllocated, Message: "Port 30005 was assigned to multiple services; it stays with ns/a and this service gets another one"},
					{Key: "ns/b", Reason: ReasonNodePortOutOfRange, Message: "Port 40000 is not within the port range 30000-30009; a new one will be allocated"},
				}},
			},
			used: map[string]int{v4CIDR: 1, v6CIDR: 1, testNodePorts: 2},
		},
		{
			name:  "restoring the same key twice is harmless",
			cidrs: v4CIDR,
			restores: []restore{
				{key: "ns/a", status: v1alpha1.ServiceStatus{ClusterIPs: []string{"10.96.0.50"}, Ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 30005)}}},
				{key: "ns/a", status: v1alpha1.ServiceStatus{ClusterIPs: []string{"10.96.0.50"}, Ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 30005)}}},
			},
			used: map[string]int{v4CIDR: 1, testNodePorts: 1},
		},
		{
			name:  "restoring a key under a new uid drops what the old uid held",
			cidrs: v4CIDR,
			restores: []restore{
				{key: "ns/a", uid: "uid-1", status: v1alpha1.ServiceStatus{ClusterIPs: []string{"10.96.0.50"}, Ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 30005)}}},
				{key: "ns/a", uid: "uid-2", status: v1alpha1.ServiceStatus{ClusterIPs: []string{"10.96.0.51"}}},
				{key: "ns/b", status: v1alpha1.ServiceStatus{ClusterIPs: []string{"10.96.0.50"}, Ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 30005)}}},
			},
			used: map[string]int{v4CIDR: 2, testNodePorts: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBook(t, tc.cidrs)
			for i, r := range tc.restores {
				uid := r.uid
				if uid == "" {
					uid = uidOf(r.key)
				}
				status := r.status
				got := b.Restore(r.key, uid, &status)
				if !reflect.DeepEqual(got, r.want) && (len(got) != 0 || len(r.want) != 0) {
					t.Errorf("Restore #%d (%s) problems:\n got  %+v\n want %+v", i, r.key, got, r.want)
				}
			}
			for rng, n := range usage(b) {
				if n != tc.used[rng] {
					t.Errorf("Used(%s) = %d, want %d", rng, n, tc.used[rng])
				}
			}
		})
	}
}

func TestRestoreThenEnsure(t *testing.T) {
	tests := []struct {
		name   string
		cidrs  string
		status v1alpha1.ServiceStatus
		spec   *v1alpha1.ServiceSpec
	}{
		{
			name:  "ClusterIP",
			cidrs: v4CIDR,
			status: v1alpha1.ServiceStatus{ClusterIP: "10.96.0.20", ClusterIPs: []string{"10.96.0.20"}, IPFamilies: []corev1.IPFamily{ipv4},
				Ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			spec: clusterIPSvc(tcp("http", 80)),
		},
		{
			name:  "ClusterIP whose spec requests the restored address",
			cidrs: v4CIDR,
			status: v1alpha1.ServiceStatus{ClusterIP: "10.96.0.20", ClusterIPs: []string{"10.96.0.20"}, IPFamilies: []corev1.IPFamily{ipv4},
				Ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 0)}},
			spec: withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.20"),
		},
		{
			name:  "NodePort with TCP/UDP twins",
			cidrs: v4CIDR,
			status: v1alpha1.ServiceStatus{ClusterIP: "10.96.0.20", ClusterIPs: []string{"10.96.0.20"}, IPFamilies: []corev1.IPFamily{ipv4},
				Ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 30003), ps("dns-tcp", pTCP, 53, 30004), ps("dns", pUDP, 53, 30004)}},
			spec: nodePortSvc(tcp("http", 80), tcp("dns-tcp", 53), udp("dns", 53)),
		},
		{
			name:  "LoadBalancer Local",
			cidrs: v4CIDR,
			status: v1alpha1.ServiceStatus{ClusterIP: "10.96.0.20", ClusterIPs: []string{"10.96.0.20"}, IPFamilies: []corev1.IPFamily{ipv4},
				Ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 30003)}, HealthCheckNodePort: 30006},
			spec: lbLocalSvc(tcp("http", 80)),
		},
		{
			name:  "dual-stack, IPv6 first",
			cidrs: dualCIDRs,
			status: v1alpha1.ServiceStatus{ClusterIP: "fd00:10:96::20", ClusterIPs: []string{"fd00:10:96::20", "10.96.0.20"}, IPFamilies: []corev1.IPFamily{ipv6, ipv4},
				Ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 30003)}},
			spec: withFamilies(withPolicy(nodePortSvc(tcp("http", 80)), corev1.IPFamilyPolicyRequireDualStack), ipv6, ipv4),
		},
		{
			name:   "headless",
			cidrs:  dualCIDRs,
			status: v1alpha1.ServiceStatus{ClusterIP: "None", ClusterIPs: []string{"None"}, IPFamilies: []corev1.IPFamily{ipv4, ipv6}, Ports: []v1alpha1.ServicePortStatus{}},
			spec:   headlessSvc(false),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBook(t, tc.cidrs)
			if p := b.Restore("ns/svc", uidOf("ns/svc"), &tc.status); len(p) != 0 {
				t.Fatalf("Restore problems: %+v", p)
			}
			if !b.InSync("ns/svc", uidOf("ns/svc"), &tc.status) {
				t.Errorf("InSync is false right after Restore")
			}
			before := usage(b)
			got, freed, err := b.Ensure("ns/svc", uidOf("ns/svc"), tc.spec)
			if err != nil {
				t.Fatalf("Ensure: %v", err)
			}
			if freed {
				t.Errorf("freed = true")
			}
			want := Allocation{ClusterIPs: tc.status.ClusterIPs, IPFamilies: tc.status.IPFamilies, Ports: tc.status.Ports, HealthCheckNodePort: tc.status.HealthCheckNodePort}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Ensure after Restore = %+v, want the restored %+v", got, want)
			}
			if after := usage(b); !maps.Equal(before, after) {
				t.Errorf("Ensure after Restore allocated: usage %v -> %v", before, after)
			}
		})
	}

	t.Run("a refused duplicate address is replaced by the next Ensure", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		st := v1alpha1.ServiceStatus{ClusterIPs: []string{"10.96.0.50"}, Ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 30005)}}
		b.Restore("ns/a", uidOf("ns/a"), &st)
		if p := b.Restore("ns/b", uidOf("ns/b"), &st); len(p) != 2 {
			t.Fatalf("Restore(ns/b) problems = %+v, want an address and a port problem", p)
		}
		gotB := ensure(t, b, "ns/b", nodePortSvc(tcp("http", 80)))
		if gotB.ClusterIPs[0] == "10.96.0.50" || !allocatable(t, v4CIDR, gotB.ClusterIPs[0]) {
			t.Errorf("ns/b got %s, want a new address", gotB.ClusterIPs[0])
		}
		if gotB.Ports[0].NodePort == 30005 || !inNodePortRange(gotB.Ports[0].NodePort) {
			t.Errorf("ns/b got node port %d, want a new one", gotB.Ports[0].NodePort)
		}
		gotA := ensure(t, b, "ns/a", nodePortSvc(tcp("http", 80)))
		if gotA.ClusterIPs[0] != "10.96.0.50" || gotA.Ports[0].NodePort != 30005 {
			t.Errorf("ns/a got %+v, want to keep 10.96.0.50 and 30005", gotA)
		}
		if usedIPs(b) != 2 || usedPorts(b) != 2 {
			t.Errorf("usage = %+v", b.Usage())
		}
	})
	t.Run("a refused duplicate whose spec asks for the address waits", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		st := v1alpha1.ServiceStatus{ClusterIPs: []string{"10.96.0.50"}}
		b.Restore("ns/a", uidOf("ns/a"), &st)
		b.Restore("ns/b", uidOf("ns/b"), &st)
		step{key: "ns/b", spec: withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.50"), wantErr: ReasonClusterIPAlreadyAllocated}.run(t, b)
		if !slices.Equal(b.Waiting(), []string{"ns/b"}) {
			t.Errorf("Waiting() = %v", b.Waiting())
		}
	})
	t.Run("an out-of-range restored address is replaced by the next Ensure", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		b.Restore("ns/a", uidOf("ns/a"), &v1alpha1.ServiceStatus{ClusterIPs: []string{outsideIP}, Ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 40000)}})
		got := ensure(t, b, "ns/a", nodePortSvc(tcp("http", 80)))
		if !allocatable(t, v4CIDR, got.ClusterIPs[0]) || !inNodePortRange(got.Ports[0].NodePort) {
			t.Errorf("got %+v", got)
		}
	})
	t.Run("a restored Service whose spec no longer needs the values releases them", func(t *testing.T) {
		b := newBook(t, dualCIDRs)
		b.Restore("ns/a", uidOf("ns/a"), &v1alpha1.ServiceStatus{
			ClusterIPs: []string{"10.96.0.20", "fd00:10:96::20"}, Ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 30003)}, HealthCheckNodePort: 30004,
		})
		a, _ := step{key: "ns/a", spec: clusterIPSvc(tcp("http", 80)), wantFreed: true}.run(t, b)
		if !slices.Equal(a.ClusterIPs, []string{"10.96.0.20"}) {
			t.Errorf("got %v, want the restored primary address only", a.ClusterIPs)
		}
		if u := usage(b); u[v4CIDR] != 1 || u[v6CIDR] != 0 || u[testNodePorts] != 0 {
			t.Errorf("usage = %v", u)
		}
	})
	t.Run("a restored node port follows its port by name", func(t *testing.T) {
		b := newBook(t, v4CIDR)
		b.Restore("ns/a", uidOf("ns/a"), &v1alpha1.ServiceStatus{ClusterIPs: []string{"10.96.0.20"}, Ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 30003)}})
		a, _ := step{key: "ns/a", spec: nodePortSvc(tcp("http", 8080))}.run(t, b)
		if a.Ports[0].NodePort != 30003 {
			t.Errorf("got %+v, want node port 30003 kept", a.Ports)
		}
	})
}

// ---------------------------------------------------------------------------------
// InSync and Audit

func TestInSync(t *testing.T) {
	mutate := func(f func(*v1alpha1.ServiceStatus)) func(Allocation) *v1alpha1.ServiceStatus {
		return func(a Allocation) *v1alpha1.ServiceStatus { s := statusOf(a); f(s); return s }
	}
	mirror := mutate(func(*v1alpha1.ServiceStatus) {})
	empty := func(Allocation) *v1alpha1.ServiceStatus { return &v1alpha1.ServiceStatus{} }
	tests := []struct {
		name   string
		cidrs  string
		spec   *v1alpha1.ServiceSpec // nil: ns/svc holds nothing
		uid    types.UID
		status func(Allocation) *v1alpha1.ServiceStatus
		want   bool
	}{
		{name: "ClusterIP mirrored", spec: clusterIPSvc(tcp("http", 80)), status: mirror, want: true},
		{name: "NodePort mirrored", spec: nodePortSvc(tcp("http", 80), tcp("dns-tcp", 53), udp("dns", 53)), status: mirror, want: true},
		{name: "LoadBalancer Local mirrored", spec: lbLocalSvc(tcp("http", 80)), status: mirror, want: true},
		{name: "headless mirrored", spec: headlessSvc(true, tcp("http", 80)), status: mirror, want: true},
		{name: "ExternalName mirrored", spec: externalNameSvc(), status: mirror, want: true},
		{name: "dual-stack mirrored", cidrs: dualCIDRs, spec: withPolicy(nodePortSvc(tcp("http", 80)), corev1.IPFamilyPolicyRequireDualStack), status: mirror, want: true},
		{
			name: "status shows another address", spec: withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.10"),
			status: mutate(func(s *v1alpha1.ServiceStatus) { s.ClusterIP, s.ClusterIPs = "10.96.0.11", []string{"10.96.0.11"} }),
		},
		{
			name: "status shows no address", spec: clusterIPSvc(tcp("http", 80)),
			status: mutate(func(s *v1alpha1.ServiceStatus) { s.ClusterIP, s.ClusterIPs = "", nil }),
		},
		{
			name: "status shows an extra address", cidrs: dualCIDRs, spec: withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.10"),
			status: mutate(func(s *v1alpha1.ServiceStatus) { s.ClusterIPs = append(s.ClusterIPs, "fd00:10:96::10") }),
		},
		{
			name: "status lacks the secondary address", cidrs: dualCIDRs, spec: withPolicy(clusterIPSvc(tcp("http", 80)), corev1.IPFamilyPolicyRequireDualStack),
			status: mutate(func(s *v1alpha1.ServiceStatus) { s.ClusterIPs = s.ClusterIPs[:1] }),
		},
		{
			name: "status shows headless for a Service with an address", spec: clusterIPSvc(tcp("http", 80)),
			status: mutate(func(s *v1alpha1.ServiceStatus) { s.ClusterIP, s.ClusterIPs = "None", []string{"None"} }),
		},
		{
			name: "status lacks a node port", spec: nodePortSvc(tcp("http", 80), tcp("https", 443)),
			status: mutate(func(s *v1alpha1.ServiceStatus) { s.Ports[1].NodePort = 0 }),
		},
		{
			name: "status shows another node port", spec: nodePortSvc(np(tcp("http", 80), 30001)),
			status: mutate(func(s *v1alpha1.ServiceStatus) { s.Ports[0].NodePort = 30002 }),
		},
		{
			name: "status shows a node port for a ClusterIP Service", spec: clusterIPSvc(tcp("http", 80)),
			status: mutate(func(s *v1alpha1.ServiceStatus) { s.Ports[0].NodePort = 30002 }),
		},
		{
			name: "status health check node port differs", spec: withHealthCheck(lbLocalSvc(np(tcp("http", 80), 30001)), 30002),
			status: mutate(func(s *v1alpha1.ServiceStatus) { s.HealthCheckNodePort = 30003 }),
		},
		{
			name: "status lacks the health check node port", spec: lbLocalSvc(tcp("http", 80)),
			status: mutate(func(s *v1alpha1.ServiceStatus) { s.HealthCheckNodePort = 0 }),
		},
		{
			name: "status empty while values are held", spec: nodePortSvc(tcp("http", 80)), status: empty,
		},
		{
			// InSync compares sets: the order of addresses is not checked.
			name: "dual-stack addresses in the other order still count as in sync", cidrs: dualCIDRs,
			spec:   withPolicy(clusterIPSvc(tcp("http", 80)), corev1.IPFamilyPolicyRequireDualStack),
			status: mutate(func(s *v1alpha1.ServiceStatus) { slices.Reverse(s.ClusterIPs) }),
			want:   true,
		},
		{
			// InSync compares sets: which port holds which node port is not checked.
			name:   "node ports swapped between ports still count as in sync",
			spec:   nodePortSvc(np(tcp("http", 80), 30001), np(tcp("https", 443), 30002)),
			status: mutate(func(s *v1alpha1.ServiceStatus) { s.Ports[0].NodePort, s.Ports[1].NodePort = 30002, 30001 }),
			want:   true,
		},
		{name: "unknown key, empty status", status: empty, want: true},
		{name: "unknown key, headless status", status: func(Allocation) *v1alpha1.ServiceStatus {
			return &v1alpha1.ServiceStatus{ClusterIP: "None", ClusterIPs: []string{"None"}, IPFamilies: []corev1.IPFamily{ipv4}}
		}, want: true},
		{name: "unknown key, status with an address", status: func(Allocation) *v1alpha1.ServiceStatus {
			return &v1alpha1.ServiceStatus{ClusterIPs: []string{"10.96.0.10"}}
		}},
		{name: "unknown key, status with a node port", status: func(Allocation) *v1alpha1.ServiceStatus {
			return &v1alpha1.ServiceStatus{Ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, 30001)}}
		}},
		{name: "unknown key, status with a health check node port", status: func(Allocation) *v1alpha1.ServiceStatus {
			return &v1alpha1.ServiceStatus{HealthCheckNodePort: 30001}
		}},
		{name: "another uid, empty status", spec: nodePortSvc(tcp("http", 80)), uid: "uid-new", status: empty, want: true},
		{name: "another uid, mirrored status", spec: nodePortSvc(tcp("http", 80)), uid: "uid-new", status: mirror},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBook(t, cmpOr(tc.cidrs, v4CIDR))
			var a Allocation
			if tc.spec != nil {
				a = ensure(t, b, "ns/svc", tc.spec)
			}
			uid := tc.uid
			if uid == "" {
				uid = uidOf("ns/svc")
			}
			status := tc.status(a)
			if got := b.InSync("ns/svc", uid, status); got != tc.want {
				t.Errorf("InSync(%+v) = %v, want %v (holding %+v)", status, got, tc.want, a)
			}
			// An in-sync status gives Audit nothing to report.
			if tc.want && len(b.Audit("ns/svc", uid, status)) != 0 {
				t.Errorf("Audit reports problems for an in-sync status: %+v", b.Audit("ns/svc", uid, status))
			}
		})
	}
}

func TestAudit(t *testing.T) {
	// ns/other holds 10.96.0.50 and node port 30005; ns/svc holds 10.96.0.10,
	// node port 30001 and health check node port 30002.
	setup := func(t *testing.T) *Book {
		b := newBook(t, v4CIDR)
		ensure(t, b, "ns/other", withIPs(nodePortSvc(np(tcp("http", 80), 30005)), "10.96.0.50"))
		ensure(t, b, "ns/svc", withHealthCheck(withIPs(lbLocalSvc(np(tcp("http", 80), 30001)), "10.96.0.10"), 30002))
		return b
	}
	st := func(ips []string, nodePort, hc int32) *v1alpha1.ServiceStatus {
		s := &v1alpha1.ServiceStatus{ClusterIPs: ips, HealthCheckNodePort: hc}
		if nodePort != 0 {
			s.Ports = []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, nodePort)}
		}
		return s
	}
	const (
		dupIP      = "Cluster IP 10.96.0.50 was assigned to multiple services; it stays with ns/other and this service gets another one"
		dupPort    = "Port 30005 was assigned to multiple services; it stays with ns/other and this service gets another one"
		outIP      = "Cluster IP 192.0.2.1 is not within the configured service CIDR 10.96.0.0/24; a new one will be allocated"
		outPort    = "Port 40000 is not within the port range 30000-30009; a new one will be allocated"
		lostIP     = "Cluster IP 10.96.0.60 is shown in status but not allocated; repairing"
		lostPort   = "Port 30007 is shown in status but not allocated; repairing"
		heldIP     = "Cluster IP 10.96.0.10 is shown in status but not allocated; repairing"
		heldPort   = "Port 30001 is shown in status but not allocated; repairing"
		heldHC     = "Port 30002 is shown in status but not allocated; repairing"
		svcHeldIP  = "Cluster IP 10.96.0.10 was assigned to multiple services; it stays with ns/svc and this service gets another one"
		svcHeldNP  = "Port 30001 was assigned to multiple services; it stays with ns/svc and this service gets another one"
		v6OutOfV4  = "Cluster IP fd00:10:96::10 is not within the configured service CIDR 10.96.0.0/24; a new one will be allocated"
		lostHCPort = "Port 30008 is shown in status but not allocated; repairing"
	)
	p := func(key, reason, msg string) Problem { return Problem{Key: key, Reason: reason, Message: msg} }
	tests := []struct {
		name   string
		key    string
		uid    types.UID
		status *v1alpha1.ServiceStatus
		want   []Problem
	}{
		{name: "in sync", key: "ns/svc", status: st([]string{"10.96.0.10"}, 30001, 30002)},
		{name: "empty status", key: "ns/svc", status: st(nil, 0, 0)},
		{name: "headless status", key: "ns/svc", status: st([]string{"None"}, 0, 0)},
		{name: "address held by another Service", key: "ns/svc", status: st([]string{"10.96.0.50"}, 30001, 30002),
			want: []Problem{p("ns/svc", ReasonClusterIPAlreadyAllocated, dupIP)}},
		{name: "address outside the range", key: "ns/svc", status: st([]string{outsideIP}, 30001, 30002),
			want: []Problem{p("ns/svc", ReasonClusterIPOutOfRange, outIP)}},
		{name: "IPv6 address on an IPv4-only book", key: "ns/svc", status: st([]string{"10.96.0.10", "fd00:10:96::10"}, 30001, 30002),
			want: []Problem{p("ns/svc", ReasonClusterIPOutOfRange, v6OutOfV4)}},
		{name: "address in range but not allocated", key: "ns/svc", status: st([]string{"10.96.0.60"}, 30001, 30002),
			want: []Problem{p("ns/svc", ReasonClusterIPNotAllocated, lostIP)}},
		{name: "node port held by another Service", key: "ns/svc", status: st([]string{"10.96.0.10"}, 30005, 30002),
			want: []Problem{p("ns/svc", ReasonNodePortAlreadyAllocated, dupPort)}},
		{name: "node port outside the range", key: "ns/svc", status: st([]string{"10.96.0.10"}, 40000, 30002),
			want: []Problem{p("ns/svc", ReasonNodePortOutOfRange, outPort)}},
		{name: "node port not allocated", key: "ns/svc", status: st([]string{"10.96.0.10"}, 30007, 30002),
			want: []Problem{p("ns/svc", ReasonNodePortNotAllocated, lostPort)}},
		{name: "health check node port held by another Service", key: "ns/svc", status: st([]string{"10.96.0.10"}, 30001, 30005),
			want: []Problem{p("ns/svc", ReasonNodePortAlreadyAllocated, dupPort)}},
		{name: "health check node port not allocated", key: "ns/svc", status: st([]string{"10.96.0.10"}, 30001, 30008),
			want: []Problem{p("ns/svc", ReasonNodePortNotAllocated, lostHCPort)}},
		{name: "health check node port outside the range", key: "ns/svc", status: st([]string{"10.96.0.10"}, 30001, 40000),
			want: []Problem{p("ns/svc", ReasonNodePortOutOfRange, outPort)}},
		{name: "everything wrong, addresses first, health check last", key: "ns/svc", status: st([]string{"10.96.0.50", outsideIP}, 30007, 30005),
			want: []Problem{
				p("ns/svc", ReasonClusterIPAlreadyAllocated, dupIP),
				p("ns/svc", ReasonClusterIPOutOfRange, outIP),
				p("ns/svc", ReasonNodePortNotAllocated, lostPort),
				p("ns/svc", ReasonNodePortAlreadyAllocated, dupPort),
			}},
		{name: "unknown key showing another Service's values", key: "ns/ghost", status: st([]string{"10.96.0.10"}, 30001, 0),
			want: []Problem{p("ns/ghost", ReasonClusterIPAlreadyAllocated, svcHeldIP), p("ns/ghost", ReasonNodePortAlreadyAllocated, svcHeldNP)}},
		{name: "unknown key showing free values", key: "ns/ghost", status: st([]string{"10.96.0.60"}, 30007, 0),
			want: []Problem{p("ns/ghost", ReasonClusterIPNotAllocated, lostIP), p("ns/ghost", ReasonNodePortNotAllocated, lostPort)}},
		{
			// The values are held by the same key under its old uid; Audit words this
			// as "not allocated", which is what the new object sees.
			name: "same key, another uid", key: "ns/svc", uid: "uid-new", status: st([]string{"10.96.0.10"}, 30001, 30002),
			want: []Problem{p("ns/svc", ReasonClusterIPNotAllocated, heldIP), p("ns/svc", ReasonNodePortNotAllocated, heldPort), p("ns/svc", ReasonNodePortNotAllocated, heldHC)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := setup(t)
			uid := tc.uid
			if uid == "" {
				uid = uidOf(tc.key)
			}
			got := b.Audit(tc.key, uid, tc.status)
			if !reflect.DeepEqual(got, tc.want) && (len(got) != 0 || len(tc.want) != 0) {
				t.Errorf("Audit problems:\n got  %+v\n want %+v", got, tc.want)
			}
			if len(tc.want) > 0 && b.InSync(tc.key, uid, tc.status) {
				t.Errorf("InSync = true for a status with problems")
			}
		})
	}
}

// ---------------------------------------------------------------------------------
// Reclaim

func TestReclaim(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	listedAt := t0.Add(10 * time.Minute)
	before, after := t0, listedAt.Add(time.Minute)

	type holder struct {
		key string
		uid types.UID
		// at is when the holding was made; then, if set, Ensure runs again at
		// again with respec (the same spec when respec is nil).
		at      time.Time
		again   time.Time
		respec  bool
		restore bool // made by Restore instead of Ensure
		waiting bool // a failed update leaves the key in Waiting
	}
	tests := []struct {
		name     string
		holders  []holder
		existing map[string]types.UID
		want     []string
	}{
		{
			name:    "empty book",
			holders: nil,
			want:    nil,
		},
		{
			name: "absent keys older than the listing are reclaimed, sorted",
			holders: []holder{
				{key: "ns/z-gone", at: before},
				{key: "ns/a-gone", at: before},
				{key: "ns/m-gone", at: before.Add(9 * time.Minute)},
			},
			want: []string{"ns/a-gone", "ns/m-gone", "ns/z-gone"},
		},
		{
			name: "absent keys not older than the listing stay",
			holders: []holder{
				{key: "ns/at", at: listedAt},
				{key: "ns/after", at: after},
			},
		},
		{
			name: "present keys with the same uid stay, whatever their age",
			holders: []holder{
				{key: "ns/live", at: before},
				{key: "ns/live-new", at: after},
			},
			existing: map[string]types.UID{"ns/live": uidOf("ns/live"), "ns/live-new": uidOf("ns/live-new")},
		},
		{
			name: "present keys with another uid are reclaimed only when older than the listing",
			holders: []holder{
				{key: "ns/recreated", at: before},
				{key: "ns/recreated-late", at: after},
			},
			existing: map[string]types.UID{"ns/recreated": "uid-other", "ns/recreated-late": "uid-other"},
			want:     []string{"ns/recreated"},
		},
		{
			name: "the listing's uid is the new object's, the Book already holds it: stays",
			holders: []holder{
				{key: "ns/a", uid: "uid-1", at: before},
				{key: "ns/a", uid: "uid-2", at: before.Add(time.Minute)},
			},
			existing: map[string]types.UID{"ns/a": "uid-2"},
		},
		{
			name: "an unchanged holding keeps its age through later passes",
			holders: []holder{
				{key: "ns/old", at: before, again: after},
			},
			want: []string{"ns/old"},
		},
		{
			name: "a holding changed after the listing is young",
			holders: []holder{
				{key: "ns/changed", at: before, again: after, respec: true},
			},
		},
		{
			name: "restored holdings are reclaimed like others",
			holders: []holder{
				{key: "ns/restored", at: before, restore: true},
				{key: "ns/restored-live", at: before, restore: true},
			},
			existing: map[string]types.UID{"ns/restored-live": uidOf("ns/restored-live")},
			want:     []string{"ns/restored"},
		},
		{
			name: "a reclaimed key leaves Waiting",
			holders: []holder{
				{key: "ns/waiter", at: before, waiting: true},
			},
			want: []string{"ns/waiter"},
		},
		{
			name: "empty (headless) holdings are reclaimed too",
			holders: []holder{
				{key: "ns/headless", at: before},
			},
			want: []string{"ns/headless"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBook(t, v4CIDR)
			clock := t0
			b.now = func() time.Time { return clock }
			held := map[string]Allocation{}
			var blocker bool
			for i, h := range tc.holders {
				uid := h.uid
				if uid == "" {
					uid = uidOf(h.key)
				}
				spec := nodePortSvc(tcp("http", 80))
				if strings.Contains(h.key, "headless") {
					spec = headlessSvc(true)
				}
				clock = h.at
				if h.restore {
					ip := fmt.Sprintf("10.96.0.%d", 10+i)
					st := &v1alpha1.ServiceStatus{ClusterIPs: []string{ip}, Ports: []v1alpha1.ServicePortStatus{ps("http", pTCP, 80, int32(30000+i))}}
					if p := b.Restore(h.key, uid, st); len(p) != 0 {
						t.Fatalf("Restore: %+v", p)
					}
					held[h.key] = Allocation{ClusterIPs: st.ClusterIPs, Ports: st.Ports}
					continue
				}
				a, _, err := b.Ensure(h.key, uid, spec)
				if err != nil {
					t.Fatal(err)
				}
				held[h.key] = a
				if !h.again.IsZero() {
					clock = h.again
					if h.respec {
						spec = nodePortSvc(tcp("http", 80), tcp("https", 443))
					}
					if held[h.key], _, err = b.Ensure(h.key, uid, spec); err != nil {
						t.Fatal(err)
					}
				}
				if h.waiting {
					if !blocker {
						ensure(t, b, "ns/blocker", withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.2"))
						blocker = true
					}
					clock = after // a failed update does not touch the holding's age
					if _, _, err := b.Ensure(h.key, uid, withIPs(nodePortSvc(tcp("http", 80)), "10.96.0.2")); err == nil {
						t.Fatal("want the update to fail")
					}
				}
			}
			existing := maps.Clone(tc.existing)
			if blocker {
				if existing == nil {
					existing = map[string]types.UID{}
				}
				existing["ns/blocker"] = uidOf("ns/blocker")
			}
			clock = after.Add(time.Hour) // Reclaim itself must not look at the clock
			got := b.Reclaim(existing, listedAt)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Reclaim = %q, want %q", got, tc.want)
			}
			// Reclaimed keys hold nothing and wait for nothing; the others are intact.
			wantIPs, wantPorts := 0, 0
			if blocker {
				wantIPs++
			}
			for key, a := range held {
				if slices.Contains(tc.want, key) {
					if b.Release(key) {
						t.Errorf("%s still holds something after Reclaim", key)
					}
					if slices.Contains(b.Waiting(), key) {
						t.Errorf("%s still waits after Reclaim", key)
					}
					continue
				}
				for v := range heldValues(&a) {
					if strings.HasPrefix(v, "ip:") {
						wantIPs++
					} else {
						wantPorts++
					}
				}
			}
			if usedIPs(b) != wantIPs || usedPorts(b) != wantPorts {
				t.Errorf("usage after Reclaim = %+v, want %d addresses and %d node ports", b.Usage(), wantIPs, wantPorts)
			}
			// A second Reclaim with the same inputs finds nothing more.
			if again := b.Reclaim(existing, listedAt); len(again) != 0 {
				t.Errorf("second Reclaim = %q, want nothing", again)
			}
		})
	}
}

// ---------------------------------------------------------------------------------
// Concurrency

func TestConcurrentEnsure(t *testing.T) {
	const (
		workers = 8
		perW    = 100
	)
	b := newBookPorts(t, "10.96.0.0/22", "30000-32767")
	type result struct {
		key string
		a   Allocation
		err error
	}
	results := make(chan result, workers*perW)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	// Readers that run alongside the writers, for the race detector.
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
				_ = b.Usage()
				_ = b.Waiting()
				_ = b.InSync("w0/svc-0", uidOf("w0/svc-0"), &v1alpha1.ServiceStatus{})
				_ = b.Audit("w0/svc-0", uidOf("w0/svc-0"), &v1alpha1.ServiceStatus{ClusterIPs: []string{"10.96.0.1"}})
				_ = b.Families()
			}
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perW {
				key := fmt.Sprintf("w%d/svc-%d", w, i)
				spec := clusterIPSvc(tcp("http", 80))
				if i%2 == 0 {
					spec = nodePortSvc(tcp("http", 80))
				}
				a, _, err := b.Ensure(key, uidOf(key), spec)
				results <- result{key, a, err}
			}
		}()
	}
	wg.Wait()
	close(results)
	close(stop)
	readers.Wait()

	ips := map[string]string{}
	ports := map[int32]string{}
	n := 0
	for r := range results {
		n++
		if r.err != nil {
			t.Errorf("Ensure(%s): %v", r.key, r.err)
			continue
		}
		ip := r.a.ClusterIPs[0]
		if prev, dup := ips[ip]; dup {
			t.Errorf("address %s given to both %s and %s", ip, prev, r.key)
		}
		ips[ip] = r.key
		if np := r.a.Ports[0].NodePort; np != 0 {
			if prev, dup := ports[np]; dup {
				t.Errorf("node port %d given to both %s and %s", np, prev, r.key)
			}
			ports[np] = r.key
		}
	}
	if n != workers*perW {
		t.Fatalf("got %d results, want %d", n, workers*perW)
	}
	u := usage(b)
	if u["10.96.0.0/22"] != len(ips) || len(ips) != workers*perW {
		t.Errorf("clusterIP Used = %d, distinct addresses %d, want %d", u["10.96.0.0/22"], len(ips), workers*perW)
	}
	if u["30000-32767"] != len(ports) || len(ports) != workers*perW/2 {
		t.Errorf("nodePort Used = %d, distinct node ports %d, want %d", u["30000-32767"], len(ports), workers*perW/2)
	}

	// Release everything concurrently as well.
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perW {
				if !b.Release(fmt.Sprintf("w%d/svc-%d", w, i)) {
					t.Errorf("Release(w%d/svc-%d) = false", w, i)
				}
			}
		}()
	}
	wg.Wait()
	if usedIPs(b) != 0 || usedPorts(b) != 0 {
		t.Errorf("usage after releasing everything = %+v", b.Usage())
	}
}

// ---------------------------------------------------------------------------------
// Property test

// randomSpec returns a spec that passes the CRD's validation, over the ranges of
// TestRandomOperations: 10.0.0.0/28 (10.0.0.1-10.0.0.14) and fd00::/124
// (fd00::1-fd00::f), node ports 30000-30009. Requested values sometimes fall
// outside those ranges.
func randomSpec(rng *rand.Rand) *v1alpha1.ServiceSpec {
	spec := &v1alpha1.ServiceSpec{Selector: map[string]string{"app": "x"}}
	headless := false
	switch rng.IntN(6) {
	case 0, 1:
		spec.Type = corev1.ServiceTypeClusterIP
	case 2:
		spec.Type = corev1.ServiceTypeNodePort
	case 3:
		spec.Type = corev1.ServiceTypeClusterIP
		spec.ClusterIP, spec.ClusterIPs = "None", []string{"None"}
		headless = true
		if rng.IntN(2) == 0 {
			spec.Selector = nil
		}
	case 4:
		return externalNameSvc()
	case 5:
		spec.Type = corev1.ServiceTypeLoadBalancer
		if rng.IntN(2) == 0 {
			spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			if rng.IntN(4) == 0 {
				spec.HealthCheckNodePort = int32(29999 + rng.IntN(12))
			}
		}
		if rng.IntN(4) == 0 {
			spec.AllocateLoadBalancerNodePorts = ptr.To(false)
		}
	}
	switch rng.IntN(5) {
	case 0:
		spec.Ports = []v1alpha1.ServicePort{tcp("dns-tcp", 53), udp("dns", 53)}
	case 1:
		spec.Ports = []v1alpha1.ServicePort{tcp("http", 80), tcp("https", 443)}
	case 2:
		spec.Ports = []v1alpha1.ServicePort{tcp("http", 8080)}
	case 3:
		spec.Ports = []v1alpha1.ServicePort{tcp("web", 80)}
	default:
		spec.Ports = []v1alpha1.ServicePort{tcp("http", 80)}
	}
	if spec.Type == corev1.ServiceTypeNodePort || spec.Type == corev1.ServiceTypeLoadBalancer {
		type use struct {
			np    int32
			proto corev1.Protocol
		}
		used := map[use]bool{}
		for i := range spec.Ports {
			if rng.IntN(4) != 0 {
				continue
			}
			n := int32(29998 + rng.IntN(14))
			if u := (use{n, spec.Ports[i].Protocol}); !used[u] {
				used[u] = true
				spec.Ports[i].NodePort = n
			}
		}
	}
	// Families and policy.
	policies := []*corev1.IPFamilyPolicy{nil, ptr.To(corev1.IPFamilyPolicySingleStack), ptr.To(corev1.IPFamilyPolicyPreferDualStack), ptr.To(corev1.IPFamilyPolicyRequireDualStack)}
	spec.IPFamilyPolicy = policies[rng.IntN(len(policies))]
	multi := spec.IPFamilyPolicy != nil && *spec.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack
	switch rng.IntN(4) {
	case 1:
		spec.IPFamilies = []corev1.IPFamily{ipv4}
	case 2:
		spec.IPFamilies = []corev1.IPFamily{ipv6}
	case 3:
		if multi {
			spec.IPFamilies = []corev1.IPFamily{ipv6, ipv4}
		}
	}
	if !headless && rng.IntN(3) == 0 {
		randomIP := func(fam corev1.IPFamily) string {
			n := rng.IntN(17) // 0 is the network address, 15 the IPv4 broadcast, 16 outside
			if fam == ipv4 {
				return fmt.Sprintf("10.0.0.%d", n)
			}
			return fmt.Sprintf("fd00::%x", n)
		}
		first := []corev1.IPFamily{ipv4, ipv6}[rng.IntN(2)]
		if len(spec.IPFamilies) > 0 {
			first = spec.IPFamilies[0]
		}
		ips := []string{randomIP(first)}
		if multi && rng.IntN(2) == 0 {
			second := ipv4
			if first == ipv4 {
				second = ipv6
			}
			ips = append(ips, randomIP(second))
		}
		spec.ClusterIP, spec.ClusterIPs = ips[0], ips
	}
	return spec
}

func TestRandomOperations(t *testing.T) {
	const (
		keys  = 30
		steps = 2000
		cidrs = "10.0.0.0/28,fd00::/124"
	)
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x5eed))
			b := newBook(t, cidrs)
			type state struct {
				uid     types.UID
				gen     int
				spec    *v1alpha1.ServiceSpec // of the last successful Ensure
				alloc   *Allocation           // nil: holds nothing
				waiting bool
			}
			st := make([]state, keys)
			for i := range st {
				st[i].uid = types.UID(fmt.Sprintf("uid-%d-0", i))
			}
			keyOf := func(i int) string { return fmt.Sprintf("ns/svc-%02d", i) }
			var trace []string
			fail := func(format string, args ...any) {
				t.Helper()
				n := max(0, len(trace)-8)
				t.Fatalf("%s\nlast operations:\n  %s", fmt.Sprintf(format, args...), strings.Join(trace[n:], "\n  "))
			}
			stats := map[string]int{}
			for stepN := range steps {
				i := rng.IntN(keys)
				k, s := keyOf(i), &st[i]
				op := rng.IntN(10)
				switch {
				case op < 2:
					trace = append(trace, fmt.Sprintf("#%d Release(%s)", stepN, k))
					if got := b.Release(k); got != (s.alloc != nil && holdsValues(*s.alloc)) {
						fail("Release(%s) = %v, but the key held %+v", k, got, s.alloc)
					}
					s.alloc, s.spec, s.waiting = nil, nil, false
					stats["release"]++
				default:
					uidChanged := op == 2
					if uidChanged {
						s.gen++
						s.uid = types.UID(fmt.Sprintf("uid-%d-%d", i, s.gen))
					}
					spec := randomSpec(rng)
					trace = append(trace, fmt.Sprintf("#%d Ensure(%s, %s, %+v)", stepN, k, s.uid, *spec))
					had := s.alloc != nil
					before := heldValues(s.alloc)
					a, freed, err := b.Ensure(k, s.uid, spec)
					if err != nil {
						var e *Error
						if !errors.As(err, &e) {
							fail("Ensure error %v is not an *Error", err)
						}
						stats["fail "+e.Reason]++
						if want := uidChanged && had && len(before) > 0; freed != want {
							fail("failed Ensure freed = %v, want %v", freed, want)
						}
						if uidChanged {
							s.alloc, s.spec = nil, nil
						}
						s.waiting = !e.Permanent
						break
					}
					stats["ok "+string(spec.Type)]++
					after := heldValues(&a)
					wantFreed := uidChanged && had && len(before) > 0
					for v := range before {
						if !after[v] {
							wantFreed = true
						}
					}
					if freed != wantFreed {
						fail("Ensure freed = %v, want %v (before %v, after %v)", freed, wantFreed, before, after)
					}
					s.alloc, s.spec, s.waiting = &a, spec, false
				}

				// Invariant 1: no value is held by two keys; the ranges count exactly
				// the held values.
				owner := map[string]string{}
				count := map[string]int{}
				for j := range st {
					for v := range heldValues(st[j].alloc) {
						if prev, dup := owner[v]; dup {
							fail("%s held by both %s and %s", v, prev, keyOf(j))
						}
						owner[v] = keyOf(j)
						switch {
						case strings.HasPrefix(v, "port:"):
							count[testNodePorts]++
						case strings.HasPrefix(v, "ip:fd00:"):
							count["fd00::/124"]++
						default:
							count["10.0.0.0/28"]++
						}
					}
				}
				if u := usage(b); !maps.Equal(u, map[string]int{"10.0.0.0/28": count["10.0.0.0/28"], "fd00::/124": count["fd00::/124"], testNodePorts: count[testNodePorts]}) {
					fail("usage %v, but the keys hold %v", u, count)
				}
				// Invariant 2: Waiting is exactly the keys whose last Ensure failed
				// for a reason that can clear.
				var waiting []string
				for j := range st {
					if st[j].waiting {
						waiting = append(waiting, keyOf(j))
					}
				}
				// (As a set: Waiting orders by waiting time, checked in TestWaiting.)
				if got := slices.Sorted(slices.Values(b.Waiting())); !slices.Equal(got, waiting) && (len(got) != 0 || len(waiting) != 0) {
					fail("Waiting() = %v, want %v", got, waiting)
				}
				// Invariant 3: every key's last Allocation is what Ensure with the same
				// spec returns again, freeing and allocating nothing; its status is in
				// sync.
				u := usage(b)
				for j := range st {
					if st[j].alloc == nil {
						continue
					}
					a, freed, err := b.Ensure(keyOf(j), st[j].uid, st[j].spec)
					if err != nil || freed || !reflect.DeepEqual(a, *st[j].alloc) {
						fail("repeated Ensure(%s, %+v) = %+v, %v, %v; want %+v", keyOf(j), *st[j].spec, a, freed, err, *st[j].alloc)
					}
					st[j].waiting = false
					if !b.InSync(keyOf(j), st[j].uid, statusOf(a)) {
						fail("InSync(%s) = false for its own allocation %+v", keyOf(j), a)
					}
				}
				if u2 := usage(b); !maps.Equal(u, u2) {
					fail("repeated Ensure changed usage: %v -> %v", u, u2)
				}
			}
			t.Logf("outcomes: %v", stats)
		})
	}
}

// ---------------------------------------------------------------------------------
// Regression tests for bugs found while writing these tests. Each states the correct
// behaviour and the bug it once caught.

// A requested healthCheckNodePort is claimed only after the automatic node ports, so
// an automatic node port of the same Service can take it first, and the Service then
// fails with "spec.healthCheckNodePort: ... provided port is already allocated"
// although a valid allocation exists. planNodePorts claims requested node ports first
// for exactly this reason; the requested health check node port is not included.
func TestBugHealthCheckRequestLosesToAutomaticNodePort(t *testing.T) {
	for trial := range 20 {
		b := newBook(t, v4CIDR)
		// Free: 30005 and 30007 only.
		holdPorts("ns/other", 30000, 30001, 30002, 30003, 30004, 30006, 30008, 30009)(t, b)
		a, _, err := b.Ensure("ns/lb", uidOf("ns/lb"), withHealthCheck(lbLocalSvc(tcp("http", 80)), 30005))
		if err != nil {
			t.Fatalf("trial %d: Ensure: %v", trial, err)
		}
		if a.HealthCheckNodePort != 30005 || a.Ports[0].NodePort != 30007 {
			t.Fatalf("trial %d: got %+v, want node port 30007 and health check node port 30005", trial, a)
		}
	}
}

// Ensure returns the Book's own slice of ports: Allocation.Ports shares its backing
// array with the holding, so a caller that edits the returned Allocation (or a status
// that aliases it, as applyAllocation does with status.Ports) edits the Book. The
// original node port is then never released: it stays allocated with no holder.
func TestBugAllocationSharesPortsWithTheBook(t *testing.T) {
	b := newBook(t, v4CIDR)
	spec := nodePortSvc(tcp("http", 80))
	a := ensure(t, b, "ns/svc", spec)
	want := a.Ports[0].NodePort
	a.Ports[0].NodePort = 31000 // the caller's copy, supposedly
	again := ensure(t, b, "ns/svc", spec)
	if again.Ports[0].NodePort != want {
		t.Errorf("after editing the returned Allocation, Ensure gives node port %d, want %d", again.Ports[0].NodePort, want)
	}
	if usedPorts(b) != 1 {
		t.Errorf("nodePort Used = %d, want 1", usedPorts(b))
	}
	b.Release("ns/svc")
	if usedPorts(b) != 0 {
		t.Errorf("nodePort Used after Release = %d, want 0 (a node port leaked)", usedPorts(b))
	}
}

// A status that lists two addresses of one family (only reachable by writing status
// by hand; status has no validation) makes Restore allocate both but keep only the
// last in the holding, with no Problem reported. The first address stays allocated
// and owned by the key after Release, for as long as the manager runs.
func TestBugRestoreTwoAddressesOfOneFamilyLeaks(t *testing.T) {
	b := newBook(t, v4CIDR)
	problems := b.Restore("ns/a", uidOf("ns/a"), &v1alpha1.ServiceStatus{ClusterIPs: []string{"10.96.0.50", "10.96.0.51"}})
	if len(problems) == 0 {
		t.Errorf("Restore reported no problem for two IPv4 addresses")
	}
	b.Release("ns/a")
	if usedIPs(b) != 0 {
		t.Errorf("clusterIP Used after Release = %d, want 0", usedIPs(b))
	}
	step{key: "ns/b", spec: withIPs(clusterIPSvc(tcp("http", 80)), "10.96.0.50")}.run(t, b)
}

// ipFamilies [IPv4, IPv4] is rejected by the CRD, but the Book does not check it:
// with RequireDualStack on a dual-stack Book, Ensure allocates two IPv4 addresses,
// returns both, and holds only the second. The first leaks (Release does not free
// it). Only reachable if CRD validation is bypassed; reported for defence in depth.
func TestBugSameFamilyTwiceLeaksAnAddress(t *testing.T) {
	b := newBook(t, dualCIDRs)
	_, _, err := b.Ensure("ns/a", uidOf("ns/a"), withFamilies(withPolicy(clusterIPSvc(tcp("http", 80)), corev1.IPFamilyPolicyRequireDualStack), ipv4, ipv4))
	if err == nil {
		b.Release("ns/a")
		if usedIPs(b) != 0 {
			t.Errorf("clusterIP Used after Release = %d, want 0", usedIPs(b))
		}
		t.Errorf("Ensure accepted ipFamilies [IPv4, IPv4]")
	}
}

// holdsValues reports whether an Allocation holds any value of a range.
func holdsValues(a Allocation) bool {
	if a.HealthCheckNodePort != 0 {
		return true
	}
	for _, ip := range a.ClusterIPs {
		if ip != "None" {
			return true
		}
	}
	for _, p := range a.Ports {
		if p.NodePort != 0 {
			return true
		}
	}
	return false
}
