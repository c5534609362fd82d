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

package agent

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/svcplane/svcplane/dataplane/model"
)

// ParseClusterCIDRs parses --cluster-cidr: comma-separated prefixes, at most one
// per family. Empty means none.
func ParseClusterCIDRs(s string) ([]netip.Prefix, error) {
	out, err := parsePrefixes("--cluster-cidr", s)
	if err != nil {
		return nil, err
	}
	if err := (model.Config{ClusterCIDRs: out}).Validate(); err != nil {
		return nil, fmt.Errorf("invalid --cluster-cidr: %w", err)
	}
	return out, nil
}

// ParseNodePortAddresses parses --nodeport-addresses as kube-proxy does: "primary"
// alone, for the node's primary address of each family, or comma-separated
// prefixes, any number per family, for the node's addresses inside them; a family
// without a prefix, or with 0.0.0.0/0 or ::/0, answers on every local address.
// Empty means every address.
func ParseNodePortAddresses(s string) (prefixes []netip.Prefix, primary bool, err error) {
	if strings.TrimSpace(s) == "primary" {
		return nil, true, nil
	}
	if slices.ContainsFunc(strings.Split(s, ","), func(part string) bool { return strings.TrimSpace(part) == "primary" }) {
		return nil, false, fmt.Errorf(`invalid --nodeport-addresses %q: "primary" goes alone`, s)
	}
	prefixes, err = parsePrefixes("--nodeport-addresses", s)
	return prefixes, false, err
}

// parsePrefixes parses the comma-separated prefixes of flag, masked, skipping
// empty items.
func parsePrefixes(flag, s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("invalid %s %q: %w", flag, part, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
