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

package healthcheck

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Pod addresses are in 10.244.0.0/16 and fd00:10:244::/64; this node is "node-a".

func ep(addr string, local, ready bool) model.Endpoint {
	return model.Endpoint{Addr: netip.MustParseAddr(addr), Port: 8080, Local: local, Ready: ready, Serving: ready}
}

func TestFromState(t *testing.T) {
	web := func(port string, hc uint16, eps ...model.Endpoint) *model.ServicePort {
		return &model.ServicePort{Name: model.ServicePortName{Namespace: "ns", Name: "web", Port: port, Protocol: model.TCP}, HealthCheckNodePort: hc, Endpoints: eps}
	}
	st := model.State{
		IPv4: model.View{Family: model.IPv4, ServicePorts: []*model.ServicePort{
			// Two ports listing the same local pods count them once.
			web("http", 32000, ep("10.244.1.5", true, true), ep("10.244.1.6", true, true), ep("10.244.2.5", false, true), ep("10.244.1.7", true, false)),
			web("https", 32000, ep("10.244.1.5", true, true), ep("10.244.1.6", true, true)),
			// No health check node port: not served.
			{Name: model.ServicePortName{Namespace: "ns", Name: "plain", Protocol: model.TCP}, Endpoints: []model.Endpoint{ep("10.244.1.5", true, true)}},
			// Only remote endpoints.
			{Name: model.ServicePortName{Namespace: "a", Name: "remote", Protocol: model.TCP}, HealthCheckNodePort: 32001, Endpoints: []model.Endpoint{ep("10.244.2.5", false, true)}},
		}},
		IPv6: model.View{Family: model.IPv6, ServicePorts: []*model.ServicePort{
			// The same two pods by their IPv6 addresses are still two pods.
			web("http", 32000, ep("fd00:10:244::5", true, true), ep("fd00:10:244::6", true, true)),
			// An IPv6-only Service.
			{Name: model.ServicePortName{Namespace: "v6", Name: "only", Protocol: model.TCP}, HealthCheckNodePort: 32002, Endpoints: []model.Endpoint{ep("fd00:10:244::9", true, true)}},
		}},
	}
	got := FromState(&st)
	want := []Service{
		{Name: ServiceName{Namespace: "a", Name: "remote"}, NodePort: 32001},
		{Name: ServiceName{Namespace: "ns", Name: "web"}, NodePort: 32000, LocalEndpoints: 2},
		{Name: ServiceName{Namespace: "v6", Name: "only"}, NodePort: 32002, LocalEndpoints: 1},
	}
	if !slices.Equal(got, want) {
		t.Errorf("FromState:\n got %+v\nwant %+v", got, want)
	}
}
