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

// kubeServiceNameLabel is never copied from a Service's labels onto a slice: svcplane's
// slices must not look like core Service endpoints (see v1alpha1.LabelServiceName).
const kubeServiceNameLabel = "kubernetes.io/service-name"

// DefaultMaxEndpointsPerSlice is kube's default --max-endpoints-per-slice.
const DefaultMaxEndpointsPerSlice = 100
