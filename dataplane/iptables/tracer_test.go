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
	"github.com/svcplane/svcplane/internal/dataplanetest"
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

// scenarioTracer runs the shared packet scenarios through a tracer: affinity pins
// become -m recent entries in the list of the endpoint's SVCP-SEP- chain, and back.
type scenarioTracer struct {
	tr *tracer
	// lists maps each endpoint chain of the state to its port and endpoint.
	lists map[string]dataplanetest.Pin
}

func (s *scenarioTracer) Trace(t testing.TB, pkt dataplanetest.Packet, memory []dataplanetest.Pin) []dataplanetest.Outcome {
	t.Helper()
	tr := *s.tr
	tr.t = t
	tr.recent = recentTable{}
	for _, m := range memory {
		tr.recent[recentEntry{list: endpointChain(m.Port, m.Endpoint.String()), addr: m.Client}] = m.Age
	}
	var out []dataplanetest.Outcome
	for _, o := range tr.outcomes(packet{src: pkt.Src, dst: pkt.Dst, proto: pkt.Proto, fromHost: pkt.FromHost}) {
		oc := dataplanetest.Outcome{What: o.what}
		for _, e := range o.recorded {
			pin, ok := s.lists[e.list]
			if !ok {
				t.Fatalf("outcome %s records %s in list %s, which is no endpoint's", o.what, e.addr, e.list)
			}
			pin.Client = e.addr
			oc.Pinned = append(oc.Pinned, pin)
		}
		slices.SortFunc(oc.Pinned, dataplanetest.ComparePins)
		out = append(out, oc)
	}
	return out
}

// TestScenarios runs the packet scenarios every backend passes.
func TestScenarios(t *testing.T) {
	dataplanetest.Run(t, func(t *testing.T, st *model.State, family model.Family, local []netip.Addr) dataplanetest.Tracer {
		tr := newTracer(t, st, family)
		tr.local = local
		lists := map[string]dataplanetest.Pin{}
		for _, p := range st.View(family).ServicePorts {
			for _, ep := range p.Endpoints {
				lists[endpointChain(p.Name, ep.AddrPort().String())] = dataplanetest.Pin{Port: p.Name, Endpoint: ep.AddrPort()}
			}
		}
		return &scenarioTracer{tr: tr, lists: lists}
	})
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
