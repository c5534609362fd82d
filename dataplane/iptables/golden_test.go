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

package iptables

import (
	"context"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/svcplane/svcplane/dataplane/model"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the rules rendered now")

// goldenCases are the states whose rules are kept in testdata/<name>.golden, as
// Fake.Dump prints them after one sync on a clean node: iptables-save's text. Only
// the families a case has services in are synced, to keep the files short.
var goldenCases = map[string]*model.State{
	"clusterip": state(
		svcPort("web", "10.96.0.10", eps("10.244.1.5/local", "10.244.2.6", "10.244.2.7", "10.244.2.8/notready/notserving")),
	),
	"nodeport": state(
		svcPort("web", "10.96.0.10", eps("10.244.1.5/local", "10.244.2.6"), nodePort(30080)),
	),
	"loadbalancer-source-ranges": state(
		// The node's own network is allowed, so is the VIP looping back from it.
		svcPort("web", "10.96.0.10", eps("10.244.2.6"), nodePort(30080), loadBalancer("192.0.2.10", "192.0.2.11"),
			sourceRanges("203.0.113.0/24", "192.168.0.0/24")),
		svcPort("api", "10.96.0.11", eps("10.244.2.7"), nodePort(30081), loadBalancer("192.0.2.12"),
			sourceRanges("203.0.113.128/25")),
	),
	"external-ips": state(
		svcPort("web", "10.96.0.10", eps("10.244.2.6"), externalIPs("198.51.100.20", "198.51.100.21")),
	),
	"affinity": state(
		svcPort("web", "10.96.0.10", eps("10.244.1.5/local", "10.244.2.6"), affinity(10800)),
	),
	"etp-local": state(
		svcPort("web", "10.96.0.10", eps("10.244.1.5/local", "10.244.2.6"), nodePort(30080), loadBalancer("192.0.2.10"),
			externalLocal(32000)),
	),
	"etp-local-no-local-endpoints": state(
		svcPort("web", "10.96.0.10", eps("10.244.2.6"), nodePort(30080), loadBalancer("192.0.2.10"),
			externalIPs("198.51.100.20"), externalLocal(32000)),
	),
	"itp-local": state(
		svcPort("web", "10.96.0.10", eps("10.244.1.5/local", "10.244.2.6"), internalLocal),
		svcPort("remote", "10.96.0.11", eps("10.244.2.7"), internalLocal),
	),
	"no-endpoints": state(
		svcPort("web", "10.96.0.10", eps("10.244.2.6/notready/notserving"), nodePort(30080), loadBalancer("192.0.2.10"),
			sourceRanges("203.0.113.0/24"), externalIPs("198.51.100.20")),
	),
	"terminating-fallback": state(
		svcPort("web", "10.96.0.10", eps("10.244.1.5/local/notready/terminating", "10.244.2.6/notready/terminating",
			"10.244.2.7/notready/notserving/terminating")),
	),
	"dual-stack": state(
		svcPort("web", "10.96.0.10", eps("10.244.1.5/local"), nodePort(30080), loadBalancer("192.0.2.10")),
		svcPort("web", "fd00:10:96::10", eps("fd00:10:244:1::5/local", "fd00:10:244:2::6"), nodePort(30080),
			loadBalancer("2001:db8:2::10"), affinity(600)),
		svcPort("empty", "fd00:10:96::11", nil),
	),
	"udp-sctp": state(
		svcPort("dns", "10.96.0.10", eps("10.244.2.6"), protocol(model.UDP, 53)),
		svcPort("dns", "10.96.0.10", eps("10.244.2.6"), protocol(model.TCP, 53)),
		svcPort("signal", "10.96.0.11", eps("10.244.1.5/local"), protocol(model.SCTP, 3868), nodePort(30868)),
	),
	"node-port-addresses-masquerade-all": func() *model.State {
		st := state(svcPort("web", "10.96.0.10", eps("10.244.2.6"), nodePort(30080)))
		st.IPv4.NodePortsOnAllAddresses = false
		st.IPv4.NodePortAddresses = []netip.Addr{nodeIPv4}
		st.IPv4.MasqueradeAll = true
		return st
	}(),
}

func TestGolden(t *testing.T) {
	for name, st := range goldenCases {
		t.Run(name, func(t *testing.T) {
			fake := NewFake()
			b, err := New(Options{Executor: fake, Families: familiesOf(st)})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Sync(context.Background(), st); err != nil {
				t.Fatal(err)
			}
			got := fake.Dump()
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
				t.Errorf("rules differ from %s (run go test -update if the change is intended):\n%s", path, lineDiff(string(want), got))
			}
		})
	}
}

// familiesOf returns the families st has service ports in.
func familiesOf(st *model.State) []model.Family {
	var out []model.Family
	for _, f := range model.Families {
		if len(st.View(f).ServicePorts) > 0 {
			out = append(out, f)
		}
	}
	return out
}
