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

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"

	"github.com/svcplane/svcplane/dataplane/model"
)

// The filter stage: what IPVS cannot do by itself (masquerade, source ranges,
// DROP for externalTrafficPolicy Local without a local endpoint, hairpin), done
// with one nftables table per family, as kube-proxy's IPVS mode does with ipsets
// and iptables. Per-service data lives in sets, so a partial sync only adds and
// deletes elements; the chains and rules are fixed by the view's masquerade
// settings.
const (
	// FilterTable is the IPVS mode's nftables table, in the ip and ip6 families.
	// The nftables mode's table is "svcplane"; the two never share objects.
	FilterTable = "svcplane-ipvs"

	// MasqueradeMark is the packet mark bit asking for masquerade in
	// postrouting; bit 14, as kube-proxy's and the iptables mode's.
	MasqueradeMark = 0x4000
)

// Set names of the filter table: the "svcplane-" prefix is the table's.
const (
	setClusterIPs    = "cluster-ips"        // addr . proto . port of cluster IP virtual servers
	setExternalMasq  = "external-masq"      // external virtual servers whose traffic is masqueraded
	setHairpin       = "hairpin"            // endpoint . endpoint: a pod reaching itself
	setFirewall      = "firewall"           // load-balancer virtual servers with source ranges
	setFirewallAllow = "firewall-allow"     // their allowed sources (interval)
	setDrop          = "no-local-endpoints" // external virtual servers with nowhere to go
	// setShortCircuit lists the external addresses of eTP Local ports, and
	// mapShortCircuit maps them to the port's cluster IP: traffic from pods and
	// from the node itself is DNATed there, so that it takes the Cluster path
	// (IPVS has one virtual server per address, which holds local endpoints only).
	setShortCircuit = "short-circuit"
	mapShortCircuit = "short-circuit-to"
	// setServiceIPs are the addresses on svcplane0 and setServicePorts their
	// virtual servers: any other port or protocol of a service IP is rejected,
	// as kube-proxy's IPVS mode does, instead of reaching the node's own
	// sockets through an address that is local only for IPVS's sake.
	setServiceIPs   = "service-ips"
	setServicePorts = "service-ports"
)

// filterSets are the sets' names in the order they are written.
var filterSets = []string{setClusterIPs, setExternalMasq, setHairpin, setFirewall, setFirewallAllow, setDrop, setShortCircuit, mapShortCircuit, setServiceIPs, setServicePorts}

// filterWant is the desired content of one family's filter table.
type filterWant struct {
	// rules identifies the fixed rules (masquerade settings); a change rewrites
	// the table.
	rules string
	// elems are the elements of each set. They are comparable values, turned
	// into nft's text only when written: a sync compares every port's
	// elements, and building their text each time would cost more than the rest
	// of a one-Service change among thousands.
	elems map[string]map[elemKey]struct{}
}

// elemKey is one element of one set or map of the filter table; which fields
// mean something depends on the set (see fields).
type elemKey struct {
	addr   netip.Addr
	proto  model.Protocol
	port   uint16
	addr2  netip.Addr   // hairpin's second address, the short circuit's cluster IP
	port2  uint16       // the short circuit's service port
	prefix netip.Prefix // an allowed source range
}

// newFilterWant returns an empty filterWant of v, its sets sized like last's.
func newFilterWant(v *model.View, last *filterWant) *filterWant {
	fw := &filterWant{elems: map[string]map[elemKey]struct{}{}}
	for _, s := range filterSets {
		n := 0
		if last != nil {
			n = len(last.elems[s])
		}
		fw.elems[s] = make(map[elemKey]struct{}, n)
	}
	switch {
	case v.MasqueradeAll:
		fw.rules = "masquerade-all"
	case v.ClusterCIDR.IsValid():
		fw.rules = "cluster-cidr " + v.ClusterCIDR.String()
	}
	return fw
}

func (fw *filterWant) add(set string, k elemKey) {
	fw.elems[set][k] = struct{}{}
}

// element returns k as an element of set or map s, in nft's words.
func element(s string, k elemKey) *knftables.Element {
	svc := func() []string {
		return []string{k.addr.String(), protoKey(k.proto), strconv.Itoa(int(k.port))}
	}
	switch s {
	case setServiceIPs:
		return &knftables.Element{Set: s, Key: []string{k.addr.String()}}
	case setHairpin:
		return &knftables.Element{Set: s, Key: []string{k.addr.String(), k.addr2.String()}}
	case setFirewallAllow:
		return &knftables.Element{Set: s, Key: append(svc(), k.prefix.String())}
	case mapShortCircuit:
		return &knftables.Element{Map: s, Key: svc(), Value: []string{k.addr2.String(), strconv.Itoa(int(k.port2))}}
	}
	return &knftables.Element{Set: s, Key: svc()}
}

// elementText is the text of element(s, k) that orders a transaction.
func elementText(s string, k elemKey) string {
	e := element(s, k)
	return strings.Join(e.Key, " . ") + " : " + strings.Join(e.Value, " . ")
}

func protoKey(p model.Protocol) string { return strings.ToLower(string(p)) }

// addPort records what service port p's virtual servers need from the filter
// stage.
func (fw *filterWant) addPort(p *model.ServicePort, pol model.PortPolicy, nodeAddrs []netip.Addr) {
	proto := p.Name.Protocol
	svc := func(a netip.Addr, port uint16) elemKey { return elemKey{addr: a, proto: proto, port: port} }
	bound := func(a netip.Addr) {
		fw.add(setServiceIPs, elemKey{addr: a})
		fw.add(setServicePorts, svc(a, p.Port))
	}
	if p.ClusterIP.IsValid() {
		fw.add(setClusterIPs, svc(p.ClusterIP, p.Port))
		bound(p.ClusterIP)
		if pol.Internal.Verdict == model.Drop {
			fw.add(setDrop, svc(p.ClusterIP, p.Port))
		}
	}
	for _, a := range p.ExternalIPs {
		bound(a)
	}
	for _, a := range p.LoadBalancerIPs {
		bound(a)
	}
	external := func(a netip.Addr, port uint16) {
		if pol.ShortCircuit && pol.ExternalEntry && p.ClusterIP.IsValid() {
			fw.add(setShortCircuit, svc(a, port))
			k := svc(a, port)
			k.addr2, k.port2 = p.ClusterIP, p.Port
			fw.add(mapShortCircuit, k)
		}
		switch {
		case pol.External.Verdict == model.Drop:
			fw.add(setDrop, svc(a, port))
		case pol.External.Verdict == model.Forward && pol.MasqueradeExternal:
			fw.add(setExternalMasq, svc(a, port))
		}
	}
	for _, a := range p.ExternalIPs {
		external(a, p.Port)
	}
	for _, a := range p.LoadBalancerIPs {
		external(a, p.Port)
		if pol.Firewall {
			fw.add(setFirewall, svc(a, p.Port))
			for _, src := range pol.SourceRanges {
				k := svc(a, p.Port)
				k.prefix = src
				fw.add(setFirewallAllow, k)
			}
			if pol.AllowLoadBalancerSources {
				for _, lb := range p.LoadBalancerIPs {
					k := svc(a, p.Port)
					k.prefix = netip.PrefixFrom(lb, lb.BitLen())
					fw.add(setFirewallAllow, k)
				}
			}
		}
	}
	if p.NodePort != 0 {
		for _, a := range nodeAddrs {
			external(a, p.NodePort)
		}
	}
	for _, ep := range pol.Sets.Reachable {
		fw.add(setHairpin, elemKey{addr: ep.Addr, addr2: ep.Addr})
	}
}

// filterTable is one family's filter table and the record of what it holds.
type filterTable struct {
	family model.Family
	nft    knftables.Interface
	// applied is what the last transaction left; nil when unknown.
	applied *filterWant
}

func (ft *filterTable) addrType() string {
	if ft.family == model.IPv6 {
		return "ipv6_addr"
	}
	return "ipv4_addr"
}

func (ft *filterTable) ip() string {
	if ft.family == model.IPv6 {
		return "ip6"
	}
	return "ip"
}

// sync writes fw: the whole table when full or the rules changed (one
// transaction that flushes and refills it), else only the elements that
// differ. It returns whether it wrote anything. On error the record is dropped,
// so the next sync rewrites the table.
func (ft *filterTable) sync(ctx context.Context, fw *filterWant, full bool) (bool, error) {
	tx := ft.nft.NewTransaction()
	if full || ft.applied == nil || ft.applied.rules != fw.rules {
		ft.writeAll(tx, fw)
	} else {
		// Only the differences are sorted (for a deterministic transaction):
		// sorting every element of every set would cost a one-Service change
		// among 10,000 more than all the rest.
		for _, s := range filterSets {
			old, cur := ft.applied.elems[s], fw.elems[s]
			for _, k := range missing(s, old, cur) {
				tx.Delete(element(s, k))
			}
			for _, k := range missing(s, cur, old) {
				tx.Add(element(s, k))
			}
		}
	}
	if tx.NumOperations() == 0 {
		return false, nil
	}
	if err := ft.nft.Run(ctx, tx); err != nil {
		ft.applied = nil
		return true, fmt.Errorf("nftables table %s %s: %w", ft.ip(), FilterTable, err)
	}
	ft.applied = fw
	return true, nil
}

// missing returns the elements of set s in a that b lacks, in the order of
// their text.
func missing(s string, a, b map[elemKey]struct{}) []elemKey {
	var out []elemKey
	for k := range a {
		if _, ok := b[k]; !ok {
			out = append(out, k)
		}
	}
	return sortElements(s, out)
}

// sortElements sorts ks by their text in set s.
func sortElements(s string, ks []elemKey) []elemKey {
	type text struct {
		t string
		k elemKey
	}
	texts := make([]text, len(ks))
	for i, k := range ks {
		texts[i] = text{elementText(s, k), k}
	}
	slices.SortFunc(texts, func(a, b text) int { return strings.Compare(a.t, b.t) })
	for i := range texts {
		ks[i] = texts[i].k
	}
	return ks
}

// writeAll adds to tx the whole table: base chains, rules, sets and fw's
// elements, after flushing whatever the table held.
func (ft *filterTable) writeAll(tx *knftables.Transaction, fw *filterWant) {
	ip, addr := ft.ip(), ft.addrType()
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("svcplane IPVS mode: masquerade, source ranges, drop")})
	tx.Flush(&knftables.Table{})
	svc := addr + " . inet_proto . inet_service"
	sets := map[string]*knftables.Set{
		setClusterIPs:    {Type: svc, Comment: knftables.PtrTo("cluster IP virtual servers")},
		setExternalMasq:  {Type: svc, Comment: knftables.PtrTo("external virtual servers whose traffic is masqueraded")},
		setHairpin:       {Type: addr + " . " + addr, Comment: knftables.PtrTo("endpoint reaching itself through a Service")},
		setFirewall:      {Type: svc, Comment: knftables.PtrTo("load-balancer virtual servers with loadBalancerSourceRanges")},
		setFirewallAllow: {Type: svc + " . " + addr, Flags: []knftables.SetFlag{knftables.IntervalFlag}, Comment: knftables.PtrTo("allowed sources")},
		setDrop:          {Type: svc, Comment: knftables.PtrTo("externalTrafficPolicy Local without a local endpoint")},
	}
	sets[setShortCircuit] = &knftables.Set{Type: svc, Comment: knftables.PtrTo("external addresses of eTP Local ports")}
	sets[setServiceIPs] = &knftables.Set{Type: addr, Comment: knftables.PtrTo("addresses on " + DummyInterface)}
	sets[setServicePorts] = &knftables.Set{Type: svc, Comment: knftables.PtrTo("their virtual servers")}
	for _, name := range filterSets {
		if name == mapShortCircuit {
			tx.Add(&knftables.Map{Name: name, Type: svc + " : " + addr + " . inet_service",
				Comment: knftables.PtrTo("their cluster IP, for traffic from pods and the node")})
			continue
		}
		s := sets[name]
		s.Name = name
		tx.Add(s)
	}
	chain := func(name string, t knftables.BaseChainType, h knftables.BaseChainHook, p knftables.BaseChainPriority) {
		tx.Add(&knftables.Chain{Name: name, Type: &t, Hook: &h, Priority: &p})
	}
	// Marks are set before routing (dstnat), where IPVS has not looked yet; the
	// input filter (priority filter, 0) runs before IPVS takes the packet at
	// input priority 98; masquerade happens at srcnat.
	chain("nat-prerouting", knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority)
	chain("nat-output", knftables.NATType, knftables.OutputHook, knftables.DNATPriority)
	chain("nat-postrouting", knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority)
	chain("filter-input", knftables.FilterType, knftables.InputHook, knftables.FilterPriority)
	tx.Add(&knftables.Chain{Name: "mark-masq"})

	dst := ip + " daddr . meta l4proto . th dport"
	mark := fmt.Sprintf("meta mark set meta mark | 0x%x", MasqueradeMark)
	tx.Add(&knftables.Rule{Chain: "nat-prerouting", Rule: "jump mark-masq"})
	tx.Add(&knftables.Rule{Chain: "nat-output", Rule: "jump mark-masq"})
	shortCircuit := knftables.Concat("dnat to", dst, "map", "@"+mapShortCircuit)
	if cidr, ok := strings.CutPrefix(fw.rules, "cluster-cidr "); ok {
		// Pods are known by the cluster CIDR only.
		tx.Add(&knftables.Rule{Chain: "nat-prerouting", Rule: knftables.Concat(ip, "saddr", cidr, dst, "@"+setShortCircuit, shortCircuit)})
	}
	// The node's own traffic is masqueraded on the way, as to a cluster IP.
	tx.Add(&knftables.Rule{Chain: "nat-output", Rule: knftables.Concat(dst, "@"+setShortCircuit, mark)})
	tx.Add(&knftables.Rule{Chain: "nat-output", Rule: knftables.Concat(dst, "@"+setShortCircuit, shortCircuit)})
	switch {
	case strings.HasPrefix(fw.rules, "masquerade-all"):
		tx.Add(&knftables.Rule{Chain: "mark-masq", Rule: knftables.Concat(dst, "@"+setClusterIPs, mark)})
	case strings.HasPrefix(fw.rules, "cluster-cidr "):
		tx.Add(&knftables.Rule{Chain: "mark-masq", Rule: knftables.Concat(
			ip, "saddr", "!=", strings.TrimPrefix(fw.rules, "cluster-cidr "), dst, "@"+setClusterIPs, mark)})
	}
	tx.Add(&knftables.Rule{Chain: "mark-masq", Rule: knftables.Concat(dst, "@"+setExternalMasq, mark)})
	tx.Add(&knftables.Rule{Chain: "nat-postrouting", Rule: fmt.Sprintf("meta mark & 0x%x != 0 masquerade", MasqueradeMark)})
	tx.Add(&knftables.Rule{Chain: "nat-postrouting", Rule: knftables.Concat(ip, "saddr .", ip, "daddr", "@"+setHairpin, "masquerade")})
	tx.Add(&knftables.Rule{Chain: "filter-input", Rule: knftables.Concat(
		dst, "@"+setFirewall, dst, ".", ip, "saddr", "!=", "@"+setFirewallAllow, "drop")})
	tx.Add(&knftables.Rule{Chain: "filter-input", Rule: knftables.Concat(dst, "@"+setDrop, "drop")})
	tx.Add(&knftables.Rule{Chain: "filter-input", Rule: knftables.Concat(
		ip, "daddr", "@"+setServiceIPs, dst, "!=", "@"+setServicePorts, "reject")})
	for _, s := range filterSets {
		for _, k := range sortElements(s, slices.Collect(maps.Keys(fw.elems[s]))) {
			tx.Add(element(s, k))
		}
	}
}

// cleanup deletes the table; a missing one is no error.
func (ft *filterTable) cleanup(ctx context.Context) error {
	ft.applied = nil
	tx := ft.nft.NewTransaction()
	// Adding first makes the delete succeed when the table does not exist.
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	if err := ft.nft.Run(ctx, tx); err != nil && !knftables.IsNotFound(err) {
		return fmt.Errorf("delete nftables table %s %s: %w", ft.ip(), FilterTable, err)
	}
	return nil
}

// errNoFilter explains a node without nft for the filter stage.
var errNoFilter = errors.New("the IPVS mode needs nft (nftables) for masquerade, source ranges and drop rules")
