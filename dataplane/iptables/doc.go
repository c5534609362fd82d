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

// Package iptables is the iptables backend of the svcplane agent. It renders a
// model.State into the rules kube-proxy's iptables mode would write, under the
// SVCP- prefix, and applies them with one iptables-restore --noflush run per family
// (ip6tables-restore for IPv6). Only the chains of services whose rules changed are
// rewritten between full resyncs; a canary chain in each table tells a partial sync
// that something else flushed the tables, and makes it a full one. See README.md
// for the chains, hooks and what the package owns.
//
// The kernel is reached only through an Executor: Exec runs the real tools, Fake is
// a strict in-memory model of them for tests.
package iptables
