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
	"fmt"
	"net/netip"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/svcplane/svcplane/dataplane/model"
)

// benchState returns an IPv4 state of n service ports with eps endpoints each:
// cluster IPs from 10.96.0.1 upwards, endpoints from 10.244.0.1 upwards (100,000
// of them reach 10.245.134.160).
func benchState(n, eps int) *model.State {
	st := &model.State{IPv4: model.View{Family: model.IPv4, NodeName: "node-a",
		NodeAddresses: []netip.Addr{nodeAddrBench}, NodePortsOnAllAddresses: true}}
	clusterIP := netip.MustParseAddr("10.96.0.0")
	ep := netip.MustParseAddr("10.244.0.0")
	for i := range n {
		clusterIP = clusterIP.Next()
		p := &model.ServicePort{
			Name:      model.ServicePortName{Namespace: "bench", Name: fmt.Sprintf("svc-%05d", i), Port: "http", Protocol: model.TCP},
			Port:      80,
			ClusterIP: clusterIP,
		}
		for range eps {
			ep = ep.Next()
			p.Endpoints = append(p.Endpoints, model.Endpoint{Addr: ep, Port: 8080, Ready: true, Serving: true, NodeName: "node-b"})
		}
		st.IPv4.ServicePorts = append(st.IPv4.ServicePorts, p)
	}
	return st
}

var nodeAddrBench = netip.MustParseAddr("192.168.0.10")

// changeOne returns st with one more endpoint on the middle service port, sharing
// every other port with st (as the model does for unchanged Services).
func changeOne(st *model.State, round int) *model.State {
	out := &model.State{IPv4: st.IPv4}
	out.IPv4.ServicePorts = append([]*model.ServicePort(nil), st.IPv4.ServicePorts...)
	i := len(out.IPv4.ServicePorts) / 2
	p := *out.IPv4.ServicePorts[i]
	p.Endpoints = append(append([]model.Endpoint(nil), p.Endpoints...),
		model.Endpoint{Addr: netip.AddrFrom4([4]byte{10, 255, byte(round >> 8), byte(round)}), Port: 8080, Ready: true, Serving: true})
	out.IPv4.ServicePorts[i] = &p
	return out
}

// BenchmarkSync measures full syncs on a clean node and one-service partial syncs,
// over the Fake: the netlink calls each costs, and the time spent in the backend
// (the fake's own cost is a map operation per call). On a real kernel each call is
// a netlink round trip; see test/vm/ipvs's BenchmarkKernelSync.
func BenchmarkSync(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		st := benchState(n, 10)
		b.Run(fmt.Sprintf("full/%d-ports-x-10", n), func(b *testing.B) {
			calls, ops := 0, 0
			for b.Loop() {
				b.StopTimer()
				fake := NewFake(nil, nodeAddrBench)
				nft := &countingNFT{Interface: knftables.NewFake(knftables.IPv4Family, FilterTable)}
				be, err := New(Options{Interface: fake, Families: []model.Family{model.IPv4},
					NFT: map[model.Family]knftables.Interface{model.IPv4: nft}})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := be.Sync(context.Background(), st); err != nil {
					b.Fatal(err)
				}
				calls, ops = fake.TotalCalls(), nft.ops
			}
			b.ReportMetric(float64(calls), "netlink-calls/op")
			b.ReportMetric(float64(ops), "nft-ops/op")
		})
		b.Run(fmt.Sprintf("one-service/%d-ports-x-10", n), func(b *testing.B) {
			fake := NewFake(nil, nodeAddrBench)
			nft := &countingNFT{Interface: knftables.NewFake(knftables.IPv4Family, FilterTable)}
			be, err := New(Options{Interface: fake, Families: []model.Family{model.IPv4},
				NFT: map[model.Family]knftables.Interface{model.IPv4: nft}})
			if err != nil {
				b.Fatal(err)
			}
			if err := be.Sync(context.Background(), st); err != nil {
				b.Fatal(err)
			}
			round := 0
			calls, ops := 0, 0
			for b.Loop() {
				// Alternate between st and st with one more endpoint: each sync
				// adds or drains-then-keeps one real server.
				b.StopTimer()
				round++
				next := changeOne(st, round)
				fake.ResetCounts()
				b.StartTimer()
				if err := be.Sync(context.Background(), next); err != nil {
					b.Fatal(err)
				}
				calls, ops = fake.TotalCalls(), nft.ops
				if s := be.LastSync(); s.Full || s.Changed != 1 {
					b.Fatalf("sync %d: %+v, want a partial sync writing one virtual server", round, s)
				}
			}
			b.ReportMetric(float64(calls), "netlink-calls/op")
			b.ReportMetric(float64(ops), "nft-ops/op")
		})
	}
}

// countingNFT counts the operations of each transaction and applies none:
// knftables.Fake looks elements up linearly, which at 10,000 ports would measure
// the fake rather than the backend. The filter table's content is tested with the
// real Fake elsewhere.
type countingNFT struct {
	knftables.Interface
	ops int
}

func (c *countingNFT) Run(_ context.Context, tx *knftables.Transaction) error {
	c.ops = tx.NumOperations()
	return nil
}
