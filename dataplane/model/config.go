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

package model

import (
	"errors"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
)

// NodeInfo is what the model needs to know about the node the agent runs on.
type NodeInfo struct {
	// Name is the node's name; endpoints whose nodeName equals it are local.
	Name string
	// Addresses are the node's IP addresses, both families, in the order the Node
	// lists them.
	Addresses []netip.Addr
	// PrimaryAddresses are the node's primary address of each family it has one
	// of: its first InternalIP of the family, or its first ExternalIP when it has
	// no InternalIP of the family, as kubelet and kube-proxy pick the node's IPs.
	PrimaryAddresses []netip.Addr
}

// NodeInfoFromNode returns the NodeInfo of node: its name and the InternalIP and
// ExternalIP addresses of its status, skipping duplicates and anything that does not
// parse.
func NodeInfoFromNode(node *corev1.Node) NodeInfo {
	info := NodeInfo{Name: node.Name}
	seen := map[netip.Addr]bool{}
	for _, a := range node.Status.Addresses {
		if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
			continue
		}
		addr, err := netip.ParseAddr(a.Address)
		if err != nil || seen[addr] {
			continue
		}
		seen[addr] = true
		info.Addresses = append(info.Addresses, addr)
	}
	for _, f := range Families {
		if a, ok := firstAddress(node, corev1.NodeInternalIP, f); ok {
			info.PrimaryAddresses = append(info.PrimaryAddresses, a)
		} else if a, ok := firstAddress(node, corev1.NodeExternalIP, f); ok {
			info.PrimaryAddresses = append(info.PrimaryAddresses, a)
		}
	}
	return info
}

// firstAddress returns node's first address of type t in family f.
func firstAddress(node *corev1.Node, t corev1.NodeAddressType, f Family) (netip.Addr, bool) {
	for _, a := range node.Status.Addresses {
		if a.Type != t {
			continue
		}
		if addr, err := netip.ParseAddr(a.Address); err == nil && FamilyOf(addr) == f {
			return addr, true
		}
	}
	return netip.Addr{}, false
}

// Config is the node-wide dataplane configuration, from the agent's flags.
type Config struct {
	// ClusterCIDRs are the pod network's prefixes (--cluster-cidr), at most one per
	// family. Traffic to a cluster IP from outside them is masqueraded, so that
	// replies come back through this node.
	ClusterCIDRs []netip.Prefix
	// MasqueradeAll masquerades every connection to a cluster IP (--masquerade-all).
	MasqueradeAll bool
	// NodePortAddresses limits node ports to the node addresses inside these
	// prefixes (--nodeport-addresses). A family with no prefix here, or with its
	// all-addresses prefix (0.0.0.0/0, ::/0), serves node ports on every local
	// address.
	NodePortAddresses []netip.Prefix
	// NodePortAddressesPrimary limits node ports to the node's primary address of
	// each family (NodeInfo.PrimaryAddresses), as kube-proxy's
	// --nodeport-addresses=primary; it excludes NodePortAddresses.
	NodePortAddressesPrimary bool
}

// Validate reports whether the configuration can be rendered: every prefix valid,
// and at most one cluster CIDR per family, because a "not from the pod network"
// match is a single negated prefix in every backend.
func (c Config) Validate() error {
	var errs []error
	perFamily := map[Family]int{}
	for _, p := range c.ClusterCIDRs {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("cluster CIDR %q is not a valid prefix", p))
			continue
		}
		perFamily[FamilyOf(p.Addr())]++
	}
	for _, f := range Families {
		if perFamily[f] > 1 {
			errs = append(errs, fmt.Errorf("at most one %s cluster CIDR may be given, got %d", f, perFamily[f]))
		}
	}
	for _, p := range c.NodePortAddresses {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("node port address prefix %q is not valid", p))
		}
	}
	if c.NodePortAddressesPrimary && len(c.NodePortAddresses) > 0 {
		errs = append(errs, errors.New(`node port addresses are either "primary" or prefixes, not both`))
	}
	return errors.Join(errs...)
}
