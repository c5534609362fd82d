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

package v1alpha1

// Names that the manager and the agent (and anyone else reading svcplane's objects)
// share on the wire. They live with the API so that dataplane/ never imports
// controllers/ to learn them.
//
// The EndpointSlice labels deliberately differ from kube's kubernetes.io/service-name
// so that kube-proxy and CoreDNS in a real cluster never take svcplane's slices for
// core Service endpoints.
const (
	// LabelServiceName names the svcplane Service an EndpointSlice belongs to.
	LabelServiceName = "networking.svcplane.io/service-name"
	// LabelManagedBy is the well-known label naming an EndpointSlice's manager.
	LabelManagedBy = "endpointslice.kubernetes.io/managed-by"
	// ManagedByValue is LabelManagedBy's value on the slices svcplane manages.
	ManagedByValue = "endpointslice.svcplane.io"
	// LabelHeadless marks the slices of headless Services, as kube does.
	LabelHeadless = "service.kubernetes.io/headless"

	// FinalizerLoadBalancerCleanup keeps a LoadBalancer Service from going away until
	// its provider deleted the load balancer (kube's
	// service.kubernetes.io/load-balancer-cleanup, in svcplane's group).
	FinalizerLoadBalancerCleanup = "networking.svcplane.io/load-balancer-cleanup"

	// AnnotationLoadBalancerIPs asks for specific external addresses: a
	// comma-separated list with at most one address per IP family, e.g.
	// "192.0.2.10,2001:db8::10". It replaces the deprecated spec.loadBalancerIP, which
	// can only hold one address.
	AnnotationLoadBalancerIPs = "networking.svcplane.io/load-balancer-ips"
	// AnnotationLoadBalancerIPPool names the LoadBalancerIPPool the ippool provider
	// takes the Service's addresses from, whether or not that pool auto-assigns.
	AnnotationLoadBalancerIPPool = "networking.svcplane.io/load-balancer-ip-pool"
)
