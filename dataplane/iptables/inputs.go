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
	"hash/maphash"
	"net/netip"

	"github.com/svcplane/svcplane/dataplane/model"
)

// The text of one service port is a function of the port and of the view-wide
// fields that viewHash covers. Hashing those inputs, with no allocation, tells a
// partial render which ports it must render again; TestInputHashesCoverEveryField
// fails when a field is added to model.ServicePort, model.Endpoint or model.View
// without being hashed here.

// portScalars are the comparable fields of a model.ServicePort.
type portScalars struct {
	name                  model.ServicePortName
	port, nodePort, hc    uint16
	clusterIP             netip.Addr
	affinity              model.SessionAffinity
	externalTrafficPolicy model.TrafficPolicy
	internalTrafficPolicy model.TrafficPolicy
}

// inputHash returns the hash of everything in p that its rules depend on.
func (r *renderer) inputHash(p *model.ServicePort) uint64 {
	var h maphash.Hash
	h.SetSeed(r.seed)
	maphash.WriteComparable(&h, portScalars{
		name: p.Name, port: p.Port, nodePort: p.NodePort, hc: p.HealthCheckNodePort,
		clusterIP: p.ClusterIP, affinity: p.SessionAffinity,
		externalTrafficPolicy: p.ExternalTrafficPolicy, internalTrafficPolicy: p.InternalTrafficPolicy,
	})
	// Each list is preceded by its length, so that an address moving from one
	// list to the next changes the hash.
	maphash.WriteComparable(&h, len(p.ExternalIPs))
	for _, a := range p.ExternalIPs {
		maphash.WriteComparable(&h, a)
	}
	maphash.WriteComparable(&h, len(p.LoadBalancerIPs))
	for _, a := range p.LoadBalancerIPs {
		maphash.WriteComparable(&h, a)
	}
	maphash.WriteComparable(&h, len(p.LoadBalancerSourceRanges))
	for _, s := range p.LoadBalancerSourceRanges {
		maphash.WriteComparable(&h, s)
	}
	maphash.WriteComparable(&h, len(p.Endpoints))
	for _, ep := range p.Endpoints {
		maphash.WriteComparable(&h, ep)
	}
	return h.Sum64()
}

// viewHash returns the hash of the view-wide inputs of every port's rules: the
// fields of v other than its service ports, and whether endpoint rules are terse.
func (r *renderer) viewHash(v *model.View) uint64 {
	var h maphash.Hash
	h.SetSeed(r.seed)
	maphash.WriteComparable(&h, v.Family)
	maphash.WriteComparable(&h, v.NodeName)
	maphash.WriteComparable(&h, v.NodePortsOnAllAddresses)
	maphash.WriteComparable(&h, v.ClusterCIDR)
	maphash.WriteComparable(&h, v.MasqueradeAll)
	maphash.WriteComparable(&h, r.terse)
	maphash.WriteComparable(&h, len(v.NodeAddresses))
	for _, a := range v.NodeAddresses {
		maphash.WriteComparable(&h, a)
	}
	maphash.WriteComparable(&h, len(v.NodePortAddresses))
	for _, a := range v.NodePortAddresses {
		maphash.WriteComparable(&h, a)
	}
	return h.Sum64()
}
