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
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/svcplane/svcplane/dataplane/model"
)

// chainSpec is one chain this package writes: its definition (hook and priority
// for a base chain) and its rules.
type chainSpec struct {
	chain *knftables.Chain
	rules []string
}

// element is one element of a set or map of fixed name.
type element struct {
	key   []string
	value string // the verdict of a map element; empty in a set
}

// renderedChain is one per-service-port chain: its rules and their hash.
type renderedChain struct {
	name  string
	rules []string
	hash  uint64
}

// renderedElem is one element a service port asks for in a map of fixed name.
type renderedElem struct {
	container, key string
	e              element
}

// portRender is everything one service port puts in the table. The renderer
// keeps it between syncs and renders the port again only when its fingerprint,
// a hash of everything the rendering reads, changes: a node with 10,000 service
// ports renders only the ones that changed.
type portRender struct {
	fp     uint64
	gen    uint64
	chains []renderedChain
	sets   []*knftables.Set
	elems  []renderedElem
	// hairpins are the port's elements of the hairpin set, one per reachable
	// endpoint. Two service ports with the same endpoint share an element, so
	// the record counts them instead of giving each element one owner.
	hairpins []renderedElem
}

// desired is everything one family's table should hold.
type desired struct {
	// fixed are the chains of fixed names, base chains first; fixedHash hashes
	// their rules, which depend only on the View's node-wide settings.
	fixed     []chainSpec
	fixedHash uint64
	// nodePortIPs and healthChecks are the elements of the sets of fixed names,
	// by joined key.
	nodePortIPs, healthChecks map[string]element
	// names and ports are the service ports, in the View's order.
	names []model.ServicePortName
	ports []*portRender
}

// fixedContainers are the maps and sets of fixed names, with their definitions.
func fixedContainers(f model.Family) (maps []*knftables.Map, sets []*knftables.Set) {
	addr := "ipv4_addr"
	if f == model.IPv6 {
		addr = "ipv6_addr"
	}
	m := func(name, typ, comment string) *knftables.Map {
		return &knftables.Map{Name: name, Type: typ, Comment: knftables.PtrTo(comment)}
	}
	maps = []*knftables.Map{
		m(mapServiceIPs, addr+" . inet_proto . inet_service : verdict", "service address, protocol and port to the service port's chain"),
		m(mapServiceNodePorts, "inet_proto . inet_service : verdict", "node port protocol and port to the service port's external chain"),
		m(mapFirewallIPs, addr+" . inet_proto . inet_service : verdict", "load-balancer address, protocol and port to the loadBalancerSourceRanges check"),
		m(mapNoEndpointServices, addr+" . inet_proto . inet_service : verdict", "service addresses without usable endpoints: reject, or drop under a Local policy"),
		m(mapNoEndpointNodePorts, "inet_proto . inet_service : verdict", "node ports without usable endpoints: reject, or drop under a Local policy"),
	}
	sets = []*knftables.Set{
		{Name: setNodePortIPs, Type: addr, Comment: knftables.PtrTo("node addresses serving node ports (--nodeport-addresses)")},
		{Name: setHealthCheckPorts, Type: "inet_service", Comment: knftables.PtrTo("health check node ports")},
		{Name: setHairpin, Type: addr + " . " + addr + " . inet_proto . inet_service", Comment: knftables.PtrTo("endpoint . endpoint . protocol . port: a connection DNATed back to its own source (hairpin), masqueraded")},
	}
	return maps, sets
}

// renderer turns one family's View into the desired table.
type renderer struct {
	family   model.Family
	ip       string // "ip" or "ip6", the keyword of address matches
	loopback string
	markBit  string // the masquerade mark, as "0x2000"
	seed     maphash.Seed

	cache map[model.ServicePortName]*portRender
	gen   uint64
}

func newRenderer(f model.Family, masqueradeBit int) *renderer {
	r := &renderer{family: f, ip: "ip", loopback: "127.0.0.0/8", markBit: fmt.Sprintf("%#x", uint32(1)<<masqueradeBit), seed: maphash.MakeSeed(),
		cache: map[model.ServicePortName]*portRender{}}
	if f == model.IPv6 {
		r.ip, r.loopback = "ip6", "::1"
	}
	return r
}

func baseChain(name string, typ knftables.BaseChainType, hook knftables.BaseChainHook, priority knftables.BaseChainPriority) *knftables.Chain {
	return &knftables.Chain{Name: name, Type: &typ, Hook: &hook, Priority: &priority}
}

// render returns the desired table for v.
func (r *renderer) render(v *model.View) *desired {
	r.gen++
	d := &desired{
		nodePortIPs:  map[string]element{},
		healthChecks: map[string]element{},
		names:        make([]model.ServicePortName, 0, len(v.ServicePorts)),
		ports:        make([]*portRender, 0, len(v.ServicePorts)),
	}
	r.fixedChains(v, d)
	viewFP := r.viewFingerprint(v)
	for _, p := range v.ServicePorts {
		fp := r.fingerprint(viewFP, p)
		pr := r.cache[p.Name]
		if pr == nil || pr.fp != fp {
			pr = r.servicePort(v, p)
			pr.fp = fp
			r.cache[p.Name] = pr
		}
		pr.gen = r.gen
		d.names = append(d.names, p.Name)
		d.ports = append(d.ports, pr)
		if hc := p.HealthCheckNodePort; hc != 0 {
			k := strconv.Itoa(int(hc))
			d.healthChecks[k] = element{key: []string{k}}
		}
	}
	for name, pr := range r.cache {
		if pr.gen != r.gen {
			delete(r.cache, name)
		}
	}
	return d
}

func policyByte(p model.TrafficPolicy) byte {
	if p == model.PolicyLocal {
		return 'L'
	}
	return 'C'
}

// viewFingerprint hashes what servicePort reads of the View.
func (r *renderer) viewFingerprint(v *model.View) uint64 {
	var h maphash.Hash
	h.SetSeed(r.seed)
	h.WriteString(v.ClusterCIDR.String())
	if v.MasqueradeAll {
		h.WriteByte(1)
	}
	for _, a := range v.NodeAddresses {
		b, _ := a.MarshalBinary()
		h.Write(b)
	}
	return h.Sum64()
}

// fingerprint hashes everything servicePort reads of p and of its View.
func (r *renderer) fingerprint(viewFP uint64, p *model.ServicePort) uint64 {
	var h maphash.Hash
	h.SetSeed(r.seed)
	var buf [64]byte
	b := buf[:0]
	b = binary.LittleEndian.AppendUint64(b, viewFP)
	b = binary.LittleEndian.AppendUint16(b, p.Port)
	b = binary.LittleEndian.AppendUint16(b, p.NodePort)
	b = binary.LittleEndian.AppendUint16(b, p.HealthCheckNodePort)
	b = binary.LittleEndian.AppendUint32(b, uint32(p.SessionAffinity.TimeoutSeconds))
	if p.SessionAffinity.ClientIP {
		b = append(b, 1)
	}
	b = append(b, policyByte(p.ExternalTrafficPolicy), policyByte(p.InternalTrafficPolicy), byte(len(p.ExternalIPs)), byte(len(p.LoadBalancerIPs)), byte(len(p.LoadBalancerSourceRanges)))
	h.Write(b)
	addr := func(a netip.Addr) {
		ab, _ := a.MarshalBinary()
		h.Write(ab)
		h.WriteByte(0)
	}
	addr(p.ClusterIP)
	for _, a := range p.ExternalIPs {
		addr(a)
	}
	for _, a := range p.LoadBalancerIPs {
		addr(a)
	}
	for _, src := range p.LoadBalancerSourceRanges {
		addr(src.Addr())
		h.WriteByte(byte(src.Bits()))
	}
	for _, ep := range p.Endpoints {
		addr(ep.Addr)
		flags := byte(0)
		for i, f := range []bool{ep.Ready, ep.Serving, ep.Terminating, ep.Local} {
			if f {
				flags |= 1 << i
			}
		}
		h.Write([]byte{byte(ep.Port), byte(ep.Port >> 8), flags})
	}
	return h.Sum64()
}

// fixedChains writes the chains of fixed names and the node-wide elements.
func (r *renderer) fixedChains(v *model.View, d *desired) {
	ip := r.ip
	// Node ports answer on the node's local addresses but loopback (which would
	// need route_localnet and expose every localhost service), or on the
	// --nodeport-addresses ones.
	nodePortGuard := "fib daddr type local " + ip + " daddr != " + r.loopback + " "
	if !v.NodePortsOnAllAddresses {
		nodePortGuard = ip + " daddr @" + setNodePortIPs + " "
		for _, a := range v.NodePortAddresses {
			d.nodePortIPs[a.String()] = element{key: []string{a.String()}}
		}
	}
	newOnly := "ct state new "
	d.fixed = []chainSpec{
		{baseChain(chainFilterPrerouting, knftables.FilterType, knftables.PreroutingHook, knftables.DNATPriority+"-10"), []string{
			newOnly + "jump " + chainFirewallCheck,
		}},
		{baseChain(chainFilterInput, knftables.FilterType, knftables.InputHook, knftables.FilterPriority+"-10"), []string{
			newOnly + "jump " + chainNodePortCheck,
			newOnly + "jump " + chainServiceCheck,
			"tcp dport @" + setHealthCheckPorts + " accept",
		}},
		{baseChain(chainFilterForward, knftables.FilterType, knftables.ForwardHook, knftables.FilterPriority+"-10"), []string{
			// A packet conntrack cannot place would leave a DNATed
			// connection un-NATed and reset it.
			"ct state invalid drop",
			newOnly + "jump " + chainServiceCheck,
		}},
		{baseChain(chainFilterOutput, knftables.FilterType, knftables.OutputHook, knftables.DNATPriority+"-10"), []string{
			newOnly + "jump " + chainFirewallCheck,
		}},
		{baseChain(chainFilterOutputPostNAT, knftables.FilterType, knftables.OutputHook, knftables.DNATPriority+"+10"), []string{
			newOnly + "jump " + chainServiceCheck,
		}},
		{baseChain(chainNATPrerouting, knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority), []string{
			"jump " + chainServices,
		}},
		{baseChain(chainNATOutput, knftables.NATType, knftables.OutputHook, knftables.DNATPriority), []string{
			"jump " + chainServices,
		}},
		{baseChain(chainNATPostrouting, knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority), []string{
			"jump " + chainMasquerading,
		}},
		// Masquerade what carries the mark, clearing it first so that a packet
		// that comes back through the stack is not masqueraded twice.
		{&knftables.Chain{Name: chainMasquerading}, []string{
			// A pod reaching itself through a Service (hairpin) must be
			// masqueraded, or it would answer itself directly. One set lookup
			// here replaces a rule per endpoint in the service chains.
			"ct status dnat " + ip + " saddr . " + ip + " daddr . meta l4proto . th dport @" + setHairpin + " jump " + chainMarkForMasq,
			"mark and " + r.markBit + " == 0 return",
			"mark set mark xor " + r.markBit,
			"masquerade fully-random",
		}},
		{&knftables.Chain{Name: chainMarkForMasq}, []string{
			"mark set mark or " + r.markBit,
		}},
		{&knftables.Chain{Name: chainServices}, []string{
			ip + " daddr . meta l4proto . th dport vmap @" + mapServiceIPs,
			// Last: a node address may be an external or load-balancer IP,
			// and those must win.
			nodePortGuard + "meta l4proto . th dport vmap @" + mapServiceNodePorts,
		}},
		{&knftables.Chain{Name: chainFirewallCheck}, []string{
			ip + " daddr . meta l4proto . th dport vmap @" + mapFirewallIPs,
		}},
		{&knftables.Chain{Name: chainServiceCheck}, []string{
			ip + " daddr . meta l4proto . th dport vmap @" + mapNoEndpointServices,
		}},
		{&knftables.Chain{Name: chainNodePortCheck}, []string{
			nodePortGuard + "meta l4proto . th dport vmap @" + mapNoEndpointNodePorts,
		}},
		{&knftables.Chain{Name: chainReject}, []string{
			"reject",
		}},
	}
	var h maphash.Hash
	h.SetSeed(r.seed)
	for _, c := range d.fixed {
		h.WriteString(c.chain.Name)
		for _, rule := range c.rules {
			h.WriteString(rule)
			h.WriteByte('\n')
		}
	}
	d.fixedHash = h.Sum64()
}

// add asks for e in container.
func (pr *portRender) add(container string, e element) {
	pr.elems = append(pr.elems, renderedElem{container: container, key: strings.Join(e.key, " . "), e: e})
}

// chain adds a chain with rules.
func (pr *portRender) chain(name string, rules []string, seed maphash.Seed) {
	var h maphash.Hash
	h.SetSeed(seed)
	for _, r := range rules {
		h.WriteString(r)
		h.WriteByte('\n')
	}
	pr.chains = append(pr.chains, renderedChain{name: name, rules: rules, hash: h.Sum64()})
}

// verdictOf returns the map verdict of traffic with nowhere to go.
func verdictOf(v model.Verdict) string {
	if v == model.Reject {
		return "goto " + chainReject
	}
	return "drop"
}

// servicePort renders p's chains, affinity sets and map elements, following
// model.Decide's policy.
func (r *renderer) servicePort(v *model.View, p *model.ServicePort) *portRender {
	d := &portRender{}
	pol := model.Decide(v, p)
	n := namesFor(p.Name)
	ip := r.ip
	port := strconv.Itoa(int(p.Port))
	key := func(a netip.Addr, port string) []string { return []string{a.String(), n.proto, port} }
	routeChain := func(rt model.Route) string {
		if rt.Policy == model.PolicyLocal {
			return n.local
		}
		return n.cluster
	}

	// Cluster IP.
	if pol.Internal.Verdict == model.Forward {
		d.add(mapServiceIPs, element{key: key(p.ClusterIP, port), value: "goto " + routeChain(pol.Internal)})
	} else {
		d.add(mapNoEndpointServices, element{key: key(p.ClusterIP, port), value: verdictOf(pol.Internal.Verdict)})
	}

	// External IPs, load-balancer IPs, node port.
	external := func(a netip.Addr) {
		if pol.ExternalEntry {
			d.add(mapServiceIPs, element{key: key(a, port), value: "goto " + n.external})
		}
		if pol.External.Verdict != model.Forward {
			d.add(mapNoEndpointServices, element{key: key(a, port), value: verdictOf(pol.External.Verdict)})
		}
	}
	for _, a := range p.ExternalIPs {
		external(a)
	}
	for _, a := range p.LoadBalancerIPs {
		external(a)
		if pol.Firewall {
			d.add(mapFirewallIPs, element{key: key(a, port), value: "goto " + n.firewall})
		}
	}
	if p.NodePort != 0 {
		np := strconv.Itoa(int(p.NodePort))
		if pol.ExternalEntry {
			d.add(mapServiceNodePorts, element{key: []string{n.proto, np}, value: "goto " + n.external})
		}
		if pol.External.Verdict != model.Forward {
			d.add(mapNoEndpointNodePorts, element{key: []string{n.proto, np}, value: verdictOf(pol.External.Verdict)})
		}
	}

	// The external entry.
	if pol.ExternalEntry {
		var rules []string
		if pol.MasqueradeExternal {
			// The endpoint may be on another node; masquerade so its reply
			// comes back through this one.
			rules = append(rules, "jump "+chainMarkForMasq)
		}
		if pol.ShortCircuit {
			// Traffic from pods and from the node itself to an external address
			// is treated as if it had gone out to a load balancer and come back
			// in: it takes the Cluster endpoints. The node's own traffic has a
			// node address as source, so it is masqueraded too.
			if v.ClusterCIDR.IsValid() {
				rules = append(rules, ip+" saddr "+v.ClusterCIDR.String()+" goto "+n.cluster)
			}
			rules = append(rules, "fib saddr type local jump "+chainMarkForMasq, "fib saddr type local goto "+n.cluster)
		}
		if pol.External.Verdict == model.Forward {
			rules = append(rules, "goto "+routeChain(pol.External))
		}
		d.chain(n.external, rules, r.seed)
	}

	// The loadBalancerSourceRanges filter, in the filter stage before DNAT.
	if pol.Firewall {
		allowed := make([]string, 0, len(pol.SourceRanges)+len(p.LoadBalancerIPs))
		for _, src := range pol.SourceRanges {
			allowed = append(allowed, src.String())
		}
		if pol.AllowLoadBalancerSources {
			// A load balancer whose VIP is also routed to the node sends the
			// node's own requests back with the VIP as source.
			for _, a := range p.LoadBalancerIPs {
				allowed = append(allowed, a.String())
			}
		}
		d.chain(n.firewall, []string{ip + " saddr != { " + strings.Join(allowed, ", ") + " } drop"}, r.seed)
	}

	// The endpoint choices.
	masq := ""
	switch {
	case v.MasqueradeAll:
		masq = ip + " daddr " + p.ClusterIP.String() + " " + n.proto + " dport " + port + " jump " + chainMarkForMasq
	case v.ClusterCIDR.IsValid():
		masq = ip + " daddr " + p.ClusterIP.String() + " " + n.proto + " dport " + port + " " + ip + " saddr != " + v.ClusterCIDR.String() + " jump " + chainMarkForMasq
	}
	choice := func(chain string, eps []model.Endpoint, internal bool) {
		var rules []string
		if internal && masq != "" {
			// Cluster IP traffic that does not come from a pod may have been
			// routed to any node: masquerade so the reply comes back here.
			rules = append(rules, masq)
		}
		if pol.Affinity.ClientIP {
			for _, ep := range eps {
				rules = append(rules, ip+" saddr @"+affinitySet(p.Name, ep.AddrPort(), pol.Affinity.TimeoutSeconds)+" goto "+endpointChain(p.Name, ep.AddrPort()))
			}
		}
		// A uniform choice with one independent draw per rule: rule i takes
		// 1/(n-i) of what rules before it left, so each of n endpoints gets 1/n,
		// and the last takes the rest. Without affinity each rule DNATs at
		// once, so a service port costs one chain and no chain per endpoint.
		// kube-proxy writes one rule with an anonymous map instead (numgen
		// random mod n map { ... }); the kernel names each anonymous set by
		// scanning every set of the table, which makes a full sync of 10,000
		// services quadratic (minutes), while these rules load in linear time
		// and cost a first packet at most n comparisons, whatever the number
		// of Services.
		count := len(eps)
		for i, ep := range eps {
			target := "meta l4proto " + n.proto + " dnat to " + ep.AddrPort().String()
			if pol.Affinity.ClientIP {
				target = "goto " + endpointChain(p.Name, ep.AddrPort())
			}
			if i < count-1 {
				target = "numgen random mod " + strconv.Itoa(count-i) + " == 0 " + target
			}
			rules = append(rules, target)
		}
		d.chain(chain, rules, r.seed)
	}
	internalForward := pol.Internal.Verdict == model.Forward
	if pol.ClusterEndpoints {
		choice(n.cluster, pol.Sets.Cluster, internalForward && pol.Internal.Policy == model.PolicyCluster)
	}
	if pol.LocalEndpoints {
		choice(n.local, pol.Sets.Local, internalForward && pol.Internal.Policy == model.PolicyLocal)
	}

	for _, ep := range pol.Sets.Reachable {
		ap := ep.AddrPort()
		a, epPort := ap.Addr().String(), strconv.Itoa(int(ap.Port()))
		e := element{key: []string{a, a, n.proto, epPort}}
		d.hairpins = append(d.hairpins, renderedElem{container: setHairpin, key: strings.Join(e.key, " . "), e: e})
		if !pol.Affinity.ClientIP {
			continue
		}
		// With affinity, each endpoint has a chain that records the client
		// in the endpoint's affinity set, then DNATs.
		set := affinitySet(p.Name, ap, pol.Affinity.TimeoutSeconds)
		timeout := time.Duration(pol.Affinity.TimeoutSeconds) * time.Second
		d.sets = append(d.sets, &knftables.Set{
			Name:    set,
			Type:    map[model.Family]string{model.IPv4: "ipv4_addr", model.IPv6: "ipv6_addr"}[r.family],
			Flags:   []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag},
			Timeout: &timeout,
		})
		d.chain(endpointChain(p.Name, ap), []string{
			"update @" + set + " { " + ip + " saddr }",
			"meta l4proto " + n.proto + " dnat to " + ap.String(),
		}, r.seed)
	}
	return d
}
