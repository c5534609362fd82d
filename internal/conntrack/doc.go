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

// Package conntrack clears the connection tracking entries that keep UDP clients
// talking to endpoints the agent no longer sends traffic to, as kube-proxy does
// after each successful sync of its rules.
//
// NAT rules see only the first packet of a flow; conntrack applies the same
// translation to every later packet. A UDP client that keeps sending from one
// socket (a DNS resolver) therefore keeps reaching an endpoint that was removed,
// or the nowhere its packets went while the service had no rules, until it pauses
// long enough for the entry to expire, which a busy client never does. TCP and SCTP
// need nothing: their connections end with the endpoint, and a new connection is
// a new DNAT decision.
//
// Stale computes what to clear from two desired states, and Scan from one state
// and the entries the kernel lists, for the first sync after a start (plain Go);
// Netlink lists and deletes entries over netlink (ctnetlink, through
// github.com/vishvananda/netlink, as kube-proxy does), in the network namespace it
// was opened in; Fake is a strict in-memory conntrack table for tests; Backend
// wraps another dataplane.Backend and clears after each Sync that succeeded.
package conntrack
