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

// Package model turns svcplane Services, their EndpointSlices and the node the agent
// runs on into the desired state of the node's dataplane: one ServicePort per
// (Service, port) with every address that should reach it and every endpoint it may
// send to. It is the only place that reads API types; backends (iptables, IPVS,
// nftables) see only the State it returns.
//
// Everything here is a pure function of its inputs: the same objects give the same
// State, sorted the same way, so that backends can diff two States and tests can
// compare them. The State is split by IP family because every kernel interface the
// backends drive is (iptables vs ip6tables, one nftables family per address family):
// a dual-stack Service appears in both views, with only that family's addresses.
//
// The meaning of each field follows kube-proxy: what a Service "is" for the dataplane
// is what status says svcplane allocated (cluster IPs, node ports, health check node
// port, load-balancer ingress), plus the spec fields kube-proxy reads directly
// (external IPs, session affinity, traffic policies, source ranges).
//
// Decide is the backend-neutral core every backend renders from: for one service
// port, which endpoints internal and external traffic go to, whether traffic with
// nowhere to go is rejected or dropped, whether the external entry and the
// load-balancer source filter exist, and affinity. Backends decide nothing of
// that themselves, so that every mode sends the same packet to the same place.
package model
