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

// The IPVS tracer: the shared packet scenarios of dataplanetest, followed through
// what a sync left in the IPVS Fake (virtual servers, real servers, svcplane0's
// addresses) and in the filter table's knftables.Fake. The filter rules are
// matched against the shapes filter.go writes; any other rule fails the test.

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/svcplane/svcplane/dataplane/model"
	"github.com/svcplane/svcplane/internal/dataplanetest"
)

type tracer struct {
	family model.Family
	ipvs   *Fake
	nft    *knftables.Fake
	local  []netip.Addr
	// ports maps each virtual server to the service port it belongs to, for
	// translating affinity pins.
	ports map[VirtualKey]model.ServicePortName
}

func newTracer(t *testing.T, st *model.State, family model.Family, local []netip.Addr) dataplanetest.Tracer {
	t.Helper()
	fake := NewFake(nil, local...)
	nft := knftables.NewFake(nftFamily(family), FilterTable)
	b, err := New(Options{Interface: fake, Families: []model.Family{family},
		NFT: map[model.Family]knftables.Interface{family: nft}})
	if err != nil {
		t.Fatal(err)
	}
	// The views hold the node's addresses; local may add more.
	view := st.View(family)
	if err := b.Sync(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	tr := &tracer{family: family, ipvs: fake, nft: nft, local: local, ports: map[VirtualKey]model.ServicePortName{}}
	nodeAddrs := view.NodeAddresses
	if !view.NodePortsOnAllAddresses {
		nodeAddrs = view.NodePortAddresses
	}
	for _, p := range view.ServicePorts {
		add := func(a netip.Addr, port uint16) {
			k := VirtualKey{Addr: a, Protocol: p.Name.Protocol, Port: port}
			if _, ok := tr.ports[k]; !ok {
				tr.ports[k] = p.Name
			}
		}
		add(p.ClusterIP, p.Port)
		for _, a := range append(slices.Clone(p.ExternalIPs), p.LoadBalancerIPs...) {
			add(a, p.Port)
		}
		if p.NodePort != 0 {
			for _, a := range nodeAddrs {
				add(a, p.NodePort)
			}
		}
	}
	return tr
}

// packet is a packet on its way: its addresses after any DNAT, and its mark.
type packet struct {
	src  netip.Addr
	dst  netip.AddrPort
	l4   string
	mark uint32
}

// The rule shapes filter.go writes; the tracer knows no others.
var (
	reJump       = regexp.MustCompile(`^jump (\S+)$`)
	dstKey       = `ip6? daddr \. meta l4proto \. th dport`
	reMarkSaddr  = regexp.MustCompile(`^ip6? saddr (!= )?(\S+) ` + dstKey + ` @(\S+) meta mark set meta mark \| 0x4000$`)
	reMark       = regexp.MustCompile(`^` + dstKey + ` @(\S+) meta mark set meta mark \| 0x4000$`)
	reDNATSaddr  = regexp.MustCompile(`^ip6? saddr (\S+) ` + dstKey + ` @(\S+) dnat to ` + dstKey + ` map @(\S+)$`)
	reDNAT       = regexp.MustCompile(`^` + dstKey + ` @(\S+) dnat to ` + dstKey + ` map @(\S+)$`)
	reMasqMark   = regexp.MustCompile(`^meta mark & 0x4000 != 0 masquerade$`)
	reMasqPair   = regexp.MustCompile(`^ip6? saddr \. ip6? daddr @(\S+) masquerade$`)
	reFirewall   = regexp.MustCompile(`^` + dstKey + ` @(\S+) ` + dstKey + ` \. ip6? saddr != @(\S+) drop$`)
	reDropLookup = regexp.MustCompile(`^` + dstKey + ` @(\S+) drop$`)
	reRejectPort = regexp.MustCompile(`^ip6? daddr @(\S+) ` + dstKey + ` != @(\S+) reject$`)
)

// verdict of a chain walk.
type verdict int

const (
	vContinue verdict = iota
	vDrop
	vReject
	vMasquerade
	vNAT // a dnat ended the chain
)

func (tr *tracer) in(t testing.TB, set string, key ...string) bool {
	t.Helper()
	s := tr.nft.Table.Sets[set]
	if s == nil {
		t.Fatalf("rule refers to missing set %s", set)
	}
	return s.FindElement(key...) != nil
}

// inInterval looks key up in an interval set whose last field is a prefix.
func (tr *tracer) inInterval(t testing.TB, set string, key []string, addr netip.Addr) bool {
	t.Helper()
	s := tr.nft.Table.Sets[set]
	if s == nil {
		t.Fatalf("rule refers to missing set %s", set)
	}
	for _, e := range s.Elements {
		if len(e.Key) != len(key)+1 || !slices.Equal(e.Key[:len(key)], key) {
			continue
		}
		if p, err := netip.ParsePrefix(e.Key[len(key)]); err == nil && p.Contains(addr) {
			return true
		}
	}
	return false
}

func dstFields(p *packet) []string {
	return []string{p.dst.Addr().String(), p.l4, strconv.Itoa(int(p.dst.Port()))}
}

// walk runs chain on p, following jumps.
func (tr *tracer) walk(t testing.TB, chain string, p *packet) verdict {
	t.Helper()
	c := tr.nft.Table.Chains[chain]
	if c == nil {
		t.Fatalf("no chain %s", chain)
	}
	for _, r := range c.Rules {
		rule := r.Rule
		if m := reJump.FindStringSubmatch(rule); m != nil {
			if v := tr.walk(t, m[1], p); v != vContinue {
				return v
			}
			continue
		}
		if m := reMarkSaddr.FindStringSubmatch(rule); m != nil {
			in := netip.MustParsePrefix(m[2]).Contains(p.src)
			if in == (m[1] == "") && tr.in(t, m[3], dstFields(p)...) {
				p.mark |= MasqueradeMark
			}
			continue
		}
		if m := reMark.FindStringSubmatch(rule); m != nil {
			if tr.in(t, m[1], dstFields(p)...) {
				p.mark |= MasqueradeMark
			}
			continue
		}
		if m := reDNATSaddr.FindStringSubmatch(rule); m != nil {
			if netip.MustParsePrefix(m[1]).Contains(p.src) && tr.in(t, m[2], dstFields(p)...) {
				tr.dnat(t, m[3], p)
				return vNAT
			}
			continue
		}
		if m := reDNAT.FindStringSubmatch(rule); m != nil {
			if tr.in(t, m[1], dstFields(p)...) {
				tr.dnat(t, m[2], p)
				return vNAT
			}
			continue
		}
		if reMasqMark.MatchString(rule) {
			if p.mark&MasqueradeMark != 0 {
				return vMasquerade
			}
			continue
		}
		if m := reMasqPair.FindStringSubmatch(rule); m != nil {
			if tr.in(t, m[1], p.src.String(), p.dst.Addr().String()) {
				return vMasquerade
			}
			continue
		}
		if m := reFirewall.FindStringSubmatch(rule); m != nil {
			if tr.in(t, m[1], dstFields(p)...) && !tr.inInterval(t, m[2], dstFields(p), p.src) {
				return vDrop
			}
			continue
		}
		if m := reDropLookup.FindStringSubmatch(rule); m != nil {
			if tr.in(t, m[1], dstFields(p)...) {
				return vDrop
			}
			continue
		}
		if m := reRejectPort.FindStringSubmatch(rule); m != nil {
			if tr.in(t, m[1], p.dst.Addr().String()) && !tr.in(t, m[2], dstFields(p)...) {
				return vReject
			}
			continue
		}
		t.Fatalf("the IPVS tracer does not understand rule %q of chain %s", rule, chain)
	}
	return vContinue
}

func (tr *tracer) dnat(t testing.TB, m string, p *packet) {
	t.Helper()
	mp := tr.nft.Table.Maps[m]
	if mp == nil {
		t.Fatalf("rule refers to missing map %s", m)
	}
	e := mp.FindElement(dstFields(p)...)
	if e == nil || len(e.Value) != 2 {
		t.Fatalf("dnat map %s has no address and port for %v", m, dstFields(p))
	}
	port, _ := strconv.Atoi(e.Value[1])
	p.dst = netip.AddrPortFrom(netip.MustParseAddr(e.Value[0]), uint16(port))
}

func (tr *tracer) isLocal(a netip.Addr) bool {
	if a.IsLoopback() || slices.Contains(tr.local, a) {
		return true
	}
	bound, err := tr.ipvs.Addresses(DummyInterface)
	return err == nil && slices.Contains(bound, a)
}

// Trace implements dataplanetest.Tracer.
func (tr *tracer) Trace(t testing.TB, pkt dataplanetest.Packet, memory []dataplanetest.Pin) []dataplanetest.Outcome {
	t.Helper()
	p := &packet{src: netip.MustParseAddr(pkt.Src), dst: netip.MustParseAddrPort(pkt.Dst), l4: pkt.Proto}
	// nat: prerouting for packets that arrive, output for the node's own.
	hook := "nat-prerouting"
	if pkt.FromHost {
		hook = "nat-output"
	}
	tr.walk(t, hook, p)
	if !tr.isLocal(p.dst.Addr()) {
		return []dataplanetest.Outcome{{What: "ACCEPT " + p.dst.String()}}
	}
	// The node's own packets meet IPVS at output, before the input filter.
	if !pkt.FromHost {
		switch tr.walk(t, "filter-input", p) {
		case vDrop:
			return []dataplanetest.Outcome{{What: "DROP"}}
		case vReject:
			return []dataplanetest.Outcome{{What: "REJECT"}}
		}
	}
	k := VirtualKey{Addr: p.dst.Addr(), Protocol: model.Protocol(strings.ToUpper(p.l4)), Port: p.dst.Port()}
	vs := &VirtualServer{Addr: k.Addr, Protocol: k.Protocol, Port: k.Port}
	reals, err := tr.ipvs.RealServers(vs)
	if err != nil {
		// No virtual server: a local socket may answer.
		return []dataplanetest.Outcome{{What: "LOCAL " + p.dst.String()}}
	}
	servers, _ := tr.ipvs.VirtualServers()
	i := slices.IndexFunc(servers, func(s *VirtualServer) bool { return s.Key() == k })
	vs = servers[i]
	var live []*RealServer
	for _, rs := range reals {
		if rs.Weight > 0 {
			live = append(live, rs)
		}
	}
	if len(live) == 0 {
		// IPVS answers ICMP port unreachable when it cannot schedule.
		return []dataplanetest.Outcome{{What: "REJECT"}}
	}
	name, ok := tr.ports[k]
	if !ok {
		t.Fatalf("virtual server %s belongs to no service port", k)
	}
	if vs.Persistent {
		// A persistence template of this client sends it back, while it is no
		// older than the timeout and its real server is still in the rotation.
		for _, pin := range memory {
			if pin.Port != name || pin.Client != p.src || pin.Age > int(vs.Timeout) {
				continue
			}
			if j := slices.IndexFunc(live, func(rs *RealServer) bool { return rs.AddrPort() == pin.Endpoint }); j >= 0 {
				live = live[j : j+1]
				break
			}
		}
	}
	var out []dataplanetest.Outcome
	for _, rs := range live {
		q := *p
		q.dst = rs.AddrPort()
		what := "DNAT " + rs.AddrPort().String()
		if tr.walk(t, "nat-postrouting", &q) == vMasquerade {
			what += " masq"
		}
		o := dataplanetest.Outcome{What: what}
		if vs.Persistent {
			o.Pinned = []dataplanetest.Pin{{Port: name, Endpoint: rs.AddrPort(), Client: p.src}}
		}
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b dataplanetest.Outcome) int { return strings.Compare(a.What, b.What) })
	return out
}

// ipvsDiffers are the shared scenarios whose outcome differs in the IPVS mode by
// design, with the outcome the IPVS mode must have instead (asserted, not
// skipped). IPVS only sees packets to local addresses, so every service IP is
// bound to svcplane0: a port or protocol of a service IP that no Service uses
// cannot pass through the node as in the iptables and nftables modes. It is
// rejected, as in kube-proxy's IPVS mode, rather than reaching the node's own
// sockets.
var ipvsDiffers = map[string][]string{
	"another port of the cluster IP is not captured":       {"REJECT"},
	"another protocol on the service port is not captured": {"REJECT"},
	"TCP to a UDP-only port is not captured":               {"REJECT"},
}

// TestScenarios runs dataplanetest's shared scenarios through the IPVS tracer, as
// dataplanetest.Run does, with the outcomes of ipvsDiffers in place of the
// shared ones.
func TestScenarios(t *testing.T) {
	type key struct {
		st     *model.State
		family model.Family
		local  string
	}
	tracers := map[key]dataplanetest.Tracer{}
	seen := map[string]bool{}
	for _, c := range dataplanetest.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			dst := netip.MustParseAddrPort(c.Pkt.Dst)
			family := model.FamilyOf(dst.Addr())
			k := key{c.State, family, fmt.Sprint(c.Local)}
			tr := tracers[k]
			if tr == nil {
				tr = newTracer(t, c.State, family, append([]netip.Addr{dataplanetest.NodeAddr(family)}, c.Local...))
				tracers[k] = tr
			}
			want := c.Want
			if w, ok := ipvsDiffers[c.Name]; ok {
				want, seen[c.Name] = w, true
			}
			outcomes := tr.Trace(t, c.Pkt, c.Memory)
			if got := dataplanetest.Whats(outcomes); !slices.Equal(got, want) {
				t.Errorf("%s\n got %q\nwant %q", c.Pkt, outcomes, want)
			}
			src := netip.MustParseAddr(c.Pkt.Src)
			for _, o := range outcomes {
				var pins []dataplanetest.Pin
				if dest, ok := strings.CutPrefix(o.What, "DNAT "); ok && c.Sticky != nil {
					dest, _, _ = strings.Cut(dest, " ")
					pins = []dataplanetest.Pin{{Port: c.Sticky.Name, Endpoint: netip.MustParseAddrPort(dest), Client: src}}
				}
				if !slices.Equal(o.Pinned, pins) {
					t.Errorf("outcome %s pins %v, want %v", o.What, o.Pinned, pins)
				}
			}
		})
	}
	for name := range ipvsDiffers {
		if !seen[name] {
			t.Errorf("ipvsDiffers names %q, which is no longer a shared scenario", name)
		}
	}
	t.Run("affinity round trip", testAffinityRoundTrip)
}

// testAffinityRoundTrip follows a client from connection to connection through
// the persistence the first one leaves, as dataplanetest's round trip does.
func testAffinityRoundTrip(t *testing.T) {
	endpoints := dataplanetest.Eps("10.244.1.19/local", "10.244.2.19", "10.244.2.29")
	sticky := dataplanetest.SvcPort("sticky", "10.96.0.19", endpoints, dataplanetest.NodePort(30019), dataplanetest.Affinity(600))
	other := dataplanetest.SvcPort("other", "10.96.0.22", endpoints, dataplanetest.Affinity(600))
	first := dataplanetest.Packet{Src: "203.0.113.7", Dst: "192.168.0.10:30019", Proto: "tcp"}
	toOther := dataplanetest.Packet{Src: first.Src, Dst: "10.96.0.22:80", Proto: "tcp"}
	local := []netip.Addr{dataplanetest.NodeIPv4}

	tr := newTracer(t, dataplanetest.State(sticky, other), model.IPv4, local)
	outcomes := tr.Trace(t, first, nil)
	if len(outcomes) != len(endpoints) {
		t.Fatalf("first connection: %v, want one outcome per endpoint", outcomes)
	}
	for _, o := range outcomes {
		var memory []dataplanetest.Pin
		for _, p := range o.Pinned {
			p.Age = 1
			memory = append(memory, p)
		}
		if got, want := dataplanetest.Whats(tr.Trace(t, first, memory)), []string{o.What}; !slices.Equal(got, want) {
			t.Errorf("after %s: next connection %q, want %q", o, got, want)
		}
		if got, want := dataplanetest.Whats(tr.Trace(t, toOther, memory)), dataplanetest.Whats(tr.Trace(t, toOther, nil)); !slices.Equal(got, want) {
			t.Errorf("after %s: connection to another service %q, want %q", o, got, want)
		}
		dest, _, _ := strings.Cut(strings.TrimPrefix(o.What, "DNAT "), " ")
		rest := slices.DeleteFunc(slices.Clone(endpoints), func(ep model.Endpoint) bool { return ep.AddrPort().String() == dest })
		after := newTracer(t, dataplanetest.State(dataplanetest.SvcPort("sticky", "10.96.0.19", rest, dataplanetest.NodePort(30019), dataplanetest.Affinity(600))), model.IPv4, local)
		want := dataplanetest.Whats(after.Trace(t, first, nil))
		if got := dataplanetest.Whats(after.Trace(t, first, memory)); len(want) != len(rest) || !slices.Equal(got, want) {
			t.Errorf("after %s and its endpoint's removal: next connection %q, want %q", o, got, want)
		}
	}
}
