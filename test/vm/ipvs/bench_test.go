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

	ipvsmode "github.com/svcplane/svcplane/dataplane/ipvs"
	"github.com/svcplane/svcplane/dataplane/model"
	"github.com/svcplane/svcplane/test/vm"
)

// benchState is n ClusterIP service ports with eps endpoints each (cluster IPs
// from 10.96.0.1 upwards, endpoints from 10.128.0.1 upwards: not 10.244.0.0/16, whose /24s are the pod links here and have broadcast addresses, which IPVS refuses as real servers), the sizes of
// dataplane/ipvs's BenchmarkSync, which counts their netlink calls.
func benchState(n, eps int, extra netip.Addr) *model.State {
	st := &model.State{IPv4: model.View{Family: model.IPv4, NodeName: "node", NodeAddresses: []netip.Addr{nodeAddr}}}
	clusterIP, ep := netip.MustParseAddr("10.96.0.0"), netip.MustParseAddr("10.128.0.0")
	for i := range n {
		clusterIP = clusterIP.Next()
		p := &model.ServicePort{
			Name: model.ServicePortName{Namespace: "bench", Name: fmt.Sprintf("svc-%05d", i), Port: "http", Protocol: model.TCP},
			Port: 80, ClusterIP: clusterIP,
		}
		for range eps {
			ep = ep.Next()
			p.Endpoints = append(p.Endpoints, model.Endpoint{Addr: ep, Port: 8080, Ready: true, Serving: true})
		}
		if i == n/2 && extra.IsValid() {
			p.Endpoints = append(p.Endpoints, model.Endpoint{Addr: extra, Port: 8080, Ready: true, Serving: true})
		}
		st.IPv4.ServicePorts = append(st.IPv4.ServicePorts, p)
	}
	return st
}

// BenchmarkKernelSync times syncs against the VM's kernel, IPVS over netlink and
// the filter table through nft: a full sync on a clean node, and a change of one
// Service among all of them. TCG
// emulates the CPU, so these times are an upper bound of a real node's.
func BenchmarkKernelSync(b *testing.B) {
	vm.RequireGuest(b)
	for _, n := range []int{1000, 10000} {
		st := benchState(n, 10, netip.Addr{})
		b.Run(fmt.Sprintf("full/%d-ports-x-10", n), func(b *testing.B) {
			for b.Loop() {
				be := newBenchBackend(b)
				if err := be.Sync(context.Background(), st); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := be.Cleanup(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
		b.Run(fmt.Sprintf("one-service/%d-ports-x-10", n), func(b *testing.B) {
			be := newBenchBackend(b)
			if err := be.Sync(context.Background(), st); err != nil {
				b.Fatal(err)
			}
			round := 0
			for b.Loop() {
				b.StopTimer()
				round++
				next := benchState(n, 10, netip.AddrFrom4([4]byte{10, 255, byte(round >> 8), byte(round)}))
				b.StartTimer()
				if err := be.Sync(context.Background(), next); err != nil {
					b.Fatal(err)
				}
				if s := be.LastSync(); s.Full || s.Changed != 1 {
					b.Fatalf("%+v, want a partial sync writing one virtual server", s)
				}
			}
			b.StopTimer()
			if err := be.Cleanup(context.Background()); err != nil {
				b.Fatal(err)
			}
		})
	}
}

func newBenchBackend(b *testing.B) *ipvsmode.Backend {
	nft, err := knftables.New(knftables.IPv4Family, ipvsmode.FilterTable)
	if err != nil {
		b.Fatal(err)
	}
	be, err := ipvsmode.New(ipvsmode.Options{Interface: kernel, Families: []model.Family{model.IPv4},
		NFT: map[model.Family]knftables.Interface{model.IPv4: nft}})
	if err != nil {
		b.Fatal(err)
	}
	return be
}
