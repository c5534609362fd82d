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

package nftables

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/svcplane/svcplane/dataplane/model"
	"github.com/svcplane/svcplane/internal/dataplanetest"
)

// tracer follows the first packet of a connection through the base chains of a
// Fake's table, hook by hook in priority order, the way netfilter would, and
// returns every outcome the rules allow: both ways of every random choice
// (numgen). Affinity sets are decided by memory, the kernel's record of earlier
// connections; what a path records (update @set) is part of its outcome.
//
// It understands exactly the statements this package writes and fails the test
// on anything else, so a new rule shape cannot slip past it untested.
type tracer struct {
	t     testing.TB
	table *knftables.FakeTable
	ip    string // "ip" or "ip6"
	local []netip.Addr
	// memory maps an affinity set and a client to how many seconds ago the set
	// last recorded the client.
	memory map[setEntry]int
}

type setEntry struct {
	set  string
	addr netip.Addr
}

// pkt is what the rules may change about a packet, and what it leaves behind.
type pkt struct {
	src   netip.Addr
	proto string
	dst   netip.AddrPort
	mark  uint32
	masq  bool
	dnat  bool
	// recorded are the affinity entries added on the way, in path order. Paths
	// share its backing array: extend it only through record.
	recorded []setEntry
}

func (p pkt) record(e setEntry) pkt {
	p.recorded = append(slices.Clip(p.recorded), e)
	return p
}

func (p pkt) equal(o pkt) bool {
	return p.dst == o.dst && p.mark == o.mark && p.masq == o.masq && p.dnat == o.dnat && slices.Equal(p.recorded, o.recorded)
}

// end is how a chain walk ends: verdict "" when it falls off the end or returns,
// else accept, drop or reject (dnat and masquerade accept).
type end struct {
	verdict string
	p       pkt
}

type result struct {
	what     string
	recorded []setEntry
}

// trace returns the packet's outcomes: what each is, and what it records.
func (tr *tracer) trace(src, dst, proto string, fromHost bool) []result {
	tr.t.Helper()
	start := pkt{src: netip.MustParseAddr(src), proto: proto, dst: netip.MustParseAddrPort(dst)}
	var out []result
	done := func(what string, p pkt) {
		rec := slices.Clone(p.recorded)
		slices.SortFunc(rec, func(a, b setEntry) int { return cmp.Or(strings.Compare(a.set, b.set), a.addr.Compare(b.addr)) })
		out = append(out, result{what: what, recorded: slices.Compact(rec)})
	}
	describe := func(what string, p pkt) string {
		if p.dnat {
			what = "DNAT"
		}
		s := what + " " + p.dst.String()
		if p.masq {
			s += " masq"
		}
		return s
	}
	deliver := func(p pkt) {
		for _, in := range tr.hook(knftables.InputHook, p) {
			if in.verdict != "accept" {
				done(strings.ToUpper(in.verdict), in.p)
				continue
			}
			done(describe("LOCAL", in.p), in.p)
		}
	}
	if fromHost {
		for _, o := range tr.hook(knftables.OutputHook, start) {
			if o.verdict != "accept" {
				done(strings.ToUpper(o.verdict), o.p)
				continue
			}
			for _, post := range tr.hook(knftables.PostroutingHook, o.p) {
				if tr.isLocal(post.p.dst.Addr()) {
					deliver(post.p)
				} else {
					done(describe("ACCEPT", post.p), post.p)
				}
			}
		}
	} else {
		for _, pre := range tr.hook(knftables.PreroutingHook, start) {
			if pre.verdict != "accept" {
				done(strings.ToUpper(pre.verdict), pre.p)
				continue
			}
			if tr.isLocal(pre.p.dst.Addr()) {
				deliver(pre.p)
				continue
			}
			for _, fw := range tr.hook(knftables.ForwardHook, pre.p) {
				if fw.verdict != "accept" {
					done(strings.ToUpper(fw.verdict), fw.p)
					continue
				}
				for _, post := range tr.hook(knftables.PostroutingHook, fw.p) {
					done(describe("ACCEPT", post.p), post.p)
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b result) int {
		return cmp.Or(strings.Compare(a.what, b.what), slices.CompareFunc(a.recorded, b.recorded, func(x, y setEntry) int {
			return cmp.Or(strings.Compare(x.set, y.set), x.addr.Compare(y.addr))
		}))
	})
	return slices.CompactFunc(out, func(a, b result) bool { return a.what == b.what && slices.Equal(a.recorded, b.recorded) })
}

// hook runs every base chain of hook in priority order. Accept ends one base
// chain, not the hook; drop and reject end the packet.
func (tr *tracer) hook(hook knftables.BaseChainHook, p pkt) []end {
	tr.t.Helper()
	var chains []*knftables.FakeChain
	for _, c := range tr.table.Chains {
		if c.Hook != nil && *c.Hook == hook {
			chains = append(chains, c)
		}
	}
	prio := func(c *knftables.FakeChain) int {
		n, err := knftables.ParsePriority(knftables.Family(tr.ip), string(*c.Priority))
		if err != nil {
			tr.t.Fatalf("tracer: chain %s: %v", c.Name, err)
		}
		return n
	}
	slices.SortFunc(chains, func(a, b *knftables.FakeChain) int { return cmp.Compare(prio(a), prio(b)) })
	running := []end{{"accept", p}}
	for _, c := range chains {
		var next []end
		for _, r := range running {
			if r.verdict != "accept" {
				next = append(next, r)
				continue
			}
			for _, e := range tr.walk(c.Name, r.p, 0) {
				if e.verdict == "" {
					e.verdict = "accept" // the base chains' policy
				}
				next = append(next, e)
			}
		}
		running = next
	}
	return running
}

// walk evaluates chain's rules for p and returns how each possible path ends.
func (tr *tracer) walk(chain string, p pkt, depth int) []end {
	tr.t.Helper()
	if depth > 16 {
		tr.t.Fatalf("tracer: jump loop through %s", chain)
	}
	c := tr.table.Chains[chain]
	if c == nil {
		tr.t.Fatalf("tracer: jump to missing chain %s", chain)
	}
	running := []pkt{p}
	var ended []end
	for _, rule := range c.Rules {
		var next []pkt
		for _, s := range running {
			for _, o := range tr.rule(rule.Rule, s, depth) {
				if o.verdict == "continue" {
					next = append(next, o.p)
				} else {
					ended = append(ended, o)
				}
			}
		}
		running = slices.CompactFunc(next, func(a, b pkt) bool { return a.equal(b) })
	}
	for _, s := range running {
		ended = append(ended, end{"", s})
	}
	return ended
}

// rule evaluates one rule: "continue" with the packet as it leaves the rule when
// the walk goes on in the chain, else how the chain ends.
func (tr *tracer) rule(rule string, p pkt, depth int) []end {
	tr.t.Helper()
	w := strings.Fields(rule)
	fail := func(why string) {
		tr.t.Helper()
		tr.t.Fatalf("tracer does not understand %s in rule %q", why, rule)
	}
	i := 0
	peek := func(n int) string {
		if i+n < len(w) {
			return w[i+n]
		}
		return ""
	}
	// verdict applies a verdict statement to p.
	verdict := func(v, target string, p pkt) []end {
		switch v {
		case "accept", "drop", "reject":
			return []end{{v, p}}
		case "return":
			return []end{{"", p}}
		case "jump":
			var out []end
			for _, e := range tr.walk(target, p, depth+1) {
				if e.verdict == "" {
					e.verdict = "continue"
				}
				out = append(out, e)
			}
			return out
		case "goto":
			return tr.walk(target, p, depth+1)
		}
		fail("verdict " + v)
		return nil
	}
	for i < len(w) {
		switch {
		case w[i] == "ct" && peek(1) == "state":
			if w[i+2] != "new" && w[i+2] != "invalid" {
				fail("ct state " + w[i+2])
			}
			if w[i+2] != "new" { // always a first packet, never invalid
				return []end{{"continue", p}}
			}
			i += 3
		case w[i] == "ct" && peek(1) == "status":
			if peek(2) != "dnat" {
				fail("ct status " + peek(2))
			}
			if !p.dnat {
				return []end{{"continue", p}}
			}
			i += 3
		case w[i] == tr.ip && peek(1) == "saddr" && peek(2) == "." && peek(3) == tr.ip:
			// ip saddr . ip daddr . meta l4proto . th dport @set
			if strings.Join(w[i+3:min(i+11, len(w))], " ") != tr.ip+" daddr . meta l4proto . th dport" || !strings.HasPrefix(peek(11), "@") {
				fail("a concatenation")
			}
			if !tr.inSetKey(w[i+11][1:], []string{p.src.String(), p.dst.Addr().String(), p.proto, strconv.Itoa(int(p.dst.Port()))}) {
				return []end{{"continue", p}}
			}
			i += 12
		case (w[i] == tr.ip) && (peek(1) == "daddr" || peek(1) == "saddr") && peek(2) == "." && peek(3) == "meta":
			// ip daddr . meta l4proto . th dport vmap @map
			if peek(1) != "daddr" || strings.Join(w[i+2:i+8], " ") != ". meta l4proto . th dport" || w[i+8] != "vmap" {
				fail("a concatenation")
			}
			return tr.vmap(w[i+9], []string{p.dst.Addr().String(), p.proto, strconv.Itoa(int(p.dst.Port()))}, p, verdict)
		case w[i] == "meta" && peek(1) == "l4proto" && peek(2) == ".":
			if strings.Join(w[i+2:i+6], " ") != ". th dport vmap" {
				fail("a concatenation")
			}
			return tr.vmap(w[i+6], []string{p.proto, strconv.Itoa(int(p.dst.Port()))}, p, verdict)
		case w[i] == tr.ip && (peek(1) == "daddr" || peek(1) == "saddr"):
			a := p.src
			if w[i+1] == "daddr" {
				a = p.dst.Addr()
			}
			i += 2
			negate := false
			if w[i] == "!=" {
				negate = true
				i++
			}
			var in bool
			switch {
			case w[i] == "{":
				j := slices.Index(w[i:], "}")
				if j < 0 {
					fail("an unclosed set")
				}
				for _, e := range w[i+1 : i+j] {
					in = in || tr.contains(strings.TrimSuffix(e, ","), a)
				}
				i += j + 1
			case strings.HasPrefix(w[i], "@"):
				in = tr.inSet(w[i][1:], a, p)
				i++
			default:
				in = tr.contains(w[i], a)
				i++
			}
			if in == negate {
				return []end{{"continue", p}}
			}
		case w[i] == "fib" && peek(2) == "type" && peek(3) == "local":
			a := p.src
			if w[i+1] == "daddr" {
				a = p.dst.Addr()
			} else if w[i+1] != "saddr" {
				fail("fib " + w[i+1])
			}
			if !tr.isLocal(a) {
				return []end{{"continue", p}}
			}
			i += 4
		case (w[i] == "tcp" || w[i] == "udp" || w[i] == "sctp") && peek(1) == "dport":
			if p.proto != w[i] {
				return []end{{"continue", p}}
			}
			port := strconv.Itoa(int(p.dst.Port()))
			if strings.HasPrefix(w[i+2], "@") {
				if !tr.inSetKey(w[i+2][1:], []string{port}) {
					return []end{{"continue", p}}
				}
			} else if w[i+2] != port {
				return []end{{"continue", p}}
			}
			i += 3
		case w[i] == "meta" && peek(1) == "l4proto":
			if p.proto != w[i+2] {
				return []end{{"continue", p}}
			}
			i += 3
		case w[i] == "mark" && peek(1) == "and":
			m, _ := strconv.ParseUint(strings.TrimPrefix(w[i+2], "0x"), 16, 32)
			if w[i+3] != "==" || w[i+4] != "0" {
				fail("a mark comparison")
			}
			if p.mark&uint32(m) != 0 {
				return []end{{"continue", p}}
			}
			i += 5
		case w[i] == "mark" && peek(1) == "set":
			m, _ := strconv.ParseUint(strings.TrimPrefix(w[i+4], "0x"), 16, 32)
			switch w[i+3] {
			case "or":
				p.mark |= uint32(m)
			case "xor":
				p.mark ^= uint32(m)
			default:
				fail("mark set mark " + w[i+3])
			}
			i += 5
		case w[i] == "update" && strings.HasPrefix(peek(1), "@"):
			if strings.Join(w[i+2:i+5], " ") != "{ "+tr.ip+" saddr" || w[i+5] != "}" {
				fail("an update")
			}
			if tr.table.Sets[w[i+1][1:]] == nil {
				tr.t.Fatalf("tracer: update of missing set %s", w[i+1])
			}
			p = p.record(setEntry{set: w[i+1][1:], addr: p.src})
			i += 6
		case w[i] == "dnat" && peek(1) == "to":
			p.dst = netip.MustParseAddrPort(w[i+2])
			p.dnat = true
			if i+3 != len(w) {
				fail("words after dnat")
			}
			return []end{{"accept", p}}
		case w[i] == "masquerade":
			p.masq = true
			return []end{{"accept", p}}
		case w[i] == "numgen":
			// numgen random mod N == 0 <rest>: a random draw that may go
			// either way, so both are followed.
			if peek(1) != "random" || peek(2) != "mod" || peek(4) != "==" || peek(5) != "0" {
				fail("a numgen")
			}
			if n, err := strconv.Atoi(w[i+3]); err != nil || n < 2 {
				fail("numgen mod " + w[i+3] + ", which always or never matches")
			}
			return append(tr.rule(strings.Join(w[i+6:], " "), p, depth), end{"continue", p})
		case w[i] == "accept" || w[i] == "drop" || w[i] == "reject" || w[i] == "return":
			return verdict(w[i], "", p)
		case w[i] == "jump" || w[i] == "goto":
			return verdict(w[i], w[i+1], p)
		default:
			fail(strconv.Quote(w[i]))
		}
	}
	return []end{{"continue", p}}
}

// vmap looks key up in map name and applies the element's verdict; no element
// means the rule does not match.
func (tr *tracer) vmap(name string, key []string, p pkt, verdict func(v, target string, p pkt) []end) []end {
	tr.t.Helper()
	m := tr.table.Maps[strings.TrimPrefix(name, "@")]
	if m == nil {
		tr.t.Fatalf("tracer: missing map %s", name)
	}
	e := m.FindElement(key...)
	if e == nil {
		return []end{{"continue", p}}
	}
	v, target, _ := strings.Cut(e.Value[0], " ")
	return verdict(v, target, p)
}

// inSet reports whether a is in set name: for a set with a timeout, when memory
// or the packet's own path recorded it no longer ago than the timeout.
func (tr *tracer) inSet(name string, a netip.Addr, p pkt) bool {
	tr.t.Helper()
	s := tr.table.Sets[name]
	if s == nil {
		tr.t.Fatalf("tracer: missing set %s", name)
	}
	if s.Timeout != nil {
		e := setEntry{set: name, addr: a}
		if slices.Contains(p.recorded, e) {
			return true
		}
		age, ok := tr.memory[e]
		return ok && age <= int(s.Timeout.Seconds())
	}
	return tr.inSetKey(name, []string{a.String()})
}

func (tr *tracer) inSetKey(name string, key []string) bool {
	s := tr.table.Sets[name]
	if s == nil {
		tr.t.Fatalf("tracer: missing set %s", name)
	}
	return s.FindElement(key...) != nil
}

func (tr *tracer) contains(prefixOrAddr string, a netip.Addr) bool {
	tr.t.Helper()
	if p, err := netip.ParsePrefix(prefixOrAddr); err == nil {
		return p.Contains(a)
	}
	b, err := netip.ParseAddr(prefixOrAddr)
	if err != nil {
		tr.t.Fatalf("tracer: %q is no address or prefix", prefixOrAddr)
	}
	return a == b
}

func (tr *tracer) isLocal(a netip.Addr) bool {
	return a.IsLoopback() || slices.Contains(tr.local, a)
}

// scenarioTracer runs the shared packet scenarios: affinity pins become entries of
// the endpoint's affinity set, and back.
type scenarioTracer struct {
	tr   *tracer
	st   *model.State
	sets map[string]dataplanetest.Pin
}

func (s *scenarioTracer) Trace(t testing.TB, p dataplanetest.Packet, memory []dataplanetest.Pin) []dataplanetest.Outcome {
	t.Helper()
	tr := *s.tr
	tr.t = t
	tr.memory = map[setEntry]int{}
	for _, m := range memory {
		// The pin names the port; its timeout (and so its set) is the port's.
		for _, pp := range s.st.View(model.FamilyOf(m.Endpoint.Addr())).ServicePorts {
			if pp.Name == m.Port {
				tr.memory[setEntry{set: affinitySet(m.Port, m.Endpoint, pp.SessionAffinity.TimeoutSeconds), addr: m.Client}] = m.Age
			}
		}
	}
	var out []dataplanetest.Outcome
	for _, r := range tr.trace(p.Src, p.Dst, p.Proto, p.FromHost) {
		o := dataplanetest.Outcome{What: r.what}
		for _, e := range r.recorded {
			pin, ok := s.sets[e.set]
			if !ok {
				t.Fatalf("outcome %s records %s in set %s, which is no endpoint's", r.what, e.addr, e.set)
			}
			pin.Client = e.addr
			o.Pinned = append(o.Pinned, pin)
		}
		slices.SortFunc(o.Pinned, dataplanetest.ComparePins)
		out = append(out, o)
	}
	return out
}

func newScenarioTracer(t *testing.T, st *model.State, family model.Family, local []netip.Addr) dataplanetest.Tracer {
	t.Helper()
	b, fakes := newFakeBackend(t)
	if err := b.Sync(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	sets := map[string]dataplanetest.Pin{}
	for _, p := range st.View(family).ServicePorts {
		for _, ep := range p.Endpoints {
			sets[affinitySet(p.Name, ep.AddrPort(), p.SessionAffinity.TimeoutSeconds)] = dataplanetest.Pin{Port: p.Name, Endpoint: ep.AddrPort()}
		}
	}
	ip := "ip"
	if family == model.IPv6 {
		ip = "ip6"
	}
	return &scenarioTracer{
		tr:   &tracer{t: t, table: fakes[family].Inner().Table, ip: ip, local: local},
		st:   st,
		sets: sets,
	}
}

// TestScenarios runs the packet scenarios every backend passes.
func TestScenarios(t *testing.T) {
	dataplanetest.Run(t, newScenarioTracer)
}
