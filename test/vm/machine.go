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

package vm

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The guest's address on QEMU's user network (slirp's default 10.0.2.0/24).
const guestAddr = "10.0.2.15"

// Forward makes a TCP port of the host's loopback reachable from the guest at
// GuestAddr:GuestPort (QEMU's guestfwd). Nothing else leaves the guest: the
// user network runs with restrict=on.
type Forward struct {
	// GuestAddr is an address of the user network other than the guest's own
	// and slirp's (10.0.2.2, .3); 10.0.2.100 is the usual choice.
	GuestAddr netip.Addr
	GuestPort int
	// HostPort is the port on the host's 127.0.0.1.
	HostPort int
}

// Machine is a VM that runs one program instead of a test binary: a benchmark
// harness's guest side (hack/bench-compare's IPVS point).
type Machine struct {
	// Modules, OnDemand and Binaries are as in Options.
	Modules, OnDemand, Binaries []string
	// Files are host files copied as they are, keyed by their absolute path in
	// the guest (a statically linked program, its input).
	Files map[string]string
	// Command is the program and its arguments, run from / once the modules are
	// loaded, with Env added to a PATH that prefers /usr/sbin and /usr/bin (the
	// copied Binaries) over busybox's applets.
	Command []string
	Env     []string
	// Forwards reach host loopback ports from the guest; with any, the guest's
	// eth0 (an emulated e1000: Debian's virtio modules do not load from this
	// initramfs) is up at 10.0.2.15/24.
	Forwards  []Forward
	MemoryMiB int           // default 1024
	Timeout   time.Duration // default 30 minutes
}

// Result is how a Machine's run ended.
type Result struct {
	// Exit is the Command's exit status; -1 when it did not finish.
	Exit     int
	BootTime time.Duration
	// Console is the whole serial console, for a guest that did not boot.
	Console string
}

// Boot boots m once and runs its Command, passing each line the command prints
// (stdout and stderr, as the console shows them) to emit as it comes. The error
// is for a VM that cannot run (no qemu, busybox or kernel, a bad Machine) or
// that did not boot or finish, with the guest's console; a command that ran and
// failed is a Result with a non-zero Exit.
func Boot(ctx context.Context, m Machine, emit func(line string)) (*Result, error) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return nil, fmt.Errorf("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86): %w", err)
	}
	busybox, err := findBusybox()
	if err != nil {
		return nil, err
	}
	kernelDir, err := fetchKernel()
	if err != nil {
		return nil, fmt.Errorf("no kernel to boot: %w", err)
	}
	kernel, modRoot, err := kernelFiles(kernelDir)
	if err != nil {
		return nil, err
	}
	if len(m.Command) == 0 {
		return nil, errors.New("the machine has no command")
	}
	files := map[string]string{}
	for guest, host := range m.Files {
		if !filepath.IsAbs(guest) {
			return nil, fmt.Errorf("guest path %q is not absolute", guest)
		}
		files[strings.TrimPrefix(filepath.Clean(guest), "/")] = host
	}
	var extra []string
	modules := m.Modules
	if len(m.Forwards) > 0 {
		netdev := "user,id=net0,restrict=on,net=10.0.2.0/24"
		for _, f := range m.Forwards {
			if !f.GuestAddr.Is4() || f.GuestPort <= 0 || f.HostPort <= 0 {
				return nil, fmt.Errorf("invalid forward %+v", f)
			}
			// cmd: runs one relay per connection; a tcp: chardev would carry
			// one connection for the whole boot.
			netdev += fmt.Sprintf(",guestfwd=tcp:%s:%d-cmd:%s nc 127.0.0.1 %d", f.GuestAddr, f.GuestPort, busybox, f.HostPort)
		}
		// romfile= : no PXE ROM, the kernel is booted directly.
		extra = append(extra, "-netdev", netdev, "-device", "e1000,netdev=net0,romfile=")
		modules = append([]string{"e1000"}, modules...)
	}
	args := make([]string, len(m.Command))
	for i, a := range m.Command {
		args[i] = shellQuote(a)
	}
	env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/tmp"}
	for _, e := range m.Env {
		if !strings.Contains(e, "=") {
			return nil, fmt.Errorf("invalid environment entry %q", e)
		}
		env = append(env, shellQuote(e))
	}
	dir, err := os.MkdirTemp("", "svcplane-vm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	initrd := filepath.Join(dir, "initramfs.cpio")
	if err := writeInitramfs(initrd, initramfs{
		busybox: busybox, modRoot: modRoot, modules: modules, onDemand: m.OnDemand, binaries: m.Binaries,
		files: files, network: len(m.Forwards) > 0,
		// 2>&1: the command's errors belong in the same stream as its output.
		command: "env " + strings.Join(env, " ") + " " + strings.Join(args, " ") + " 2>&1",
	}); err != nil {
		return nil, err
	}
	mem := m.MemoryMiB
	if mem == 0 {
		mem = 1024
	}
	timeout := m.Timeout
	if timeout == 0 {
		timeout = 30 * time.Minute
	}
	res, err := boot(ctx, qemu, kernel, initrd, mem, timeout, extra, emit)
	if err != nil {
		return nil, err
	}
	out := &Result{Exit: res.exit, BootTime: res.bootTime, Console: res.console.String()}
	if !res.started || res.exit < 0 {
		return out, errors.New(res.failure())
	}
	return out, nil
}
