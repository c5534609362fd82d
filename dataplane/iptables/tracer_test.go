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

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/svcplane/svcplane/dataplane/model"
)

// tracer follows a packet through the Fake's nat and filter tables the way
// netfilter would for the first packet of a connection, and returns every outcome
// the rules allow. Random choices (-m statistic) and affinity checks (-m recent
// --rcheck) may go either way, so the tracer follows both branches: the result is
// the set of possible outcomes, not one of them.
//
// It understands exactly the matches and targets this package writes and fails the
// test on anything else, so a new rule shape cannot slip past it untested.
type tracer struct {
	t      *testing.T
	fake   *Fake
	family model.Family
	// local are the node's addresses, what -m addrtype --dst-type LOCAL matches
	// (loopback addresses are local too).
	local []netip.Addr
}

// packet is the first packet of a connection.
type packet struct {
	src   string // address
	dst   string // address:port
	proto string // tcp, udp or sctp
	// fromHost means a process on the node sends it (nat OUTPUT); otherwise it
	// arrives on an interface (nat PREROUTING), from a pod or from the network.
	fromHost bool
}

// pktState is what the rules may change about a packet.
type pktState struct {
	dst  netip.AddrPort
	mark uint32
	masq bool
	dnat bool
}

// verdict is how a chain walk ends: "" when it falls off the end, or the target
// that ended it (ACCEPT, DROP, REJECT, RETURN; DNAT and MASQUERADE end a nat chain
// like ACCEPT).
type verdict struct {
	target string
	st     pktState
}

// trace returns the packet's possible outcomes, sorted: "DNAT <addr:port>" with
// " masq" when it is masqueraded, "ACCEPT <addr:port>" when it passes unchanged,
// "LOCAL <addr:port>" when it is delivered to the node itself, or "DROP"/"REJECT".
func (tr *tracer) trace(p packet) []string {
	tr.t.Helper()
	src := netip.MustParseAddr(p.src)
	start := pktState{dst: netip.MustParseAddrPort(p.dst)}
	var out []string
	if p.fromHost {
		for _, n := range tr.hook(TableNAT, "OUTPUT", src, p.proto, start) {
			for _, f := range tr.hook(TableFilter, "OUTPUT", src, p.proto, n.st) {
				if f.target != "ACCEPT" {
					out = append(out, f.target)
					continue
				}
				for _, post := range tr.hook(TableNAT, "POSTROUTING", src, p.proto, f.st) {
					out = append(out, tr.deliver(src, p.proto, post.st)...)
				}
			}
		}
	} else {
		for _, n := range tr.hook(TableNAT, "PREROUTING", src, p.proto, start) {
			if tr.isLocal(n.st.dst.Addr()) {
				out = append(out, tr.deliver(src, p.proto, n.st)...)
				continue
			}
			for _, f := range tr.hook(TableFilter, "FORWARD", src, p.proto, n.st) {
				if f.target != "ACCEPT" {
					out = append(out, f.target)
					continue
				}
				for _, post := range tr.hook(TableNAT, "POSTROUTING", src, p.proto, f.st) {
					out = append(out, describe("ACCEPT", post.st))
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// deliver takes a packet for one of the node's addresses through filter INPUT, or
// describes a packet leaving the node.
func (tr *tracer) deliver(src netip.Addr, proto string, st pktState) []string {
	if !tr.isLocal(st.dst.Addr()) {
		return []string{describe("ACCEPT", st)}
	}
	var out []string
	for _, in := range tr.hook(TableFilter, "INPUT", src, proto, st) {
		if in.target != "ACCEPT" {
			out = append(out, in.target)
			continue
		}
		out = append(out, describe("LOCAL", in.st))
	}
	return out
}

func describe(what string, st pktState) string {
	if st.dnat {
		what = "DNAT"
	}
	s := what + " " + st.dst.String()
	if st.masq {
		s += " masq"
	}
	return s
}

// hook walks a built-in chain and applies its policy to what falls through.
func (tr *tracer) hook(table Table, chain string, src netip.Addr, proto string, st pktState) []verdict {
	_, policy, ok := tr.fake.chain(tr.family, table, chain)
	if !ok {
		// A table nothing was written to accepts everything.
		return []verdict{{"ACCEPT", st}}
	}
	var out []verdict
	for _, v := range tr.walk(table, chain, src, proto, st, 0) {
		switch v.target {
		case "", "RETURN":
			v.target = policy
		case "DNAT", "MASQUERADE":
			v.target = "ACCEPT"
		}
		out = append(out, v)
	}
	return out
}

// walk evaluates chain's rules for st and returns how each possible path ends.
func (tr *tracer) walk(table Table, chain string, src netip.Addr, proto string, st pktState, depth int) []verdict {
	tr.t.Helper()
	if depth > 16 {
		tr.t.Fatalf("jump loop through %s", chain)
	}
	rules, _, ok := tr.fake.chain(tr.family, table, chain)
	if !ok {
		tr.t.Fatalf("jump to missing chain %s %s", table, chain)
	}
	running := []pktState{st}
	var ended []verdict
	for _, rule := range rules {
		var next []pktState
		for _, s := range running {
			matched, maybe := tr.match(rule, src, proto, s)
			if !matched || maybe {
				next = append(next, s)
			}
			if !matched {
				continue
			}
			target, opts := ruleTarget(rule)
			switch target {
			case "":
				next = append(next, s)
			case "ACCEPT", "DROP", "REJECT", "RETURN":
				ended = append(ended, verdict{target, s})
			case "DNAT":
				s.dst = netip.MustParseAddrPort(option(tr.t, opts, "--to-destination"))
				s.dnat = true
				ended = append(ended, verdict{"DNAT", s})
			case "MASQUERADE":
				s.masq = true
				ended = append(ended, verdict{"MASQUERADE", s})
			case "MARK":
				value, mask, err := parseMark(option(tr.t, opts, "--set-xmark"))
				if err != nil {
					tr.t.Fatal(err)
				}
				s.mark = (s.mark &^ mask) ^ value
				next = append(next, s)
			default:
				for _, v := range tr.walk(table, target, src, proto, s, depth+1) {
					if v.target == "" || v.target == "RETURN" {
						next = append(next, v.st)
					} else {
						ended = append(ended, v)
					}
				}
			}
		}
		running = uniqueStates(next)
	}
	for _, s := range running {
		ended = append(ended, verdict{"", s})
	}
	return ended
}

// match reports whether rule matches; maybe means it might match or not (a random
// or affinity match), so both paths must be followed.
func (tr *tracer) match(rule []string, src netip.Addr, proto string, s pktState) (matched, maybe bool) {
	tr.t.Helper()
	matched = true
	negate := false
	for i := 0; i < len(rule); i++ {
		arg := rule[i]
		next := func() string {
			i++
			return rule[i]
		}
		if arg == "!" {
			negate = true
			continue
		}
		var ok bool
		switch arg {
		case "-s":
			ok = contains(tr.t, next(), src)
		case "-d":
			ok = contains(tr.t, next(), s.dst.Addr())
		case "-p":
			ok = next() == proto
		case "-m":
			next() // the module's options follow
			ok = true
		case "--comment", "--name", "--mask", "--seconds", "--mode":
			next()
			ok = true
		case "--set", "--rsource", "--reap":
			ok = true
		case "--dport":
			ok = next() == strconv.Itoa(int(s.dst.Port()))
		case "--dst-type":
			ok = tr.addrType(next(), s.dst.Addr())
		case "--src-type":
			ok = tr.addrType(next(), src)
		case "--probability", "--rcheck":
			if arg == "--probability" {
				next()
			}
			ok, maybe = true, true
		case "--mark":
			value, mask, err := parseMark(next())
			if err != nil {
				tr.t.Fatal(err)
			}
			ok = s.mark&mask == value
		case "--ctstate":
			ok = slices.Contains(strings.Split(next(), ","), "NEW") // always a first packet
		case "-j", "-g":
			return matched, maybe && matched
		default:
			tr.t.Fatalf("tracer does not understand %q in rule %q", arg, strings.Join(rule, " "))
		}
		if ok == negate {
			matched = false
		}
		negate = false
	}
	return matched, maybe && matched
}

func (tr *tracer) addrType(typ string, a netip.Addr) bool {
	if typ != "LOCAL" {
		tr.t.Fatalf("tracer does not understand address type %s", typ)
	}
	return tr.isLocal(a)
}

func (tr *tracer) isLocal(a netip.Addr) bool {
	return a.IsLoopback() || slices.Contains(tr.local, a)
}

func contains(t *testing.T, prefix string, a netip.Addr) bool {
	p, err := netip.ParsePrefix(prefix)
	if err != nil {
		t.Fatalf("tracer: %v", err)
	}
	return p.Contains(a)
}

func option(t *testing.T, opts []string, name string) string {
	i := slices.Index(opts, name)
	if i < 0 || i+1 >= len(opts) {
		t.Fatalf("tracer: target options %v lack %s", opts, name)
	}
	return opts[i+1]
}

func uniqueStates(states []pktState) []pktState {
	var out []pktState
	for _, s := range states {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// newTracer syncs st into a fresh Fake and returns a tracer over family's rules.
func newTracer(t *testing.T, st *model.State, family model.Family) *tracer {
	t.Helper()
	fake := NewFake()
	b, err := New(Options{Executor: fake})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	local := nodeIPv4
	if family == model.IPv6 {
		local = nodeIPv6
	}
	return &tracer{t: t, fake: fake, family: family, local: []netip.Addr{local}}
}

// behaviourState is one node's services for the behaviour tests.
var behaviourState = state(
	svcPort("web", "10.96.0.10", eps("10.244.1.5/local", "10.244.2.6", "10.244.2.7", "10.244.2.8/notready/notserving"),
		nodePort(30080), loadBalancer("192.0.2.10"), sourceRanges("203.0.113.0/24"), externalIPs("198.51.100.20")),
	svcPort("draining", "10.96.0.11", eps("10.244.2.9/notready/terminating", "10.244.2.10/notready/notserving/terminating")),
	svcPort("local-none", "10.96.0.12", eps("10.244.2.11"), nodePort(30082), loadBalancer("192.0.2.12"), externalLocal(32002)),
	svcPort("local-some", "10.96.0.13", eps("10.244.1.13/local", "10.244.2.13"), nodePort(30083), externalLocal(32003)),
	svcPort("empty", "10.96.0.14", nil, nodePort(30084), externalIPs("198.51.100.24")),
	svcPort("itp", "10.96.0.15", eps("10.244.1.15/local", "10.244.2.15"), internalLocal),
	svcPort("itp-none", "10.96.0.16", eps("10.244.2.16"), internalLocal),
	svcPort("dns", "10.96.0.17", eps("10.244.2.17"), protocol(model.UDP, 53)),
	svcPort("diameter", "10.96.0.18", eps("10.244.2.18"), protocol(model.SCTP, 3868)),
	svcPort("sticky", "10.96.0.19", eps("10.244.1.19/local", "10.244.2.19"), affinity(10800)),
	svcPort("web", "fd00:10:96::10", eps("fd00:10:244:1::5/local", "fd00:10:244:2::6"), nodePort(30080)),
	svcPort("empty", "fd00:10:96::14", nil),
)

func TestTraceBehaviour(t *testing.T) {
	const (
		pod      = "10.244.1.20" // a pod on this node
		node     = "192.168.0.10"
		client   = "203.0.113.7"  // outside the cluster, inside web's source ranges
		stranger = "198.51.100.9" // outside the cluster and the source ranges
	)
	tests := []struct {
		name   string
		family model.Family
		pkt    packet
		want   []string
	}{{
		name: "pod → ClusterIP:80 is DNATed to exactly the ready endpoints, not masqueraded",
		pkt:  packet{src: pod, dst: "10.96.0.10:80", proto: "tcp"},
		want: []string{"DNAT 10.244.1.5:8080", "DNAT 10.244.2.6:8080", "DNAT 10.244.2.7:8080"},
	}, {
		name: "another port of the cluster IP is not captured",
		pkt:  packet{src: pod, dst: "10.96.0.10:81", proto: "tcp"},
		want: []string{"ACCEPT 10.96.0.10:81"},
	}, {
		name: "another protocol on the service port is not captured",
		pkt:  packet{src: pod, dst: "10.96.0.10:80", proto: "udp"},
		want: []string{"ACCEPT 10.96.0.10:80"},
	}, {
		name: "a pod reaching itself through its Service is masqueraded (hairpin)",
		pkt:  packet{src: "10.244.1.5", dst: "10.96.0.10:80", proto: "tcp"},
		want: []string{"DNAT 10.244.1.5:8080 masq", "DNAT 10.244.2.6:8080", "DNAT 10.244.2.7:8080"},
	}, {
		name: "from outside the cluster CIDR → ClusterIP is masqueraded",
		pkt:  packet{src: client, dst: "10.96.0.10:80", proto: "tcp"},
		want: []string{"DNAT 10.244.1.5:8080 masq", "DNAT 10.244.2.6:8080 masq", "DNAT 10.244.2.7:8080 masq"},
	}, {
		name: "the node itself → ClusterIP is masqueraded",
		pkt:  packet{src: node, dst: "10.96.0.10:80", proto: "tcp", fromHost: true},
		want: []string{"DNAT 10.244.1.5:8080 masq", "DNAT 10.244.2.6:8080 masq", "DNAT 10.244.2.7:8080 masq"},
	}, {
		name: "external → NodePort (eTP Cluster) goes anywhere, masqueraded",
		pkt:  packet{src: client, dst: node + ":30080", proto: "tcp"},
		want: []string{"DNAT 10.244.1.5:8080 masq", "DNAT 10.244.2.6:8080 masq", "DNAT 10.244.2.7:8080 masq"},
	}, {
		name: "node ports are not served on loopback",
		pkt:  packet{src: "127.0.0.1", dst: "127.0.0.1:30080", proto: "tcp", fromHost: true},
		want: []string{"LOCAL 127.0.0.1:30080"},
	}, {
		name: "external → external IP is DNATed and masqueraded",
		pkt:  packet{src: client, dst: "198.51.100.20:80", proto: "tcp"},
		want: []string{"DNAT 10.244.1.5:8080 masq", "DNAT 10.244.2.6:8080 masq", "DNAT 10.244.2.7:8080 masq"},
	}, {
		name: "a source inside loadBalancerSourceRanges → LB IP is DNATed",
		pkt:  packet{src: client, dst: "192.0.2.10:80", proto: "tcp"},
		want: []string{"DNAT 10.244.1.5:8080 masq", "DNAT 10.244.2.6:8080 masq", "DNAT 10.244.2.7:8080 masq"},
	}, {
		name: "a source outside loadBalancerSourceRanges → LB IP is dropped",
		pkt:  packet{src: stranger, dst: "192.0.2.10:80", proto: "tcp"},
		want: []string{"DROP"},
	}, {
		name: "node ports ignore loadBalancerSourceRanges, as in kube",
		pkt:  packet{src: stranger, dst: node + ":30080", proto: "tcp"},
		want: []string{"DNAT 10.244.1.5:8080 masq", "DNAT 10.244.2.6:8080 masq", "DNAT 10.244.2.7:8080 masq"},
	}, {
		name: "with no ready endpoint, traffic goes to the serving terminating ones",
		pkt:  packet{src: pod, dst: "10.96.0.11:80", proto: "tcp"},
		want: []string{"DNAT 10.244.2.9:8080"},
	}, {
		name: "external → NodePort with eTP Local and no local endpoint is dropped",
		pkt:  packet{src: client, dst: node + ":30082", proto: "tcp"},
		want: []string{"DROP"},
	}, {
		name: "external → LB IP with eTP Local and no local endpoint is dropped",
		pkt:  packet{src: client, dst: "192.0.2.12:80", proto: "tcp"},
		want: []string{"DROP"},
	}, {
		name: "a pod → NodePort with eTP Local takes the Cluster path",
		pkt:  packet{src: pod, dst: node + ":30082", proto: "tcp"},
		want: []string{"DNAT 10.244.2.11:8080"},
	}, {
		name: "the node → its own NodePort with eTP Local takes the Cluster path, masqueraded",
		pkt:  packet{src: node, dst: node + ":30082", proto: "tcp", fromHost: true},
		want: []string{"DNAT 10.244.2.11:8080 masq"},
	}, {
		name: "the cluster IP of an eTP Local service still reaches every endpoint",
		pkt:  packet{src: pod, dst: "10.96.0.12:80", proto: "tcp"},
		want: []string{"DNAT 10.244.2.11:8080"},
	}, {
		name: "external → NodePort with eTP Local goes to local endpoints only, source kept",
		pkt:  packet{src: client, dst: node + ":30083", proto: "tcp"},
		want: []string{"DNAT 10.244.1.13:8080"},
	}, {
		name: "the health check node port is accepted",
		pkt:  packet{src: client, dst: node + ":32002", proto: "tcp"},
		want: []string{"LOCAL 192.168.0.10:32002"},
	}, {
		name: "a service port with no endpoints rejects cluster IP traffic",
		pkt:  packet{src: pod, dst: "10.96.0.14:80", proto: "tcp"},
		want: []string{"REJECT"},
	}, {
		name: "… and rejects it from the node itself",
		pkt:  packet{src: node, dst: "10.96.0.14:80", proto: "tcp", fromHost: true},
		want: []string{"REJECT"},
	}, {
		name: "… and node port traffic",
		pkt:  packet{src: client, dst: node + ":30084", proto: "tcp"},
		want: []string{"REJECT"},
	}, {
		name: "… and external IP traffic",
		pkt:  packet{src: client, dst: "198.51.100.24:80", proto: "tcp"},
		want: []string{"REJECT"},
	}, {
		name: "iTP Local: cluster IP traffic goes to local endpoints only",
		pkt:  packet{src: pod, dst: "10.96.0.15:80", proto: "tcp"},
		want: []string{"DNAT 10.244.1.15:8080"},
	}, {
		name: "iTP Local without a local endpoint drops cluster IP traffic",
		pkt:  packet{src: pod, dst: "10.96.0.16:80", proto: "tcp"},
		want: []string{"DROP"},
	}, {
		name: "UDP",
		pkt:  packet{src: pod, dst: "10.96.0.17:53", proto: "udp"},
		want: []string{"DNAT 10.244.2.17:8080"},
	}, {
		name: "TCP to a UDP-only port is not captured",
		pkt:  packet{src: pod, dst: "10.96.0.17:53", proto: "tcp"},
		want: []string{"ACCEPT 10.96.0.17:53"},
	}, {
		name: "SCTP",
		pkt:  packet{src: pod, dst: "10.96.0.18:3868", proto: "sctp"},
		want: []string{"DNAT 10.244.2.18:8080"},
	}, {
		name: "ClientIP affinity may send a client to any endpoint",
		pkt:  packet{src: pod, dst: "10.96.0.19:80", proto: "tcp"},
		want: []string{"DNAT 10.244.1.19:8080", "DNAT 10.244.2.19:8080"},
	}, {
		name:   "IPv6: pod → ClusterIP",
		family: model.IPv6,
		pkt:    packet{src: "fd00:10:244:1::20", dst: "[fd00:10:96::10]:80", proto: "tcp"},
		want:   []string{"DNAT [fd00:10:244:1::5]:8080", "DNAT [fd00:10:244:2::6]:8080"},
	}, {
		name:   "IPv6: external → NodePort, masqueraded",
		family: model.IPv6,
		pkt:    packet{src: "2001:db8:113::7", dst: "[fd00:192:168::10]:30080", proto: "tcp"},
		want:   []string{"DNAT [fd00:10:244:1::5]:8080 masq", "DNAT [fd00:10:244:2::6]:8080 masq"},
	}, {
		name:   "IPv6: no endpoints, rejected",
		family: model.IPv6,
		pkt:    packet{src: "fd00:10:244:1::20", dst: "[fd00:10:96::14]:80", proto: "tcp"},
		want:   []string{"REJECT"},
	}}
	tracers := map[model.Family]*tracer{
		model.IPv4: newTracer(t, behaviourState, model.IPv4),
		model.IPv6: newTracer(t, behaviourState, model.IPv6),
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			family := tt.family
			if family == 0 {
				family = model.IPv4
			}
			tr := *tracers[family]
			tr.t = t
			if got := tr.trace(tt.pkt); !slices.Equal(got, tt.want) {
				t.Errorf("trace(%+v)\n got %q\nwant %q", tt.pkt, got, tt.want)
			}
		})
	}
}

func TestTraceMasquerade(t *testing.T) {
	web := svcPort("web", "10.96.0.10", eps("10.244.2.6"))
	podToWeb := packet{src: "10.244.1.20", dst: "10.96.0.10:80", proto: "tcp"}

	all := state(web)
	all.IPv4.MasqueradeAll = true
	if got, want := newTracer(t, all, model.IPv4).trace(podToWeb), []string{"DNAT 10.244.2.6:8080 masq"}; !slices.Equal(got, want) {
		t.Errorf("with masquerade-all: %q, want %q", got, want)
	}

	// Without a cluster CIDR nothing tells pods from the rest, so only hairpins
	// are masqueraded.
	unknown := state(web)
	unknown.IPv4.ClusterCIDR = netip.Prefix{}
	tr := newTracer(t, unknown, model.IPv4)
	if got, want := tr.trace(packet{src: "203.0.113.7", dst: "10.96.0.10:80", proto: "tcp"}), []string{"DNAT 10.244.2.6:8080"}; !slices.Equal(got, want) {
		t.Errorf("without a cluster CIDR: %q, want %q", got, want)
	}
	if got, want := tr.trace(packet{src: "10.244.2.6", dst: "10.96.0.10:80", proto: "tcp"}), []string{"DNAT 10.244.2.6:8080 masq"}; !slices.Equal(got, want) {
		t.Errorf("hairpin without a cluster CIDR: %q, want %q", got, want)
	}
}

func TestTraceNodePortAddresses(t *testing.T) {
	st := state(svcPort("web", "10.96.0.10", eps("10.244.2.6"), nodePort(30080)))
	st.IPv4.NodePortsOnAllAddresses = false
	st.IPv4.NodePortAddresses = []netip.Addr{nodeIPv4}
	tr := newTracer(t, st, model.IPv4)
	tr.local = append(tr.local, netip.MustParseAddr("172.16.0.10")) // a second, unselected node address
	if got, want := tr.trace(packet{src: "203.0.113.7", dst: "192.168.0.10:30080", proto: "tcp"}), []string{"DNAT 10.244.2.6:8080 masq"}; !slices.Equal(got, want) {
		t.Errorf("selected address: %q, want %q", got, want)
	}
	if got, want := tr.trace(packet{src: "203.0.113.7", dst: "172.16.0.10:30080", proto: "tcp"}), []string{"LOCAL 172.16.0.10:30080"}; !slices.Equal(got, want) {
		t.Errorf("other address: %q, want %q", got, want)
	}
}
