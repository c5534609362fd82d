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
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"
	"k8s.io/utils/clock"
	"sigs.k8s.io/knftables"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Defaults of Options.
const (
	// DefaultGracefulTimeout bounds how long a removed TCP or SCTP endpoint keeps
	// its real server at weight 0 while its connections drain.
	DefaultGracefulTimeout = 5 * time.Minute
	// DefaultNodePortMin and DefaultNodePortMax are the node port range of the
	// manager's allocator (--service-node-port-range).
	DefaultNodePortMin = 30000
	DefaultNodePortMax = 32767
)

// Options configures a Backend.
type Options struct {
	// Interface reaches the kernel; required.
	Interface Interface
	// Families are the IP families the backend programs; both when empty.
	Families []model.Family
	// Scheduler is the IPVS scheduler of every virtual server; DefaultScheduler
	// when empty. It must be one of Schedulers; the kernel may still lack it,
	// which the first Sync reports.
	Scheduler string
	// StrictARP makes the node answer ARP only for addresses of the interface the
	// request came in on (arp_ignore=1, arp_announce=2), so that it never answers
	// for the addresses on the dummy interface; MetalLB's L2 mode needs it.
	StrictARP bool
	// TCPTimeout, TCPFinTimeout and UDPTimeout are IPVS's idle timeouts of
	// established TCP, closing TCP and UDP connections; zero keeps the kernel's.
	TCPTimeout, TCPFinTimeout, UDPTimeout time.Duration
	// GracefulTimeout bounds how long a removed TCP or SCTP endpoint drains at
	// weight 0; DefaultGracefulTimeout when zero.
	GracefulTimeout time.Duration
	// NodePortMin and NodePortMax are the node port range. A virtual server on a
	// node address (not on the dummy interface) is svcplane's only when its port
	// is in it: the range belongs to Services, as kube-proxy assumes too. The
	// defaults are DefaultNodePortMin and DefaultNodePortMax.
	NodePortMin, NodePortMax uint16
	// Clock is the clock of graceful termination; the real one when nil.
	Clock clock.PassiveClock
	// NFT are the filter tables (FilterTable) of each family, for what IPVS
	// cannot do: masquerade, loadBalancerSourceRanges, DROP. A family without one
	// gets no filter stage (tests of the IPVS objects alone); NewForNode always
	// sets them.
	NFT map[model.Family]knftables.Interface
}

// SyncStats describes the last Sync, for logs, tests and benchmarks.
type SyncStats struct {
	// Full reports whether it was a full sync.
	Full bool
	// VirtualServers is the number of virtual servers desired; Changed the number
	// the sync wrote to (added, updated or whose real servers changed); Deleted
	// the number it removed.
	VirtualServers, Changed, Deleted int
	// Drained is the number of real servers removed after draining.
	Drained int
	// Duration is how long the sync took.
	Duration time.Duration
	// Err is the sync's error.
	Err error
}

// Backend is the IPVS backend: a dataplane.Backend and dataplane.FullSyncer. Every
// cluster IP, external IP and load-balancer IP is bound to DummyInterface, and
// every address, protocol and port a Service answers on is a virtual server whose
// real servers are the endpoints model.Decide chose for that traffic. It is safe
// for concurrent use, though syncs are serialised.
type Backend struct {
	kernel   Interface
	families []model.Family
	opts     Options

	mu sync.Mutex
	// applied is what the backend wrote and believes the kernel holds, by
	// virtual server; nil when unknown (at start, after an error or Cleanup),
	// which makes the next Sync a full one that reads the kernel first.
	applied map[VirtualKey]*appliedServer
	// bound are the addresses on the dummy interface.
	bound    map[netip.Addr]bool
	needFull bool
	last     SyncStats
	// filters are the filter tables, by family.
	filters map[model.Family]*filterTable
}

// appliedServer is one virtual server as the kernel holds it.
type appliedServer struct {
	vs VirtualServer
	// reals are its real servers by address and port, with their weight.
	reals map[netip.AddrPort]int
	// draining are the real servers at weight 0 and when they must go at the
	// latest.
	draining map[netip.AddrPort]time.Time
}

// desiredServer is one virtual server a Sync wants.
type desiredServer struct {
	vs    VirtualServer
	reals []netip.AddrPort
	// bind reports whether vs.Addr belongs on the dummy interface.
	bind bool
}

// New returns a Backend. Its first Sync is a full one.
func New(opts Options) (*Backend, error) {
	if opts.Interface == nil {
		return nil, errors.New("ipvs backend: an Interface is required")
	}
	if opts.Scheduler == "" {
		opts.Scheduler = DefaultScheduler
	}
	if !slices.Contains(Schedulers, opts.Scheduler) {
		return nil, fmt.Errorf("invalid --ipvs-scheduler %q: one of %v", opts.Scheduler, Schedulers)
	}
	if opts.GracefulTimeout == 0 {
		opts.GracefulTimeout = DefaultGracefulTimeout
	}
	if opts.NodePortMin == 0 && opts.NodePortMax == 0 {
		opts.NodePortMin, opts.NodePortMax = DefaultNodePortMin, DefaultNodePortMax
	}
	if opts.NodePortMin > opts.NodePortMax {
		return nil, fmt.Errorf("ipvs backend: node port range %d-%d is empty", opts.NodePortMin, opts.NodePortMax)
	}
	for _, d := range []time.Duration{opts.TCPTimeout, opts.TCPFinTimeout, opts.UDPTimeout} {
		if d < 0 || d%time.Second != 0 {
			return nil, fmt.Errorf("ipvs backend: timeout %s is not a whole, non-negative number of seconds", d)
		}
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	families := slices.Clone(opts.Families)
	if len(families) == 0 {
		families = slices.Clone(model.Families)
	}
	b := &Backend{kernel: opts.Interface, families: families, opts: opts, needFull: true, filters: map[model.Family]*filterTable{}}
	for f, nft := range opts.NFT {
		if !slices.Contains(families, f) {
			return nil, fmt.Errorf("ipvs backend: a filter table for %v, which is not programmed", f)
		}
		b.filters[f] = &filterTable{family: f, nft: nft}
	}
	return b, nil
}

// RequestFullSync implements dataplane.FullSyncer: the next Sync reads the kernel
// and repairs every virtual server, real server and address of svcplane's.
func (b *Backend) RequestFullSync() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.needFull = true
}

// LastSync returns the stats of the last Sync.
func (b *Backend) LastSync() SyncStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// Sync implements dataplane.Backend. A partial sync (the common case) compares
// desired with its record of what it applied and writes only the virtual servers
// that differ: a change to one Service costs netlink calls for that Service's
// virtual servers alone. A full sync (the first, after RequestFullSync and after
// an error) lists the kernel's virtual servers and addresses first and repairs
// every difference. Real servers of removed endpoints drain at weight 0 (TCP, SCTP)
// or go at once (UDP, whose stale conntrack entries the agent's conntrack
// decorator clears); each sync removes those that drained.
func (b *Backend) Sync(ctx context.Context, desired *model.State) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	start := b.opts.Clock.Now()
	stats := SyncStats{}
	err := b.sync(ctx, desired, &stats)
	if err != nil {
		b.needFull = true
	}
	stats.Duration = b.opts.Clock.Now().Sub(start)
	stats.Err = err
	b.last = stats
	return err
}

func (b *Backend) sync(ctx context.Context, desired *model.State, stats *SyncStats) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	want, filters, err := b.desired(desired)
	if err != nil {
		return err
	}
	stats.VirtualServers = len(want)
	full := b.needFull || b.applied == nil
	stats.Full = full
	if full {
		if err := b.setup(); err != nil {
			return err
		}
		if err := b.readKernel(); err != nil {
			return err
		}
		b.needFull = false
	}

	var errs []error
	// The filter stage first, so that a new virtual server is never reachable
	// before its source ranges and drop rules are in place.
	for _, f := range b.families {
		ft := b.filters[f]
		if ft == nil {
			continue
		}
		if _, err := ft.sync(ctx, filters[f], full); err != nil {
			// IPVS alone would let through what the filter must stop.
			return err
		}
	}
	// Addresses next: a virtual server on an address that is not local yet
	// would see no packets.
	wantBound := map[netip.Addr]bool{}
	for _, d := range want {
		if d.bind {
			wantBound[d.vs.Addr] = true
		}
	}
	// Only what differs is sorted (for a deterministic order of calls): sorting
	// every key would cost a partial sync of 10,000 ports more than comparing.
	for _, a := range sortedAddrs(wantBound, func(a netip.Addr) bool { return !b.bound[a] }) {
		if err := b.kernel.AddAddress(DummyInterface, a); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("bind %s to %s: %w", a, DummyInterface, err))
			continue
		}
		b.bound[a] = true
	}

	var differ []VirtualKey
	for k, d := range want {
		if !b.inSync(d) {
			differ = append(differ, k)
		}
	}
	slices.SortFunc(differ, VirtualKey.Compare)
	for _, k := range differ {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		changed, err := b.syncServer(want[k])
		if changed {
			stats.Changed++
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	var stale []VirtualKey
	for k := range b.applied {
		if _, ok := want[k]; !ok {
			stale = append(stale, k)
		}
	}
	slices.SortFunc(stale, VirtualKey.Compare)
	for _, k := range stale {
		a := b.applied[k]
		if err := b.kernel.DeleteVirtualServer(&a.vs); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete virtual server %s: %w", k, err))
			continue
		}
		delete(b.applied, k)
		stats.Deleted++
	}
	for _, a := range sortedAddrs(b.bound, func(a netip.Addr) bool { return !wantBound[a] }) {
		if err := b.kernel.DeleteAddress(DummyInterface, a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			errs = append(errs, fmt.Errorf("unbind %s from %s: %w", a, DummyInterface, err))
			continue
		}
		delete(b.bound, a)
	}
	n, err := b.drain()
	stats.Drained = n
	if err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// sortedAddrs returns the addresses of set that keep accepts, sorted.
func sortedAddrs(set map[netip.Addr]bool, keep func(netip.Addr) bool) []netip.Addr {
	var out []netip.Addr
	for a := range set {
		if keep(a) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// inSync reports whether the record of what was applied already matches d: the
// same virtual server, every wanted real server at weight 1, and every other one
// draining. A partial sync writes only the virtual servers that are not.
func (b *Backend) inSync(d *desiredServer) bool {
	a := b.applied[d.vs.Key()]
	if a == nil || a.vs != d.vs || len(a.reals) != len(d.reals)+len(a.draining) {
		return false
	}
	for _, ap := range d.reals {
		if a.reals[ap] != 1 {
			return false
		}
	}
	return true
}

// setup creates the dummy interface and writes the sysctls and timeouts IPVS
// needs, as every full sync does (someone may have changed them).
func (b *Backend) setup() error {
	if err := b.kernel.EnsureDummy(DummyInterface); err != nil {
		return fmt.Errorf("create the dummy interface %s: %w", DummyInterface, err)
	}
	sysctls := [][2]string{
		// Let netfilter track IPVS connections, so that the conntrack cleanup of
		// UDP flows and any SNAT or filter rule see them.
		{"net/ipv4/vs/conntrack", "1"},
		// Drop a connection's packets as soon as its real server is deleted,
		// rather than blackholing them until the entry times out.
		{"net/ipv4/vs/expire_nodest_conn", "1"},
		// Expire a persistence (affinity) template whose real server is at
		// weight 0, so that affinity moves a client off a draining endpoint.
		{"net/ipv4/vs/expire_quiescent_template", "1"},
	}
	if b.opts.StrictARP {
		sysctls = append(sysctls,
			[2]string{"net/ipv4/conf/all/arp_ignore", "1"},
			[2]string{"net/ipv4/conf/all/arp_announce", "2"})
	}
	for _, s := range sysctls {
		if err := b.kernel.SetSysctl(s[0], s[1]); err != nil {
			return fmt.Errorf("set sysctl %s=%s: %w", s[0], s[1], err)
		}
	}
	if b.opts.TCPTimeout != 0 || b.opts.TCPFinTimeout != 0 || b.opts.UDPTimeout != 0 {
		if err := b.kernel.SetTimeouts(uint32(b.opts.TCPTimeout/time.Second), uint32(b.opts.TCPFinTimeout/time.Second),
			uint32(b.opts.UDPTimeout/time.Second)); err != nil {
			return fmt.Errorf("set the IPVS timeouts: %w", err)
		}
	}
	return nil
}

// readKernel replaces the record of what was applied with what the kernel holds
// of svcplane's: its virtual servers with their real servers, and the addresses
// on the dummy interface. Drain deadlines of real servers already at weight 0 are
// kept, or start now for ones an earlier agent left.
func (b *Backend) readKernel() error {
	addrs, err := b.kernel.Addresses(DummyInterface)
	if err != nil {
		return fmt.Errorf("list the addresses of %s: %w", DummyInterface, err)
	}
	bound := map[netip.Addr]bool{}
	for _, a := range addrs {
		bound[a] = true
	}
	local, err := b.kernel.LocalAddresses()
	if err != nil {
		return fmt.Errorf("list the node's addresses: %w", err)
	}
	servers, err := b.kernel.VirtualServers()
	if err != nil {
		return fmt.Errorf("list the IPVS virtual servers: %w", err)
	}
	now := b.opts.Clock.Now()
	applied := map[VirtualKey]*appliedServer{}
	for _, vs := range servers {
		if !b.family(vs.Addr) || !b.ours(vs, bound, local) {
			continue
		}
		reals, err := b.kernel.RealServers(vs)
		if err != nil {
			return fmt.Errorf("list the real servers of %s: %w", vs.Key(), err)
		}
		a := &appliedServer{vs: *vs, reals: map[netip.AddrPort]int{}, draining: map[netip.AddrPort]time.Time{}}
		var old *appliedServer
		if b.applied != nil {
			old = b.applied[vs.Key()]
		}
		for _, rs := range reals {
			a.reals[rs.AddrPort()] = rs.Weight
			if rs.Weight == 0 {
				a.draining[rs.AddrPort()] = now.Add(b.opts.GracefulTimeout)
				if old != nil {
					if d, ok := old.draining[rs.AddrPort()]; ok {
						a.draining[rs.AddrPort()] = d
					}
				}
			}
		}
		applied[vs.Key()] = a
	}
	// Only addresses of the families this backend programs are its to remove.
	for a := range bound {
		if !b.family(a) {
			delete(bound, a)
		}
	}
	b.applied, b.bound = applied, bound
	return nil
}

// family reports whether addr is of a family the backend programs.
func (b *Backend) family(addr netip.Addr) bool {
	return slices.Contains(b.families, model.FamilyOf(addr))
}

// ours reports whether vs is svcplane's: on an address of the dummy interface
// (nobody else binds there), or a node port (in the node port range, on a local
// address that is not).
func (b *Backend) ours(vs *VirtualServer, bound map[netip.Addr]bool, local []netip.Addr) bool {
	if bound[vs.Addr] {
		return true
	}
	return vs.Port >= b.opts.NodePortMin && vs.Port <= b.opts.NodePortMax && slices.Contains(local, vs.Addr)
}

// desired returns every virtual server desired wants, with its real servers.
func (b *Backend) desired(desired *model.State) (map[VirtualKey]*desiredServer, map[model.Family]*filterWant, error) {
	// Sized like the last sync's, so that a sync of 10,000 ports does not grow
	// its maps step by step.
	want := make(map[VirtualKey]*desiredServer, len(b.applied))
	filters := map[model.Family]*filterWant{}
	var errs []error
	add := func(d *desiredServer) {
		k := d.vs.Key()
		if prev, ok := want[k]; ok {
			// Two Services claiming one address and port (an external IP equal to
			// another's, say): the kernel holds one virtual server, and the
			// first port in name order keeps it, as in the other modes.
			prev.bind = prev.bind || d.bind
			return
		}
		want[k] = d
	}
	for _, f := range b.families {
		v := desired.View(f)
		nodeAddrs := v.NodeAddresses
		if !v.NodePortsOnAllAddresses {
			nodeAddrs = v.NodePortAddresses
		}
		var last *filterWant
		if ft := b.filters[f]; ft != nil {
			last = ft.applied
		}
		fw := newFilterWant(v, last)
		filters[f] = fw
		for _, p := range v.ServicePorts {
			if _, err := protoNumber(p.Name.Protocol); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
				continue
			}
			pol := model.Decide(v, p)
			fw.addPort(p, pol, nodeAddrs)
			base := VirtualServer{Protocol: p.Name.Protocol, Scheduler: b.opts.Scheduler}
			if pol.Affinity.ClientIP {
				base.Persistent, base.Timeout = true, uint32(max(pol.Affinity.TimeoutSeconds, 1))
			}
			server := func(addr netip.Addr, port uint16, route model.Route, bind bool) {
				vs := base
				vs.Addr, vs.Port = addr, port
				d := &desiredServer{vs: vs, bind: bind}
				// Reject and Drop both leave the virtual server without real
				// servers; IPVS answers a new connection to it with ICMP port
				// unreachable.
				if route.Verdict == model.Forward {
					for _, ep := range route.Endpoints {
						d.reals = append(d.reals, ep.AddrPort())
					}
				}
				add(d)
			}
			if p.ClusterIP.IsValid() {
				server(p.ClusterIP, p.Port, pol.Internal, true)
			}
			for _, a := range p.ExternalIPs {
				server(a, p.Port, pol.External, true)
			}
			for _, a := range p.LoadBalancerIPs {
				server(a, p.Port, pol.External, true)
			}
			if p.NodePort != 0 {
				for _, a := range nodeAddrs {
					server(a, p.NodePort, pol.External, false)
				}
			}
		}
	}
	return want, filters, errors.Join(errs...)
}

// syncServer makes the kernel's virtual server d.vs.Key() match d, trusting the
// record b.applied of what it holds; it reports whether it wrote anything.
func (b *Backend) syncServer(d *desiredServer) (bool, error) {
	k := d.vs.Key()
	a := b.applied[k]
	changed := false
	if a == nil {
		changed = true
		err := b.kernel.AddVirtualServer(&d.vs)
		switch {
		case errors.Is(err, unix.EEXIST):
			// Its address was not on the dummy interface when the kernel was
			// read (someone removed it), so it did not look like ours; it is:
			// adopt it with its real servers.
			a, err = b.adopt(&d.vs)
			if err != nil {
				return true, err
			}
		case err != nil:
			return true, b.serverError("add", k, err)
		default:
			a = &appliedServer{vs: d.vs, reals: map[netip.AddrPort]int{}, draining: map[netip.AddrPort]time.Time{}}
		}
		b.applied[k] = a
	}
	if a.vs != d.vs {
		if err := b.kernel.UpdateVirtualServer(&d.vs); err != nil {
			return true, b.serverError("update", k, err)
		}
		a.vs = d.vs
		changed = true
	}

	var errs []error
	wanted := make(map[netip.AddrPort]bool, len(d.reals))
	for _, ap := range d.reals {
		wanted[ap] = true
		w, ok := a.reals[ap]
		if ok && w == 1 {
			continue
		}
		rs := &RealServer{Addr: ap.Addr(), Port: ap.Port(), Weight: 1}
		changed = true
		var err error
		if ok {
			// Back from draining (or a weight someone changed).
			err = b.kernel.UpdateRealServer(&a.vs, rs)
		} else {
			err = b.kernel.AddRealServer(&a.vs, rs)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("add real server %s to %s: %w", ap, k, err))
			continue
		}
		a.reals[ap] = 1
		delete(a.draining, ap)
	}
	if len(a.reals) == len(wanted) {
		return changed, errors.Join(errs...)
	}
	for _, ap := range slices.SortedFunc(maps.Keys(a.reals), netip.AddrPort.Compare) {
		if wanted[ap] {
			continue
		}
		rs := &RealServer{Addr: ap.Addr(), Port: ap.Port()}
		if k.Protocol == model.UDP {
			// UDP has no connection end to wait for: a client would keep sending
			// to a server that is gone until the entry times out.
			changed = true
			if err := b.kernel.DeleteRealServer(&a.vs, rs); err != nil {
				errs = append(errs, fmt.Errorf("delete real server %s of %s: %w", ap, k, err))
				continue
			}
			delete(a.reals, ap)
			delete(a.draining, ap)
			continue
		}
		if a.reals[ap] == 0 {
			if _, ok := a.draining[ap]; !ok {
				a.draining[ap] = b.opts.Clock.Now().Add(b.opts.GracefulTimeout)
			}
			continue
		}
		changed = true
		if err := b.kernel.UpdateRealServer(&a.vs, rs); err != nil {
			errs = append(errs, fmt.Errorf("drain real server %s of %s: %w", ap, k, err))
			continue
		}
		a.reals[ap] = 0
		a.draining[ap] = b.opts.Clock.Now().Add(b.opts.GracefulTimeout)
	}
	return changed, errors.Join(errs...)
}

// adopt returns the record of the existing virtual server vs, read from the
// kernel, with its scheduler and persistence left as found for the caller to fix.
func (b *Backend) adopt(vs *VirtualServer) (*appliedServer, error) {
	reals, err := b.kernel.RealServers(vs)
	if err != nil {
		return nil, fmt.Errorf("list the real servers of %s: %w", vs.Key(), err)
	}
	// The kernel's scheduler is unknown without another listing; writing it
	// unconditionally is one call and makes it right.
	a := &appliedServer{vs: VirtualServer{}, reals: map[netip.AddrPort]int{}, draining: map[netip.AddrPort]time.Time{}}
	for _, rs := range reals {
		a.reals[rs.AddrPort()] = rs.Weight
		if rs.Weight == 0 {
			a.draining[rs.AddrPort()] = b.opts.Clock.Now().Add(b.opts.GracefulTimeout)
		}
	}
	return a, nil
}

// serverError explains a refused virtual server; a scheduler the kernel lacks is
// the likely cause of ENOENT.
func (b *Backend) serverError(op string, k VirtualKey, err error) error {
	if errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%s virtual server %s: the kernel has no IPVS scheduler %q (is module ip_vs_%s available?): %w",
			op, k, b.opts.Scheduler, b.opts.Scheduler, err)
	}
	return fmt.Errorf("%s virtual server %s: %w", op, k, err)
}

// drain deletes the real servers at weight 0 that have no connection left, or
// whose drain deadline passed; it reads the counts of each virtual server that
// has draining real servers, once.
func (b *Backend) drain() (int, error) {
	now := b.opts.Clock.Now()
	n := 0
	var errs []error
	var keys []VirtualKey
	for k, a := range b.applied {
		if len(a.draining) > 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, VirtualKey.Compare)
	for _, k := range keys {
		a := b.applied[k]
		reals, err := b.kernel.RealServers(&a.vs)
		if err != nil {
			errs = append(errs, fmt.Errorf("list the real servers of %s: %w", k, err))
			continue
		}
		current := map[netip.AddrPort]*RealServer{}
		for _, rs := range reals {
			current[rs.AddrPort()] = rs
		}
		for _, ap := range slices.SortedFunc(maps.Keys(a.draining), netip.AddrPort.Compare) {
			rs, ok := current[ap]
			if !ok {
				delete(a.draining, ap)
				delete(a.reals, ap)
				continue
			}
			if rs.ActiveConns+rs.InactiveConns > 0 && now.Before(a.draining[ap]) {
				continue
			}
			if err := b.kernel.DeleteRealServer(&a.vs, rs); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("delete drained real server %s of %s: %w", ap, k, err))
				continue
			}
			delete(a.draining, ap)
			delete(a.reals, ap)
			n++
		}
	}
	return n, errors.Join(errs...)
}

// Draining reports whether some real server is draining: the agent should sync
// again soon (a sync removes the drained ones) even when nothing changes.
func (b *Backend) Draining() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, a := range b.applied {
		if len(a.draining) > 0 {
			return true
		}
	}
	return false
}

// Cleanup implements dataplane.Backend: it deletes svcplane's virtual servers
// (those on the dummy interface's addresses, and node ports) and the dummy
// interface. Virtual servers of others stay. The sysctls stay as they are: they
// are node-wide and others may rely on them.
func (b *Backend) Cleanup(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.applied, b.bound, b.needFull = nil, nil, true
	log := logr.FromContextOrDiscard(ctx)

	var errs []error
	bound := map[netip.Addr]bool{}
	addrs, err := b.kernel.Addresses(DummyInterface)
	switch {
	case errors.Is(err, unix.ENODEV):
	case err != nil:
		errs = append(errs, fmt.Errorf("list the addresses of %s: %w", DummyInterface, err))
	}
	for _, a := range addrs {
		bound[a] = true
	}
	local, err := b.kernel.LocalAddresses()
	if err != nil {
		errs = append(errs, fmt.Errorf("list the node's addresses: %w", err))
	}
	servers, err := b.kernel.VirtualServers()
	if err != nil {
		errs = append(errs, fmt.Errorf("list the IPVS virtual servers: %w", err))
	}
	deleted := 0
	for _, vs := range servers {
		if !b.ours(vs, bound, local) {
			continue
		}
		if err := b.kernel.DeleteVirtualServer(vs); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete virtual server %s: %w", vs.Key(), err))
			continue
		}
		deleted++
	}
	if err := b.kernel.DeleteDummy(DummyInterface); err != nil {
		errs = append(errs, fmt.Errorf("delete %s: %w", DummyInterface, err))
	}
	for _, f := range slices.Sorted(maps.Keys(b.filters)) {
		if err := b.filters[f].cleanup(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	log.Info("IPVS cleanup", "virtualServers", deleted, "interface", DummyInterface)
	return errors.Join(errs...)
}

// String returns a one-line summary of the stats, for logs.
func (s SyncStats) String() string {
	kind := "partial"
	if s.Full {
		kind = "full"
	}
	return kind + " sync: " + strconv.Itoa(s.Changed) + " of " + strconv.Itoa(s.VirtualServers) +
		" virtual servers written, " + strconv.Itoa(s.Deleted) + " deleted, " + strconv.Itoa(s.Drained) + " drained in " + s.Duration.String()
}
