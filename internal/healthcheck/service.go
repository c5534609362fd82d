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
	"cmp"
	"net/netip"
	"slices"

	"github.com/svcplane/svcplane/dataplane/model"
)

// ServiceName is the namespace and name of a Service.
type ServiceName struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// String returns "namespace/name".
func (n ServiceName) String() string { return n.Namespace + "/" + n.Name }

// Service is one health check node port and what it reports.
type Service struct {
	Name ServiceName
	// NodePort is the Service's healthCheckNodePort.
	NodePort uint16
	// LocalEndpoints is the number of ready endpoints of the Service on this node.
	LocalEndpoints int
}

// FromState returns the health check node ports of st, sorted by Service name,
// each with the number of ready endpoints on this node. An endpoint counts once
// however many ports of the Service list it. A dual-stack pod is one endpoint in
// each family, so the count is that of the family with more: the number of local
// pods, not of their addresses.
func FromState(st *model.State) []Service {
	type perFamily map[model.Family]map[netip.Addr]bool
	byName := map[ServiceName]*Service{}
	local := map[ServiceName]perFamily{}
	for _, f := range model.Families {
		for _, p := range st.View(f).ServicePorts {
			if p.HealthCheckNodePort == 0 {
				continue
			}
			name := ServiceName{Namespace: p.Name.Namespace, Name: p.Name.Name}
			if byName[name] == nil {
				byName[name] = &Service{Name: name, NodePort: p.HealthCheckNodePort}
				local[name] = perFamily{}
			}
			if local[name][f] == nil {
				local[name][f] = map[netip.Addr]bool{}
			}
			for _, ep := range p.Endpoints {
				if ep.Local && ep.Ready {
					local[name][f][ep.Addr] = true
				}
			}
		}
	}
	out := make([]Service, 0, len(byName))
	for name, svc := range byName {
		for _, addrs := range local[name] {
			svc.LocalEndpoints = max(svc.LocalEndpoints, len(addrs))
		}
		out = append(out, *svc)
	}
	slices.SortFunc(out, func(a, b Service) int {
		return cmp.Or(cmp.Compare(a.Name.Namespace, b.Name.Namespace), cmp.Compare(a.Name.Name, b.Name.Name))
	})
	return out
}
