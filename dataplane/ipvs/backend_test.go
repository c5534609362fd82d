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
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/svcplane/svcplane/dataplane/model"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the state synced now")

func newBackend(t *testing.T, fake *Fake, opts Options) (*Backend, *clocktesting.FakeClock) {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	opts.Interface = fake
	opts.Clock = clk
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return b, clk
}

func syncOK(t *testing.T, b *Backend, st *model.State) {
	t.Helper()
	if err := b.Sync(context.Background(), st); err != nil {
		t.Fatal(err)
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("state differs from %s (run go test -update if the change is intended)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestGolden(t *testing.T) {
	fake := NewFake(nil, nodeIPv4, nodeIPv6)
	b, _ := newBackend(t, fake, Options{StrictARP: true, TCPTimeout: 900 * time.Second, UDPTimeout: 300 * time.Second})
	syncOK(t, b, fixture())
	golden(t, "fixture", fake.Dump())

	// A second sync of the same state writes nothing and reads nothing.
	fake.ResetCounts()
	syncOK(t, b, fixture())
	if n := fake.TotalCalls(); n != 0 {
		t.Errorf("an unchanged state cost %d calls: %v", n, fake.Calls)
	}
}

func TestNodePortAddresses(t *testing.T) {
	st := state(svcPort("web", "10.96.0.10", eps("10.244.2.6"), nodePort(30080)))
	st.IPv4.NodeAddresses = []netip.Addr{nodeIPv4, netip.MustParseAddr("192.168.1.10")}
	st.IPv4.NodePortsOnAllAddresses = false
	st.IPv4.NodePortAddresses = []netip.Addr{netip.MustParseAddr("192.168.1.10")}
	fake := NewFake(nil, st.IPv4.NodeAddresses...)
	b, _ := newBackend(t, fake, Options{Families: []model.Family{model.IPv4}})
	syncOK(t, b, st)
	dump := fake.Dump()
	if !strings.Contains(dump, "TCP  192.168.1.10:30080 rr") || strings.Contains(dump, "192.168.0.10:30080") {
		t.Errorf("node port should be served on 192.168.1.10 only:\n%s", dump)
	}
}

// TestPartialSync: a change to one Service touches only its virtual servers.
func TestPartialSync(t *testing.T) {
	fake := NewFake(nil, nodeIPv4, nodeIPv6)
	b, _ := newBackend(t, fake, Options{})
	st := fixture()
	syncOK(t, b, st)

	// web gains an endpoint: one AddRealServer on each of its 4 IPv4 virtual
	// servers (cluster IP, external IP, load-balancer IP, node port), nothing else.
	st = fixture()
	p := st.IPv4.ServicePorts[0]
	p.Endpoints = append(p.Endpoints, eps("10.244.2.99")...)
	fake.ResetCounts()
	syncOK(t, b, st)
	if fake.Calls["AddRealServer"] != 4 || fake.TotalCalls() != 4 {
		t.Errorf("calls = %v, want 4 AddRealServer only", fake.Calls)
	}
	if s := b.LastSync(); s.Full || s.Changed != 4 {
		t.Errorf("stats = %+v, want a partial sync of 4 virtual servers", s)
	}

	// A Service goes: its virtual servers and its address go, nothing else.
	st = fixture()
	st.IPv4.ServicePorts = st.IPv4.ServicePorts[1:]
	fake.ResetCounts()
	syncOK(t, b, st)
	if fake.Calls["DeleteVirtualServer"] != 4 || fake.Calls["DeleteAddress"] != 3 || fake.TotalCalls() != 7 {
		t.Errorf("calls = %v, want 4 DeleteVirtualServer and 3 DeleteAddress", fake.Calls)
	}
	if strings.Contains(fake.Dump(), "10.96.0.10") {
		t.Errorf("web's cluster IP is left:\n%s", fake.Dump())
	}
}

func TestGracefulTermination(t *testing.T) {
	fake := NewFake(nil, nodeIPv4)
	b, clk := newBackend(t, fake, Options{Families: []model.Family{model.IPv4}, GracefulTimeout: time.Minute})
	tcp := func(e ...string) *model.ServicePort { return svcPort("web", "10.96.0.10", eps(e...)) }
	udp := func(e ...string) *model.ServicePort {
		return svcPort("dns", "10.96.0.17", eps(e...), protocol(model.UDP, 53))
	}
	syncOK(t, b, state(tcp("10.244.2.6", "10.244.2.7"), udp("10.244.2.6", "10.244.2.7")))
	web := VirtualKey{Addr: netip.MustParseAddr("10.96.0.10"), Protocol: model.TCP, Port: 80}
	gone := netip.MustParseAddrPort("10.244.2.7:8080")
	fake.SetConnections(web, gone, 1, 2)

	// 10.244.2.7 goes: its TCP real server drains at weight 0 with connections
	// left; its UDP real server is deleted at once.
	syncOK(t, b, state(tcp("10.244.2.6"), udp("10.244.2.6")))
	golden(t, "draining", fake.Dump())
	if !b.Draining() {
		t.Error("Draining() = false with a real server at weight 0")
	}

	// Still connections, before the deadline: it stays.
	clk.Step(30 * time.Second)
	syncOK(t, b, state(tcp("10.244.2.6"), udp("10.244.2.6")))
	if !strings.Contains(fake.Dump(), "10.244.2.7:8080") {
		t.Fatalf("draining real server deleted early:\n%s", fake.Dump())
	}
	// The endpoint comes back: weight 1 again.
	syncOK(t, b, state(tcp("10.244.2.6", "10.244.2.7"), udp("10.244.2.6")))
	if w := weight(t, fake, web, gone); w != 1 {
		t.Fatalf("returning endpoint not back at weight 1:\n%s", fake.Dump())
	}
	// Gone again; its connections close: deleted on the next sync.
	syncOK(t, b, state(tcp("10.244.2.6"), udp("10.244.2.6")))
	fake.SetConnections(web, gone, 0, 0)
	syncOK(t, b, state(tcp("10.244.2.6"), udp("10.244.2.6")))
	if strings.Contains(fake.Dump(), "10.244.2.7") || b.Draining() {
		t.Fatalf("drained real server left:\n%s", fake.Dump())
	}
	if s := b.LastSync(); s.Drained != 1 {
		t.Errorf("stats = %+v, want 1 drained", s)
	}

	// A server whose connections never close goes after the timeout.
	syncOK(t, b, state(tcp("10.244.2.6", "10.244.2.8")))
	fake.SetConnections(web, netip.MustParseAddrPort("10.244.2.8:8080"), 5, 0)
	syncOK(t, b, state(tcp("10.244.2.6")))
	clk.Step(59 * time.Second)
	syncOK(t, b, state(tcp("10.244.2.6")))
	if !strings.Contains(fake.Dump(), "10.244.2.8:8080") {
		t.Fatalf("deleted before the timeout:\n%s", fake.Dump())
	}
	clk.Step(2 * time.Second)
	syncOK(t, b, state(tcp("10.244.2.6")))
	if strings.Contains(fake.Dump(), "10.244.2.8:8080") {
		t.Fatalf("not deleted after the timeout:\n%s", fake.Dump())
	}
}

func TestScheduler(t *testing.T) {
	if _, err := New(Options{Interface: NewFake(nil), Scheduler: "round-robin"}); err == nil ||
		!strings.Contains(err.Error(), `invalid --ipvs-scheduler "round-robin"`) {
		t.Errorf("New with an unknown scheduler name: %v", err)
	}
	// The kernel lacks mh: the sync fails saying so, and keeps failing (full) until
	// the module is there.
	fake := NewFake([]string{"rr"}, nodeIPv4)
	b, _ := newBackend(t, fake, Options{Families: []model.Family{model.IPv4}, Scheduler: "mh"})
	err := b.Sync(context.Background(), state(svcPort("web", "10.96.0.10", eps("10.244.2.6"))))
	if !errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), `the kernel has no IPVS scheduler "mh" (is module ip_vs_mh available?)`) {
		t.Errorf("Sync = %v", err)
	}
	fake.available["mh"] = true
	syncOK(t, b, state(svcPort("web", "10.96.0.10", eps("10.244.2.6"))))
	if s := b.LastSync(); !s.Full {
		t.Errorf("the sync after an error was not full: %+v", s)
	}
	if !strings.Contains(fake.Dump(), "TCP  10.96.0.10:80 mh") {
		t.Errorf("no mh virtual server:\n%s", fake.Dump())
	}
}

// TestFullSyncRepairs: a full sync puts back what someone else changed, and
// leaves others' virtual servers alone.
func TestFullSyncRepairs(t *testing.T) {
	fake := NewFake(nil, nodeIPv4)
	b, _ := newBackend(t, fake, Options{Families: []model.Family{model.IPv4}})
	st := state(svcPort("web", "10.96.0.10", eps("10.244.2.6", "10.244.2.7"), nodePort(30080)),
		svcPort("sticky", "10.96.0.19", eps("10.244.2.19"), affinity(60)))
	syncOK(t, b, st)
	want := fake.Dump()

	web := &VirtualServer{Addr: netip.MustParseAddr("10.96.0.10"), Protocol: model.TCP, Port: 80, Scheduler: "rr"}
	must(t, fake.DeleteRealServer(web, &RealServer{Addr: netip.MustParseAddr("10.244.2.7"), Port: 8080}))
	must(t, fake.AddRealServer(web, &RealServer{Addr: netip.MustParseAddr("10.244.9.9"), Port: 8080, Weight: 1}))
	must(t, fake.UpdateVirtualServer(&VirtualServer{Addr: netip.MustParseAddr("10.96.0.19"), Protocol: model.TCP, Port: 80, Scheduler: "lc"}))
	must(t, fake.DeleteAddress(DummyInterface, netip.MustParseAddr("10.96.0.19")))
	stale := &VirtualServer{Addr: nodeIPv4, Protocol: model.TCP, Port: 30999, Scheduler: "rr"}
	must(t, fake.AddVirtualServer(stale))
	foreign := &VirtualServer{Addr: nodeIPv4, Protocol: model.TCP, Port: 8443, Scheduler: "wrr"}
	must(t, fake.AddVirtualServer(foreign))

	b.RequestFullSync()
	syncOK(t, b, st)
	got := fake.Dump()
	// The foreign virtual server stays; everything else is as before, and the
	// stale node port (in the node port range) of an earlier agent is gone.
	wantWithForeign := strings.Replace(want, "TCP  192.168.0.10:30080 rr\n", "TCP  192.168.0.10:8443 wrr\nTCP  192.168.0.10:30080 rr\n", 1)
	if got != wantWithForeign {
		t.Errorf("after a full sync:\n%s\nwant:\n%s", got, wantWithForeign)
	}
}

func TestCleanup(t *testing.T) {
	fake := NewFake(nil, nodeIPv4, nodeIPv6)
	foreign := &VirtualServer{Addr: netip.MustParseAddr("203.0.113.1"), Protocol: model.TCP, Port: 80, Scheduler: "rr"}
	must(t, fake.AddVirtualServer(foreign))
	b, _ := newBackend(t, fake, Options{})
	// Cleanup on a node that never ran the IPVS mode succeeds.
	if err := b.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	syncOK(t, b, fixture())
	if err := b.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nTCP  203.0.113.1:80 rr\n"
	if got := fake.Dump(); !strings.HasSuffix(got, want) || strings.Contains(got, "link ") {
		t.Errorf("after Cleanup:\n%s\nwant only the foreign virtual server, no link", got)
	}
	// The next Sync is full and puts everything back.
	syncOK(t, b, fixture())
	if s := b.LastSync(); !s.Full {
		t.Errorf("sync after Cleanup not full: %+v", s)
	}
}

// TestErrorForcesFullSync: a failed call leaves the record untrusted; the next
// sync reads the kernel and finishes the work.
func TestErrorForcesFullSync(t *testing.T) {
	fake := NewFake(nil, nodeIPv4, nodeIPv6)
	b, _ := newBackend(t, fake, Options{})
	syncOK(t, b, state(svcPort("web", "10.96.0.10", eps("10.244.2.6"))))
	fake.FailOn["AddRealServer"] = unix.ENOMEM
	if err := b.Sync(context.Background(), fixture()); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("Sync = %v, want ENOMEM", err)
	}
	syncOK(t, b, fixture())
	if s := b.LastSync(); !s.Full {
		t.Errorf("sync after an error not full: %+v", s)
	}
	clean := NewFake(nil, nodeIPv4, nodeIPv6)
	b2, _ := newBackend(t, clean, Options{})
	syncOK(t, b2, fixture())
	if got, want := fake.Dump(), clean.Dump(); got != want {
		t.Errorf("after the repair:\n%s\nwant:\n%s", got, want)
	}
}

// weight returns the weight of real server rs of virtual server k, -1 if absent.
func weight(t *testing.T, fake *Fake, k VirtualKey, rs netip.AddrPort) int {
	t.Helper()
	reals, err := fake.RealServers(&VirtualServer{Addr: k.Addr, Protocol: k.Protocol, Port: k.Port})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reals {
		if r.AddrPort() == rs {
			return r.Weight
		}
	}
	return -1
}

func TestCancelled(t *testing.T) {
	fake := NewFake(nil, nodeIPv4)
	b, _ := newBackend(t, fake, Options{Families: []model.Family{model.IPv4}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Sync(ctx, fixture()); !errors.Is(err, context.Canceled) {
		t.Errorf("Sync = %v, want context.Canceled", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
