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
	"net/netip"
	"strconv"
	"strings"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Filter selects the conntrack entries of one protocol and family whose original
// direction was sent to one service frontend (an address and port), optionally
// only those that were DNATed to one endpoint. It is what `conntrack -D` is given.
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

// Args returns the conntrack options that select f's entries, after the command
// (-D, -L): "-p udp --orig-dst 10.96.0.10 --orig-port-dst 53 --reply-src
// 10.244.1.5", preceded by "-f ipv6" for IPv6 (conntrack's default family is
// IPv4, and it refuses an address of the other one). DNAT is matched as the
// reply's source, which is the DNAT target: conntrack-tools 1.4.7 ignores the
// address of --dst-nat for IPv6 and would select every DNATed entry.
func (f Filter) Args() []string {
	var args []string
	if f.Family == model.IPv6 {
		args = append(args, "-f", "ipv6")
	}
	args = append(args, "-p", strings.ToLower(string(f.Protocol)))
	if f.Src.IsValid() {
		args = append(args, "--orig-src", f.Src.Addr().String(), "--orig-port-src", strconv.Itoa(int(f.Src.Port())))
	}
	if f.Dst.IsValid() {
		args = append(args, "--orig-dst", f.Dst.String())
	}
	if f.Port != 0 {
		args = append(args, "--orig-port-dst", strconv.Itoa(int(f.Port)))
	}
	if f.DNAT.IsValid() {
		args = append(args, "--reply-src", f.DNAT.String())
	}
	return args
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
