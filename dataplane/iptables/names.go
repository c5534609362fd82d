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
	"crypto/sha256"
	"encoding/base32"
	"strings"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Every fixed name this package writes into the kernel. Everything it owns starts
// with ChainPrefix, so that Cleanup can find it all, including what an older agent
// left behind, and so that it never collides with kube-proxy's KUBE- chains when
// both run on one node.
const (
	// ChainPrefix starts the name of every chain this package creates.
	ChainPrefix = "SVCP-"

	// chainServices (nat) matches every service address and jumps to the
	// service's chain; its last rule hands node-local destinations to
	// chainNodePorts. Hooked from nat PREROUTING and OUTPUT. In filter, it holds
	// the REJECT/DROP rules of cluster IPs without (local) endpoints, hooked from
	// FORWARD and OUTPUT for new connections.
	chainServices = "SVCP-SERVICES"
	// chainNodePorts (nat) matches node ports. In filter it accepts health check
	// node ports, hooked from INPUT.
	chainNodePorts = "SVCP-NODEPORTS"
	// chainExternalServices (filter) rejects or drops traffic to external IPs,
	// load-balancer IPs and node ports without usable endpoints; hooked from INPUT
	// and FORWARD for new connections.
	chainExternalServices = "SVCP-EXTERNAL-SERVICES"
	// chainForward (filter) accepts forwarded service traffic even when the
	// FORWARD policy is DROP; hooked from FORWARD.
	chainForward = "SVCP-FORWARD"
	// chainFirewall (filter) drops load-balancer traffic that the service's
	// SVCP-FW- chain did not let through (loadBalancerSourceRanges); hooked from
	// INPUT, FORWARD and OUTPUT for new connections.
	chainFirewall = "SVCP-FIREWALL"
	// chainPostrouting (nat) masquerades packets carrying the masquerade mark;
	// hooked from POSTROUTING.
	chainPostrouting = "SVCP-POSTROUTING"
	// chainMarkMasq (nat) sets the masquerade mark.
	chainMarkMasq = "SVCP-MARK-MASQ"
	// chainCanary (filter and nat) holds one rule that does nothing, and nothing
	// jumps to it. Only full syncs write it; every partial sync first checks that
	// it is still there: a table flushed by someone else (a firewall reload,
	// iptables -F or -X) loses it, and the sync turns into a full one.
	chainCanary = "SVCP-CANARY"

	// Prefixes of the per-service-port chains, all in nat: the Cluster policy's
	// endpoint choice, the Local policy's, the entry of external traffic, the
	// loadBalancerSourceRanges filter, and one chain per endpoint doing the DNAT.
	prefixServiceCluster = "SVCP-SVC-"
	prefixServiceLocal   = "SVCP-SVL-"
	prefixExternal       = "SVCP-EXT-"
	prefixFirewall       = "SVCP-FW-"
	prefixEndpoint       = "SVCP-SEP-"

	// Comments of the hook rules and fixed rules. The hooks are found again by
	// their exact text (iptables -C), so changing one strands the old rule on
	// nodes that had it.
	commentServicePortals   = "svcplane service portals"
	commentExternalPortals  = "svcplane externally-visible service portals"
	commentHealthCheck      = "svcplane health check service ports"
	commentFirewall         = "svcplane load balancer firewall"
	commentForward          = "svcplane forwarding rules"
	commentPostrouting      = "svcplane postrouting rules"
	commentMasquerade       = "svcplane service traffic requiring SNAT"
	commentForwardConntrack = "svcplane forwarding conntrack rule"
	commentNodePorts        = "svcplane service nodeports; NOTE: this must be the last rule in this chain"
	commentCanary           = "svcplane canary: if this rule is gone, the table was flushed"

	// DefaultMasqueradeBit is the packet mark bit that asks for masquerading:
	// 0x2000, one below kube-proxy's 0x4000, so that both can run on one node
	// without clearing each other's mark.
	DefaultMasqueradeBit = 13

	// maxChainName is the kernel's limit on chain names: XT_EXTENSION_MAXNAMELEN
	// (29) less the terminating NUL.
	maxChainName = 28
	// hashChars is how much of a name's hash goes into a chain name. The longest
	// prefix, "SVCP-SVC-" (9 characters), plus 16 is 25 <= 28. Sixteen base32
	// characters carry 80 bits of SHA-256, so collisions need around 2^40 service
	// ports; kube-proxy makes the same trade for KUBE-SVC- names.
	hashChars = 16
)

// serviceChains are the names of the per-port chains of one service port.
type serviceChains struct {
	cluster, local, external, firewall string
}

// chainsFor returns the chain names of a service port: the prefix and the first
// hashChars base32 characters of SHA-256("namespace/name:port" + protocol in lower
// case), as kube-proxy names its chains. The family is not hashed: each family has
// its own tables.
func chainsFor(name model.ServicePortName) serviceChains {
	h := portHash(name.String(), strings.ToLower(string(name.Protocol)), "")
	return serviceChains{
		cluster:  prefixServiceCluster + h,
		local:    prefixServiceLocal + h,
		external: prefixExternal + h,
		firewall: prefixFirewall + h,
	}
}

// endpointChain returns the SVCP-SEP- chain of one endpoint of a service port,
// hashing the endpoint's "addr:port" after the port's name and protocol.
func endpointChain(name model.ServicePortName, endpoint string) string {
	return prefixEndpoint + portHash(name.String(), strings.ToLower(string(name.Protocol)), endpoint)
}

func portHash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
	}
	var sum [sha256.Size]byte
	return base32.StdEncoding.EncodeToString(h.Sum(sum[:0]))[:hashChars]
}

// isServiceChain reports whether chain is one of the per-service-port chains, which
// come and go with services, as opposed to the fixed chains.
func isServiceChain(chain string) bool {
	for _, p := range []string{prefixServiceCluster, prefixServiceLocal, prefixExternal, prefixFirewall, prefixEndpoint} {
		if strings.HasPrefix(chain, p) {
			return true
		}
	}
	return false
}
