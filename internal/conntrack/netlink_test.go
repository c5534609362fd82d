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

// Addresses as in stale_test.go. The real-kernel test works in a network namespace
// of its own, svcp-ct-<pid>, whose conntrack table it fills over netlink.

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/svcplane/svcplane/dataplane/model"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// testEntries are the entries, with their DNAT, as the agent's rules would create
// them.
var testEntries = []Entry{
	{Family: model.IPv4, Protocol: model.UDP, Src: ap("10.244.2.5:40000"), Dst: ap("10.96.0.10:53"), DNAT: ap("10.244.1.10:5353")},
	{Family: model.IPv4, Protocol: model.UDP, Src: ap("10.244.2.5:40001"), Dst: ap("10.96.0.10:53"), DNAT: ap("10.244.1.11:5353")},
	{Family: model.IPv4, Protocol: model.UDP, Src: ap("198.51.100.1:40000"), Dst: ap("192.0.2.10:30053"), DNAT: ap("10.244.1.10:5353")},
	{Family: model.IPv4, Protocol: model.UDP, Src: ap("10.244.2.5:40003"), Dst: ap("10.96.0.10:53")},
	{Family: model.IPv4, Protocol: model.TCP, Src: ap("10.244.2.5:40002"), Dst: ap("10.96.0.10:53"), DNAT: ap("10.244.1.10:5353")},
	{Family: model.IPv6, Protocol: model.UDP, Src: ap("[fd00:244:2::5]:40000"), Dst: ap("[fd00:96::10]:53"), DNAT: ap("[fd00:244:1::10]:5353")},
	{Family: model.IPv6, Protocol: model.UDP, Src: ap("[fd00:244:2::5]:40001"), Dst: ap("[fd00:96::10]:53")},
	{Family: model.IPv6, Protocol: model.UDP, Src: ap("[fd00:244:2::5]:40002"), Dst: ap("[fd00:96::10]:53"), DNAT: ap("[fd00:244:1::11]:5353")},
}

// testFilters select some of testEntries each, in the order the tests apply them.
var testFilters = []Filter{
	// One flow, by its source: the IPv4 one to 10.96.0.10:53 from port 40001.
	{Family: model.IPv4, Protocol: model.UDP, Dst: netip.MustParseAddr("10.96.0.10"), Port: 53, Src: ap("10.244.2.5:40001")},
	{Family: model.IPv4, Protocol: model.UDP, Dst: netip.MustParseAddr("10.96.0.10"), Port: 53, DNAT: netip.MustParseAddr("10.244.1.10")},
	{Family: model.IPv4, Protocol: model.UDP, Port: 30053, DNAT: netip.MustParseAddr("10.244.1.10")},
	// An untranslated flow: its reply comes from the original destination.
	{Family: model.IPv4, Protocol: model.UDP, Dst: netip.MustParseAddr("10.96.0.10"), Port: 53, DNAT: netip.MustParseAddr("10.96.0.10")},
	// One endpoint's IPv6 flows, not the other's.
	{Family: model.IPv6, Protocol: model.UDP, Dst: netip.MustParseAddr("fd00:96::10"), Port: 53, DNAT: netip.MustParseAddr("fd00:244:1::10")},
	{Family: model.IPv6, Protocol: model.UDP, Dst: netip.MustParseAddr("fd00:96::10"), Port: 53},
	{Family: model.IPv6, Protocol: model.UDP, Port: 30053}, // matches nothing
}

// flowOf returns the kernel's flow of e: the reply comes from the DNAT target, or
// from the original destination.
func flowOf(e Entry) *netlink.ConntrackFlow {
	reply := e.Dst
	if e.DNAT.IsValid() {
		reply = e.DNAT
	}
	family := uint8(unix.AF_INET)
	if e.Family == model.IPv6 {
		family = unix.AF_INET6
	}
	proto := protocolNumbers[e.Protocol]
	flow := &netlink.ConntrackFlow{
		FamilyType: family,
		Forward: netlink.IPTuple{Protocol: proto,
			SrcIP: net.IP(e.Src.Addr().AsSlice()), SrcPort: e.Src.Port(),
			DstIP: net.IP(e.Dst.Addr().AsSlice()), DstPort: e.Dst.Port()},
		Reverse: netlink.IPTuple{Protocol: proto,
			SrcIP: net.IP(reply.Addr().AsSlice()), SrcPort: reply.Port(),
			DstIP: net.IP(e.Src.Addr().AsSlice()), DstPort: e.Src.Port()},
		TimeOut: 120,
	}
	if e.Protocol == model.TCP {
		flow.ProtoInfo = &netlink.ProtoInfoTCP{State: 3} // TCP_CONNTRACK_ESTABLISHED
	}
	return flow
}

// TestNetlinkFilterSelectsWhatTheFakeSelects checks the netlink filter of every
// test filter against the Fake's matching, entry by entry.
func TestNetlinkFilterSelectsWhatTheFakeSelects(t *testing.T) {
	for _, f := range testFilters {
		flt, err := f.netlinkFilter()
		if err != nil {
			t.Fatalf("netlinkFilter(%v): %v", f, err)
		}
		for _, e := range testEntries {
			want := e.Family == f.Family && matches(f, e)
			// netlink's filter knows no family: Netlink dumps one family's
			// table.
			got := e.Family == f.Family && flt.MatchConntrackFlow(flowOf(e))
			if got != want {
				t.Errorf("filter %v on %v: netlink matches %v, the Fake %v", f, e, got, want)
			}
		}
	}
}

func TestEntryOf(t *testing.T) {
	for _, e := range testEntries {
		got, ok := entryOf(e.Family, e.Protocol, flowOf(e))
		if !ok || got != e {
			t.Errorf("entryOf(flowOf(%v)) = %v, %v", e, got, ok)
		}
	}
	v4 := testEntries[0]
	if got, ok := entryOf(model.IPv6, v4.Protocol, flowOf(v4)); ok {
		t.Errorf("an IPv4 flow read as IPv6: %v", got)
	}
	if _, ok := entryOf(model.IPv4, model.UDP, &netlink.ConntrackFlow{}); ok {
		t.Error("a flow without addresses read as an entry")
	}
}

func TestNetlinkAndFakeRefuseTheSameFilters(t *testing.T) {
	fake := NewFake()
	for _, f := range []Filter{
		{Family: model.IPv4, Protocol: model.UDP, Dst: netip.MustParseAddr("fd00:96::10"), Port: 53},
		{Family: model.IPv6, Protocol: model.UDP, Port: 53, DNAT: netip.MustParseAddr("10.244.1.10")},
		{Family: model.IPv4, Protocol: "ICMP", Port: 53},
		{Protocol: model.UDP, Port: 53},
	} {
		if _, err := fake.Delete(t.Context(), f); err == nil {
			t.Errorf("Fake.Delete(%v) succeeded", f)
		}
		if _, err := f.netlinkFilter(); err == nil {
			t.Errorf("netlinkFilter(%v) succeeded", f)
		}
	}
}

// TestNetlinkAgainstKernel fills a real conntrack table, in a network namespace of
// its own, lists and deletes entries with Netlink, and checks that it selects what
// the Fake selects and never touches the table of the namespace the test runs in.
func TestNetlinkAgainstKernel(t *testing.T) {
	if reason := kernelUnsupported(); reason != "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(reason)
		}
		t.Skip(reason)
	}
	name := fmt.Sprintf("svcp-ct-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	e, err := NewNetlinkAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, entry := range testEntries {
		if err := e.handle.ConntrackCreate(netlink.ConntrackTable, inetFamily(entry.Family), flowOf(entry)); err != nil {
			t.Fatalf("creating %v: %v", entry, err)
		}
	}

	// The kernel lists what the Fake holds, DNAT included.
	fake := NewFake(testEntries...)
	sortEntries := func(es []Entry) []Entry {
		slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.String(), b.String()) })
		return es
	}
	checkTable := func(when string) {
		t.Helper()
		for _, family := range model.Families {
			for _, proto := range []model.Protocol{model.UDP, model.TCP} {
				got, err := e.List(t.Context(), family, proto)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := fake.List(t.Context(), family, proto)
				if got, want := sortEntries(got), sortEntries(want); !slices.Equal(got, want) {
					t.Errorf("%s: List(%v, %s) =\n%v\nwant\n%v", when, family, proto, got, want)
				}
			}
		}
	}
	checkTable("filled")

	// The test's own namespace has its own table, which holds none of them.
	here, err := NewNetlink()
	if err != nil {
		t.Fatal(err)
	}
	defer here.Close()
	for _, family := range model.Families {
		got, err := here.List(t.Context(), family, model.UDP)
		if err != nil {
			t.Fatal(err)
		}
		for _, entry := range got {
			if slices.Contains(testEntries, entry) {
				t.Errorf("the test's own namespace holds %v", entry)
			}
		}
	}

	for _, f := range testFilters {
		want, err := fake.Delete(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		n, err := e.Delete(t.Context(), f)
		if err != nil {
			t.Fatalf("Delete(%v): %v", f, err)
		}
		if n != want {
			t.Errorf("Delete(%v) deleted %d entries, the Fake %d", f, n, want)
		}
	}
	checkTable("after the deletes")
	if len(fake.Entries()) == 0 {
		t.Fatal("the filters deleted every entry: nothing shows that they leave others alone")
	}
}

// kernelUnsupported says why TestNetlinkAgainstKernel cannot run here, or "".
func kernelUnsupported() string {
	if os.Geteuid() != 0 {
		return "needs root to create a network namespace"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "needs ip (iproute2) on PATH"
	}
	return ""
}
