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
	"bytes"
	"fmt"
	"hash/maphash"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/svcplane/svcplane/dataplane/model"
)

// serviceRecord is what the backend remembers of one service port it applied: a
// hash of its chains' text, to tell whether they changed, and their names, to delete
// the ones it no longer needs.
type serviceRecord struct {
	hash   uint64
	chains []string
	// gen is the render that last found the port in its view.
	gen uint64
}

// rendered is one family's iptables-restore payload and what applying it leaves.
type rendered struct {
	// payload is valid until the renderer's next render.
	payload []byte
	// services is what is applied once payload is: the record of every service
	// port in the view. A partial render updates its prev in place and returns
	// it, so that a change of one endpoint does not copy every record: prev is
	// only good for the sync it was rendered for, whose failure forgets it.
	services map[model.ServicePortName]serviceRecord
	// written counts the service ports whose chains are in payload; deleted
	// counts the chains it deletes.
	written, deleted int
	// unhooked are the rules of other chains that payload deletes because they
	// jump into a chain it deletes, as "CHAIN args...".
	unhooked []string
	// fixed is the hash of the fixed chains' rules, canaries aside: a partial
	// render that writes and deletes no service chain, with the fixed rules of
	// the last applied one, has nothing to apply.
	fixed uint64
}

// savedNAT is what a full sync reads of the kernel's nat table before it rewrites
// it.
type savedNAT struct {
	// chains are the names of the table's chains.
	chains []string
	// jumps are the rules that jump to a service chain from a chain that no full
	// sync rewrites: a built-in chain, someone else's chain, or one of ours this
	// version no longer writes. Such a rule stops the chain from being deleted.
	jumps []savedJump
	// hooks are the rules of the built-in chains that jump to one of our fixed
	// chains: the hooks a full sync would otherwise look for with iptables -C.
	hooks []savedJump
}

// renderer turns one family's View into an iptables-restore payload. Rules are
// written in the canonical form iptables-save prints them in (addresses with their
// prefix length, header matches first, MARK as --set-xmark, probabilities rounded
// as the kernel stores them), so that the Fake's dumps and the golden files read as
// the real node would show them. The renderer keeps its buffers between syncs: a
// node with 10,000 service ports has tens of megabytes of rules.
type renderer struct {
	family model.Family
	seed   maphash.Seed

	markSet    string // --set-xmark value that sets the masquerade bit
	markClear  string // --set-xmark value that clears it
	markMatch  string // --mark value matching it
	hostMask   string // -m recent --mask of one whole address
	loopback   string // the loopback prefix, never a node port destination
	rejectWith string

	filterChains, filterRules bytes.Buffer
	natChains, natRules       bytes.Buffer
	// canaryFilter and canaryNAT hold the canary rules, which only full
	// renders write; natServiceRules the rules of the service ports' own chains.
	// filterRules and natRules keep the rest: the fixed chains' rules, which
	// every render writes, and whose hash tells whether a render that writes no
	// service port changes anything at all.
	canaryFilter, canaryNAT bytes.Buffer
	natServiceRules         bytes.Buffer
	deletes                 bytes.Buffer
	out                     bytes.Buffer

	// svcChains and svcRules hold one service port's own chains until the
	// renderer knows whether they changed; dispatchNAT and dispatchFilter its
	// rules in the fixed chains, until they are copied into the payload and the
	// port's cache.
	svcChains, svcRules         bytes.Buffer
	dispatchNAT, dispatchFilter bytes.Buffer

	// viewKey is the hash of the last render's view-wide inputs (viewHash): while
	// it stays the same, a service port whose own inputs did not change renders
	// to the same text, and a partial render reuses it instead of rendering it.
	viewKey uint64

	// names caches the text derived from service port names and endpoints, which
	// rarely changes between syncs but costs a SHA-256 and a few allocations per
	// endpoint to make. Entries not used by a render are dropped at its end.
	names map[model.ServicePortName]*portNames
	gen   uint64

	args          []string
	probabilities []string

	// terse is set while the View has more than terseAbove endpoints (newRenderer:
	// largeClusterEndpoints): endpoint rules then carry no comment.
	terse      bool
	terseAbove int
}

// largeClusterEndpoints is the number of endpoints above which endpoint rules (the
// jumps to SVCP-SEP- chains and the rules inside them) are written without comments,
// as kube-proxy does above the same number: they are most of a large table, and with
// iptables-legacy every read and write of the table scales with its size.
const largeClusterEndpoints = 1000

// portNames is the text of one service port that depends only on its name.
type portNames struct {
	gen    uint64
	name   string // ns/svc:port
	proto  string // tcp, udp, sctp
	chains serviceChains

	// Rule comments, quoted for the payload.
	comment, clusterIP, externalIP, loadBalancerIP, noEndpoints, noLocalEndpoints      string
	notAccepted, dropped, masqueradeExternal, podExternal, masqueradeLocal, routeLocal string
	healthCheck                                                                        string

	endpoints map[netip.AddrPort]*endpointNames

	// rendered is set once the port has been rendered; input is the hash of its
	// inputs then (inputHash), hash its record's, and dispatchNAT and
	// dispatchFilter its rules in the fixed chains, which every sync writes
	// again. The text is reused only where the previous sync's record is that
	// render's.
	rendered                    bool
	input, hash                 uint64
	dispatchNAT, dispatchFilter []byte
}

// endpointNames is the text of one endpoint of one service port.
type endpointNames struct {
	gen     uint64
	chain   string // its SVCP-SEP- chain
	source  string // its address as a host prefix, for the hairpin match
	dest    string // addr:port, the DNAT destination
	comment string // "ns/svc:port -> addr:port", quoted
}

// portNames returns the cached text of the service port name, marking it used.
func (r *renderer) portNames(name model.ServicePortName) *portNames {
	pn := r.names[name]
	if pn == nil {
		n := name.String()
		c := chainsFor(name)
		pn = &portNames{
			name:               n,
			proto:              strings.ToLower(string(name.Protocol)),
			chains:             c,
			comment:            saveString(n),
			clusterIP:          saveString(n + " cluster IP"),
			externalIP:         saveString(n + " external IP"),
			loadBalancerIP:     saveString(n + " loadbalancer IP"),
			noEndpoints:        saveString(n + " has no endpoints"),
			noLocalEndpoints:   saveString(n + " has no local endpoints"),
			notAccepted:        saveString(n + " traffic not accepted by " + c.firewall),
			dropped:            saveString("other traffic to " + n + " will be dropped by " + chainFirewall),
			masqueradeExternal: saveString("masquerade traffic for " + n + " external destinations"),
			podExternal:        saveString("pod traffic for " + n + " external destinations"),
			masqueradeLocal:    saveString("masquerade LOCAL traffic for " + n + " external destinations"),
			routeLocal:         saveString("route LOCAL traffic for " + n + " external destinations"),
			healthCheck:        saveString(name.Namespace + "/" + name.Name + " health check node port"),
			endpoints:          map[netip.AddrPort]*endpointNames{},
		}
		r.names[name] = pn
	}
	pn.gen = r.gen
	return pn
}

// endpoint returns the cached text of one of the port's endpoints, marking it used.
func (r *renderer) endpoint(pn *portNames, name model.ServicePortName, ep model.Endpoint) *endpointNames {
	key := ep.AddrPort()
	en := pn.endpoints[key]
	if en == nil {
		dest := key.String()
		en = &endpointNames{
			chain:   endpointChain(name, dest),
			source:  hostPrefix(ep.Addr),
			dest:    dest,
			comment: saveString(pn.name + " -> " + dest),
		}
		pn.endpoints[key] = en
	}
	en.gen = r.gen
	return en
}

func newRenderer(family model.Family, masqueradeBit int) *renderer {
	mark := uint32(1) << masqueradeBit
	r := &renderer{
		family:     family,
		names:      map[model.ServicePortName]*portNames{},
		seed:       maphash.MakeSeed(),
		markSet:    fmt.Sprintf("%#x/%#x", mark, mark),
		markClear:  fmt.Sprintf("0x0/%#x", mark),
		markMatch:  fmt.Sprintf("%#x/%#x", mark, mark),
		hostMask:   "255.255.255.255",
		loopback:   "127.0.0.0/8",
		rejectWith: "icmp-port-unreachable",
		terseAbove: largeClusterEndpoints,
	}
	if family == model.IPv6 {
		r.hostMask = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
		r.loopback = "::1/128"
		r.rejectWith = "icmp6-port-unreachable"
	}
	return r
}

// render returns the payload that takes the kernel from prev to v. A full render
// writes every chain, the canaries included, and deletes every service chain of
// existing (the kernel's nat table; nil for an empty one) that v does not use,
// with any rule in existing.jumps that still jumps into one. A partial one writes
// the fixed chains, which carry every service's dispatch rules, plus the chains of
// service ports whose text differs from prev, and deletes only the chains prev had
// and v no longer needs.
func (r *renderer) render(v *model.View, prev map[model.ServicePortName]serviceRecord, full bool, existing *savedNAT) rendered {
	r.gen++
	r.filterChains.Reset()
	r.filterRules.Reset()
	r.canaryFilter.Reset()
	r.canaryNAT.Reset()
	r.natServiceRules.Reset()
	r.natChains.Reset()
	r.natRules.Reset()
	r.deletes.Reset()

	for _, c := range fixedChains[TableFilter] {
		declareChain(&r.filterChains, c)
	}
	for _, c := range fixedChains[TableNAT] {
		declareChain(&r.natChains, c)
	}
	if full {
		// Partial syncs leave the canaries alone, so that a missing one means a
		// flush since the last full sync, whatever partial syncs ran in between.
		// The rule does nothing, as nothing jumps to the chain; it is there so
		// that flushing a table's rules (iptables -F) is noticed as well as
		// deleting its chains (-X).
		canary := saveString(commentCanary)
		for _, b := range []*bytes.Buffer{&r.filterChains, &r.natChains} {
			declareChain(b, chainCanary)
		}
		for _, b := range []*bytes.Buffer{&r.canaryFilter, &r.canaryNAT} {
			r.rule(b, "-A", chainCanary, "-m", "comment", "--comment", canary, "-j", "RETURN")
		}
	}
	r.fixedRules()

	endpoints := 0
	for _, p := range v.ServicePorts {
		endpoints += len(p.Endpoints)
	}
	r.terse = endpoints > r.terseAbove

	// A partial render renders only the service ports whose inputs changed
	// since the last render, when nothing view-wide did: the others are written
	// as the text cached from then, their dispatch rules only, so that a change
	// of one endpoint costs one port's rendering, not every port's.
	viewKey := r.viewHash(v)
	reuse := !full && viewKey == r.viewKey
	r.viewKey = viewKey

	out := rendered{services: prev}
	if full || prev == nil {
		out.services = make(map[model.ServicePortName]serviceRecord, len(v.ServicePorts))
	}
	var stale []string
	healthChecks := map[uint16]bool{}
	for _, p := range v.ServicePorts {
		pn := r.portNames(p.Name)
		input := r.inputHash(p)
		old, had := prev[p.Name]
		if reuse && had && pn.rendered && pn.input == input && pn.hash == old.hash {
			r.natRules.Write(pn.dispatchNAT)
			r.filterRules.Write(pn.dispatchFilter)
			r.healthCheckRule(p, pn, healthChecks)
			old.gen = r.gen
			out.services[p.Name] = old
			continue
		}
		rec := r.servicePort(v, p, healthChecks)
		pn.rendered, pn.input, pn.hash = true, input, rec.hash
		if !full && had && old.hash == rec.hash {
			old.gen = r.gen
			out.services[p.Name] = old
			continue
		}
		r.natChains.Write(r.svcChains.Bytes())
		r.natServiceRules.Write(r.svcRules.Bytes())
		out.written++
		out.services[p.Name] = rec
		if !full && had {
			for _, c := range old.chains {
				if !slices.Contains(rec.chains, c) {
					stale = append(stale, c)
				}
			}
		}
	}
	if full {
		// What the kernel holds decides, not prev: the chains may have been
		// flushed or deleted since, or left by an earlier agent.
		if existing != nil {
			active := make(map[string]bool, len(existing.chains))
			for _, rec := range out.services {
				for _, c := range rec.chains {
					active[c] = true
				}
			}
			for _, c := range existing.chains {
				if isServiceChain(c) && !active[c] {
					stale = append(stale, c)
				}
			}
		}
	} else {
		for name, rec := range out.services {
			if rec.gen != r.gen {
				stale = append(stale, rec.chains...)
				delete(out.services, name)
			}
		}
	}
	// A chain is deleted by declaring it, which flushes it, and then -X. Every
	// rule of ours that jumped to it was in a chain this payload rewrites (the
	// dispatch chains, or the same service's chains). A rule elsewhere, which a
	// full sync knows of from existing, would make iptables-restore refuse the
	// whole payload, and every sync after it, so it goes first. A partial sync
	// cannot see such rules; when one stops it, the full sync after the failure
	// removes the rule.
	slices.Sort(stale)
	stale = slices.Compact(stale)
	if full && existing != nil {
		for _, j := range existing.jumps {
			if _, found := slices.BinarySearch(stale, j.target); found {
				r.deletes.WriteString("-D " + j.rule + "\n")
				out.unhooked = append(out.unhooked, j.rule)
			}
		}
	}
	for _, c := range stale {
		declareChain(&r.natChains, c)
		r.deletes.WriteString("-X " + c + "\n")
		out.deleted++
	}

	r.nodePortsJump(v)

	for name, pn := range r.names {
		if pn.gen != r.gen {
			delete(r.names, name)
		}
	}

	var fixed maphash.Hash
	fixed.SetSeed(r.seed)
	fixed.Write(r.filterRules.Bytes())
	fixed.WriteByte(0)
	fixed.Write(r.natRules.Bytes())
	out.fixed = fixed.Sum64()

	b := &r.out
	b.Reset()
	b.Grow(r.filterChains.Len() + r.canaryFilter.Len() + r.filterRules.Len() + r.natChains.Len() + r.canaryNAT.Len() +
		r.natRules.Len() + r.natServiceRules.Len() + r.deletes.Len() + 32)
	b.WriteString("*filter\n")
	b.Write(r.filterChains.Bytes())
	b.Write(r.canaryFilter.Bytes())
	b.Write(r.filterRules.Bytes())
	b.WriteString("COMMIT\n*nat\n")
	b.Write(r.natChains.Bytes())
	b.Write(r.canaryNAT.Bytes())
	b.Write(r.natRules.Bytes())
	b.Write(r.natServiceRules.Bytes())
	b.Write(r.deletes.Bytes())
	b.WriteString("COMMIT\n")
	out.payload = b.Bytes()
	return out
}

// release drops the buffers only full renders fill: the payload and the service
// chains' text. The fixed chains' rules (every render's) and the caches stay.
func (r *renderer) release() {
	r.natChains, r.natServiceRules, r.out = bytes.Buffer{}, bytes.Buffer{}, bytes.Buffer{}
}

// fixedRules writes the rules of the fixed chains that do not depend on services.
func (r *renderer) fixedRules() {
	// Masquerade what carries the mark, clearing it first so that a packet that
	// comes back through the stack (a hairpin on a bridge) is not masqueraded
	// twice.
	r.rule(&r.natRules, "-A", chainPostrouting, "-m", "mark", "!", "--mark", r.markMatch, "-j", "RETURN")
	r.rule(&r.natRules, "-A", chainPostrouting, "-j", "MARK", "--set-xmark", r.markClear)
	r.rule(&r.natRules, "-A", chainPostrouting, "-m", "comment", "--comment", saveString(commentMasquerade), "-j", "MASQUERADE", "--random-fully")
	r.rule(&r.natRules, "-A", chainMarkMasq, "-j", "MARK", "--set-xmark", r.markSet)

	// Packets conntrack cannot place would otherwise leave a DNATed connection
	// un-NATed and reset it; marked packets and their connections are accepted even
	// when the FORWARD policy is DROP.
	r.rule(&r.filterRules, "-A", chainForward, "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
	r.rule(&r.filterRules, "-A", chainForward, "-m", "comment", "--comment", saveString(commentForward), "-m", "mark", "--mark", r.markMatch, "-j", "ACCEPT")
	r.rule(&r.filterRules, "-A", chainForward, "-m", "comment", "--comment", saveString(commentForwardConntrack), "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")
}

// nodePortsJump hands node-port traffic to SVCP-NODEPORTS. It must be the last rule
// of SVCP-SERVICES: a node's own address can be an external or load-balancer IP,
// and those rules must win.
func (r *renderer) nodePortsJump(v *model.View) {
	comment := saveString(commentNodePorts)
	if v.NodePortsOnAllAddresses {
		// Loopback is excluded: accepting node ports on 127.0.0.1 needs
		// route_localnet, which exposes every localhost service to the network.
		r.rule(&r.natRules, "-A", chainServices, "!", "-d", r.loopback, "-m", "comment", "--comment", comment,
			"-m", "addrtype", "--dst-type", "LOCAL", "-j", chainNodePorts)
		return
	}
	for _, a := range v.NodePortAddresses {
		r.rule(&r.natRules, "-A", chainServices, "-d", hostPrefix(a), "-m", "comment", "--comment", comment, "-j", chainNodePorts)
	}
}

// servicePort writes p's dispatch rules (in the fixed chains, always rewritten) and
// p's own chains into svcChains and svcRules, and returns their record. It follows
// kube-proxy's iptables proxier, rule for rule.
func (r *renderer) servicePort(v *model.View, p *model.ServicePort, healthChecks map[uint16]bool) serviceRecord {
	r.svcChains.Reset()
	r.svcRules.Reset()
	r.dispatchNAT.Reset()
	r.dispatchFilter.Reset()

	pl := r.plan(v, p)
	r.dispatchRules(p, pl)
	pn := pl.pn
	pn.dispatchNAT = append(pn.dispatchNAT[:0], r.dispatchNAT.Bytes()...)
	pn.dispatchFilter = append(pn.dispatchFilter[:0], r.dispatchFilter.Bytes()...)
	r.natRules.Write(pn.dispatchNAT)
	r.filterRules.Write(pn.dispatchFilter)
	r.healthCheckRule(p, pn, healthChecks)
	chains := r.serviceChains(v, p, pl)

	var d maphash.Hash
	d.SetSeed(r.seed)
	d.Write(r.svcChains.Bytes())
	d.Write(r.svcRules.Bytes())
	return serviceRecord{hash: d.Sum64(), chains: chains, gen: r.gen}
}

// portPlan is model.Decide's policy for one service port in iptables' terms: which
// chains it needs, which chain each kind of traffic enters, and what the filter
// table does with traffic that has nowhere to go.
type portPlan struct {
	pn        *portNames
	port      string // the service port number
	clusterIP string // as a host prefix
	sets      model.EndpointSets
	policy    model.PortPolicy

	// usesCluster, usesLocal, usesExternal and usesFirewall say which of the
	// SVC, SVL, EXT and FW chains exist.
	usesCluster, usesLocal, usesExternal, usesFirewall bool
	// Internal traffic is the cluster IP's; it enters internalChain, and
	// hasInternal says whether it has an endpoint to go to. External traffic
	// (node port, external IPs, load-balancer IPs) goes through the EXT chain to
	// externalPolicyChain, when hasExternal.
	internalChain, externalPolicyChain string
	hasInternal, hasExternal           bool
	// lbChain is where load-balancer IP traffic enters: FW with source ranges,
	// else EXT.
	lbChain string
	// The filter table's target and comment for internal and external traffic
	// with nowhere to go: REJECT without any endpoint, DROP without a local one
	// under a Local policy, "" when it has somewhere to go.
	internalFilter, internalFilterComment string
	externalFilter, externalFilterComment string
}

// plan translates model.Decide's policy for p into its portPlan.
func (r *renderer) plan(v *model.View, p *model.ServicePort) portPlan {
	pn := r.portNames(p.Name)
	c := pn.chains
	pol := model.Decide(v, p)
	pl := portPlan{
		pn:        pn,
		port:      strconv.Itoa(int(p.Port)),
		clusterIP: hostPrefix(p.ClusterIP),
		sets:      pol.Sets,
		policy:    pol,
	}
	chain := func(rt model.Route) string {
		if rt.Policy == model.PolicyLocal {
			return c.local
		}
		return c.cluster
	}
	pl.usesCluster, pl.usesLocal = pol.ClusterEndpoints, pol.LocalEndpoints
	pl.internalChain, pl.hasInternal = chain(pol.Internal), pol.Internal.Verdict == model.Forward
	pl.externalPolicyChain, pl.hasExternal = chain(pol.External), pol.External.Verdict == model.Forward
	pl.usesExternal, pl.usesFirewall = pol.ExternalEntry, pol.Firewall
	pl.lbChain = c.external
	if pl.usesFirewall {
		pl.lbChain = c.firewall
	}
	pl.internalFilter, pl.internalFilterComment = filterVerdict(pn, pol.Internal.Verdict)
	pl.externalFilter, pl.externalFilterComment = filterVerdict(pn, pol.External.Verdict)
	return pl
}

// filterVerdict returns the filter table's target and comment for traffic with
// verdict v: none for Forward.
func filterVerdict(pn *portNames, v model.Verdict) (target, comment string) {
	switch v {
	case model.Reject:
		return "REJECT", pn.noEndpoints
	case model.Drop:
		return "DROP", pn.noLocalEndpoints
	}
	return "", ""
}

// dispatchRules writes the rules of the fixed chains that send p's traffic to its
// chains, or that reject or drop it in the filter table, into dispatchNAT and
// dispatchFilter.
func (r *renderer) dispatchRules(p *model.ServicePort, pl portPlan) {
	pn, c, port := pl.pn, pl.pn.chains, pl.port

	// Cluster IP.
	if pl.hasInternal {
		r.rule(&r.dispatchNAT, "-A", chainServices, "-d", pl.clusterIP, "-p", pn.proto, "-m", "comment", "--comment", pn.clusterIP,
			"-m", pn.proto, "--dport", port, "-j", pl.internalChain)
	} else {
		r.filterRule(chainServices, pl.clusterIP, pn.proto, port, pl.internalFilterComment, false, pl.internalFilter)
	}

	// External IPs.
	for _, ip := range p.ExternalIPs {
		dst := hostPrefix(ip)
		if pl.usesExternal {
			r.rule(&r.dispatchNAT, "-A", chainServices, "-d", dst, "-p", pn.proto, "-m", "comment", "--comment", pn.externalIP,
				"-m", pn.proto, "--dport", port, "-j", c.external)
		}
		if !pl.hasExternal {
			r.filterRule(chainExternalServices, dst, pn.proto, port, pl.externalFilterComment, false, pl.externalFilter)
		}
	}

	// Load-balancer IPs. Traffic the FW chain does not let through is not
	// DNATed, so the filter table still sees the LB IP and drops it.
	for _, ip := range p.LoadBalancerIPs {
		dst := hostPrefix(ip)
		if pl.usesExternal {
			r.rule(&r.dispatchNAT, "-A", chainServices, "-d", dst, "-p", pn.proto, "-m", "comment", "--comment", pn.loadBalancerIP,
				"-m", pn.proto, "--dport", port, "-j", pl.lbChain)
		}
		if pl.usesFirewall {
			r.filterRule(chainFirewall, dst, pn.proto, port, pn.notAccepted, false, "DROP")
		}
	}
	if !pl.hasExternal {
		for _, ip := range p.LoadBalancerIPs {
			r.filterRule(chainExternalServices, hostPrefix(ip), pn.proto, port, pl.externalFilterComment, false, pl.externalFilter)
		}
	}

	// Node port. Node ports ignore loadBalancerSourceRanges, as in kube.
	if p.NodePort != 0 {
		nodePort := strconv.Itoa(int(p.NodePort))
		if pl.usesExternal {
			r.rule(&r.dispatchNAT, "-A", chainNodePorts, "-p", pn.proto, "-m", "comment", "--comment", pn.comment,
				"-m", pn.proto, "--dport", nodePort, "-j", c.external)
		}
		if !pl.hasExternal {
			r.filterRule(chainExternalServices, "", pn.proto, nodePort, pl.externalFilterComment, true, pl.externalFilter)
		}
	}

}

// healthCheckRule accepts p's health check node port. The port is the Service's,
// shared by its ports: it is accepted once, by the first port that has it,
// whether or not there are local endpoints (it reports that), so the rule is not
// part of any one port's cached text.
func (r *renderer) healthCheckRule(p *model.ServicePort, pn *portNames, healthChecks map[uint16]bool) {
	if hc := p.HealthCheckNodePort; hc != 0 && !healthChecks[hc] {
		healthChecks[hc] = true
		r.rule(&r.filterRules, "-A", chainNodePorts, "-p", "tcp", "-m", "comment", "--comment", pn.healthCheck,
			"-m", "tcp", "--dport", strconv.Itoa(int(hc)), "-j", "ACCEPT")
	}
}

// serviceChains writes p's own chains (EXT, FW, SVC, SVL and one SEP per
// reachable endpoint) into svcChains and svcRules and returns their names.
func (r *renderer) serviceChains(v *model.View, p *model.ServicePort, pl portPlan) []string {
	pn, c := pl.pn, pl.pn.chains
	var chains []string
	if pl.usesExternal {
		chains = append(chains, c.external)
		declareChain(&r.svcChains, c.external)
		if pl.policy.MasqueradeExternal {
			// The endpoint may be on another node; masquerade so its reply comes
			// back through this one.
			r.rule(&r.svcRules, "-A", c.external, "-m", "comment", "--comment", pn.masqueradeExternal, "-j", chainMarkMasq)
		} else {
			// Traffic from pods and from the node itself to an external address
			// is treated as if it had gone out to a load balancer and come back
			// in: neither traffic policy applies to it. The node's own traffic
			// has a service address as source, so it is masqueraded too.
			if v.ClusterCIDR.IsValid() {
				r.rule(&r.svcRules, "-A", c.external, "-s", v.ClusterCIDR.String(), "-m", "comment", "--comment", pn.podExternal,
					"-j", c.cluster)
			}
			r.rule(&r.svcRules, "-A", c.external, "-m", "comment", "--comment", pn.masqueradeLocal,
				"-m", "addrtype", "--src-type", "LOCAL", "-j", chainMarkMasq)
			r.rule(&r.svcRules, "-A", c.external, "-m", "comment", "--comment", pn.routeLocal,
				"-m", "addrtype", "--src-type", "LOCAL", "-j", c.cluster)
		}
		if pl.hasExternal {
			r.rule(&r.svcRules, "-A", c.external, "-j", pl.externalPolicyChain)
		}
	}

	if pl.usesFirewall {
		chains = append(chains, c.firewall)
		declareChain(&r.svcChains, c.firewall)
		for _, src := range pl.policy.SourceRanges {
			r.rule(&r.svcRules, "-A", c.firewall, "-s", src.String(), "-m", "comment", "--comment", pn.loadBalancerIP, "-j", c.external)
		}
		// A load balancer whose VIP is also routed to the node sends the node's
		// own requests back with the VIP as source; let them through when the
		// node itself is allowed.
		if pl.policy.AllowLoadBalancerSources {
			for _, ip := range p.LoadBalancerIPs {
				r.rule(&r.svcRules, "-A", c.firewall, "-s", hostPrefix(ip), "-m", "comment", "--comment", pn.loadBalancerIP, "-j", c.external)
			}
		}
		r.rule(&r.svcRules, "-A", c.firewall, "-m", "comment", "--comment", pn.dropped)
	}

	if pl.usesCluster {
		chains = append(chains, c.cluster)
		declareChain(&r.svcChains, c.cluster)
		if pl.internalChain == c.cluster && pl.hasInternal {
			r.internalMasquerade(v, pn, pl.clusterIP, pl.port, c.cluster)
		}
		r.endpointRules(p, pn, c.cluster, pl.sets.Cluster)
	}
	if pl.usesLocal {
		chains = append(chains, c.local)
		declareChain(&r.svcChains, c.local)
		if pl.internalChain == c.local && pl.hasInternal {
			r.internalMasquerade(v, pn, pl.clusterIP, pl.port, c.local)
		}
		r.endpointRules(p, pn, c.local, pl.sets.Local)
	}

	for _, ep := range pl.sets.Reachable {
		en := r.endpoint(pn, p.Name, ep)
		chains = append(chains, en.chain)
		declareChain(&r.svcChains, en.chain)
		// A pod reaching itself through the service (hairpin) must be
		// masqueraded, or it would answer itself directly and drop the reply.
		args := r.endpointComment(append(r.args[:0], "-A", en.chain, "-s", en.source), pn.comment)
		args = append(args, "-j", chainMarkMasq)
		r.rule(&r.svcRules, args...)
		args = r.endpointComment(append(args[:0], "-A", en.chain, "-p", pn.proto), pn.comment)
		if pl.policy.Affinity.ClientIP {
			args = append(args, "-m", "recent", "--set", "--name", en.chain, "--mask", r.hostMask, "--rsource")
		}
		args = append(args, "-j", "DNAT", "--to-destination", en.dest)
		r.rule(&r.svcRules, args...)
		r.args = args
	}
	for key, en := range pn.endpoints {
		if en.gen != r.gen {
			delete(pn.endpoints, key)
		}
	}
	return chains
}

// internalMasquerade masquerades cluster IP traffic that does not come from a pod:
// it may be routed to any node (a static route to the service range), and the reply
// must come back through this one.
func (r *renderer) internalMasquerade(v *model.View, pn *portNames, clusterIP, port, chain string) {
	switch {
	case v.MasqueradeAll:
		r.rule(&r.svcRules, "-A", chain, "-d", clusterIP, "-p", pn.proto, "-m", "comment", "--comment", pn.clusterIP,
			"-m", pn.proto, "--dport", port, "-j", chainMarkMasq)
	case v.ClusterCIDR.IsValid():
		r.rule(&r.svcRules, "-A", chain, "!", "-s", v.ClusterCIDR.String(), "-d", clusterIP, "-p", pn.proto,
			"-m", "comment", "--comment", pn.clusterIP, "-m", pn.proto, "--dport", port, "-j", chainMarkMasq)
	}
}

// endpointRules writes the rules choosing one of eps in chain: first the affinity
// checks, which send a client back to its last endpoint, then a uniform random
// choice. Rule i matches with probability 1/(n-i) among the packets that rule i-1
// did not take, so each of n endpoints gets 1/n; the last matches what is left.
func (r *renderer) endpointRules(p *model.ServicePort, pn *portNames, chain string, eps []model.Endpoint) {
	if p.SessionAffinity.ClientIP {
		seconds := strconv.Itoa(int(p.SessionAffinity.TimeoutSeconds))
		for _, ep := range eps {
			en := r.endpoint(pn, p.Name, ep)
			args := r.endpointComment(append(r.args[:0], "-A", chain), en.comment)
			args = append(args, "-m", "recent", "--rcheck", "--seconds", seconds, "--reap", "--name", en.chain, "--mask", r.hostMask, "--rsource",
				"-j", en.chain)
			r.rule(&r.svcRules, args...)
			r.args = args
		}
	}
	n := len(eps)
	for i, ep := range eps {
		en := r.endpoint(pn, p.Name, ep)
		args := r.endpointComment(append(r.args[:0], "-A", chain), en.comment)
		if i < n-1 {
			args = append(args, "-m", "statistic", "--mode", "random", "--probability", r.probability(n-i))
		}
		args = append(args, "-j", en.chain)
		r.rule(&r.svcRules, args...)
		r.args = args
	}
}

// endpointComment appends the comment match of an endpoint rule to args, unless the
// renderer is terse.
func (r *renderer) endpointComment(args []string, comment string) []string {
	if r.terse {
		return args
	}
	return append(args, "-m", "comment", "--comment", comment)
}

// filterRule writes a filter rule for traffic to dst (a host prefix; node-local
// addresses instead when dst is empty and local is set) on port that has nowhere to
// go.
func (r *renderer) filterRule(chain, dst, proto, port, comment string, local bool, target string) {
	args := append(r.args[:0], "-A", chain)
	if dst != "" {
		args = append(args, "-d", dst)
	}
	args = append(args, "-p", proto, "-m", "comment", "--comment", comment)
	if local {
		args = append(args, "-m", "addrtype", "--dst-type", "LOCAL")
	}
	args = append(args, "-m", proto, "--dport", port, "-j", target)
	if target == "REJECT" {
		args = append(args, "--reject-with", r.rejectWith)
	}
	r.rule(&r.dispatchFilter, args...)
	r.args = args
}

// probability returns 1/n as the statistic match stores it: a 31-bit fraction of
// 2^31, printed with 11 decimals, as iptables-save prints it back.
func (r *renderer) probability(n int) string {
	for len(r.probabilities) <= n {
		k := len(r.probabilities)
		if k == 0 {
			r.probabilities = append(r.probabilities, "")
			continue
		}
		stored := math.Round(float64(0x80000000) / float64(k))
		r.probabilities = append(r.probabilities, strconv.FormatFloat(stored/0x80000000, 'f', 11, 64))
	}
	return r.probabilities[n]
}

// rule writes one line of words.
func (r *renderer) rule(b *bytes.Buffer, words ...string) {
	for i, w := range words {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w)
	}
	b.WriteByte('\n')
}

func declareChain(b *bytes.Buffer, chain string) {
	b.WriteByte(':')
	b.WriteString(chain)
	b.WriteString(" - [0:0]\n")
}

// hostPrefix returns addr as the one-address prefix iptables-save prints.
func hostPrefix(addr netip.Addr) string {
	return netip.PrefixFrom(addr, addr.BitLen()).String()
}
