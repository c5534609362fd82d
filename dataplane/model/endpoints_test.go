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
	"reflect"
	"testing"
)

func TestEndpointSets(t *testing.T) {
	var (
		localReady        = endpoint("10.244.1.1:8080", "local")
		remoteReady       = endpoint("10.244.2.1:8080")
		localTerminating  = endpoint("10.244.1.2:8080", "local", "notready", "terminating")
		remoteTerminating = endpoint("10.244.2.2:8080", "notready", "terminating")
		remoteGone        = endpoint("10.244.2.3:8080", "notready", "notserving", "terminating")
		remoteNotReady    = endpoint("10.244.2.4:8080", "notready", "notserving")
	)
	port := func(internal, external TrafficPolicy, nodePort uint16, eps ...Endpoint) *ServicePort {
		return &ServicePort{InternalTrafficPolicy: internal, ExternalTrafficPolicy: external, NodePort: nodePort, Endpoints: eps}
	}
	tests := []struct {
		name string
		port *ServicePort
		want EndpointSets
	}{{
		name: "Cluster: every ready endpoint, local or not",
		port: port(PolicyCluster, PolicyCluster, 0, localReady, remoteReady, remoteTerminating, remoteNotReady),
		want: EndpointSets{Cluster: []Endpoint{localReady, remoteReady}, Reachable: []Endpoint{localReady, remoteReady}, Any: true},
	}, {
		name: "Cluster: no ready endpoint anywhere falls back to serving terminating ones",
		port: port(PolicyCluster, PolicyCluster, 0, localTerminating, remoteTerminating, remoteGone, remoteNotReady),
		want: EndpointSets{Cluster: []Endpoint{localTerminating, remoteTerminating}, Reachable: []Endpoint{localTerminating, remoteTerminating}, Any: true},
	}, {
		name: "Cluster: nothing usable",
		port: port(PolicyCluster, PolicyCluster, 0, remoteGone, remoteNotReady),
		want: EndpointSets{},
	}, {
		name: "iTP Local: only local ready endpoints; remote ones still count as existing",
		port: port(PolicyLocal, PolicyCluster, 0, localReady, remoteReady),
		want: EndpointSets{Local: []Endpoint{localReady}, Reachable: []Endpoint{localReady}, Any: true},
	}, {
		name: "iTP Local without local endpoints: nothing reachable, but not rejected",
		port: port(PolicyLocal, PolicyCluster, 0, remoteReady),
		want: EndpointSets{Any: true},
	}, {
		name: "iTP Local: no local ready endpoint falls back to local serving terminating ones",
		port: port(PolicyLocal, PolicyCluster, 0, localTerminating, remoteReady),
		want: EndpointSets{Local: []Endpoint{localTerminating}, Reachable: []Endpoint{localTerminating}, Any: true},
	}, {
		name: "eTP Local with a node port: both sets, reachable is their union",
		port: port(PolicyCluster, PolicyLocal, 30080, localTerminating, remoteReady, remoteTerminating),
		want: EndpointSets{
			Cluster:   []Endpoint{remoteReady},
			Local:     []Endpoint{localTerminating},
			Reachable: []Endpoint{localTerminating, remoteReady},
			Any:       true,
		},
	}, {
		name: "iTP Local on an externally accessible port still needs Cluster endpoints",
		port: port(PolicyLocal, PolicyCluster, 30080, localReady, remoteReady),
		want: EndpointSets{
			Cluster:   []Endpoint{localReady, remoteReady},
			Local:     []Endpoint{localReady},
			Reachable: []Endpoint{localReady, remoteReady},
			Any:       true,
		},
	}, {
		name: "eTP Local means nothing without an external address",
		port: port(PolicyCluster, PolicyLocal, 0, localReady, remoteReady),
		want: EndpointSets{Cluster: []Endpoint{localReady, remoteReady}, Reachable: []Endpoint{localReady, remoteReady}, Any: true},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.port.EndpointSets(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("EndpointSets:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
