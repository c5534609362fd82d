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
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Packet is the first packet of a connection.
type Packet struct {
	Src   string // address
	Dst   string // address:port
	Proto string // tcp, udp or sctp
	// FromHost means a process on the node sends it (the output hook); otherwise
	// it arrives on an interface (prerouting), from a pod or from the network.
	FromHost bool
}

func (p Packet) String() string {
	s := fmt.Sprintf("%s %s → %s", p.Proto, p.Src, p.Dst)
	if p.FromHost {
		s += " (from the node)"
	}
	return s
}

// Pin is the kernel's memory, for ClientIP affinity, that Client's last connection
// to service port Port went to Endpoint, Age seconds ago. Each backend keeps it in
// its own objects (iptables -m recent lists, nftables sets with timeouts, IPVS
// persistence); a tracer translates.
type Pin struct {
	Port     model.ServicePortName
	Endpoint netip.AddrPort
	Client   netip.Addr
	Age      int
}

func (p Pin) String() string {
	return fmt.Sprintf("pin[%s %s→%s age %d]", p.Port, p.Client, p.Endpoint, p.Age)
}

// ComparePins orders pins by port, endpoint, client and age.
func ComparePins(a, b Pin) int {
	return cmp.Or(a.Port.Compare(b.Port), a.Endpoint.Compare(b.Endpoint), a.Client.Compare(b.Client), cmp.Compare(a.Age, b.Age))
}

// Outcome is one way the first packet of a connection may end.
type Outcome struct {
	// What is "DNAT <addr:port>" with " masq" when it is masqueraded, "ACCEPT
	// <addr:port>" when it passes unchanged, "LOCAL <addr:port>" when it is
	// delivered to the node itself, or "DROP" / "REJECT".
	What string
	// Pinned are the affinity pins the connection records (Age 0), sorted.
	Pinned []Pin
}

func (o Outcome) String() string {
	s := o.What
	for _, p := range o.Pinned {
		s += " " + p.String()
	}
	return s
}

// Tracer follows packets through one backend's rules for one family, as held by
// the backend's strict fake after a sync, and returns every outcome the rules
// allow: random endpoint choices are followed both ways. It fails t on any rule it
// does not understand, so that a new rule shape cannot slip past untested.
type Tracer interface {
	// Trace returns pkt's possible outcomes, sorted by What, when the kernel
	// remembers memory of earlier connections.
	Trace(t testing.TB, pkt Packet, memory []Pin) []Outcome
}

// NewTracer syncs st into a fresh fake of one backend and returns a tracer over
// family's rules, with local the node's local addresses (loopback is always
// local).
type NewTracer func(t *testing.T, st *model.State, family model.Family, local []netip.Addr) Tracer

// Whats returns the outcomes' descriptions, without duplicates.
func Whats(outcomes []Outcome) []string {
	var out []string
	for _, o := range outcomes {
		out = append(out, o.What)
	}
	return slices.Compact(out)
}

// Case is one packet scenario.
type Case struct {
	Name  string
	State *model.State
	// Local are extra local addresses of the node, beyond NodeAddr.
	Local []netip.Addr
	// Memory is what the kernel remembers of earlier connections.
	Memory []Pin
	Pkt    Packet
	Want   []string
	// Sticky is the service port Pkt is for when it has ClientIP affinity: each
	// DNAT outcome must pin the client to the endpoint it lands on, for this port
	// only. Without it, no outcome may pin anything.
	Sticky *model.ServicePort
}

// Run runs every scenario through tracers from newTracer.
func Run(t *testing.T, newTracer NewTracer) {
	type key struct {
		st     *model.State
		family model.Family
		local  string
	}
	tracers := map[key]Tracer{}
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) {
			dst := netip.MustParseAddrPort(c.Pkt.Dst)
			family := model.FamilyOf(dst.Addr())
			k := key{c.State, family, fmt.Sprint(c.Local)}
			tr := tracers[k]
			if tr == nil {
				tr = newTracer(t, c.State, family, append([]netip.Addr{NodeAddr(family)}, c.Local...))
				tracers[k] = tr
			}
			outcomes := tr.Trace(t, c.Pkt, c.Memory)
			if got := Whats(outcomes); !slices.Equal(got, c.Want) {
				t.Errorf("%s\n got %q\nwant %q", c.Pkt, outcomes, c.Want)
			}
			src := netip.MustParseAddr(c.Pkt.Src)
			for _, o := range outcomes {
				var want []Pin
				if dest, ok := strings.CutPrefix(o.What, "DNAT "); ok && c.Sticky != nil {
					dest, _, _ = strings.Cut(dest, " ")
					want = []Pin{{Port: c.Sticky.Name, Endpoint: netip.MustParseAddrPort(dest), Client: src}}
				}
				if !slices.Equal(o.Pinned, want) {
					t.Errorf("outcome %s pins %v, want %v", o.What, o.Pinned, want)
				}
			}
		})
	}
	t.Run("affinity round trip", func(t *testing.T) { affinityRoundTrip(t, newTracer) })
}

// affinityRoundTrip follows a client from connection to connection: the memory its
// first connection leaves sends the next ones to the same endpoint, whichever it
// was, until the endpoint leaves the service; and it pins the client only for that
// service.
func affinityRoundTrip(t *testing.T, newTracer NewTracer) {
	endpoints := Eps("10.244.1.19/local", "10.244.2.19", "10.244.2.29")
	sticky := SvcPort("sticky", "10.96.0.19", endpoints, NodePort(30019), Affinity(600))
	other := SvcPort("other", "10.96.0.22", endpoints, Affinity(600))
	first := Packet{Src: "203.0.113.7", Dst: "192.168.0.10:30019", Proto: "tcp"}
	toOther := Packet{Src: first.Src, Dst: "10.96.0.22:80", Proto: "tcp"}
	local := []netip.Addr{NodeIPv4}

	tr := newTracer(t, State(sticky, other), model.IPv4, local)
	outcomes := tr.Trace(t, first, nil)
	if len(outcomes) != len(endpoints) {
		t.Fatalf("first connection: %v, want one outcome per endpoint", outcomes)
	}
	for _, o := range outcomes {
		var memory []Pin
		for _, p := range o.Pinned {
			p.Age = 1
			memory = append(memory, p)
		}
		if got, want := Whats(tr.Trace(t, first, memory)), []string{o.What}; !slices.Equal(got, want) {
			t.Errorf("after %s: next connection %q, want %q", o, got, want)
		}
		if got, want := Whats(tr.Trace(t, toOther, memory)), Whats(tr.Trace(t, toOther, nil)); !slices.Equal(got, want) {
			t.Errorf("after %s: connection to another service %q, want %q", o, got, want)
		}

		// The endpoint goes away; the memory of it may outlive it.
		dest, _, _ := strings.Cut(strings.TrimPrefix(o.What, "DNAT "), " ")
		rest := slices.DeleteFunc(slices.Clone(endpoints), func(ep model.Endpoint) bool { return ep.AddrPort().String() == dest })
		after := newTracer(t, State(SvcPort("sticky", "10.96.0.19", rest, NodePort(30019), Affinity(600))), model.IPv4, local)
		want := Whats(after.Trace(t, first, nil))
		if got := Whats(after.Trace(t, first, memory)); len(want) != len(rest) || !slices.Equal(got, want) {
			t.Errorf("after %s and its endpoint's removal: next connection %q, want %q (one per remaining endpoint)", o, got, want)
		}
	}
}
