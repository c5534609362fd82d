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
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// SchemaVersion is the version of the Kubernetes DNS schema the zone follows,
// served as dns-version.<zone> TXT.
const SchemaVersion = "1.0.1"

// kind is what a Service's name resolves to.
type kind uint8

const (
	kindClusterIP    kind = iota // its cluster IPs
	kindHeadless                 // its ready endpoints
	kindExternalName             // a CNAME to spec.externalName
)

// port is a named port of a Service: the SRV record _<name>._<proto>.
type port struct {
	name   string // lower-case
	proto  string // "tcp", "udp" or "sctp"
	number uint16
}

// endpoint is a ready endpoint of a headless Service, under its hostname.
type endpoint struct {
	host  string // lower-case: the endpoint's hostname, else its first address, dashed
	addrs []netip.Addr
}

// service is what the zone answers for one Service. It is never changed once
// built, so a lookup may read it after letting go of the zone's lock.
type service struct {
	name, ns string
	fqdn     string // <name>.<ns>.svc.<zone>.
	kind     kind
	ips      []netip.Addr // kindClusterIP: status.clusterIPs
	target   string       // kindExternalName: spec.externalName, fully qualified; "" when invalid
	ports    []port
	// kindHeadless: the ready endpoints (all of them with
	// publishNotReadyAddresses), sorted by host, and the port numbers the
	// endpoints serve each named port on.
	endpoints []endpoint
	epPorts   map[portKey]uint16
}

type portKey struct{ name, proto string }

// serviceInput is what the zone keeps of a Service's object.
type serviceInput struct {
	kind            kind
	ips             []netip.Addr
	target          string
	ports           []port
	publishNotReady bool
}

// sliceInput is what the zone keeps of an EndpointSlice.
type sliceInput struct {
	service   string // the Service's name, from the service-name label
	endpoints []sliceEndpoint
	ports     []port
}

type sliceEndpoint struct {
	hostname string
	addrs    []netip.Addr
	ready    bool
}

// nsName names a namespaced object.
type nsName struct{ ns, name string }

// Zone holds the records of the Services under svc.<domain>, for lookups by
// many goroutines while a watch updates it. Its methods are safe for
// concurrent use.
type Zone struct {
	origin string // the cluster domain, lower-case and fully qualified: "cluster.local."
	ttl    uint32

	mu         sync.RWMutex
	inputs     map[nsName]*serviceInput
	slices     map[nsName]*sliceInput     // by the slice's namespace and name
	bySvc      map[nsName]map[string]bool // a Service's slices, by name
	services   map[string]*service        // by "<name>.<ns>", as in the query
	namespaces map[string]int             // how many Services each namespace has
	ptr        map[netip.Addr][]string    // names of service IPs and headless endpoints
	serial     uint32
}

// NewZone returns an empty zone for domain (e.g. "cluster.local") whose records
// live ttl seconds.
func NewZone(domain string, ttl uint32) *Zone {
	return &Zone{
		origin:     strings.ToLower(strings.TrimSuffix(domain, ".")) + ".",
		ttl:        ttl,
		inputs:     map[nsName]*serviceInput{},
		slices:     map[nsName]*sliceInput{},
		bySvc:      map[nsName]map[string]bool{},
		services:   map[string]*service{},
		namespaces: map[string]int{},
		ptr:        map[netip.Addr][]string{},
		// Secondaries never transfer this zone; the serial only tells a person
		// that it changed.
		serial: uint32(time.Now().Unix()),
	}
}

// Origin returns the zone's domain, fully qualified: "cluster.local.".
func (z *Zone) Origin() string { return z.origin }

// TTL returns the TTL of the zone's records, in seconds.
func (z *Zone) TTL() uint32 { return z.ttl }

// Sizes are the numbers of objects a zone holds.
type Sizes struct {
	Services, EndpointSlices, Endpoints, ReverseNames int
}

// Sizes returns how much the zone holds.
func (z *Zone) Sizes() Sizes {
	z.mu.RLock()
	defer z.mu.RUnlock()
	s := Sizes{Services: len(z.inputs), EndpointSlices: len(z.slices), ReverseNames: len(z.ptr)}
	for _, svc := range z.services {
		s.Endpoints += len(svc.endpoints)
	}
	return s
}

// SetService adds or replaces svc.
func (z *Zone) SetService(svc *v1alpha1.Service) {
	in := inputOf(svc)
	key := nsName{svc.Namespace, svc.Name}
	z.mu.Lock()
	defer z.mu.Unlock()
	if _, ok := z.inputs[key]; !ok {
		z.namespaces[key.ns]++
	}
	z.inputs[key] = in
	z.rebuild(key)
}

// DeleteService removes the Service namespace/name.
func (z *Zone) DeleteService(namespace, name string) {
	key := nsName{namespace, name}
	z.mu.Lock()
	defer z.mu.Unlock()
	if _, ok := z.inputs[key]; !ok {
		return
	}
	delete(z.inputs, key)
	if z.namespaces[key.ns]--; z.namespaces[key.ns] <= 0 {
		delete(z.namespaces, key.ns)
	}
	z.rebuild(key)
}

// SetEndpointSlice adds or replaces slice, which belongs to the Service its
// networking.svcplane.io/service-name label names; a slice without it is
// removed.
func (z *Zone) SetEndpointSlice(slice *discoveryv1.EndpointSlice) {
	in := sliceInputOf(slice)
	key := nsName{slice.Namespace, slice.Name}
	z.mu.Lock()
	defer z.mu.Unlock()
	z.removeSlice(key)
	if in.service == "" {
		return
	}
	z.slices[key] = in
	owner := nsName{key.ns, in.service}
	if z.bySvc[owner] == nil {
		z.bySvc[owner] = map[string]bool{}
	}
	z.bySvc[owner][key.name] = true
	z.rebuild(owner)
}

// DeleteEndpointSlice removes the EndpointSlice namespace/name.
func (z *Zone) DeleteEndpointSlice(namespace, name string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.removeSlice(nsName{namespace, name})
}

// removeSlice forgets the slice key and rebuilds the Service it belonged to.
func (z *Zone) removeSlice(key nsName) {
	old, ok := z.slices[key]
	if !ok {
		return
	}
	delete(z.slices, key)
	owner := nsName{key.ns, old.service}
	delete(z.bySvc[owner], key.name)
	if len(z.bySvc[owner]) == 0 {
		delete(z.bySvc, owner)
	}
	z.rebuild(owner)
}

// rebuild recomputes the records of the Service key from its input and slices.
// z.mu must be held for writing.
func (z *Zone) rebuild(key nsName) {
	z.serial++
	id := key.name + "." + key.ns
	if old := z.services[id]; old != nil {
		for _, a := range old.reverse() {
			z.ptr[a.addr] = slices.DeleteFunc(z.ptr[a.addr], func(n string) bool { return n == a.name })
			if len(z.ptr[a.addr]) == 0 {
				delete(z.ptr, a.addr)
			}
		}
		delete(z.services, id)
	}
	in := z.inputs[key]
	if in == nil {
		return
	}
	svc := &service{
		name: key.name, ns: key.ns, fqdn: id + ".svc." + z.origin,
		kind: in.kind, ips: in.ips, target: in.target, ports: in.ports,
	}
	if in.kind == kindHeadless {
		svc.endpoints, svc.epPorts = z.endpointsOf(key, in.publishNotReady)
	}
	z.services[id] = svc
	for _, a := range svc.reverse() {
		z.ptr[a.addr] = append(z.ptr[a.addr], a.name)
	}
}

// endpointsOf merges the endpoints of the Service key's slices by hostname.
func (z *Zone) endpointsOf(key nsName, publishNotReady bool) ([]endpoint, map[portKey]uint16) {
	byHost := map[string][]netip.Addr{}
	var epPorts map[portKey]uint16
	for name := range z.bySvc[key] {
		sl := z.slices[nsName{key.ns, name}]
		for _, e := range sl.endpoints {
			if !e.ready && !publishNotReady {
				continue
			}
			host := e.hostname
			if host == "" {
				host = dashed(e.addrs[0])
			}
			for _, a := range e.addrs {
				if !slices.Contains(byHost[host], a) {
					byHost[host] = append(byHost[host], a)
				}
			}
		}
		for _, p := range sl.ports {
			if epPorts == nil {
				epPorts = map[portKey]uint16{}
			}
			epPorts[portKey{p.name, p.proto}] = p.number
		}
	}
	eps := make([]endpoint, 0, len(byHost))
	for host, addrs := range byHost {
		slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
		eps = append(eps, endpoint{host: host, addrs: addrs})
	}
	slices.SortFunc(eps, func(a, b endpoint) int { return strings.Compare(a.host, b.host) })
	return eps, epPorts
}

type reverseName struct {
	addr netip.Addr
	name string
}

// reverse returns the PTR records the Service has: each cluster IP names the
// Service, each headless endpoint's address names the endpoint.
func (s *service) reverse() []reverseName {
	var out []reverseName
	switch s.kind {
	case kindClusterIP:
		for _, ip := range s.ips {
			out = append(out, reverseName{ip, s.fqdn})
		}
	case kindHeadless:
		for _, e := range s.endpoints {
			for _, a := range e.addrs {
				out = append(out, reverseName{a, e.host + "." + s.fqdn})
			}
		}
	}
	return out
}

// inputOf extracts what the zone needs of svc.
func inputOf(svc *v1alpha1.Service) *serviceInput {
	in := &serviceInput{publishNotReady: svc.Spec.PublishNotReadyAddresses}
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		in.kind = kindExternalName
		in.target = externalTarget(svc.Spec.ExternalName)
	case svc.Spec.ClusterIP == v1alpha1.ClusterIPNone || (len(svc.Spec.ClusterIPs) > 0 && svc.Spec.ClusterIPs[0] == v1alpha1.ClusterIPNone):
		in.kind = kindHeadless
	default:
		ips := svc.Status.ClusterIPs
		if len(ips) == 0 && svc.Status.ClusterIP != "" {
			ips = []string{svc.Status.ClusterIP}
		}
		for _, s := range ips {
			if a, err := netip.ParseAddr(s); err == nil {
				in.ips = append(in.ips, a.Unmap())
			}
		}
	}
	for _, p := range svc.Spec.Ports {
		if p.Name == "" || p.Port <= 0 || p.Port > 65535 {
			continue // unnamed ports have no SRV record
		}
		in.ports = append(in.ports, port{name: strings.ToLower(p.Name), proto: protoLabel(p.Protocol), number: uint16(p.Port)})
	}
	return in
}

// sliceInputOf extracts what the zone needs of slice.
func sliceInputOf(slice *discoveryv1.EndpointSlice) *sliceInput {
	in := &sliceInput{service: slice.Labels[v1alpha1.LabelServiceName]}
	if slice.AddressType != discoveryv1.AddressTypeIPv4 && slice.AddressType != discoveryv1.AddressTypeIPv6 {
		return in // FQDN slices have no addresses to answer with
	}
	for _, e := range slice.Endpoints {
		se := sliceEndpoint{ready: e.Conditions.Ready == nil || *e.Conditions.Ready}
		if e.Hostname != nil {
			se.hostname = strings.ToLower(*e.Hostname)
		}
		for _, s := range e.Addresses {
			if a, err := netip.ParseAddr(s); err == nil {
				se.addrs = append(se.addrs, a.Unmap())
			}
		}
		if len(se.addrs) > 0 {
			in.endpoints = append(in.endpoints, se)
		}
	}
	for _, p := range slice.Ports {
		if p.Name == nil || *p.Name == "" || p.Port == nil || *p.Port <= 0 || *p.Port > 65535 {
			continue
		}
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		in.ports = append(in.ports, port{name: strings.ToLower(*p.Name), proto: protoLabel(proto), number: uint16(*p.Port)})
	}
	return in
}

// protoLabel returns the SRV label of a protocol, without its underscore.
func protoLabel(p corev1.Protocol) string {
	if p == "" {
		return "tcp"
	}
	return strings.ToLower(string(p))
}

// dashed returns the system-assigned hostname of an endpoint without one: its
// address with dashes, 10-244-1-10 or fd00-10-244-1--a, as cluster DNS names pods.
func dashed(a netip.Addr) string {
	if a.Is4() {
		return strings.ReplaceAll(a.String(), ".", "-")
	}
	return strings.ReplaceAll(a.String(), ":", "-")
}
