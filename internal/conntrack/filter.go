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

package conntrack

import (
	"cmp"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Filter selects the conntrack entries of one protocol and family whose original
// direction was sent to one service frontend (an address and port), optionally
// only those that were DNATed to one endpoint: what `conntrack -D` would be given,
// applied over netlink by Netlink.
type Filter struct {
	Family   model.Family
	Protocol model.Protocol
	// Dst is the original destination address. The zero Addr matches any address:
	// a node port open on every local address of the node.
	Dst netip.Addr
	// Port is the original destination port; never 0 in what Stale returns.
	Port uint16
	// DNAT, when valid, matches only entries whose destination was rewritten to
	// it: their reply comes from it. The zero Addr matches translated and
	// untranslated entries alike.
	DNAT netip.Addr
	// Src, when valid, matches only the flow from that address and port: one
	// entry, with Dst and Port. Stale sets it for entries that were not DNATed,
	// which no other option singles out.
	Src netip.AddrPort
}

// validate refuses what no conntrack table holds: an unknown protocol or family,
// an address of the other family. The Fake and Netlink refuse the same filters.
func (f Filter) validate() error {
	if _, ok := protocolNumbers[f.Protocol]; !ok {
		return fmt.Errorf("conntrack filter %s: unknown protocol %q", f, f.Protocol)
	}
	if f.Family != model.IPv4 && f.Family != model.IPv6 {
		return fmt.Errorf("conntrack filter %s: unknown family %v", f, f.Family)
	}
	for _, addr := range []netip.Addr{f.Src.Addr(), f.Dst, f.DNAT} {
		if addr.IsValid() && model.FamilyOf(addr) != f.Family {
			return fmt.Errorf("conntrack filter %s: mismatched address family: %s in a %v filter", f, addr, f.Family)
		}
	}
	return nil
}

// String returns "udp 10.96.0.10:53 -> 10.244.1.5", or "udp from
// 10.244.2.5:40000 to 10.96.0.10:53" for one flow, for logs; "*" stands for any
// address.
func (f Filter) String() string {
	dst := "*"
	if f.Dst.IsValid() {
		dst = f.Dst.String()
	}
	if f.Family == model.IPv6 {
		dst = "[" + dst + "]"
	}
	s := strings.ToLower(string(f.Protocol)) + " "
	if f.Src.IsValid() {
		s += "from " + f.Src.String() + " to "
	}
	s += dst + ":" + strconv.Itoa(int(f.Port))
	if f.DNAT.IsValid() {
		s += " -> " + f.DNAT.String()
	}
	return s
}

// Compare orders filters by family, protocol, destination, port, DNAT address and
// source.
func (f Filter) Compare(o Filter) int {
	return cmp.Or(
		cmp.Compare(f.Family, o.Family),
		cmp.Compare(f.Protocol, o.Protocol),
		f.Dst.Compare(o.Dst),
		cmp.Compare(f.Port, o.Port),
		f.DNAT.Compare(o.DNAT),
		f.Src.Compare(o.Src),
	)
}
