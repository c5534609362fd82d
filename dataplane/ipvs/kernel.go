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

package ipvs

import (
	"cmp"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Names the IPVS mode owns on a node.
const (
	// DummyInterface holds every cluster IP, external IP and load-balancer IP the
	// node serves, so that the kernel treats them as local and IPVS, which hooks
	// into INPUT, sees their packets. It stays down, as kube-proxy's kube-ipvs0:
	// an IPv4 address on a down interface still gets its local route, and the
	// node never answers ARP for it on a link.
	DummyInterface = "svcplane0"

	// DefaultScheduler is the scheduler of every virtual server unless
	// --ipvs-scheduler names another.
	DefaultScheduler = "rr"
)

// Schedulers lists the IPVS schedulers Linux ships (net/netfilter/ipvs/ip_vs_*.c).
// A node's kernel may lack some; the kernel then refuses the virtual server.
var Schedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"}

// VirtualServer is one IPVS service: an address, protocol and port whose
// connections the kernel spreads over real servers.
type VirtualServer struct {
	Addr     netip.Addr
	Protocol model.Protocol
	Port     uint16
	// Scheduler picks a real server for each new connection.
	Scheduler string
	// Persistent sends a client's connections to the real server its last one
	// used, for Timeout seconds after that connection ended (ClientIP affinity).
	Persistent bool
	Timeout    uint32
}

// Key returns what identifies the virtual server in the kernel.
func (vs *VirtualServer) Key() VirtualKey {
	return VirtualKey{Addr: vs.Addr, Protocol: vs.Protocol, Port: vs.Port}
}

// VirtualKey identifies a virtual server: its address, protocol and port.
type VirtualKey struct {
	Addr     netip.Addr
	Protocol model.Protocol
	Port     uint16
}

// String returns "TCP 10.96.0.10:80", as ipvsadm lists it.
func (k VirtualKey) String() string {
	return string(k.Protocol) + " " + netip.AddrPortFrom(k.Addr, k.Port).String()
}

// Compare orders keys by address, port and protocol.
func (k VirtualKey) Compare(o VirtualKey) int {
	return cmp.Or(k.Addr.Compare(o.Addr), cmp.Compare(k.Port, o.Port), cmp.Compare(k.Protocol, o.Protocol))
}

// RealServer is one destination of a virtual server; svcplane forwards to it by
// masquerading (NAT), the only method that reaches a pod on another node.
type RealServer struct {
	Addr netip.Addr
	Port uint16
	// Weight 0 takes the server out of the rotation while its connections drain.
	Weight int
	// ActiveConns and InactiveConns are the kernel's connection counts; read only.
	ActiveConns, InactiveConns int
}

// AddrPort returns the real server's address and port, which identify it within
// its virtual server.
func (rs *RealServer) AddrPort() netip.AddrPort { return netip.AddrPortFrom(rs.Addr, rs.Port) }

// Interface is the kernel the IPVS backend programs: IPVS over generic netlink, the
// dummy interface and its addresses over rtnetlink, and a few sysctls. Methods fail
// as the kernel does: adding what exists (EEXIST), changing or deleting what does
// not (ENOENT, ESRCH for a missing virtual server), a scheduler the kernel lacks
// (ENOENT).
type Interface interface {
	// VirtualServers lists every virtual server, svcplane's or not.
	VirtualServers() ([]*VirtualServer, error)
	AddVirtualServer(vs *VirtualServer) error
	// UpdateVirtualServer changes the scheduler and persistence of an existing one.
	UpdateVirtualServer(vs *VirtualServer) error
	DeleteVirtualServer(vs *VirtualServer) error
	// RealServers lists the real servers of vs with their connection counts.
	RealServers(vs *VirtualServer) ([]*RealServer, error)
	AddRealServer(vs *VirtualServer, rs *RealServer) error
	// UpdateRealServer changes the weight of an existing real server.
	UpdateRealServer(vs *VirtualServer, rs *RealServer) error
	DeleteRealServer(vs *VirtualServer, rs *RealServer) error
	// SetTimeouts sets the kernel-wide IPVS connection timeouts; zero keeps one.
	SetTimeouts(tcp, tcpFin, udp uint32) error

	// EnsureDummy creates the dummy interface name unless it exists.
	EnsureDummy(name string) error
	// DeleteDummy deletes it; deleting a missing one is no error.
	DeleteDummy(name string) error
	// Addresses lists the addresses of interface name; ENODEV when it is missing.
	Addresses(name string) ([]netip.Addr, error)
	// LocalAddresses lists the addresses of every interface of the node.
	LocalAddresses() ([]netip.Addr, error)
	AddAddress(name string, addr netip.Addr) error
	DeleteAddress(name string, addr netip.Addr) error

	// SetSysctl writes value to /proc/sys/<name>, name spelled with slashes.
	SetSysctl(name, value string) error
}

// protoNumber returns the IP protocol number of p.
func protoNumber(p model.Protocol) (uint16, error) {
	switch p {
	case model.TCP:
		return 6, nil
	case model.UDP:
		return 17, nil
	case model.SCTP:
		return 132, nil
	}
	return 0, fmt.Errorf("protocol %q is not supported by IPVS", p)
}

// protoName returns the model protocol of an IP protocol number.
func protoName(n uint16) model.Protocol {
	switch n {
	case 6:
		return model.TCP
	case 17:
		return model.UDP
	case 132:
		return model.SCTP
	}
	return model.Protocol("proto-" + strconv.Itoa(int(n)))
}

// seconds converts a timeout in seconds to a time.Duration.
func seconds(s uint32) time.Duration { return time.Duration(s) * time.Second }
