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

// Addresses: cluster IPs 10.96.0.10 and fd00:96::10, pods 10.244.1.x and
// fd00:244:1::x, the node 192.0.2.10 and 2001:db8::10, external IPs 198.51.100.x,
// load-balancer IPs 203.0.113.x (documentation ranges).

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/svcplane/svcplane/dataplane/model"
)

var dnsName = model.ServicePortName{Namespace: "kube-system", Name: "dns", Port: "dns", Protocol: model.UDP}

// ep returns a ready, serving endpoint at addr:port.
func ep(addr string, port uint16) model.Endpoint {
	return model.Endpoint{Addr: netip.MustParseAddr(addr), Port: port, Ready: true, Serving: true}
}

// notServing returns e as an endpoint whose pod failed its readiness probe.
func notServing(e model.Endpoint) model.Endpoint {
	e.Ready, e.Serving = false, false
	return e
}

// terminating returns e as an endpoint that shuts down but still serves.
func terminating(e model.Endpoint) model.Endpoint {
	e.Ready, e.Terminating = false, true
	return e
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// port returns the dns port (UDP 53) at clusterIP with endpoints eps, changed by
// mods.
func port(clusterIP string, eps []model.Endpoint, mods ...func(*model.ServicePort)) *model.ServicePort {
	sp := &model.ServicePort{Name: dnsName, Port: 53, ClusterIP: netip.MustParseAddr(clusterIP), Endpoints: eps}
	for _, m := range mods {
		m(sp)
	}
	return sp
}

func withNodePort(sp *model.ServicePort) { sp.NodePort = 30053 }

func withExternal(sp *model.ServicePort) {
	sp.ExternalIPs = addrs("198.51.100.7")
	sp.LoadBalancerIPs = addrs("203.0.113.7")
}

func tcp(sp *model.ServicePort) { sp.Name.Protocol = model.TCP }

func sctp(sp *model.ServicePort) { sp.Name.Protocol = model.SCTP }

func renamed(name string) func(*model.ServicePort) {
	return func(sp *model.ServicePort) { sp.Name.Name = name }
}

// state returns a State with the IPv4 ports v4 and IPv6 ports v6, node ports open
// on every local address.
func state(v4, v6 []*model.ServicePort) *model.State {
	return &model.State{
		IPv4: model.View{Family: model.IPv4, NodeAddresses: addrs("192.0.2.10"), NodePortsOnAllAddresses: true, ServicePorts: v4},
		IPv6: model.View{Family: model.IPv6, NodeAddresses: addrs("2001:db8::10"), NodePortsOnAllAddresses: true, ServicePorts: v6},
	}
}

func v4(ports ...*model.ServicePort) *model.State { return state(ports, nil) }

func TestStale(t *testing.T) {
	a, b := ep("10.244.1.10", 5353), ep("10.244.1.11", 5353)
	a6, b6 := ep("fd00:244:1::10", 5353), ep("fd00:244:1::11", 5353)
	const cip, cip6 = "10.96.0.10", "fd00:96::10"

	nodePortsOn := func(st *model.State, addr string) *model.State {
		st.IPv4.NodePortsOnAllAddresses = false
		st.IPv4.NodePortAddresses = addrs(addr)
		return st
	}

	for _, tc := range []struct {
		name       string
		prev, next *model.State
		want       []string
	}{{
		name: "no previous state: nothing can be shown stale",
		prev: nil,
		next: v4(port(cip, []model.Endpoint{a, b})),
	}, {
		name: "nothing changed",
		prev: v4(port(cip, []model.Endpoint{a, b})),
		next: v4(port(cip, []model.Endpoint{a, b})),
	}, {
		name: "endpoint removed",
		prev: v4(port(cip, []model.Endpoint{a, b})),
		next: v4(port(cip, []model.Endpoint{b})),
		want: []string{"udp 10.96.0.10:53 -> 10.244.1.10"},
	}, {
		name: "endpoint turns not serving",
		prev: v4(port(cip, []model.Endpoint{a, b})),
		next: v4(port(cip, []model.Endpoint{notServing(a), b})),
		want: []string{"udp 10.96.0.10:53 -> 10.244.1.10"},
	}, {
		name: "endpoint terminating but still serving keeps its flows",
		prev: v4(port(cip, []model.Endpoint{a, b})),
		next: v4(port(cip, []model.Endpoint{terminating(a), b})),
	}, {
		name: "endpoint that was not serving goes: it had no flows",
		prev: v4(port(cip, []model.Endpoint{notServing(a), b})),
		next: v4(port(cip, []model.Endpoint{b})),
	}, {
		name: "endpoint moves to another port: its address is cleared",
		prev: v4(port(cip, []model.Endpoint{a})),
		next: v4(port(cip, []model.Endpoint{ep("10.244.1.10", 5354)})),
		want: []string{"udp 10.96.0.10:53 -> 10.244.1.10"},
	}, {
		name: "last endpoint removed: its flows, nothing else",
		prev: v4(port(cip, []model.Endpoint{a})),
		next: v4(port(cip, nil)),
		want: []string{"udp 10.96.0.10:53 -> 10.244.1.10"},
	}, {
		name: "endpoint removed from every frontend, node port on any address",
		prev: v4(port(cip, []model.Endpoint{a, b}, withNodePort, withExternal)),
		next: v4(port(cip, []model.Endpoint{b}, withNodePort, withExternal)),
		want: []string{
			"udp *:30053 -> 10.244.1.10",
			"udp 10.96.0.10:53 -> 10.244.1.10",
			"udp 198.51.100.7:53 -> 10.244.1.10",
			"udp 203.0.113.7:53 -> 10.244.1.10",
		},
	}, {
		name: "node port on selected addresses only",
		prev: nodePortsOn(v4(port(cip, []model.Endpoint{a, b}, withNodePort)), "192.0.2.10"),
		next: nodePortsOn(v4(port(cip, []model.Endpoint{b}, withNodePort)), "192.0.2.10"),
		want: []string{
			"udp 10.96.0.10:53 -> 10.244.1.10",
			"udp 192.0.2.10:30053 -> 10.244.1.10",
		},
	}, {
		name: "service gets its first endpoint: every frontend",
		prev: v4(port(cip, nil, withNodePort, withExternal)),
		next: v4(port(cip, []model.Endpoint{a}, withNodePort, withExternal)),
		want: []string{"udp *:30053", "udp 10.96.0.10:53", "udp 198.51.100.7:53", "udp 203.0.113.7:53"},
	}, {
		name: "service gets its first serving endpoint",
		prev: v4(port(cip, []model.Endpoint{notServing(a)})),
		next: v4(port(cip, []model.Endpoint{a})),
		want: []string{"udp 10.96.0.10:53"},
	}, {
		name: "new service port with endpoints counts as newly active",
		prev: v4(),
		next: v4(port(cip, []model.Endpoint{a})),
		want: []string{"udp 10.96.0.10:53"},
	}, {
		name: "new service port without endpoints",
		prev: v4(),
		next: v4(port(cip, nil)),
	}, {
		name: "service port deleted: every frontend",
		prev: v4(port(cip, []model.Endpoint{a}, withNodePort)),
		next: v4(),
		want: []string{"udp *:30053", "udp 10.96.0.10:53"},
	}, {
		name: "service port loses an address: that frontend, whole",
		prev: v4(port(cip, []model.Endpoint{a, b}, withExternal)),
		next: v4(port(cip, []model.Endpoint{b})),
		want: []string{
			"udp 10.96.0.10:53 -> 10.244.1.10",
			"udp 198.51.100.7:53",
			"udp 203.0.113.7:53",
		},
	}, {
		name: "another service port is left alone",
		prev: v4(port(cip, []model.Endpoint{a}), port("10.96.0.11", []model.Endpoint{a}, renamed("other"))),
		next: v4(port(cip, []model.Endpoint{a}), port("10.96.0.11", nil, renamed("other"))),
		want: []string{"udp 10.96.0.11:53 -> 10.244.1.10"},
	}, {
		name: "TCP is ignored",
		prev: v4(port(cip, []model.Endpoint{a, b}, tcp), port("10.96.0.11", nil, tcp, renamed("web"))),
		next: v4(port(cip, []model.Endpoint{b}, tcp), port("10.96.0.11", []model.Endpoint{a}, tcp, renamed("web"))),
	}, {
		name: "SCTP is ignored",
		prev: v4(port(cip, []model.Endpoint{a, b}, sctp)),
		next: v4(),
	}, {
		name: "dual-stack: an IPv6 endpoint removed clears IPv6 flows only",
		prev: state([]*model.ServicePort{port(cip, []model.Endpoint{a, b}, withNodePort)}, []*model.ServicePort{port(cip6, []model.Endpoint{a6, b6}, withNodePort)}),
		next: state([]*model.ServicePort{port(cip, []model.Endpoint{a, b}, withNodePort)}, []*model.ServicePort{port(cip6, []model.Endpoint{b6}, withNodePort)}),
		want: []string{"udp [*]:30053 -> fd00:244:1::10", "udp [fd00:96::10]:53 -> fd00:244:1::10"},
	}, {
		name: "dual-stack: IPv4 first, each family on its own",
		prev: state([]*model.ServicePort{port(cip, []model.Endpoint{a})}, []*model.ServicePort{port(cip6, nil)}),
		next: state([]*model.ServicePort{port(cip, nil)}, []*model.ServicePort{port(cip6, []model.Endpoint{a6})}),
		want: []string{"udp 10.96.0.10:53 -> 10.244.1.10", "udp [fd00:96::10]:53"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := Stale(tc.prev, tc.next)
			var gotS []string
			for _, f := range got {
				gotS = append(gotS, f.String())
				if f.Dst.IsValid() && model.FamilyOf(f.Dst) != f.Family || f.DNAT.IsValid() && model.FamilyOf(f.DNAT) != f.Family {
					t.Errorf("%v mixes families", f)
				}
				if f.Protocol != model.UDP || f.Port == 0 {
					t.Errorf("%v: want UDP and a port", f)
				}
			}
			if !slices.Equal(gotS, tc.want) {
				t.Errorf("Stale:\n got %q\nwant %q", gotS, tc.want)
			}
			if !slices.IsSortedFunc(got, Filter.Compare) {
				t.Errorf("not sorted: %v", got)
			}
		})
	}
}

// TestStaleAgainstTable applies Stale's filters to a conntrack table and checks
// that exactly the stale flows go.
func TestStaleAgainstTable(t *testing.T) {
	a, b := ep("10.244.1.10", 5353), ep("10.244.1.11", 5353)
	client := netip.MustParseAddrPort("10.244.2.5:40000")
	flow := func(dst string, to model.Endpoint) Entry {
		e := Entry{Family: model.IPv4, Protocol: model.UDP, Src: client, Dst: netip.MustParseAddrPort(dst)}
		if to.Addr.IsValid() {
			e.DNAT = to.AddrPort()
		}
		return e
	}
	toA, toB := flow("10.96.0.10:53", a), flow("10.96.0.10:53", b)
	nodePortToA := flow("192.0.2.10:30053", a)
	tcpToA := toA
	tcpToA.Protocol = model.TCP
	otherPortToA := flow("10.96.0.10:54", a)
	fake := NewFake(toA, toB, nodePortToA, tcpToA, otherPortToA)

	prev := v4(port("10.96.0.10", []model.Endpoint{a, b}, withNodePort))
	next := v4(port("10.96.0.10", []model.Endpoint{b}, withNodePort))
	for _, f := range Stale(prev, next) {
		if _, err := fake.Delete(t.Context(), f); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := fake.Entries(), []Entry{toB, tcpToA, otherPortToA}; !slices.Equal(got, want) {
		t.Errorf("left:\n%s\nwant:\n%s", fake.Dump(), NewFake(want...).Dump())
	}
}

func TestScan(t *testing.T) {
	a, b := ep("10.244.1.10", 5353), ep("10.244.1.11", 5353)
	const cip = "10.96.0.10"
	flow := func(src, dst, dnat string) Entry {
		e := Entry{Family: model.IPv4, Protocol: model.UDP, Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst)}
		if dnat != "" {
			e.DNAT = netip.MustParseAddrPort(dnat)
		}
		return e
	}
	onNode := func(st *model.State) *model.State {
		st.IPv4.NodeAddresses = addrs("192.0.2.1")
		return st
	}
	for _, tc := range []struct {
		name    string
		st      *model.State
		entries []Entry
		want    []string
	}{{
		name: "flows to serving endpoints stay",
		st:   v4(port(cip, []model.Endpoint{a, b})),
		entries: []Entry{
			flow("10.244.2.5:40000", "10.96.0.10:53", "10.244.1.10:5353"),
			flow("10.244.2.5:40001", "10.96.0.10:53", "10.244.1.11:5353"),
		},
	}, {
		name: "a flow to an address that is no endpoint, or not serving, goes by its DNAT",
		st:   v4(port(cip, []model.Endpoint{a, notServing(b)})),
		entries: []Entry{
			flow("10.244.2.5:40000", "10.96.0.10:53", "10.244.1.10:5353"),
			flow("10.244.2.5:40001", "10.96.0.10:53", "10.244.1.11:5353"),
			flow("10.244.2.5:40002", "10.96.0.10:53", "10.244.1.99:5353"),
			flow("10.244.2.5:40003", "10.96.0.10:53", "10.244.1.10:5354"), // a moved port
		},
		want: []string{"udp 10.96.0.10:53 -> 10.244.1.10", "udp 10.96.0.10:53 -> 10.244.1.11", "udp 10.96.0.10:53 -> 10.244.1.99"},
	}, {
		name:    "a flow never DNATed goes by its source, alone",
		st:      v4(port(cip, []model.Endpoint{a})),
		entries: []Entry{flow("10.244.2.5:40000", "10.96.0.10:53", "")},
		want:    []string{"udp from 10.244.2.5:40000 to 10.96.0.10:53"},
	}, {
		name: "a port without serving endpoints is left alone",
		st:   v4(port(cip, []model.Endpoint{notServing(a)})),
		entries: []Entry{
			flow("10.244.2.5:40000", "10.96.0.10:53", ""),
			flow("10.244.2.5:40001", "10.96.0.10:53", "10.244.1.11:5353"),
		},
	}, {
		name: "external and load-balancer IPs",
		st:   v4(port(cip, []model.Endpoint{a}, withExternal)),
		entries: []Entry{
			flow("198.51.100.1:40000", "198.51.100.7:53", "10.244.1.11:5353"),
			flow("198.51.100.1:40001", "203.0.113.7:53", ""),
			flow("198.51.100.1:40002", "203.0.113.7:54", ""), // another port
		},
		want: []string{"udp 198.51.100.7:53 -> 10.244.1.11", "udp from 198.51.100.1:40001 to 203.0.113.7:53"},
	}, {
		name: "node port: the node's addresses and loopback, not addresses it forwards to",
		st:   onNode(v4(port(cip, []model.Endpoint{a}, withNodePort))),
		entries: []Entry{
			flow("198.51.100.1:40000", "192.0.2.1:30053", "10.244.1.11:5353"),
			flow("198.51.100.1:40001", "127.0.0.1:30053", ""),
			flow("198.51.100.1:40002", "192.0.2.77:30053", ""),
			flow("198.51.100.1:40003", "192.0.2.1:30053", "10.244.1.10:5353"),
		},
		want: []string{"udp from 198.51.100.1:40001 to 127.0.0.1:30053", "udp 192.0.2.1:30053 -> 10.244.1.11"},
	}, {
		name: "TCP flows and other services are not looked at",
		st:   v4(port(cip, []model.Endpoint{a}, tcp), port("10.96.0.11", []model.Endpoint{a}, renamed("other"))),
		entries: []Entry{
			{Family: model.IPv4, Protocol: model.TCP, Src: netip.MustParseAddrPort("10.244.2.5:40000"), Dst: netip.MustParseAddrPort("10.96.0.10:53")},
			flow("10.244.2.5:40001", "10.96.0.12:53", ""),
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, f := range Scan(tc.st, model.IPv4, tc.entries) {
				got = append(got, f.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Scan:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
