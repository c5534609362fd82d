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
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Executor deletes conntrack entries.
type Executor interface {
	// Delete deletes the entries f selects and returns how many it deleted.
	// Finding none is not an error. An error means the kernel's table could not
	// be searched or changed; some entries may have been deleted.
	Delete(ctx context.Context, f Filter) (int, error)
	// List returns the entries of one family and protocol.
	List(ctx context.Context, family model.Family, protocol model.Protocol) ([]Entry, error)
}

// dumpAttempts bounds how often a table dump the kernel interrupted (the table
// changed while it was read) is started again before that is an error.
const dumpAttempts = 3

// Netlink is the Executor that reads and changes the kernel's conntrack table over
// netlink (ctnetlink), as kube-proxy does: no conntrack CLI is needed. Each
// network namespace has its own table; a Netlink works on the table of the
// namespace it was opened in.
type Netlink struct {
	handle *netlink.Handle
}

var _ Executor = &Netlink{}

// NewNetlink opens a netlink socket for the conntrack table of the calling
// process's network namespace. It fails when the kernel has no ctnetlink or the
// process may not use it, which the agent reports rather than run without
// clearing stale flows.
func NewNetlink() (*Netlink, error) {
	h, err := netlink.NewHandle(unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("opening a netfilter netlink socket for conntrack: %w", err)
	}
	return &Netlink{handle: h}, nil
}

// NewNetlinkAt opens a netlink socket for the conntrack table of the network
// namespace ns, whatever namespace the caller is in.
func NewNetlinkAt(ns netns.NsHandle) (*Netlink, error) {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("opening a netfilter netlink socket for conntrack in %s: %w", ns, err)
	}
	return &Netlink{handle: h}, nil
}

// Close closes the netlink socket.
func (n *Netlink) Close() {
	n.handle.Close()
}

// Delete deletes the entries of f's family that f selects, in one dump of that
// family's table. A dump the kernel interrupted is tried again; entries deleted by
// an earlier try are counted once, since they are gone from the next dump.
func (n *Netlink) Delete(ctx context.Context, f Filter) (int, error) {
	flt, err := f.netlinkFilter()
	if err != nil {
		return 0, err
	}
	total := 0
	for attempt := 1; ; attempt++ {
		deleted, err := n.handle.ConntrackDeleteFilters(netlink.ConntrackTable, inetFamily(f.Family), flt)
		total += int(deleted)
		if err == nil {
			return total, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) || attempt == dumpAttempts || ctx.Err() != nil {
			return total, fmt.Errorf("deleting conntrack entries %s: %w", f, err)
		}
	}
}

// List returns the entries of family and protocol in the table.
func (n *Netlink) List(ctx context.Context, family model.Family, protocol model.Protocol) ([]Entry, error) {
	proto, ok := protocolNumbers[protocol]
	if !ok {
		return nil, fmt.Errorf("listing conntrack entries: unknown protocol %q", protocol)
	}
	var flows []*netlink.ConntrackFlow
	for attempt := 1; ; attempt++ {
		var err error
		flows, err = n.handle.ConntrackTableList(netlink.ConntrackTable, inetFamily(family))
		if err == nil {
			break
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) || attempt == dumpAttempts || ctx.Err() != nil {
			return nil, fmt.Errorf("listing %s %s conntrack entries: %w", family, protocol, err)
		}
	}
	var out []Entry
	for _, flow := range flows {
		if flow.Forward.Protocol != proto {
			continue
		}
		if e, ok := entryOf(family, protocol, flow); ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// protocolNumbers are the IP protocol numbers of the protocols a Filter selects.
var protocolNumbers = map[model.Protocol]uint8{
	model.TCP:  unix.IPPROTO_TCP,
	model.UDP:  unix.IPPROTO_UDP,
	model.SCTP: unix.IPPROTO_SCTP,
}

func inetFamily(f model.Family) netlink.InetFamily {
	if f == model.IPv6 {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// netlinkFilter returns the netlink filter that selects f's entries, once
// validate accepted f. DNAT is matched as the reply's source, which is where a
// DNATed flow's replies come from, and an untranslated flow's original
// destination.
func (f Filter) netlinkFilter() (*netlink.ConntrackFilter, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	proto := protocolNumbers[f.Protocol]
	flt := &netlink.ConntrackFilter{}
	// Each attribute is added once to a new filter, after the protocol that
	// ports need: none of these can fail.
	_ = flt.AddProtocol(proto)
	if f.Src.IsValid() {
		_ = flt.AddIP(netlink.ConntrackOrigSrcIP, net.IP(f.Src.Addr().AsSlice()))
		_ = flt.AddPort(netlink.ConntrackOrigSrcPort, f.Src.Port())
	}
	if f.Dst.IsValid() {
		_ = flt.AddIP(netlink.ConntrackOrigDstIP, net.IP(f.Dst.AsSlice()))
	}
	if f.Port != 0 {
		_ = flt.AddPort(netlink.ConntrackOrigDstPort, f.Port)
	}
	if f.DNAT.IsValid() {
		_ = flt.AddIP(netlink.ConntrackReplySrcIP, net.IP(f.DNAT.AsSlice()))
	}
	return flt, nil
}

// entryOf returns the Entry of a flow of family and protocol: a reply from
// elsewhere than the original destination means the flow was DNATed there.
func entryOf(family model.Family, protocol model.Protocol, flow *netlink.ConntrackFlow) (Entry, bool) {
	src, ok1 := addrPort(flow.Forward.SrcIP, flow.Forward.SrcPort)
	dst, ok2 := addrPort(flow.Forward.DstIP, flow.Forward.DstPort)
	reply, ok3 := addrPort(flow.Reverse.SrcIP, flow.Reverse.SrcPort)
	if !ok1 || !ok2 || !ok3 || model.FamilyOf(dst.Addr()) != family {
		return Entry{}, false
	}
	e := Entry{Family: family, Protocol: protocol, Src: src, Dst: dst}
	if reply != dst {
		e.DNAT = reply
	}
	return e, true
}

func addrPort(ip net.IP, port uint16) (netip.AddrPort, bool) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), port), true
}
