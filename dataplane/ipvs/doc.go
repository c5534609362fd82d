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

// Package ipvs is the agent's IPVS mode (--mode=ipvs): every address, protocol and
// port a Service answers on is an IPVS virtual server whose real servers are the
// endpoints the shared core (model.Decide) picked for that traffic, forwarded by
// NAT. Cluster IPs, external IPs and load-balancer IPs are bound to the dummy
// interface svcplane0 so that the kernel treats them as local; node ports are
// virtual servers on the node's addresses.
//
// The kernel is reached through Interface: Netlink (github.com/moby/ipvs and
// github.com/vishvananda/netlink) on a node, Fake in tests. Syncs are partial
// (only virtual servers that differ from the record of what was applied) except
// the first, those after an error and those the agent asks for, which read the
// kernel first. See README.md for what the mode owns and what it does not do yet.
package ipvs
