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

// Package dataplanetest holds what every dataplane backend is tested with: the
// fixtures of its golden files and one list of packet scenarios ("a pod → ClusterIP
// lands on a ready endpoint", "eTP Local without a local endpoint drops", ...) that
// each backend runs through its own tracer over its own strict fake. A scenario one
// backend fails is a bug in that backend, never a skip: the scenarios say what a
// Kubernetes user expects of a Service, whatever programs the node.
//
// IP conventions of the fixtures and scenarios:
//
//   - The node is "node-a" with addresses 192.168.0.10 and fd00:192:168::10; its
//     pods are in 10.244.1.0/24 and fd00:10:244:1::/64. Pods on other nodes are in
//     10.244.2.0/24 and fd00:10:244:2::/64. The pod network (cluster CIDR) is
//     10.244.0.0/16 and fd00:10:244::/56.
//   - Cluster IPs are in 10.96.0.0/16 and fd00:10:96::/112.
//   - Load-balancer IPs are in 192.0.2.0/24 and 2001:db8:2::/64, external IPs in
//     198.51.100.0/24 and 2001:db8:51::/64, clients outside the cluster in
//     203.0.113.0/24 and 2001:db8:113::/64.
//   - Service ports are "ns/<name>:<port>"; endpoints listen on 8080.
package dataplanetest
