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
	"crypto/sha256"
	"encoding/base32"
	"net/netip"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Every fixed name this package writes into the kernel: one table per family,
// never touching any other table, so that kube-proxy (table kube-proxy), firewalld
// or a CNI plugin can share the node.
const (
	// TableName is the name of the table, in the ip and in the ip6 family.
	TableName = "svcplane"
	// tableComment is the comment on the table, for whoever lists the ruleset.
	tableComment = "svcplane Services; rules managed by svcplane-agent, do not edit"

	// Base chains, with the hook and priority they are registered at. Priorities
	// are numbers relative to the standard ones so that the order is explicit:
	// the firewall sees the original destination before DNAT (dstnat-10), the
	// no-endpoint checks see it after DNAT (filter-10 on input and forward,
	// dstnat+10 on output) so that only traffic that was not DNATed is refused.
	chainFilterPrerouting    = "filter-prerouting"       // filter prerouting dstnat-10: firewall-check
	chainFilterInput         = "filter-input"            // filter input filter-10: node port and service checks, health checks
	chainFilterForward       = "filter-forward"          // filter forward filter-10: invalid, service checks
	chainFilterOutput        = "filter-output"           // filter output dstnat-10: firewall-check
	chainFilterOutputPostNAT = "filter-output-post-dnat" // filter output dstnat+10: service checks
	chainNATPrerouting       = "nat-prerouting"          // nat prerouting dstnat: services
	chainNATOutput           = "nat-output"              // nat output dstnat: services
	chainNATPostrouting      = "nat-postrouting"         // nat postrouting srcnat: masquerading

	// Regular chains of fixed names.
	chainServices      = "services"                 // service-ips and service-nodeports lookups
	chainMasquerading  = "masquerading"             // masquerades marked packets
	chainMarkForMasq   = "mark-for-masquerade"      // sets the masquerade mark
	chainFirewallCheck = "firewall-check"           // firewall-ips lookup
	chainServiceCheck  = "service-endpoints-check"  // no-endpoint-services lookup
	chainNodePortCheck = "nodeport-endpoints-check" // no-endpoint-nodeports lookup
	chainReject        = "reject-chain"             // rejects; a verdict map cannot reject itself

	// Maps and sets of fixed names.
	mapServiceIPs          = "service-ips"           // addr . proto . port : goto the service port's chain
	mapServiceNodePorts    = "service-nodeports"     // proto . port : goto the external chain
	mapFirewallIPs         = "firewall-ips"          // LB addr . proto . port : goto the firewall chain
	mapNoEndpointServices  = "no-endpoint-services"  // addr . proto . port : drop or goto reject-chain
	mapNoEndpointNodePorts = "no-endpoint-nodeports" // proto . port : drop or goto reject-chain
	setNodePortIPs         = "nodeport-ips"          // the node addresses serving node ports (--nodeport-addresses)
	setHealthCheckPorts    = "health-check-ports"    // health check node ports, accepted
	setHairpin             = "hairpin-endpoints"     // endpoint . endpoint . proto . port: masqueraded hairpin connections

	// Prefixes of the per-service-port objects: the Cluster policy's endpoint
	// choice, the Local policy's, the entry of external traffic, the
	// loadBalancerSourceRanges filter, and with session affinity one chain per
	// endpoint (recording the client, then DNAT) and one affinity set per
	// endpoint.
	prefixCluster  = "cluster-"
	prefixLocal    = "local-"
	prefixExternal = "external-"
	prefixFirewall = "firewall-"
	prefixEndpoint = "endpoint-"
	prefixAffinity = "affinity-"

	// DefaultMasqueradeBit is the packet mark bit that asks for masquerading,
	// 0x2000, as in the iptables mode and one below kube-proxy's 0x4000.
	DefaultMasqueradeBit = 13

	// hashChars is how much of a name's hash a per-service name carries: 8
	// base32 characters, 40 bits, against collisions between ports whose
	// readable part is the same after truncation; the readable part
	// ("ns/name/proto/port") makes `nft list table` legible. Kubernetes names
	// keep the longest name (endpoint-, 8, "-", 63+1+63+1+4+1+15 and an IPv6
	// endpoint) well under nft's 256-character limit on chain and set names.
	hashChars = 8
)

// familyOf returns the nftables family of a model family.
func familyOf(f model.Family) knftables.Family {
	if f == model.IPv6 {
		return knftables.IPv6Family
	}
	return knftables.IPv4Family
}

// portNames are the names of one service port's chains.
type portNames struct {
	base                               string // H-ns/name/proto/port
	cluster, local, external, firewall string
	proto                              string // tcp, udp, sctp
}

func namesFor(name model.ServicePortName) portNames {
	proto := strings.ToLower(string(name.Protocol))
	port := name.Port
	if port == "" {
		port = "-"
	}
	base := hash(name.String(), proto) + "-" + name.Namespace + "/" + name.Name + "/" + proto + "/" + port
	return portNames{
		base:     base,
		cluster:  prefixCluster + base,
		local:    prefixLocal + base,
		external: prefixExternal + base,
		firewall: prefixFirewall + base,
		proto:    proto,
	}
}

// endpointChain returns the chain of one endpoint of a service port. The
// endpoint's address is written with dots for an IPv6 address's colons, which nft
// does not take in a name.
func endpointChain(name model.ServicePortName, ep netip.AddrPort) string {
	n := namesFor(name)
	return prefixEndpoint + hash(name.String(), n.proto, ep.String()) + "-" + n.base[hashChars+1:] + "__" +
		strings.ReplaceAll(ep.Addr().String(), ":", ".") + "/" + strconv.Itoa(int(ep.Port()))
}

// affinitySet returns the affinity set of one endpoint of a service port. The
// timeout is hashed too: a set's timeout cannot change, so a new timeout makes a
// new set, and the old one goes with the stale objects.
func affinitySet(name model.ServicePortName, ep netip.AddrPort, timeoutSeconds int32) string {
	n := namesFor(name)
	return prefixAffinity + hash(name.String(), n.proto, ep.String(), strconv.Itoa(int(timeoutSeconds))) + "-" + n.base[hashChars+1:] + "__" +
		strings.ReplaceAll(ep.Addr().String(), ":", ".") + "/" + strconv.Itoa(int(ep.Port()))
}

func hash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	return base32.StdEncoding.EncodeToString(h.Sum(sum[:0]))[:hashChars]
}
