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
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Fake is a strict, stateful Interface in memory, refusing what the kernel
// refuses, with the errno the kernel returns: a second virtual server with the
// same address, protocol and port (EEXIST), a real server on a missing virtual
// server (ESRCH), a scheduler the kernel lacks (ENOENT), a second real server with
// the same address and port (EEXIST), an address on a missing interface (ENODEV).
// Dump shows its state in `ipvsadm -Ln` form. It counts calls, for benchmarks.
type Fake struct {
	mu sync.Mutex
	// available are the schedulers "loaded": Schedulers unless NewFake says.
	available map[string]bool
	services  map[VirtualKey]*fakeService
	links     map[string]map[netip.Addr]bool
	// local are addresses of the node's other interfaces (not the dummy).
	local   []netip.Addr
	sysctls map[string]string
	tcp     uint32
	tcpFin  uint32
	udp     uint32

	// Calls counts every method call by name; Writes counts the ones that
	// change the kernel. Reset them with ResetCounts.
	Calls  map[string]int
	Writes int
	// FailOn makes the next call of the named method fail with the error, once.
	FailOn map[string]error
}

type fakeService struct {
	vs    VirtualServer
	reals map[netip.AddrPort]*RealServer
}

var _ Interface = &Fake{}

// NewFake returns an empty Fake whose kernel has the given schedulers, or all of
// Schedulers when none are given, and whose node has the local addresses nodeAddrs
// on some interface other than the dummy.
func NewFake(schedulers []string, nodeAddrs ...netip.Addr) *Fake {
	if len(schedulers) == 0 {
		schedulers = Schedulers
	}
	f := &Fake{
		available: map[string]bool{},
		services:  map[VirtualKey]*fakeService{},
		links:     map[string]map[netip.Addr]bool{},
		local:     slices.Clone(nodeAddrs),
		sysctls:   map[string]string{},
		Calls:     map[string]int{},
		FailOn:    map[string]error{},
	}
	for _, s := range schedulers {
		f.available[s] = true
	}
	return f
}

// ResetCounts zeroes Calls and Writes.
func (f *Fake) ResetCounts() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = map[string]int{}
	f.Writes = 0
}

// TotalCalls returns the number of calls since the last ResetCounts.
func (f *Fake) TotalCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.Calls {
		n += c
	}
	return n
}

// call counts a call and returns the failure injected for it, if any.
func (f *Fake) call(name string, write bool) error {
	f.Calls[name]++
	if write {
		f.Writes++
	}
	if err, ok := f.FailOn[name]; ok {
		delete(f.FailOn, name)
		return err
	}
	return nil
}

func sysErr(op string, err unix.Errno) error { return fmt.Errorf("%s: %w", op, err) }

// VirtualServers implements Interface.
func (f *Fake) VirtualServers() ([]*VirtualServer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("VirtualServers", false); err != nil {
		return nil, err
	}
	out := make([]*VirtualServer, 0, len(f.services))
	for _, k := range slices.SortedFunc(maps.Keys(f.services), VirtualKey.Compare) {
		vs := f.services[k].vs
		out = append(out, &vs)
	}
	return out, nil
}

func (f *Fake) checkService(vs *VirtualServer) error {
	if !vs.Addr.IsValid() || vs.Port == 0 {
		return sysErr("invalid virtual server", unix.EINVAL)
	}
	if _, err := protoNumber(vs.Protocol); err != nil {
		return fmt.Errorf("%w: %w", err, unix.EAFNOSUPPORT)
	}
	if !f.available[vs.Scheduler] {
		return sysErr(fmt.Sprintf("scheduler %q not found", vs.Scheduler), unix.ENOENT)
	}
	if vs.Persistent && vs.Timeout == 0 {
		return sysErr("persistent virtual server with timeout 0", unix.EINVAL)
	}
	return nil
}

// AddVirtualServer implements Interface.
func (f *Fake) AddVirtualServer(vs *VirtualServer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("AddVirtualServer", true); err != nil {
		return err
	}
	if err := f.checkService(vs); err != nil {
		return err
	}
	if _, ok := f.services[vs.Key()]; ok {
		return sysErr("virtual server "+vs.Key().String()+" exists", unix.EEXIST)
	}
	f.services[vs.Key()] = &fakeService{vs: *vs, reals: map[netip.AddrPort]*RealServer{}}
	return nil
}

// UpdateVirtualServer implements Interface.
func (f *Fake) UpdateVirtualServer(vs *VirtualServer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("UpdateVirtualServer", true); err != nil {
		return err
	}
	if err := f.checkService(vs); err != nil {
		return err
	}
	s, ok := f.services[vs.Key()]
	if !ok {
		return sysErr("no virtual server "+vs.Key().String(), unix.ESRCH)
	}
	s.vs = *vs
	return nil
}

// DeleteVirtualServer implements Interface.
func (f *Fake) DeleteVirtualServer(vs *VirtualServer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("DeleteVirtualServer", true); err != nil {
		return err
	}
	if _, ok := f.services[vs.Key()]; !ok {
		return sysErr("no virtual server "+vs.Key().String(), unix.ESRCH)
	}
	delete(f.services, vs.Key())
	return nil
}

// RealServers implements Interface.
func (f *Fake) RealServers(vs *VirtualServer) ([]*RealServer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("RealServers", false); err != nil {
		return nil, err
	}
	s, ok := f.services[vs.Key()]
	if !ok {
		return nil, sysErr("no virtual server "+vs.Key().String(), unix.ESRCH)
	}
	out := make([]*RealServer, 0, len(s.reals))
	for _, k := range slices.SortedFunc(maps.Keys(s.reals), netip.AddrPort.Compare) {
		rs := *s.reals[k]
		out = append(out, &rs)
	}
	return out, nil
}

func (f *Fake) realServerOp(name string, vs *VirtualServer, rs *RealServer, op func(s *fakeService, cur *RealServer) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(name, true); err != nil {
		return err
	}
	s, ok := f.services[vs.Key()]
	if !ok {
		return sysErr("no virtual server "+vs.Key().String(), unix.ESRCH)
	}
	if !rs.Addr.IsValid() || rs.Port == 0 || rs.Weight < 0 {
		return sysErr("invalid real server", unix.EINVAL)
	}
	if rs.Addr.Is4() != vs.Addr.Is4() {
		// svcplane forwards by NAT, which cannot cross families.
		return sysErr("real server of another family than its virtual server", unix.EAFNOSUPPORT)
	}
	return op(s, s.reals[rs.AddrPort()])
}

// AddRealServer implements Interface.
func (f *Fake) AddRealServer(vs *VirtualServer, rs *RealServer) error {
	return f.realServerOp("AddRealServer", vs, rs, func(s *fakeService, cur *RealServer) error {
		if cur != nil {
			return sysErr("real server "+rs.AddrPort().String()+" exists", unix.EEXIST)
		}
		s.reals[rs.AddrPort()] = &RealServer{Addr: rs.Addr, Port: rs.Port, Weight: rs.Weight}
		return nil
	})
}

// UpdateRealServer implements Interface.
func (f *Fake) UpdateRealServer(vs *VirtualServer, rs *RealServer) error {
	return f.realServerOp("UpdateRealServer", vs, rs, func(s *fakeService, cur *RealServer) error {
		if cur == nil {
			return sysErr("no real server "+rs.AddrPort().String(), unix.ENOENT)
		}
		cur.Weight = rs.Weight
		return nil
	})
}

// DeleteRealServer implements Interface.
func (f *Fake) DeleteRealServer(vs *VirtualServer, rs *RealServer) error {
	return f.realServerOp("DeleteRealServer", vs, rs, func(s *fakeService, cur *RealServer) error {
		if cur == nil {
			return sysErr("no real server "+rs.AddrPort().String(), unix.ENOENT)
		}
		delete(s.reals, rs.AddrPort())
		return nil
	})
}

// SetConnections sets the connection counts of a real server, as traffic would;
// it panics when there is no such real server.
func (f *Fake) SetConnections(k VirtualKey, rs netip.AddrPort, active, inactive int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.services[k].reals[rs]
	r.ActiveConns, r.InactiveConns = active, inactive
}

// SetTimeouts implements Interface.
func (f *Fake) SetTimeouts(tcp, tcpFin, udp uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("SetTimeouts", true); err != nil {
		return err
	}
	for p, v := range map[*uint32]uint32{&f.tcp: tcp, &f.tcpFin: tcpFin, &f.udp: udp} {
		if v != 0 {
			*p = v
		}
	}
	return nil
}

// EnsureDummy implements Interface.
func (f *Fake) EnsureDummy(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("EnsureDummy", true); err != nil {
		return err
	}
	if f.links[name] == nil {
		f.links[name] = map[netip.Addr]bool{}
	}
	return nil
}

// DeleteDummy implements Interface.
func (f *Fake) DeleteDummy(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("DeleteDummy", true); err != nil {
		return err
	}
	delete(f.links, name)
	return nil
}

// Addresses implements Interface.
func (f *Fake) Addresses(name string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("Addresses", false); err != nil {
		return nil, err
	}
	l, ok := f.links[name]
	if !ok {
		return nil, sysErr("interface "+name, unix.ENODEV)
	}
	return slices.SortedFunc(maps.Keys(l), netip.Addr.Compare), nil
}

// LocalAddresses implements Interface.
func (f *Fake) LocalAddresses() ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("LocalAddresses", false); err != nil {
		return nil, err
	}
	out := slices.Clone(f.local)
	for _, l := range f.links {
		out = append(out, slices.Collect(maps.Keys(l))...)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// AddAddress implements Interface.
func (f *Fake) AddAddress(name string, addr netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("AddAddress", true); err != nil {
		return err
	}
	l, ok := f.links[name]
	if !ok {
		return sysErr("interface "+name, unix.ENODEV)
	}
	if l[addr] {
		return sysErr("address "+addr.String()+" on "+name, unix.EEXIST)
	}
	l[addr] = true
	return nil
}

// DeleteAddress implements Interface.
func (f *Fake) DeleteAddress(name string, addr netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("DeleteAddress", true); err != nil {
		return err
	}
	l, ok := f.links[name]
	if !ok {
		return sysErr("interface "+name, unix.ENODEV)
	}
	if !l[addr] {
		return sysErr("address "+addr.String()+" on "+name, unix.EADDRNOTAVAIL)
	}
	delete(l, addr)
	return nil
}

// SetSysctl implements Interface.
func (f *Fake) SetSysctl(name, value string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("SetSysctl", true); err != nil {
		return err
	}
	f.sysctls[name] = value
	return nil
}

// Dump returns the fake's state: the interfaces and their addresses, the sysctls
// and timeouts written, then the virtual servers as `ipvsadm -Ln` prints them
// (Masq forwarding, weights and connection counts).
func (f *Fake) Dump() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(f.links)) {
		fmt.Fprintf(&b, "link %s (dummy):", name)
		for _, a := range slices.SortedFunc(maps.Keys(f.links[name]), netip.Addr.Compare) {
			fmt.Fprintf(&b, " %s/%d", a, a.BitLen())
		}
		b.WriteString("\n")
	}
	for _, name := range slices.Sorted(maps.Keys(f.sysctls)) {
		fmt.Fprintf(&b, "sysctl %s = %s\n", name, f.sysctls[name])
	}
	if f.tcp != 0 || f.tcpFin != 0 || f.udp != 0 {
		fmt.Fprintf(&b, "Timeout (tcp tcpfin udp): %d %d %d\n", f.tcp, f.tcpFin, f.udp)
	}
	b.WriteString("IP Virtual Server version 1.2.1 (size=4096)\n")
	b.WriteString("Prot LocalAddress:Port Scheduler Flags\n")
	b.WriteString("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
	for _, k := range slices.SortedFunc(maps.Keys(f.services), VirtualKey.Compare) {
		s := f.services[k]
		fmt.Fprintf(&b, "%-4s %s %s", s.vs.Protocol, netip.AddrPortFrom(k.Addr, k.Port), s.vs.Scheduler)
		if s.vs.Persistent {
			fmt.Fprintf(&b, " persistent %d", s.vs.Timeout)
		}
		b.WriteString("\n")
		for _, rk := range slices.SortedFunc(maps.Keys(s.reals), netip.AddrPort.Compare) {
			r := s.reals[rk]
			fmt.Fprintf(&b, "  -> %-28s Masq    %-6d %-10d %d\n", rk, r.Weight, r.ActiveConns, r.InactiveConns)
		}
	}
	return b.String()
}
