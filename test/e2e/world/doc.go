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

// Package world builds a small network out of Linux network namespaces for the
// real-kernel end-to-end test and `make demo`: one node, pods joined to it by veth
// pairs, each running an HTTP server and a UDP server (on the same port) that
// answer with its own name (the HTTP server answers ClientIPPath with the source
// address it saw instead), and a client outside the node. Everything it creates is
// named with a prefix and the creating process's ID, so that what a crashed run
// left behind is found and removed by the next one, and nothing it sends leaves
// its namespaces.
//
// Addresses (dual-stack, IPv4 primary; reserved ranges), IPv4 then IPv6:
//
//	pod network (--cluster-cidr)  10.244.0.0/16, fd00:10:244::/48 (ULA)
//	this node's pods              10.244.1.10, .11, ... each a /32, and
//	                              fd00:10:244:1::a, ::b, ... each a /128, on the
//	                              pod's eth0
//	pod gateway                   10.244.1.1/32 and fd00:10:244:1::1/128 on the
//	                              node's end of every pod veth, as the CNI ptp
//	                              plugin does: every packet a pod sends goes
//	                              through the node's IP stack, and its iptables
//	                              and ip6tables
//	node <-> client link          203.0.113.0/24 (TEST-NET-3) and 2001:db8:1::/64
//	                              (documentation): node 203.0.113.1 and
//	                              2001:db8:1::1 ("uplink"), client 203.0.113.2
//	                              and 2001:db8:1::2
//
// Every IPv6 address is added with nodad, so that it is usable at once rather
// than after Duplicate Address Detection. The node forwards both families. Its
// default routes point at the client, as a real node's point at its router:
// traffic to a cluster IP needs a route before the agent's DNAT rewrites it. The
// client forwards nothing, so a packet no rule catches ends there.
//
// The harness binary plays the pods' servers and the clients itself: Main must be
// the first thing its TestMain or main calls. Get collects the answers of a pod's
// server from inside any namespace; Probe returns one answer with its status code,
// as a load balancer's health check sees it.
package world
