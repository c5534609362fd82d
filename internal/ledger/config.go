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

package ledger

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParseServiceCIDRs parses --service-cluster-ip-range: one CIDR, or two
// comma-separated CIDRs of different families for dual-stack (primary first), as
// kube-apiserver accepts it.
func ParseServiceCIDRs(s string) ([]netip.Prefix, error) {
	parts := strings.Split(s, ",")
	if len(parts) > 2 {
		return nil, fmt.Errorf("--service-cluster-ip-range %q: at most two CIDRs (one per IP family) may be given", s)
	}
	cidrs := make([]netip.Prefix, 0, len(parts))
	for _, part := range parts {
		p, err := netip.ParsePrefix(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("--service-cluster-ip-range %q: %w", s, err)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("--service-cluster-ip-range %q: %s is not a network address (did you mean %s?)", s, p, p.Masked())
		}
		cidrs = append(cidrs, p)
	}
	if len(cidrs) == 2 && cidrs[0].Addr().Is4() == cidrs[1].Addr().Is4() {
		return nil, fmt.Errorf("--service-cluster-ip-range %q: dual-stack needs one IPv4 and one IPv6 CIDR", s)
	}
	return cidrs, nil
}
