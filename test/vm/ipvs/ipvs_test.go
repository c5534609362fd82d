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
	"net"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"sigs.k8s.io/knftables"

	ipvsmode "github.com/svcplane/svcplane/dataplane/ipvs"
	"github.com/svcplane/svcplane/dataplane/model"
	"github.com/svcplane/svcplane/test/vm"
)

// TestVM boots the VM and runs the package's tests in it. With VM_BENCH set (a
// -test.bench pattern, e.g. VM_BENCH=. in `make bench-ipvs`) it runs only the
// benchmarks there instead.
func TestVM(t *testing.T) {
	if _, err := os.Stat(nftPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("nft is not installed (apt-get install nftables): %v", err)
		}
		t.Skipf("nft is not installed (apt-get install nftables): %v", err)
	}
	run, timeout := "", time.Duration(0)
	if os.Getenv("VM_BENCH") != "" {
		// A full sync of 10,000 ports x 10 takes minutes of emulated CPU.
		run, timeout = "^$", 28*time.Minute
	}
	vm.RunTests(t, vm.Options{
		Run: run, Bench: os.Getenv("VM_BENCH"), BenchTime: os.Getenv("VM_BENCHTIME"), Timeout: timeout,
		// A 10,000-port benchmark holds 100,000 real servers and 10,000 addresses.
		MemoryMiB: 2048,
		// crc32c_generic first: ip_vs needs libcrc32c, which needs the crc32c
		// algorithm registered before it loads.
		Modules: []string{"crc32c_generic", "ip_vs", "ip_vs_rr", "dummy", "veth",
			// The filter stage's nftables table: nat base chains, dnat, masquerade.
			"nf_tables", "nf_nat", "nft_chain_nat", "nft_nat", "nft_masq", "nft_reject", "nft_reject_ipv4"},
		// knftables runs nft, which the busybox guest lacks.
		Binaries: []string{nftPath},
		OnDemand: []string{"ip_vs_lc", "ip_vs_wrr", "ip_vs_sh", "ip_vs_mh"},
	})
}

// nftPath is Debian's nft, which the IPVS mode's filter stage runs (knftables).
const nftPath = "/usr/sbin/nft"

var (
	w       *world
	backend *ipvsmode.Backend
	kernel  *ipvsmode.Netlink
	// foreign is a virtual server somebody else made; nothing of svcplane's may
	// touch it, cleanup included.
	foreign = &ipvsmode.VirtualServer{Addr: nodeAddr, Protocol: model.TCP, Port: 8443, Scheduler: "wrr"}
)

func TestMain(m *testing.M) {
	if !vm.InGuest() {
		os.Exit(m.Run())
	}
	var err error
	if w, err = buildWorld(); err != nil {
		fmt.Fprintln(os.Stderr, "build the world:", err)
		os.Exit(1)
	}
	kernel = &ipvsmode.Netlink{}
	if err := kernel.AddVirtualServer(foreign); err != nil {
		fmt.Fprintln(os.Stderr, "add the foreign virtual server:", err)
		os.Exit(1)
	}
	nft, err := knftables.New(knftables.IPv4Family, ipvsmode.FilterTable)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nft in the guest:", err)
		os.Exit(1)
	}
	backend, err = ipvsmode.New(ipvsmode.Options{
		Interface: kernel, Families: []model.Family{model.IPv4},
		NFT:             map[model.Family]knftables.Interface{model.IPv4: nft},
		GracefulTimeout: time.Minute, TCPFinTimeout: 30 * time.Second,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	// Cleanup runs after every test, not as a test that relies on running last.
	if err := checkCleanup(); err != nil {
		fmt.Fprintln(os.Stderr, "--- FAIL: cleanup:", err)
		code = 1
	} else {
		fmt.Println("--- PASS: cleanup removed svcplane0, the svcplane-ipvs table and every virtual server of svcplane's, and kept the foreign one")
	}
	w.close()
	os.Exit(code)
}

// checkCleanup runs the backend's cleanup and checks that nothing of svcplane's
// is left, and that the foreign virtual server is.
func checkCleanup() error {
	if err := backend.Cleanup(context.Background()); err != nil {
		return err
	}
	servers, err := kernel.VirtualServers()
	if err != nil {
		return err
	}
	if len(servers) != 1 || servers[0].Key() != foreign.Key() {
		var keys []string
		for _, s := range servers {
			keys = append(keys, s.Key().String())
		}
		return fmt.Errorf("virtual servers left: %v; want only the foreign %s", keys, foreign.Key())
	}
	if _, err := kernel.Addresses(ipvsmode.DummyInterface); !errors.Is(err, syscall.ENODEV) {
		return fmt.Errorf("%s after cleanup: %v, want it gone", ipvsmode.DummyInterface, err)
	}
	nft, err := knftables.New(knftables.IPv4Family, ipvsmode.FilterTable)
	if err != nil {
		return err
	}
	if _, err := nft.List(context.Background(), "chains"); !knftables.IsNotFound(err) {
		return fmt.Errorf("table ip %s after cleanup: %v, want it gone", ipvsmode.FilterTable, err)
	}
	return kernel.DeleteVirtualServer(foreign)
}

// service is port "http" (TCP 80) of Service default/name on clusterIP, node port
// 30000+last octet, endpoints on the named pods' :8080.
func service(name string, clusterIP string, pods []string, opts ...func(*model.ServicePort)) *model.ServicePort {
	ip := netip.MustParseAddr(clusterIP)
	p := &model.ServicePort{
		Name:                  model.ServicePortName{Namespace: "default", Name: name, Port: "http", Protocol: model.TCP},
		Port:                  80,
		ClusterIP:             ip,
		NodePort:              30000 + uint16(ip.As4()[3]),
		ExternalTrafficPolicy: model.PolicyCluster,
		InternalTrafficPolicy: model.PolicyCluster,
	}
	for _, name := range pods {
		for _, pd := range w.pods {
			if pd.name == name {
				// The pods run in this VM, the node: their endpoints are local.
				p.Endpoints = append(p.Endpoints, model.Endpoint{Addr: pd.addr, Port: serverPort, Ready: true, Serving: true, NodeName: "node", Local: true})
			}
		}
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// apply syncs the backend to a state holding ports alone.
func apply(t *testing.T, ports ...*model.ServicePort) {
	t.Helper()
	st := &model.State{IPv4: model.View{
		Family: model.IPv4, NodeName: "node", NodeAddresses: []netip.Addr{nodeAddr},
		NodePortsOnAllAddresses: true, ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"),
	}}
	st.IPv4.ServicePorts = ports
	if err := backend.Sync(context.Background(), st); err != nil {
		t.Fatal(err)
	}
}

func allPods() []string { return []string{"pod-1", "pod-2", "pod-3"} }

func TestClusterIPAndNodePortBalance(t *testing.T) {
	vm.RequireGuest(t)
	svc := service("web", "10.96.0.10", allPods())
	apply(t, svc)
	for _, addr := range []netip.AddrPort{
		netip.AddrPortFrom(svc.ClusterIP, 80),
		netip.AddrPortFrom(nodeAddr, svc.NodePort),
	} {
		got, err := w.hits(addr, 30)
		if err != nil {
			t.Fatalf("%s: %v (so far %v)", addr, err, got)
		}
		// rr takes each of the three real servers in turn.
		for _, p := range allPods() {
			if got[p] != 10 {
				t.Errorf("%s: connections per pod %v; want 10 each (rr)", addr, got)
				break
			}
		}
	}
}

func TestAffinityHoldsClient(t *testing.T) {
	vm.RequireGuest(t)
	svc := service("sticky", "10.96.0.11", allPods(), func(p *model.ServicePort) {
		p.SessionAffinity = model.SessionAffinity{ClientIP: true, TimeoutSeconds: 60}
	})
	apply(t, svc)
	got, err := w.hits(netip.AddrPortFrom(svc.ClusterIP, 80), 12)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Errorf("connections per pod %v; want every one on the same pod", got)
	}
}

func TestUnreadyPodLeavesRotation(t *testing.T) {
	vm.RequireGuest(t)
	svc := service("web", "10.96.0.12", allPods())
	apply(t, svc)
	svc = service("web", "10.96.0.12", allPods())
	svc.Endpoints[2].Ready = false // pod-3
	apply(t, svc)
	got, err := w.hits(netip.AddrPortFrom(svc.ClusterIP, 80), 20)
	if err != nil {
		t.Fatal(err)
	}
	if got["pod-3"] != 0 || got["pod-1"] == 0 || got["pod-2"] == 0 {
		t.Errorf("connections per pod %v; want pod-1 and pod-2 only", got)
	}
}

func TestRemovedEndpointDrains(t *testing.T) {
	vm.RequireGuest(t)
	addr := netip.AddrPortFrom(netip.MustParseAddr("10.96.0.13"), 80)
	apply(t, service("web", "10.96.0.13", []string{"pod-1"}))
	c, err := w.dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Pod != "pod-1" {
		t.Fatalf("served by %s, want pod-1", c.Pod)
	}

	// pod-1 leaves the Service: its real server drains at weight 0.
	svc := service("web", "10.96.0.13", []string{"pod-2"})
	apply(t, svc)
	vs := &ipvsmode.VirtualServer{Addr: addr.Addr(), Protocol: model.TCP, Port: 80, Scheduler: "rr"}
	rs := realServer(t, vs, netip.AddrPortFrom(w.pods[0].addr, serverPort))
	if rs == nil || rs.Weight != 0 || rs.ActiveConns != 1 {
		t.Fatalf("pod-1's real server = %+v, want weight 0 with its 1 active connection", rs)
	}
	// New connections go to pod-2; the established one still works.
	got, err := w.hits(addr, 3)
	if err != nil || got["pod-2"] != 3 {
		t.Fatalf("new connections %v, %v; want pod-2 only", got, err)
	}
	if err := c.echo("still there"); err != nil {
		t.Fatalf("the established connection to the removed endpoint broke: %v", err)
	}
	apply(t, svc)
	if realServer(t, vs, netip.AddrPortFrom(w.pods[0].addr, serverPort)) == nil {
		t.Fatal("the draining real server was deleted while its connection was open")
	}

	// Once the connection is gone (IPVS keeps a reset connection 10 s in CLOSE),
	// a sync deletes the real server.
	c.reset()
	deadline := time.Now().Add(45 * time.Second)
	for realServer(t, vs, netip.AddrPortFrom(w.pods[0].addr, serverPort)) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the drained real server was not deleted: %+v", realServer(t, vs, netip.AddrPortFrom(w.pods[0].addr, serverPort)))
		}
		time.Sleep(time.Second)
		apply(t, svc)
	}
}

func realServer(t *testing.T, vs *ipvsmode.VirtualServer, ap netip.AddrPort) *ipvsmode.RealServer {
	t.Helper()
	reals, err := kernel.RealServers(vs)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(reals, func(rs *ipvsmode.RealServer) bool { return rs.AddrPort() == ap })
	if i < 0 {
		return nil
	}
	return reals[i]
}

func TestServiceWithoutEndpointsRefused(t *testing.T) {
	vm.RequireGuest(t)
	svc := service("empty", "10.96.0.14", nil)
	apply(t, svc)
	for _, addr := range []netip.AddrPort{
		netip.AddrPortFrom(svc.ClusterIP, 80),
		netip.AddrPortFrom(nodeAddr, svc.NodePort),
	} {
		start := time.Now()
		c, err := w.dial(addr)
		if err == nil {
			c.Close()
			t.Fatalf("%s: connected to %s, want refused", addr, c.Pod)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("%s: %v, want connection refused", addr, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: refused after %s, want at once", addr, d)
		}
	}
}

func TestSchedulers(t *testing.T) {
	vm.RequireGuest(t)
	for _, s := range []string{"lc", "sh", "mh"} {
		t.Run(s, func(t *testing.T) {
			b, err := ipvsmode.New(ipvsmode.Options{Interface: kernel, Families: []model.Family{model.IPv4}, Scheduler: s})
			if err != nil {
				t.Fatal(err)
			}
			svc := service("web", "10.96.0.15", allPods())
			st := &model.State{IPv4: model.View{Family: model.IPv4, NodeAddresses: []netip.Addr{nodeAddr}, NodePortsOnAllAddresses: true,
				ServicePorts: []*model.ServicePort{svc}}}
			if err := b.Sync(context.Background(), st); err != nil {
				t.Fatal(err)
			}
			got, err := w.hits(netip.AddrPortFrom(svc.ClusterIP, 80), 6)
			if err != nil || len(got) == 0 {
				t.Fatalf("through %s: %v, %v", s, got, err)
			}
			if err := b.Cleanup(context.Background()); err != nil {
				t.Fatal(err)
			}
			// The shared backend's record is stale now: its next sync reads the kernel.
			backend.RequestFullSync()
		})
	}
	// A scheduler the kernel does not have: twos is newer than 6.1.
	b, err := ipvsmode.New(ipvsmode.Options{Interface: kernel, Families: []model.Family{model.IPv4}, Scheduler: "twos"})
	if err != nil {
		t.Fatal(err)
	}
	st := &model.State{IPv4: model.View{Family: model.IPv4, ServicePorts: []*model.ServicePort{service("web", "10.96.0.16", allPods())}}}
	err = b.Sync(context.Background(), st)
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("sync with the twos scheduler: %v, want ENOENT saying the kernel lacks it", err)
	} else {
		t.Log(err)
	}
	if err := b.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	backend.RequestFullSync()
}

// TestNetlinkRoundTrip: what Netlink writes reads back the same.
func TestNetlinkRoundTrip(t *testing.T) {
	vm.RequireGuest(t)
	for _, vs := range []*ipvsmode.VirtualServer{
		{Addr: netip.MustParseAddr("203.0.113.5"), Protocol: model.UDP, Port: 53, Scheduler: "rr", Persistent: true, Timeout: 300},
		{Addr: netip.MustParseAddr("2001:db8::5"), Protocol: model.SCTP, Port: 3868, Scheduler: "rr"},
	} {
		if err := kernel.AddVirtualServer(vs); err != nil {
			t.Fatal(err)
		}
		rs := &ipvsmode.RealServer{Addr: netip.MustParseAddr("10.244.1.2"), Port: 8080, Weight: 3}
		if vs.Addr.Is6() {
			rs.Addr = netip.MustParseAddr("2001:db8:1::2")
		}
		if err := kernel.AddRealServer(vs, rs); err != nil {
			t.Fatal(err)
		}
		if err := kernel.AddVirtualServer(vs); !errors.Is(err, syscall.EEXIST) {
			t.Errorf("second AddVirtualServer: %v, want EEXIST", err)
		}
		servers, err := kernel.VirtualServers()
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(servers, func(s *ipvsmode.VirtualServer) bool { return s.Key() == vs.Key() })
		if i < 0 || *servers[i] != *vs {
			t.Errorf("read back %+v, want %+v", servers, vs)
		}
		if got := realServer(t, vs, rs.AddrPort()); got == nil || got.Weight != 3 {
			t.Errorf("real server read back %+v, want weight 3", got)
		}
		if err := kernel.DeleteVirtualServer(vs); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMasquerade(t *testing.T) {
	vm.RequireGuest(t)
	cluster := service("web", "10.96.0.20", allPods())
	local := service("local", "10.96.0.21", allPods(), func(p *model.ServicePort) {
		p.ExternalTrafficPolicy = model.PolicyLocal
		for i := range p.Endpoints {
			p.Endpoints[i].Local = true
		}
	})
	apply(t, cluster, local)
	for _, tc := range []struct {
		name string
		addr netip.AddrPort
		masq bool
	}{
		// The client is outside --cluster-cidr: masqueraded to the cluster IP...
		{"cluster IP from outside the cluster CIDR", netip.AddrPortFrom(cluster.ClusterIP, 80), true},
		// ...and to a node port under eTP Cluster...
		{"node port, eTP Cluster", netip.AddrPortFrom(nodeAddr, cluster.NodePort), true},
		// ...but eTP Local keeps the client's address.
		{"node port, eTP Local", netip.AddrPortFrom(nodeAddr, local.NodePort), false},
	} {
		c, err := w.dial(tc.addr)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		c.reset()
		if got := c.Source != clientAddr; got != tc.masq {
			t.Errorf("%s: %s saw the client as %s; masqueraded = %v, want %v", tc.name, c.Pod, c.Source, got, tc.masq)
		}
	}
}

func TestLoadBalancerSourceRanges(t *testing.T) {
	vm.RequireGuest(t)
	lb := netip.MustParseAddr("192.0.2.30")
	withRanges := func(ranges ...string) *model.ServicePort {
		return service("lb", "10.96.0.30", allPods(), func(p *model.ServicePort) {
			p.LoadBalancerIPs = []netip.Addr{lb}
			for _, r := range ranges {
				p.LoadBalancerSourceRanges = append(p.LoadBalancerSourceRanges, netip.MustParsePrefix(r))
			}
		})
	}
	addr := netip.AddrPortFrom(lb, 80)
	apply(t, withRanges("203.0.113.0/24"))
	if c, err := w.dialTimeout(addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("a client outside loadBalancerSourceRanges reached %s", c.Pod)
	} else if !isTimeout(err) {
		t.Errorf("outside the source ranges: %v, want a timeout (dropped)", err)
	}
	apply(t, withRanges("203.0.113.0/24", "192.168.100.0/24"))
	c, err := w.dial(addr)
	if err != nil {
		t.Fatalf("a client inside loadBalancerSourceRanges: %v", err)
	}
	c.reset()
}

func TestLocalWithoutLocalEndpointsDrops(t *testing.T) {
	vm.RequireGuest(t)
	svc := service("local-none", "10.96.0.22", allPods(), func(p *model.ServicePort) {
		p.ExternalTrafficPolicy = model.PolicyLocal
		for i := range p.Endpoints {
			// As if every pod ran on another node.
			p.Endpoints[i].Local, p.Endpoints[i].NodeName = false, "node-b"
		}
	})
	apply(t, svc)
	if c, err := w.dialTimeout(netip.AddrPortFrom(nodeAddr, svc.NodePort), time.Second); err == nil {
		c.Close()
		t.Fatalf("reached %s through a node port with eTP Local and no local endpoint", c.Pod)
	} else if !isTimeout(err) {
		t.Errorf("%v, want a timeout (dropped, so that a load balancer tries another node)", err)
	}
	// The cluster IP still reaches every endpoint.
	if _, err := w.hits(netip.AddrPortFrom(svc.ClusterIP, 80), 3); err != nil {
		t.Errorf("cluster IP of an eTP Local Service: %v", err)
	}
}

// isTimeout reports whether a dial failed by timing out: no answer at all.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestShortCircuitAndHairpin: a pod, and the node itself, reaching an eTP Local
// node port take the Cluster path, not only the local endpoints; a pod reaching
// itself through its Service is masqueraded, so that its reply comes back through
// the node.
func TestShortCircuitAndHairpin(t *testing.T) {
	vm.RequireGuest(t)
	svc := service("local-one", "10.96.0.23", allPods(), func(p *model.ServicePort) {
		p.ExternalTrafficPolicy = model.PolicyLocal
		// Only pod-1 is local: external traffic goes to it alone, pods' and the
		// node's to all three.
		for i := 1; i < len(p.Endpoints); i++ {
			p.Endpoints[i].Local, p.Endpoints[i].NodeName = false, "node-b"
		}
	})
	apply(t, svc)
	nodePort := netip.AddrPortFrom(nodeAddr, svc.NodePort)
	pod1 := w.pods[0]
	seen := map[string]bool{}
	for range 6 {
		c, err := dialFrom(pod1.ns, nodePort, 3*time.Second)
		if err != nil {
			t.Fatalf("pod-1 → eTP Local node port %s: %v", nodePort, err)
		}
		c.reset()
		seen[c.Pod] = true
		// pod-1 is an endpoint: reaching itself, it must see the node's address.
		if c.Pod == pod1.name && c.Source == pod1.addr {
			t.Errorf("a hairpin connection was not masqueraded: %s saw itself", c.Pod)
		}
		if c.Pod != pod1.name && c.Source != pod1.addr {
			t.Errorf("pod-1 → %s was masqueraded to %s; traffic from pods keeps its source", c.Pod, c.Source)
		}
	}
	if !seen[pod1.name] || len(seen) != 3 {
		t.Errorf("pods reached %v; want all three (rr over the cluster endpoints), pod-1 included", seen)
	}
	seen = map[string]bool{}
	for range 3 {
		c, err := dialFrom(netns.None(), nodePort, 3*time.Second)
		if err != nil {
			t.Fatalf("the node → its own eTP Local node port: %v", err)
		}
		c.reset()
		seen[c.Pod] = true
	}
	if len(seen) != 3 {
		t.Errorf("the node reached %v through its eTP Local node port; want all three pods", seen)
	}
	// The client outside goes to the local endpoint only, keeping its address.
	got, err := w.hits(nodePort, 3)
	if err != nil || got[pod1.name] != 3 {
		t.Errorf("external client → eTP Local node port: %v, %v; want pod-1 only", got, err)
	}
}

// TestOtherPortOfServiceIPRejected: a port of a service IP that no Service uses
// is rejected, never handed to a socket the node listens on.
func TestOtherPortOfServiceIPRejected(t *testing.T) {
	vm.RequireGuest(t)
	svc := service("web", "10.96.0.24", allPods())
	apply(t, svc)
	ln, err := net.Listen("tcp4", ":81")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, "node 0.0.0.0")
			c.Close()
		}
	}()
	// The listener answers on the node's address...
	if c, err := w.dial(netip.AddrPortFrom(nodeAddr, 81)); err != nil {
		t.Fatalf("the node's own listener: %v", err)
	} else {
		c.Close()
	}
	// ...but not on the service IP.
	c, err := w.dial(netip.AddrPortFrom(svc.ClusterIP, 81))
	if err == nil {
		c.Close()
		t.Fatalf("port 81 of cluster IP %s reached %s", svc.ClusterIP, c.Pod)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("port 81 of the cluster IP: %v, want connection refused", err)
	}
}
