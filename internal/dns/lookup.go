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

package dns

import (
	"net/netip"
	"strconv"
	"strings"

	mdns "github.com/miekg/dns"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Result is the zone's answer to one question.
type Result struct {
	// Ours is false for a name the zone does not hold, which goes upstream: a
	// name outside the cluster domain, or the reverse name of an address that is
	// no Service's or headless endpoint's.
	Ours bool
	// Rcode is mdns.RcodeSuccess (an answer, or NODATA when Answer is empty) or
	// mdns.RcodeNameError (NXDOMAIN).
	Rcode int
	// Answer, Ns and Extra are the sections. For a negative answer Ns holds the
	// zone's SOA.
	Answer, Ns, Extra []mdns.RR
	// Chase is the target of a CNAME in Answer whose records the caller should
	// add for the asked type: an ExternalName Service's external name.
	Chase string
}

// Lookup answers the question for qname (any case, fully qualified) and qtype.
func (z *Zone) Lookup(qname string, qtype uint16) Result {
	name := strings.ToLower(qname)
	switch {
	case strings.HasSuffix(name, ".in-addr.arpa.") || strings.HasSuffix(name, ".ip6.arpa."):
		return z.lookupReverse(qname, name, qtype)
	case name == z.origin:
		if qtype == mdns.TypeSOA || qtype == mdns.TypeANY {
			return Result{Ours: true, Answer: []mdns.RR{z.soa()}}
		}
		return z.noData()
	case !strings.HasSuffix(name, "."+z.origin):
		return Result{}
	}
	labels := strings.Split(name[:len(name)-len(z.origin)-1], ".")
	n := len(labels)
	switch labels[n-1] {
	case "svc":
		return z.lookupService(qname, labels[:n-1], qtype)
	case "pod":
		return z.lookupPod(qname, labels[:n-1], qtype)
	case "dns-version":
		if n != 1 {
			return z.nxDomain()
		}
		if qtype != mdns.TypeTXT && qtype != mdns.TypeANY {
			return z.noData()
		}
		return Result{Ours: true, Answer: []mdns.RR{&mdns.TXT{Hdr: z.hdr(qname, mdns.TypeTXT), Txt: []string{SchemaVersion}}}}
	}
	return z.nxDomain()
}

// lookupService answers for the labels before svc.<zone>: [ns], [service, ns],
// [hostname or _proto, service, ns] or [_port, _proto, service, ns].
func (z *Zone) lookupService(qname string, labels []string, qtype uint16) Result {
	n := len(labels)
	if n == 0 {
		return z.noData() // svc.<zone> exists: it has names below it
	}
	ns := labels[n-1]
	if n == 1 {
		z.mu.RLock()
		exists := z.namespaces[ns] > 0
		z.mu.RUnlock()
		if exists {
			return z.noData()
		}
		return z.nxDomain()
	}
	z.mu.RLock()
	svc := z.services[labels[n-2]+"."+ns]
	z.mu.RUnlock()
	if svc == nil || n > 4 {
		return z.nxDomain()
	}
	switch n {
	case 2:
		return z.serviceName(qname, svc, qtype)
	case 3:
		if proto, ok := strings.CutPrefix(labels[0], "_"); ok {
			// _<proto>.<service>...: an empty non-terminal when an SRV record is
			// below it.
			if len(z.srv(qname, svc, "", proto)) > 0 {
				return z.noData()
			}
			return z.nxDomain()
		}
		return z.endpointName(qname, svc, labels[0], qtype)
	}
	portName, ok1 := strings.CutPrefix(labels[0], "_")
	proto, ok2 := strings.CutPrefix(labels[1], "_")
	if !ok1 || !ok2 || portName == "" {
		return z.nxDomain()
	}
	answer := z.srv(qname, svc, portName, proto)
	if len(answer) == 0 {
		return z.nxDomain()
	}
	if qtype != mdns.TypeSRV && qtype != mdns.TypeANY {
		return z.noData()
	}
	res := Result{Ours: true, Answer: answer}
	// The additional section carries the targets' addresses, saving a round
	// trip (specification 2.3.2, 2.4.2).
	switch svc.kind {
	case kindClusterIP:
		res.Extra = z.addresses(svc.fqdn, svc.ips, mdns.TypeANY)
	case kindHeadless:
		for _, e := range svc.endpoints {
			res.Extra = append(res.Extra, z.addresses(e.host+"."+svc.fqdn, e.addrs, mdns.TypeANY)...)
		}
	}
	return res
}

// serviceName answers for <service>.<ns>.svc.<zone>.
func (z *Zone) serviceName(qname string, svc *service, qtype uint16) Result {
	switch svc.kind {
	case kindExternalName:
		if svc.target == "" {
			return z.noData()
		}
		res := Result{Ours: true, Answer: []mdns.RR{&mdns.CNAME{Hdr: z.hdr(qname, mdns.TypeCNAME), Target: svc.target}}}
		if qtype != mdns.TypeCNAME {
			res.Chase = svc.target
		}
		return res
	case kindHeadless:
		// Specification 2.4.1: no ready endpoints, no name.
		if len(svc.endpoints) == 0 {
			return z.nxDomain()
		}
		var answer []mdns.RR
		for _, e := range svc.endpoints {
			answer = append(answer, z.addresses(qname, e.addrs, qtype)...)
		}
		return z.answer(answer)
	}
	return z.answer(z.addresses(qname, svc.ips, qtype))
}

// endpointName answers for <hostname>.<service>.<ns>.svc.<zone>.
func (z *Zone) endpointName(qname string, svc *service, host string, qtype uint16) Result {
	if svc.kind != kindHeadless {
		return z.nxDomain()
	}
	for _, e := range svc.endpoints {
		if e.host == host {
			return z.answer(z.addresses(qname, e.addrs, qtype))
		}
	}
	return z.nxDomain()
}

// srv returns the SRV records of the Service's ports named portName (every
// named port when "") with protocol proto.
func (z *Zone) srv(qname string, svc *service, portName, proto string) []mdns.RR {
	var out []mdns.RR
	for _, p := range svc.ports {
		if p.proto != proto || (portName != "" && p.name != portName) {
			continue
		}
		switch svc.kind {
		case kindClusterIP:
			out = append(out, &mdns.SRV{Hdr: z.hdr(qname, mdns.TypeSRV), Priority: 0, Weight: 100, Port: p.number, Target: svc.fqdn})
		case kindHeadless:
			// The endpoints serve the port on their own number (the target
			// port), which is what a client connecting to them needs.
			number := p.number
			if n, ok := svc.epPorts[portKey{p.name, p.proto}]; ok {
				number = n
			}
			weight := uint16(max(1, 100/max(1, len(svc.endpoints))))
			for _, e := range svc.endpoints {
				out = append(out, &mdns.SRV{Hdr: z.hdr(qname, mdns.TypeSRV), Priority: 0, Weight: weight, Port: number, Target: e.host + "." + svc.fqdn})
			}
		}
	}
	return out
}

// lookupPod answers the specification's deprecated pod records (2.6):
// <a>-<b>-<c>-<d>.<ns>.pod.<zone> has the address it spells, whatever pods exist.
func (z *Zone) lookupPod(qname string, labels []string, qtype uint16) Result {
	switch len(labels) {
	case 0, 1:
		return z.noData() // pod.<zone> and <ns>.pod.<zone> have names below them
	case 2:
	default:
		return z.nxDomain()
	}
	a, err := netip.ParseAddr(strings.ReplaceAll(labels[0], "-", "."))
	if err != nil || !a.Is4() {
		if a, err = netip.ParseAddr(strings.ReplaceAll(labels[0], "-", ":")); err != nil || !a.Is6() || a.Zone() != "" {
			return z.nxDomain()
		}
	}
	return z.answer(z.addresses(qname, []netip.Addr{a}, qtype))
}

// lookupReverse answers a PTR question for a cluster IP or a headless endpoint;
// any other address is not the zone's.
func (z *Zone) lookupReverse(qname, name string, qtype uint16) Result {
	a, ok := reverseAddr(name)
	if !ok {
		return Result{}
	}
	z.mu.RLock()
	names := z.ptr[a]
	z.mu.RUnlock()
	if len(names) == 0 {
		return Result{}
	}
	if qtype != mdns.TypePTR && qtype != mdns.TypeANY {
		return z.noData()
	}
	answer := make([]mdns.RR, len(names))
	for i, n := range names {
		answer[i] = &mdns.PTR{Hdr: z.hdr(qname, mdns.TypePTR), Ptr: n}
	}
	return Result{Ours: true, Answer: answer}
}

// reverseAddr parses a full in-addr.arpa. or ip6.arpa. name (lower-case).
func reverseAddr(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa."); ok {
		parts := strings.Split(rest, ".")
		if len(parts) != 4 {
			return netip.Addr{}, false
		}
		var b [4]byte
		for i, p := range parts {
			v, err := strconv.ParseUint(p, 10, 8)
			if err != nil || (len(p) > 1 && p[0] == '0') {
				return netip.Addr{}, false
			}
			b[3-i] = byte(v)
		}
		return netip.AddrFrom4(b), true
	}
	rest, ok := strings.CutSuffix(name, ".ip6.arpa.")
	if !ok || len(rest) != 63 {
		return netip.Addr{}, false
	}
	var b [16]byte
	for i := range 32 {
		c := rest[2*i]
		if (i < 31 && rest[2*i+1] != '.') || !isHex(c) {
			return netip.Addr{}, false
		}
		v := unhex(c)
		// The name starts with the last nibble.
		pos := 31 - i
		if pos%2 == 0 {
			b[pos/2] |= v << 4
		} else {
			b[pos/2] |= v
		}
	}
	return netip.AddrFrom16(b), true
}

func isHex(c byte) bool { return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

// addresses returns the A records (qtype A), AAAA records (AAAA) or both (ANY)
// of addrs under name.
func (z *Zone) addresses(name string, addrs []netip.Addr, qtype uint16) []mdns.RR {
	var out []mdns.RR
	for _, a := range addrs {
		switch {
		case a.Is4() && (qtype == mdns.TypeA || qtype == mdns.TypeANY):
			b := a.As4()
			out = append(out, &mdns.A{Hdr: z.hdr(name, mdns.TypeA), A: b[:]})
		case a.Is6() && (qtype == mdns.TypeAAAA || qtype == mdns.TypeANY):
			b := a.As16()
			out = append(out, &mdns.AAAA{Hdr: z.hdr(name, mdns.TypeAAAA), AAAA: b[:]})
		}
	}
	return out
}

// answer is a positive answer, or NODATA when there is nothing to answer.
func (z *Zone) answer(rrs []mdns.RR) Result {
	if len(rrs) == 0 {
		return z.noData()
	}
	return Result{Ours: true, Answer: rrs}
}

// noData says that the name exists but has no records of the asked type.
func (z *Zone) noData() Result {
	return Result{Ours: true, Rcode: mdns.RcodeSuccess, Ns: []mdns.RR{z.soa()}}
}

// nxDomain says that the name does not exist.
func (z *Zone) nxDomain() Result {
	return Result{Ours: true, Rcode: mdns.RcodeNameError, Ns: []mdns.RR{z.soa()}}
}

func (z *Zone) hdr(name string, rrtype uint16) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: rrtype, Class: mdns.ClassINET, Ttl: z.ttl}
}

// soa is the zone's SOA record. Its minimum, the TTL of negative answers
// (RFC 2308), is the records' TTL, so a Service that appears is found as soon
// as one that changes would be.
func (z *Zone) soa() *mdns.SOA {
	z.mu.RLock()
	serial := z.serial
	z.mu.RUnlock()
	return &mdns.SOA{
		Hdr:     z.hdr(z.origin, mdns.TypeSOA),
		Ns:      "ns.dns." + z.origin,
		Mbox:    "hostmaster." + z.origin,
		Serial:  serial,
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  z.ttl,
	}
}

// externalTarget returns an ExternalName Service's external name, lower-case
// and fully qualified, or "" when it is not the DNS-1123 subdomain Kubernetes
// requires there.
func externalTarget(name string) string {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if name == "" || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return ""
	}
	return name + "."
}
