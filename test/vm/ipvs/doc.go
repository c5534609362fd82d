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

// Package ipvs is the IPVS mode's end-to-end test on a real kernel: TestVM boots
// Debian's kernel in QEMU (package vm) and runs every other test of the package
// inside it, once. There the tests build a node (the VM's root network
// namespace), three pods and a client in network namespaces joined by veth pairs,
// drive the IPVS backend directly with model state (no API server is needed to
// test the kernel side), and send TCP connections from the client to cluster IPs
// and node ports.
//
// Run it alone with `make test-vm`. Without qemu-system-x86_64, busybox-static or
// Debian's kernel package it skips, except on CI (CI=true), where that fails.
package ipvs
