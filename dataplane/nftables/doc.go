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

// Package nftables is the nftables backend: it renders a model.State into one
// nftables table per family (ip and ip6 "svcplane"), shaped after kube-proxy's
// nftables mode: a handful of base chains with explicit priorities, verdict maps
// keyed by destination address, protocol and port (and by protocol and port for
// node ports) that send each packet to its service port's chain in one lookup, one
// chain per service port and policy and one per endpoint, and dynamic sets with
// timeouts for ClientIP affinity. It writes through sigs.k8s.io/knftables: every
// sync is one nft transaction per family, so the kernel holds either the previous
// rules or the new ones, never half of them.
//
// Partial syncs write only the chains whose rules changed and the map elements
// that differ from what the last successful sync applied; a full sync (the first,
// every --sync-period the runner asks for, after any failure, or when the table was
// flushed or deleted by someone else) rewrites everything and removes what it no
// longer needs. Decisions are model.Decide's, shared with every backend; see the
// README for the objects and their hooks.
package nftables
