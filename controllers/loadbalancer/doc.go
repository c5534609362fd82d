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

// Package loadbalancer is the contract between svcplane's LoadBalancer reconciler
// and the providers that give LoadBalancer Services an external address: the Provider
// interface (modelled on k8s.io/cloud-provider's LoadBalancer), a Registry that routes
// a Service to a provider by its loadBalancerClass, and the helpers every provider
// needs (eligible nodes, requested addresses, a stable name, retry-after errors).
//
// It is plain Go: it does not import controller-runtime, and providers see copies of
// Services and Nodes, never a client. README.md in this directory explains how to
// write, register, build and test a provider.
package loadbalancer
