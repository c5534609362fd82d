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

// Package e2e is svcplane's real-kernel end-to-end test: packets from a client, the
// node and pods reach Services through the rules the agent writes, in a world of
// network namespaces the test builds and always removes (package world), with the
// control plane, the manager and the agent running inside the node's namespace
// (package cluster). Every test runs once per agent mode, iptables then nftables
// (SVCPLANE_E2E_MODES=iptables,nftables, the default), each with its own control
// plane on the same world. Once every test of a mode has run, TestMain switches
// the node to the other mode (restarting the agent in it, which removes the other
// modes' leftovers) and back (with `agent --cleanup` in between), checking that
// nothing of the old mode is left and that
// Services are served in the new one, and then checks that the agent's cleanup
// removes every rule and table it wrote: both stop the agent, so they cannot be
// tests that rely on running last.
//
// The world is dual-stack, IPv4 primary: the manager allocates cluster IPs of both
// families, pods and the node report an address of each, and the tests send IPv4
// and IPv6 traffic through iptables and ip6tables, or the ip and ip6 svcplane
// nftables tables: dualstack_test.go for IPv6, and a subtest per family where a
// test runs for both.
//
// It needs root, a kernel with IPv6 and nf_tables, ip, iptables, ip6tables, nft and
// the control plane binaries (`make controlplane`); without them it skips, except
// on CI (CI=true), where that is a failure. Run it alone with `make test-e2e`.
package e2e
