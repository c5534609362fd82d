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
	return info
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
	return errors.Join(errs...)
}
