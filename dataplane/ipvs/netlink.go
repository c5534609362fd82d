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
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	mobyipvs "github.com/moby/ipvs"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// persistentFlag is IP_VS_SVC_F_PERSISTENT (include/uapi/linux/ip_vs.h).
const persistentFlag = 0x0001

// Netlink is the Interface of the running kernel: github.com/moby/ipvs for IPVS
// and github.com/vishvananda/netlink for links and addresses. Its zero value is
// ready; the IPVS socket opens on first use.
type Netlink struct {
	mu     sync.Mutex
	handle *mobyipvs.Handle
}

var _ Interface = &Netlink{}

// ipvsHandle returns the IPVS netlink handle, opening it first. It fails when the
// kernel has no IPVS (the ip_vs module is not loaded and cannot be).
func (n *Netlink) ipvsHandle() (*mobyipvs.Handle, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.handle != nil {
		return n.handle, nil
	}
	h, err := mobyipvs.New("")
	if err != nil {
		return nil, fmt.Errorf("open the IPVS netlink socket: %w", err)
	}
	n.handle = h
	return h, nil
}

// Close closes the IPVS socket.
func (n *Netlink) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.handle != nil {
		n.handle.Close()
		n.handle = nil
	}
}

func toService(vs *VirtualServer) (*mobyipvs.Service, error) {
	proto, err := protoNumber(vs.Protocol)
	if err != nil {
		return nil, err
	}
	s := &mobyipvs.Service{
		Address:   net.IP(vs.Addr.AsSlice()),
		Protocol:  proto,
		Port:      vs.Port,
		SchedName: vs.Scheduler,
	}
	// The netmask only groups clients of a persistent service; ipvsadm's defaults
	// (one client per address) are what ClientIP affinity means.
	if vs.Addr.Is4() {
		s.AddressFamily, s.Netmask = unix.AF_INET, 0xffffffff
	} else {
		s.AddressFamily, s.Netmask = unix.AF_INET6, 128
	}
	if vs.Persistent {
		s.Flags, s.Timeout = persistentFlag, vs.Timeout
	}
	return s, nil
}

func fromService(s *mobyipvs.Service) *VirtualServer {
	addr, _ := netip.AddrFromSlice(s.Address)
	vs := &VirtualServer{Addr: addr.Unmap(), Protocol: protoName(s.Protocol), Port: s.Port, Scheduler: s.SchedName}
	if s.AddressFamily == unix.AF_INET6 {
		vs.Addr = addr
	}
	if s.Flags&persistentFlag != 0 {
		vs.Persistent, vs.Timeout = true, s.Timeout
	}
	return vs
}

func toDestination(rs *RealServer) *mobyipvs.Destination {
	d := &mobyipvs.Destination{
		Address:         net.IP(rs.Addr.AsSlice()),
		Port:            rs.Port,
		Weight:          rs.Weight,
		ConnectionFlags: mobyipvs.ConnectionFlagMasq,
		AddressFamily:   unix.AF_INET,
	}
	if rs.Addr.Is6() {
		d.AddressFamily = unix.AF_INET6
	}
	return d
}

// VirtualServers implements Interface. Firewall-mark services, which have no
// address, are left out: svcplane makes none.
func (n *Netlink) VirtualServers() ([]*VirtualServer, error) {
	h, err := n.ipvsHandle()
	if err != nil {
		return nil, err
	}
	svcs, err := h.GetServices()
	if err != nil {
		return nil, err
	}
	out := make([]*VirtualServer, 0, len(svcs))
	for _, s := range svcs {
		if s.FWMark != 0 {
			continue
		}
		out = append(out, fromService(s))
	}
	return out, nil
}

func (n *Netlink) do(vs *VirtualServer, f func(h *mobyipvs.Handle, s *mobyipvs.Service) error) error {
	h, err := n.ipvsHandle()
	if err != nil {
		return err
	}
	s, err := toService(vs)
	if err != nil {
		return err
	}
	return f(h, s)
}

// AddVirtualServer implements Interface.
func (n *Netlink) AddVirtualServer(vs *VirtualServer) error {
	return n.do(vs, func(h *mobyipvs.Handle, s *mobyipvs.Service) error { return h.NewService(s) })
}

// UpdateVirtualServer implements Interface.
func (n *Netlink) UpdateVirtualServer(vs *VirtualServer) error {
	return n.do(vs, func(h *mobyipvs.Handle, s *mobyipvs.Service) error { return h.UpdateService(s) })
}

// DeleteVirtualServer implements Interface.
func (n *Netlink) DeleteVirtualServer(vs *VirtualServer) error {
	return n.do(vs, func(h *mobyipvs.Handle, s *mobyipvs.Service) error { return h.DelService(s) })
}

// RealServers implements Interface.
func (n *Netlink) RealServers(vs *VirtualServer) ([]*RealServer, error) {
	var out []*RealServer
	err := n.do(vs, func(h *mobyipvs.Handle, s *mobyipvs.Service) error {
		dests, err := h.GetDestinations(s)
		if err != nil {
			return err
		}
		for _, d := range dests {
			addr, _ := netip.AddrFromSlice(d.Address)
			if d.AddressFamily == unix.AF_INET {
				addr = addr.Unmap()
			}
			out = append(out, &RealServer{Addr: addr, Port: d.Port, Weight: d.Weight,
				ActiveConns: d.ActiveConnections, InactiveConns: d.InactiveConnections})
		}
		return nil
	})
	return out, err
}

// AddRealServer implements Interface.
func (n *Netlink) AddRealServer(vs *VirtualServer, rs *RealServer) error {
	return n.do(vs, func(h *mobyipvs.Handle, s *mobyipvs.Service) error { return h.NewDestination(s, toDestination(rs)) })
}

// UpdateRealServer implements Interface.
func (n *Netlink) UpdateRealServer(vs *VirtualServer, rs *RealServer) error {
	return n.do(vs, func(h *mobyipvs.Handle, s *mobyipvs.Service) error { return h.UpdateDestination(s, toDestination(rs)) })
}

// DeleteRealServer implements Interface.
func (n *Netlink) DeleteRealServer(vs *VirtualServer, rs *RealServer) error {
	return n.do(vs, func(h *mobyipvs.Handle, s *mobyipvs.Service) error { return h.DelDestination(s, toDestination(rs)) })
}

// SetTimeouts implements Interface.
func (n *Netlink) SetTimeouts(tcp, tcpFin, udp uint32) error {
	h, err := n.ipvsHandle()
	if err != nil {
		return err
	}
	return h.SetConfig(&mobyipvs.Config{
		TimeoutTCP:    seconds(tcp),
		TimeoutTCPFin: seconds(tcpFin),
		TimeoutUDP:    seconds(udp),
	})
}

// EnsureDummy implements Interface.
func (n *Netlink) EnsureDummy(name string) error {
	if _, err := netlink.LinkByName(name); err == nil {
		return nil
	}
	err := netlink.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name}})
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

// DeleteDummy implements Interface.
func (n *Netlink) DeleteDummy(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil
		}
		return err
	}
	return netlink.LinkDel(link)
}

// Addresses implements Interface.
func (n *Netlink) Addresses(name string) ([]netip.Addr, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil, fmt.Errorf("interface %s: %w", name, unix.ENODEV)
		}
		return nil, err
	}
	return addrList(link)
}

// LocalAddresses implements Interface.
func (n *Netlink) LocalAddresses() ([]netip.Addr, error) { return addrList(nil) }

func addrList(link netlink.Link) ([]netip.Addr, error) {
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			if a.IP.To4() != nil {
				ip = ip.Unmap()
			}
			out = append(out, ip)
		}
	}
	return out, nil
}

func hostAddr(addr netip.Addr) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(addr.BitLen(), addr.BitLen())}}
}

// AddAddress implements Interface.
func (n *Netlink) AddAddress(name string, addr netip.Addr) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	a := hostAddr(addr)
	if addr.Is6() {
		// Duplicate address detection would keep the address tentative, and
		// unusable, on an interface that never comes up.
		a.Flags = unix.IFA_F_NODAD
	}
	return netlink.AddrAdd(link, a)
}

// DeleteAddress implements Interface.
func (n *Netlink) DeleteAddress(name string, addr netip.Addr) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	return netlink.AddrDel(link, hostAddr(addr))
}

// SetSysctl implements Interface.
func (n *Netlink) SetSysctl(name, value string) error {
	if strings.Contains(name, "..") {
		return fmt.Errorf("invalid sysctl %q", name)
	}
	return os.WriteFile(filepath.Join("/proc/sys", name), []byte(value+"\n"), 0o644)
}
