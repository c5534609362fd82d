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
	"cmp"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/svcplane/svcplane/dataplane/model"
)

// tracer follows a packet through the Fake's nat and filter tables the way
// netfilter would for the first packet of a connection, and returns every outcome
// the rules allow. Random choices (-m statistic) may go either way, so the tracer
// follows both branches: the result is the set of possible outcomes, not one of
// them. Affinity checks (-m recent --rcheck) are decided by recent, the kernel's
// memory of earlier connections that the test loads; what a path records (-m recent
// --set) is part of its outcome, not of recent, so one trace never sees another's
// connections.
//
// It understands exactly the matches and targets this package writes and fails the
// test on anything else, so a new rule shape cannot slip past it untested.
type tracer struct {
	t      testing.TB
	fake   *Fake
	family model.Family
	// local are the node's addresses, what -m addrtype --dst-type LOCAL matches
	// (loopback addresses are local too).
	local []netip.Addr
	// recent are the -m recent lists as the packet finds them; nil for a node no
	// client has connected through yet.
	recent recentTable
}

// recentEntry is one address in one -m recent list.
type recentEntry struct {
	list string
	addr netip.Addr
}

// recentTable holds the kernel's -m recent lists (xt_recent): for each entry, how
// many seconds ago the list last recorded the address.
type recentTable map[recentEntry]int

func compareRecentEntries(a, b recentEntry) int {
	return cmp.Or(strings.Compare(a.list, b.list), a.addr.Compare(b.addr))
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

// pktState is what the rules may change about a packet, and what it leaves behind.
type pktState struct {
	dst  netip.AddrPort
	mark uint32
	masq bool
	dnat bool
	// recorded are the entries -m recent --set added on the way, in path order.
	// Paths share its backing array: extend it only through record.
	recorded []recentEntry
}

// record returns s with e added to the recent lists, leaving s's other paths
// alone.
func (s pktState) record(e recentEntry) pktState {
	s.recorded = append(slices.Clip(s.recorded), e)
	return s
}

func (s pktState) equal(o pktState) bool {
	return s.dst == o.dst && s.mark == o.mark && s.masq == o.masq && s.dnat == o.dnat &&
		slices.Equal(s.recorded, o.recorded)
}

// verdict is how a chain walk ends: "" when it falls off the end, or the target
// that ended it (ACCEPT, DROP, REJECT, RETURN; DNAT and MASQUERADE end a nat chain
// like ACCEPT).
type verdict struct {
	target string
	st     pktState
}

// outcome is one way the first packet of a connection may end.
type outcome struct {
	// what describes it as trace does.
	what string
	// recorded are the entries its path added to -m recent lists, sorted: what
	// the kernel remembers of the connection for the client's next ones.
	recorded []recentEntry
}

func newOutcome(what string, st pktState) outcome {
	recorded := slices.Clone(st.recorded)
	slices.SortFunc(recorded, compareRecentEntries)
	return outcome{what: what, recorded: slices.Compact(recorded)}
}

func (o outcome) String() string {
	s := o.what
	for _, e := range o.recorded {
		s += fmt.Sprintf(" recent[%s]+=%s", e.list, e.addr)
	}
	return s
}

func compareOutcomes(a, b outcome) int {
	return cmp.Or(strings.Compare(a.what, b.what), slices.CompareFunc(a.recorded, b.recorded, compareRecentEntries))
}

// trace returns the packet's possible outcomes, sorted: "DNAT <addr:port>" with
// " masq" when it is masqueraded, "ACCEPT <addr:port>" when it passes unchanged,
// "LOCAL <addr:port>" when it is delivered to the node itself, or "DROP"/"REJECT".
// outcomes tells what each records in the -m recent lists as well.
func (tr *tracer) trace(p packet) []string {
	tr.t.Helper()
	var out []string
	for _, o := range tr.outcomes(p) {
		out = append(out, o.what)
	}
	return slices.Compact(out)
}

// outcomes returns the packet's possible outcomes, sorted by description, each
// with the -m recent entries its path records.
func (tr *tracer) outcomes(p packet) []outcome {
	tr.t.Helper()
	src := netip.MustParseAddr(p.src)
	start := pktState{dst: netip.MustParseAddrPort(p.dst)}
	var out []outcome
	if p.fromHost {
		for _, n := range tr.hook(TableNAT, "OUTPUT", src, p.proto, start) {
			for _, f := range tr.hook(TableFilter, "OUTPUT", src, p.proto, n.st) {
				if f.target != "ACCEPT" {
					out = append(out, newOutcome(f.target, f.st))
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
					out = append(out, newOutcome(f.target, f.st))
					continue
				}
				for _, post := range tr.hook(TableNAT, "POSTROUTING", src, p.proto, f.st) {
					out = append(out, newOutcome(describe("ACCEPT", post.st), post.st))
				}
			}
		}
	}
	slices.SortFunc(out, compareOutcomes)
	return slices.CompactFunc(out, func(a, b outcome) bool { return compareOutcomes(a, b) == 0 })
}

// deliver takes a packet for one of the node's addresses through filter INPUT, or
// describes a packet leaving the node.
func (tr *tracer) deliver(src netip.Addr, proto string, st pktState) []outcome {
	if !tr.isLocal(st.dst.Addr()) {
		return []outcome{newOutcome(describe("ACCEPT", st), st)}
	}
	var out []outcome
	for _, in := range tr.hook(TableFilter, "INPUT", src, proto, st) {
		if in.target != "ACCEPT" {
			out = append(out, newOutcome(in.target, in.st))
			continue
		}
		out = append(out, newOutcome(describe("LOCAL", in.st), in.st))
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
			matched, maybe, set := tr.match(rule, src, proto, s)
			if !matched || maybe {
				next = append(next, s)
			}
			if !matched {
				continue
			}
			if set != nil {
				s = s.record(*set)
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
// match), so both paths must be followed. set is the -m recent entry the rule
// records when it matches.
func (tr *tracer) match(rule []string, src netip.Addr, proto string, s pktState) (matched, maybe bool, set *recentEntry) {
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
			ok = true // the module's options follow
			if next() == "recent" {
				i, ok, set = tr.recentMatch(rule, i+1, src, s)
			}
		case "--comment", "--mode":
			next()
			ok = true
		case "--dport":
			ok = next() == strconv.Itoa(int(s.dst.Port()))
		case "--dst-type":
			ok = tr.addrType(next(), s.dst.Addr())
		case "--src-type":
			ok = tr.addrType(next(), src)
		case "--probability":
			next()
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
			return matched, maybe && matched, set
		default:
			tr.t.Fatalf("tracer does not understand %q in rule %q", arg, strings.Join(rule, " "))
		}
		if ok == negate {
			matched = false
		}
		negate = false
	}
	return matched, maybe && matched, set
}

// recentMatch evaluates the -m recent match whose options start at rule[i], for a
// packet from src in state s. It returns the index of the match's last word,
// whether it matches, and, for --set, the entry it records.
//
// The tracer knows the two uses kube-proxy makes of the module: --rcheck (with
// --seconds, and --reap to forget older entries) to find the endpoint a client
// last used, and --set to record that endpoint. What the kernel refuses (one
// action, no --seconds or --reap with --set, no --reap without --seconds) never
// gets here: the Fake refuses it when it is loaded. The tracer also refuses
// --name left to the kernel's DEFAULT list, which every rule naming no list
// shares, and --mask or --rsource left to their defaults, which iptables-save
// always prints: the renderer writes rules as it prints them.
func (tr *tracer) recentMatch(rule []string, i int, src netip.Addr, s pktState) (last int, ok bool, set *recentEntry) {
	tr.t.Helper()
	fail := func(format string, args ...any) {
		tr.t.Helper()
		tr.t.Fatalf("tracer: -m recent %s: rule %q", fmt.Sprintf(format, args...), strings.Join(rule, " "))
	}
	value := func() string {
		if i+1 >= len(rule) {
			fail("lacks the value of %s", rule[i])
		}
		i++
		return rule[i]
	}
	var (
		list           string
		mask           netip.Addr
		seconds        int
		record, source bool
	)
options:
	for ; i < len(rule); i++ {
		switch w := rule[i]; w {
		case "--name":
			list = value()
		case "--mask":
			var err error
			if mask, err = netip.ParseAddr(value()); err != nil {
				fail("%v", err)
			}
		case "--seconds":
			var err error
			if seconds, err = strconv.Atoi(value()); err != nil || seconds < 1 {
				fail("has a bad --seconds")
			}
		case "--rcheck", "--reap":
			// The Fake let in only --rcheck or --set, so a match that does
			// not --set checks; --reap changes what the kernel keeps, not
			// what a first packet matches.
		case "--set":
			record = true
		case "--rsource":
			source = true
		case "!":
			if i+1 < len(rule) && strings.HasPrefix(rule[i+1], "--") {
				fail("negates %s, which the tracer does not understand", rule[i+1])
			}
			break options
		default:
			// What follows the module's options is another module (-m), the
			// target (-j) or an option of no module.
			if strings.HasPrefix(w, "--") {
				fail("has %s, which the tracer does not understand", w)
			}
			break options
		}
	}
	last = i - 1

	switch {
	case list == "":
		fail("has no --name, so it uses the DEFAULT list that every such rule shares")
	case !mask.IsValid():
		fail("leaves --mask out, which iptables-save always prints")
	case !source:
		fail("leaves --rsource out, which iptables-save always prints")
	case mask.BitLen() != src.BitLen():
		fail("has a --mask of another family than %s", src)
	}
	entry := recentEntry{list: list, addr: maskAddr(src, mask)}

	if record {
		// --set records the client as soon as the kernel evaluates it, whatever
		// the matches after it decide.
		if i < len(rule) && rule[i] != "-j" && rule[i] != "-g" {
			fail("--set is not the rule's last match: it would record clients the rule does not take")
		}
		return last, true, &entry
	}
	age, seen := tr.recent[entry]
	if slices.Contains(s.recorded, entry) {
		age, seen = 0, true // recorded earlier on this packet's path
	}
	// xt_recent takes an address last seen at most --seconds ago, the bound
	// included; without --seconds, any age will do.
	return last, seen && (seconds == 0 || age <= seconds), nil
}

// maskAddr returns a with only the bits set in mask, an address of a's family.
func maskAddr(a, mask netip.Addr) netip.Addr {
	b, m := a.AsSlice(), mask.AsSlice()
	for i := range b {
		b[i] &= m[i]
	}
	out, _ := netip.AddrFromSlice(b)
	return out
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

func contains(t testing.TB, prefix string, a netip.Addr) bool {
	p, err := netip.ParsePrefix(prefix)
	if err != nil {
		t.Fatalf("tracer: %v", err)
	}
	return p.Contains(a)
}

func option(t testing.TB, opts []string, name string) string {
	i := slices.Index(opts, name)
	if i < 0 || i+1 >= len(opts) {
		t.Fatalf("tracer: target options %v lack %s", opts, name)
	}
	return opts[i+1]
}

func uniqueStates(states []pktState) []pktState {
	var out []pktState
	for _, s := range states {
		if !slices.ContainsFunc(out, s.equal) {
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

// TestTraceAffinity checks ClientIP affinity against the kernel's memory of
// earlier connections: with none, a client may land on any endpoint, and its
// connection records it in the list of the endpoint it lands on; with a recent
// entry, it lands on that entry's endpoint again, as long as the entry is no older
// than the timeout, the service still has the endpoint and the traffic policy
// allows it.
func TestTraceAffinity(t *testing.T) {
	const timeout = 600 // seconds
	var (
		sticky = svcPort("sticky", "10.96.0.19", eps("10.244.1.19/local", "10.244.2.19", "10.244.2.29"),
			nodePort(30019), loadBalancer("192.0.2.19"), sourceRanges("203.0.113.0/24"), affinity(timeout))
		// other shares an endpoint with sticky.
		other = svcPort("other", "10.96.0.22", eps("10.244.2.19", "10.244.2.39"), affinity(timeout))
		local = svcPort("sticky-local", "10.96.0.20", eps("10.244.1.21/local", "10.244.1.22/local", "10.244.2.21"),
			nodePort(30020), externalLocal(32020), affinity(timeout))
		internal = svcPort("sticky-internal", "10.96.0.21", eps("10.244.1.23/local", "10.244.1.24/local", "10.244.2.23"),
			internalLocal, affinity(timeout))
		sticky6 = svcPort("sticky", "fd00:10:96::19", eps("fd00:10:244:1::19/local", "fd00:10:244:2::19"), affinity(timeout))
	)
	const (
		pod        = "10.244.1.30"
		neighbour  = "10.244.1.31" // pod's neighbour: a mask wider than one address would pin it too
		client     = "203.0.113.7"
		node       = "192.168.0.10"
		pod6       = "fd00:10:244:1::30"
		neighbour6 = "fd00:10:244:1::31"
	)
	// seen says that src's last connection to p went to the endpoint at dest,
	// age seconds ago.
	seen := func(p *model.ServicePort, dest, src string, age int) recentTable {
		return recentTable{{list: endpointChain(p.Name, dest), addr: netip.MustParseAddr(src)}: age}
	}
	tests := []struct {
		name   string
		svc    *model.ServicePort // the service the packet is for
		recent recentTable
		pkt    packet
		want   []string
	}{{
		name: "with no memory, a pod may land on any endpoint",
		svc:  sticky,
		pkt:  packet{src: pod, dst: "10.96.0.19:80", proto: "tcp"},
		want: []string{"DNAT 10.244.1.19:8080", "DNAT 10.244.2.19:8080", "DNAT 10.244.2.29:8080"},
	}, {
		name: "with no memory, an external client → node port may land on any endpoint",
		svc:  sticky,
		pkt:  packet{src: client, dst: node + ":30019", proto: "tcp"},
		want: []string{"DNAT 10.244.1.19:8080 masq", "DNAT 10.244.2.19:8080 masq", "DNAT 10.244.2.29:8080 masq"},
	}, {
		name:   "a pod goes back to its last endpoint",
		svc:    sticky,
		recent: seen(sticky, "10.244.2.19:8080", pod, 0),
		pkt:    packet{src: pod, dst: "10.96.0.19:80", proto: "tcp"},
		want:   []string{"DNAT 10.244.2.19:8080"},
	}, {
		name:   "… whichever endpoint that was",
		svc:    sticky,
		recent: seen(sticky, "10.244.1.19:8080", pod, 0),
		pkt:    packet{src: pod, dst: "10.96.0.19:80", proto: "tcp"},
		want:   []string{"DNAT 10.244.1.19:8080"},
	}, {
		name:   "an external client → node port goes back to its last endpoint",
		svc:    sticky,
		recent: seen(sticky, "10.244.2.29:8080", client, 0),
		pkt:    packet{src: client, dst: node + ":30019", proto: "tcp"},
		want:   []string{"DNAT 10.244.2.29:8080 masq"},
	}, {
		name:   "an external client → LB IP goes back to its last endpoint",
		svc:    sticky,
		recent: seen(sticky, "10.244.2.29:8080", client, 0),
		pkt:    packet{src: client, dst: "192.0.2.19:80", proto: "tcp"},
		want:   []string{"DNAT 10.244.2.29:8080 masq"},
	}, {
		name:   "the node itself goes back to its last endpoint",
		svc:    sticky,
		recent: seen(sticky, "10.244.2.19:8080", node, 0),
		pkt:    packet{src: node, dst: "10.96.0.19:80", proto: "tcp", fromHost: true},
		want:   []string{"DNAT 10.244.2.19:8080 masq"},
	}, {
		name:   "a client last seen exactly the timeout ago is still pinned",
		svc:    sticky,
		recent: seen(sticky, "10.244.2.19:8080", pod, timeout),
		pkt:    packet{src: pod, dst: "10.96.0.19:80", proto: "tcp"},
		want:   []string{"DNAT 10.244.2.19:8080"},
	}, {
		name:   "a client last seen longer than the timeout ago may land anywhere",
		svc:    sticky,
		recent: seen(sticky, "10.244.2.19:8080", pod, timeout+1),
		pkt:    packet{src: pod, dst: "10.96.0.19:80", proto: "tcp"},
		want:   []string{"DNAT 10.244.1.19:8080", "DNAT 10.244.2.19:8080", "DNAT 10.244.2.29:8080"},
	}, {
		name:   "another client is not pinned by a pod's memory, even next to it",
		svc:    sticky,
		recent: seen(sticky, "10.244.2.19:8080", pod, 0),
		pkt:    packet{src: neighbour, dst: "10.96.0.19:80", proto: "tcp"},
		want:   []string{"DNAT 10.244.1.19:8080", "DNAT 10.244.2.19:8080", "DNAT 10.244.2.29:8080"},
	}, {
		name:   "an external client is not pinned by a pod's memory",
		svc:    sticky,
		recent: seen(sticky, "10.244.2.19:8080", pod, 0),
		pkt:    packet{src: client, dst: node + ":30019", proto: "tcp"},
		want:   []string{"DNAT 10.244.1.19:8080 masq", "DNAT 10.244.2.19:8080 masq", "DNAT 10.244.2.29:8080 masq"},
	}, {
		name:   "memory of an endpoint the service no longer has pins nothing",
		svc:    sticky,
		recent: seen(sticky, "10.244.2.99:8080", pod, 0),
		pkt:    packet{src: pod, dst: "10.96.0.19:80", proto: "tcp"},
		want:   []string{"DNAT 10.244.1.19:8080", "DNAT 10.244.2.19:8080", "DNAT 10.244.2.29:8080"},
	}, {
		name:   "memory of another service's use of a shared endpoint pins nothing",
		svc:    sticky,
		recent: seen(other, "10.244.2.19:8080", pod, 0),
		pkt:    packet{src: pod, dst: "10.96.0.19:80", proto: "tcp"},
		want:   []string{"DNAT 10.244.1.19:8080", "DNAT 10.244.2.19:8080", "DNAT 10.244.2.29:8080"},
	}, {
		name:   "… nor does memory of this service's use of it pin the other service",
		svc:    other,
		recent: seen(sticky, "10.244.2.19:8080", pod, 0),
		pkt:    packet{src: pod, dst: "10.96.0.22:80", proto: "tcp"},
		want:   []string{"DNAT 10.244.2.19:8080", "DNAT 10.244.2.39:8080"},
	}, {
		name: "eTP Local with no memory: external → node port lands on a local endpoint, source kept",
		svc:  local,
		pkt:  packet{src: client, dst: node + ":30020", proto: "tcp"},
		want: []string{"DNAT 10.244.1.21:8080", "DNAT 10.244.1.22:8080"},
	}, {
		name:   "eTP Local: external → node port goes back to its last local endpoint",
		svc:    local,
		recent: seen(local, "10.244.1.22:8080", client, 0),
		pkt:    packet{src: client, dst: node + ":30020", proto: "tcp"},
		want:   []string{"DNAT 10.244.1.22:8080"},
	}, {
		name:   "eTP Local: memory of a remote endpoint does not take external traffic off the node",
		svc:    local,
		recent: seen(local, "10.244.2.21:8080", client, 0),
		pkt:    packet{src: client, dst: node + ":30020", proto: "tcp"},
		want:   []string{"DNAT 10.244.1.21:8080", "DNAT 10.244.1.22:8080"},
	}, {
		name:   "eTP Local: the cluster IP still goes back to a remote endpoint",
		svc:    local,
		recent: seen(local, "10.244.2.21:8080", pod, 0),
		pkt:    packet{src: pod, dst: "10.96.0.20:80", proto: "tcp"},
		want:   []string{"DNAT 10.244.2.21:8080"},
	}, {
		name:   "eTP Local: a pod → node port takes the Cluster path, affinity included",
		svc:    local,
		recent: seen(local, "10.244.2.21:8080", pod, 0),
		pkt:    packet{src: pod, dst: node + ":30020", proto: "tcp"},
		want:   []string{"DNAT 10.244.2.21:8080"},
	}, {
		name:   "iTP Local: a pod goes back to its last local endpoint",
		svc:    internal,
		recent: seen(internal, "10.244.1.24:8080", pod, 0),
		pkt:    packet{src: pod, dst: "10.96.0.21:80", proto: "tcp"},
		want:   []string{"DNAT 10.244.1.24:8080"},
	}, {
		name:   "iTP Local: memory of a remote endpoint does not take the pod off the node",
		svc:    internal,
		recent: seen(internal, "10.244.2.23:8080", pod, 0),
		pkt:    packet{src: pod, dst: "10.96.0.21:80", proto: "tcp"},
		want:   []string{"DNAT 10.244.1.23:8080", "DNAT 10.244.1.24:8080"},
	}, {
		name: "IPv6: with no memory, a pod may land on any endpoint",
		svc:  sticky6,
		pkt:  packet{src: pod6, dst: "[fd00:10:96::19]:80", proto: "tcp"},
		want: []string{"DNAT [fd00:10:244:1::19]:8080", "DNAT [fd00:10:244:2::19]:8080"},
	}, {
		name:   "IPv6: a pod goes back to its last endpoint",
		svc:    sticky6,
		recent: seen(sticky6, "[fd00:10:244:2::19]:8080", pod6, 0),
		pkt:    packet{src: pod6, dst: "[fd00:10:96::19]:80", proto: "tcp"},
		want:   []string{"DNAT [fd00:10:244:2::19]:8080"},
	}, {
		name:   "IPv6: its neighbour is not pinned",
		svc:    sticky6,
		recent: seen(sticky6, "[fd00:10:244:2::19]:8080", pod6, 0),
		pkt:    packet{src: neighbour6, dst: "[fd00:10:96::19]:80", proto: "tcp"},
		want:   []string{"DNAT [fd00:10:244:1::19]:8080", "DNAT [fd00:10:244:2::19]:8080"},
	}}
	st := state(sticky, other, local, internal, sticky6)
	tracers := map[model.Family]*tracer{
		model.IPv4: newTracer(t, st, model.IPv4),
		model.IPv6: newTracer(t, st, model.IPv6),
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := *tracers[model.FamilyOf(tt.svc.ClusterIP)]
			tr.t = t
			tr.recent = tt.recent
			outcomes := tr.outcomes(tt.pkt)
			var got []string
			for _, o := range outcomes {
				got = append(got, o.what)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("trace(%+v)\n got %q\nwant %q", tt.pkt, outcomes, tt.want)
			}
			// Each connection records its client in the list of the endpoint it
			// lands on, the list the service's checks read back, and nowhere else.
			src := netip.MustParseAddr(tt.pkt.src)
			for _, o := range outcomes {
				var want []recentEntry
				if dest, ok := strings.CutPrefix(o.what, "DNAT "); ok {
					dest, _, _ = strings.Cut(dest, " ")
					want = []recentEntry{{list: endpointChain(tt.svc.Name, dest), addr: src}}
				}
				if !slices.Equal(o.recorded, want) {
					t.Errorf("outcome %s records %v, want %v", o, o.recorded, want)
				}
			}
		})
	}
}

// TestTraceAffinityRoundTrip follows a client from connection to connection: the
// memory its first connection leaves sends the next ones to the same endpoint,
// whichever it was, until the endpoint leaves the service; and it pins the client
// only for that service.
func TestTraceAffinityRoundTrip(t *testing.T) {
	endpoints := eps("10.244.1.19/local", "10.244.2.19", "10.244.2.29")
	sticky := svcPort("sticky", "10.96.0.19", endpoints, nodePort(30019), affinity(600))
	other := svcPort("other", "10.96.0.22", endpoints, affinity(600))
	first := packet{src: "203.0.113.7", dst: "192.168.0.10:30019", proto: "tcp"}
	toOther := packet{src: first.src, dst: "10.96.0.22:80", proto: "tcp"}

	tr := newTracer(t, state(sticky, other), model.IPv4)
	outcomes := tr.outcomes(first)
	if len(outcomes) != len(endpoints) {
		t.Fatalf("first connection: %v, want one outcome per endpoint", outcomes)
	}
	for _, o := range outcomes {
		memory := recentTable{}
		for _, e := range o.recorded {
			memory[e] = 1
		}
		again := *tr
		again.recent = memory
		if got, want := again.trace(first), []string{o.what}; !slices.Equal(got, want) {
			t.Errorf("after %s: next connection %q, want %q", o, got, want)
		}
		if got, want := again.trace(toOther), tr.trace(toOther); !slices.Equal(got, want) {
			t.Errorf("after %s: connection to another service %q, want %q", o, got, want)
		}

		// The endpoint goes away; its list may outlive it.
		dest, _, _ := strings.Cut(strings.TrimPrefix(o.what, "DNAT "), " ")
		rest := slices.DeleteFunc(slices.Clone(endpoints), func(ep model.Endpoint) bool { return ep.AddrPort().String() == dest })
		after := newTracer(t, state(svcPort("sticky", "10.96.0.19", rest, nodePort(30019), affinity(600))), model.IPv4)
		want := after.trace(first)
		after.recent = memory
		if got := after.trace(first); len(want) != len(rest) || !slices.Equal(got, want) {
			t.Errorf("after %s and its endpoint's removal: next connection %q, want %q (one per remaining endpoint)", o, got, want)
		}
	}
}

// refusal is a testing.TB whose Fatal records its message and ends only the
// goroutine calling it, so that a test can check that the tracer refuses a rule.
type refusal struct {
	testing.TB
	msg string
}

func (r *refusal) Helper() {}

func (r *refusal) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func (r *refusal) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestTraceRecentMatch checks the tracer's model of -m recent on rules written by
// hand, including ones the Fake accepts but the tracer must refuse.
func TestTraceRecentMatch(t *testing.T) {
	const (
		list   = "SVCP-SEP-TEST"
		client = "203.0.113.7"
		mask   = "--mask 255.255.255.255 --rsource"
	)
	pkt := packet{src: client, dst: "10.96.0.10:80", proto: "tcp"}
	// load returns a tracer over a nat PREROUTING that DNATs pkt when recent
	// matches.
	load := func(t *testing.T, recent string) *tracer {
		t.Helper()
		fake := NewFake()
		payload := "*nat\n-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -m recent " + recent +
			" -j DNAT --to-destination 10.244.2.6:8080\nCOMMIT\n"
		if err := fake.Restore(t.Context(), model.IPv4, []byte(payload)); err != nil {
			t.Fatal(err)
		}
		return &tracer{t: t, fake: fake, family: model.IPv4, local: []netip.Addr{nodeIPv4}}
	}
	entry := recentEntry{list: list, addr: netip.MustParseAddr(client)}

	t.Run("--rcheck", func(t *testing.T) {
		tr := load(t, "--rcheck --seconds 60 --reap --name "+list+" "+mask)
		for _, tc := range []struct {
			recent recentTable
			want   string
		}{
			{nil, "ACCEPT 10.96.0.10:80"},
			{recentTable{entry: 60}, "DNAT 10.244.2.6:8080"},
			{recentTable{entry: 61}, "ACCEPT 10.96.0.10:80"},
			{recentTable{{list: list + "X", addr: entry.addr}: 0}, "ACCEPT 10.96.0.10:80"},
			{recentTable{{list: list, addr: netip.MustParseAddr("203.0.113.8")}: 0}, "ACCEPT 10.96.0.10:80"},
		} {
			tr.recent = tc.recent
			if got := tr.outcomes(pkt); len(got) != 1 || got[0].String() != tc.want {
				t.Errorf("with %v: %v, want %s", tc.recent, got, tc.want)
			}
		}
	})
	t.Run("--rcheck without --seconds", func(t *testing.T) {
		tr := load(t, "--rcheck --name "+list+" "+mask)
		tr.recent = recentTable{entry: 1 << 20}
		if got, want := tr.trace(pkt), []string{"DNAT 10.244.2.6:8080"}; !slices.Equal(got, want) {
			t.Errorf("%q, want %q", got, want)
		}
	})
	t.Run("--mask", func(t *testing.T) {
		tr := load(t, "--rcheck --name "+list+" --mask 255.255.255.0 --rsource")
		tr.recent = recentTable{{list: list, addr: netip.MustParseAddr("203.0.113.0")}: 0}
		if got, want := tr.trace(pkt), []string{"DNAT 10.244.2.6:8080"}; !slices.Equal(got, want) {
			t.Errorf("%q, want %q", got, want)
		}
	})
	t.Run("--set", func(t *testing.T) {
		tr := load(t, "--set --name "+list+" "+mask)
		want := outcome{what: "DNAT 10.244.2.6:8080", recorded: []recentEntry{entry}}
		if got := tr.outcomes(pkt); len(got) != 1 || compareOutcomes(got[0], want) != 0 {
			t.Errorf("%v, want %v", got, want)
		}
	})

	// Options the kernel refuses (no command or two, --seconds with --set, --reap
	// without --seconds) never get this far: the Fake refuses them as the kernel
	// does (TestFakeRejectsWhatIptablesRejects). These are rules the kernel takes
	// but the tracer cannot follow or the renderer must not write.
	for _, tc := range []struct{ recent, refusal string }{
		{"--rcheck --seconds 60 --reap --name " + list + " --mask 255.255.255.255", "leaves --rsource out"},
		{"--rcheck --seconds 60 --reap --name " + list + " --rsource", "leaves --mask out"},
		{"--rcheck --seconds 60 --reap " + mask, "no --name"},
		{"--update --seconds 60 --name " + list + " " + mask, "--update"},
		{"! --rcheck --seconds 60 --name " + list + " " + mask, "negates"},
		{"--set --name " + list + " " + mask + " -m comment --comment x", "last match"},
	} {
		t.Run("refuses "+tc.recent, func(t *testing.T) {
			tr := load(t, tc.recent)
			r := &refusal{TB: t}
			tr.t = r
			done := make(chan struct{})
			go func() {
				defer close(done)
				tr.trace(pkt)
			}()
			<-done
			if !strings.Contains(r.msg, tc.refusal) {
				t.Errorf("-m recent %s: the tracer says %q, want a refusal naming %q", tc.recent, r.msg, tc.refusal)
			}
		})
	}
}
