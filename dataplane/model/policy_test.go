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

package model

import (
	"net/netip"
	"reflect"
	"testing"
)

// The node is at 192.168.0.10; load-balancer IPs are in 192.0.2.0/24 and clients
// in 203.0.113.0/24 (documentation ranges).
func TestDecide(t *testing.T) {
	var (
		localReady       = endpoint("10.244.1.1:8080", "local")
		remoteReady      = endpoint("10.244.2.1:8080")
		localTerminating = endpoint("10.244.1.2:8080", "local", "notready", "terminating")
		remoteGone       = endpoint("10.244.2.3:8080", "notready", "notserving", "terminating")
		lbIP             = netip.MustParseAddr("192.0.2.10")
		clients          = netip.MustParsePrefix("203.0.113.0/24")
		nodeNet          = netip.MustParsePrefix("192.168.0.0/24")
	)
	view := &View{Family: IPv4, NodeAddresses: []netip.Addr{netip.MustParseAddr("192.168.0.10")}}
	type port = ServicePort
	cluster := func(eps ...Endpoint) Route { return Route{Policy: PolicyCluster, Endpoints: eps} }
	local := func(eps ...Endpoint) Route { return Route{Policy: PolicyLocal, Endpoints: eps} }
	with := func(r Route, v Verdict) Route { r.Verdict = v; return r }
	tests := []struct {
		name string
		port port
		want PortPolicy
	}{{
		name: "ClusterIP with ready endpoints forwards to all of them",
		port: port{Endpoints: []Endpoint{localReady, remoteReady}},
		want: PortPolicy{
			ClusterEndpoints: true, MasqueradeExternal: true,
			Internal: cluster(localReady, remoteReady),
			External: cluster(localReady, remoteReady),
		},
	}, {
		name: "no usable endpoint rejects internal and external traffic and captures nothing",
		port: port{NodePort: 30080, LoadBalancerIPs: []netip.Addr{lbIP}, LoadBalancerSourceRanges: []netip.Prefix{clients},
			Endpoints: []Endpoint{remoteGone}},
		want: PortPolicy{
			Internal:           with(cluster(), Reject),
			External:           with(cluster(), Reject),
			MasqueradeExternal: true,
		},
	}, {
		name: "serving terminating endpoints are the fallback",
		port: port{Endpoints: []Endpoint{localTerminating, remoteGone}},
		want: PortPolicy{
			ClusterEndpoints: true, MasqueradeExternal: true,
			Internal: cluster(localTerminating),
			External: cluster(localTerminating),
		},
	}, {
		name: "node port with eTP Cluster is captured and masqueraded",
		port: port{NodePort: 30080, Endpoints: []Endpoint{remoteReady}},
		want: PortPolicy{
			ClusterEndpoints:   true,
			Internal:           cluster(remoteReady),
			External:           cluster(remoteReady),
			ExternalEntry:      true,
			MasqueradeExternal: true,
		},
	}, {
		name: "eTP Local with a local endpoint keeps the source and short-circuits pods",
		port: port{NodePort: 30080, ExternalTrafficPolicy: PolicyLocal, Endpoints: []Endpoint{localReady, remoteReady}},
		want: PortPolicy{
			ClusterEndpoints: true, LocalEndpoints: true,
			Internal:      cluster(localReady, remoteReady),
			External:      local(localReady),
			ExternalEntry: true,
			ShortCircuit:  true,
		},
	}, {
		name: "eTP Local without a local endpoint drops external traffic but keeps the entry",
		port: port{NodePort: 30080, ExternalTrafficPolicy: PolicyLocal, Endpoints: []Endpoint{remoteReady}},
		want: PortPolicy{
			ClusterEndpoints: true,
			Internal:         cluster(remoteReady),
			External:         with(local(), Drop),
			ExternalEntry:    true,
			ShortCircuit:     true,
		},
	}, {
		name: "iTP Local without a local endpoint drops cluster IP traffic",
		port: port{InternalTrafficPolicy: PolicyLocal, Endpoints: []Endpoint{remoteReady}},
		want: PortPolicy{
			Internal:           with(local(), Drop),
			External:           with(cluster(), Drop),
			MasqueradeExternal: true,
		},
	}, {
		name: "iTP Local with no endpoint at all rejects",
		port: port{InternalTrafficPolicy: PolicyLocal},
		want: PortPolicy{
			Internal:           with(local(), Reject),
			External:           with(cluster(), Reject),
			MasqueradeExternal: true,
		},
	}, {
		name: "source ranges filter load-balancer IPs",
		port: port{LoadBalancerIPs: []netip.Addr{lbIP}, LoadBalancerSourceRanges: []netip.Prefix{clients}, Endpoints: []Endpoint{remoteReady}},
		want: PortPolicy{
			ClusterEndpoints:   true,
			Internal:           cluster(remoteReady),
			External:           cluster(remoteReady),
			ExternalEntry:      true,
			MasqueradeExternal: true,
			Firewall:           true,
			SourceRanges:       []netip.Prefix{clients},
		},
	}, {
		name: "source ranges holding the node let the VIP back in as a source",
		port: port{LoadBalancerIPs: []netip.Addr{lbIP}, LoadBalancerSourceRanges: []netip.Prefix{clients, nodeNet}, Endpoints: []Endpoint{remoteReady}},
		want: PortPolicy{
			ClusterEndpoints:         true,
			Internal:                 cluster(remoteReady),
			External:                 cluster(remoteReady),
			ExternalEntry:            true,
			MasqueradeExternal:       true,
			Firewall:                 true,
			SourceRanges:             []netip.Prefix{clients, nodeNet},
			AllowLoadBalancerSources: true,
		},
	}, {
		name: "source ranges without a load-balancer IP filter nothing",
		port: port{NodePort: 30080, LoadBalancerSourceRanges: []netip.Prefix{clients}, Endpoints: []Endpoint{remoteReady}},
		want: PortPolicy{
			ClusterEndpoints:   true,
			Internal:           cluster(remoteReady),
			External:           cluster(remoteReady),
			ExternalEntry:      true,
			MasqueradeExternal: true,
		},
	}, {
		name: "affinity is carried",
		port: port{SessionAffinity: SessionAffinity{ClientIP: true, TimeoutSeconds: 600}, Endpoints: []Endpoint{remoteReady}},
		want: PortPolicy{
			ClusterEndpoints: true, MasqueradeExternal: true,
			Internal: cluster(remoteReady),
			External: cluster(remoteReady),
			Affinity: SessionAffinity{ClientIP: true, TimeoutSeconds: 600},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.port
			if p.InternalTrafficPolicy == "" {
				p.InternalTrafficPolicy = PolicyCluster
			}
			if p.ExternalTrafficPolicy == "" {
				p.ExternalTrafficPolicy = PolicyCluster
			}
			got := Decide(view, &p)
			want := tt.want
			want.Sets = p.EndpointSets()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Decide:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}
