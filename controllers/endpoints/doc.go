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

// Package endpoints computes the EndpointSlices of a Service from its pods, the way
// kube-controller-manager's EndpointSlice controller does for core Services: one set of
// slices per address family and per set of resolved ports, at most N endpoints a slice,
// filling existing slices before creating new ones and never rewriting a slice whose
// content did not change. It is plain Go; the reconciler applies the Plan.
package endpoints

// Labels and values that mark the slices svcplane manages. They deliberately differ
// from kube's kubernetes.io/service-name so that kube-proxy and CoreDNS in a real
// cluster never take them for core Service endpoints.
const (
	// LabelServiceName names the svcplane Service a slice belongs to.
	LabelServiceName = "networking.svcplane.io/service-name"
	// LabelManagedBy is the well-known label naming a slice's manager.
	LabelManagedBy = "endpointslice.kubernetes.io/managed-by"
	// ManagedByValue is LabelManagedBy's value on slices svcplane manages.
	ManagedByValue = "endpointslice.svcplane.io"
	// LabelHeadless marks the slices of headless Services, as kube does.
	LabelHeadless = "service.kubernetes.io/headless"
	// kubeServiceNameLabel is never copied from a Service's labels onto a slice.
	kubeServiceNameLabel = "kubernetes.io/service-name"
)

// DefaultMaxEndpointsPerSlice is kube's default --max-endpoints-per-slice.
const DefaultMaxEndpointsPerSlice = 100
