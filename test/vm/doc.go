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

// Package vm runs a package's tests on a real Linux kernel inside a virtual
// machine: Debian's kernel package (fetched and cached by hack/vm/kernel.sh) booted
// by QEMU without KVM, with an initramfs of busybox, the kernel modules the tests
// need and a statically linked build of the test binary. It exists because the
// machines that build svcplane have no IPVS and no dummy interfaces in their
// kernel, and no /dev/kvm.
//
// A package uses it with one host-side test that boots the VM once and runs every
// test of the package inside it:
//
//	func TestVM(t *testing.T) { vm.RunTests(t, vm.Options{Modules: ...}) }
//
//	func TestSomething(t *testing.T) {
//		vm.RequireGuest(t) // skipped on the host: it runs in the VM
//		...
//	}
//
// The guest's test output streams into TestVM's log; TestVM fails when the guest
// tests fail, and shows the guest's console when it does not boot. Without
// qemu-system-x86_64, busybox-static or the kernel package it skips, except on CI
// (CI=true), where that is a failure.
//
// Boot runs a program that is not a test binary the same way (hack/bench-compare's
// IPVS point), optionally with a network: QEMU's user network with restrict=on, an
// e1000 NIC at 10.0.2.15, and guestfwd relays to ports of the host's loopback.
package vm
