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
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/ipvs"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The harness's own test: it boots the VM and checks, inside it, the kernel
// features the IPVS tests rely on. Addresses: 192.0.2.0/24 (documentation range),
// on a dummy interface inside the VM only.

func TestVM(t *testing.T) {
	RunTests(t, Options{
		Modules:  []string{"crc32c_generic", "ip_vs", "dummy"},
		OnDemand: []string{"ip_vs_sh"},
	})
}

func TestGuestKernel(t *testing.T) {
	RequireGuest(t)
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		t.Fatalf("ip_vs is not loaded: %v", err)
	}
	link := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "vmtest0"}}
	if err := netlink.LinkAdd(link); err != nil {
		t.Fatalf("add a dummy interface: %v", err)
	}
	defer netlink.LinkDel(link)

	h, err := ipvs.New("")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// sh is not loaded at boot: the kernel must load it on demand through busybox's
	// modprobe and the modules.dep the harness wrote.
	svc := &ipvs.Service{Address: net.ParseIP("192.0.2.10").To4(), Protocol: unix.IPPROTO_TCP, Port: 80,
		SchedName: "sh", AddressFamily: unix.AF_INET, Netmask: 0xffffffff}
	if err := h.NewService(svc); err != nil {
		t.Fatalf("add a virtual server with the sh scheduler: %v", err)
	}
	defer h.DelService(svc)
	got, err := h.GetServices()
	if err != nil || len(got) != 1 || got[0].SchedName != "sh" {
		t.Fatalf("GetServices = %v, %v; want the one sh virtual server", got, err)
	}
	// A scheduler the kernel does not ship fails with ENOENT.
	bad := *svc
	bad.Port, bad.SchedName = 81, "nosuch"
	if err := h.NewService(&bad); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("NewService with an unknown scheduler = %v, want ENOENT", err)
	}
}

// TestBootFailureShowsConsole: a guest that never reaches its tests fails the run
// with its whole console, so that the reason (here: init exits, the kernel
// panics) is in the test output.
func TestBootFailureShowsConsole(t *testing.T) {
	if InGuest() {
		t.Skip("boots a VM of its own")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		skipOrFail(t, "qemu-system-x86_64 is not installed: %v", err)
	}
	busybox, err := findBusybox()
	if err != nil {
		skipOrFail(t, "%v", err)
	}
	dir, err := fetchKernel()
	if err != nil {
		skipOrFail(t, "no kernel to boot: %v", err)
	}
	kernel, _, err := kernelFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(t.TempDir(), "broken.cpio")
	f, err := os.Create(initrd)
	if err != nil {
		t.Fatal(err)
	}
	w := newCPIOWriter(f)
	w.file("init", 0o755, []byte("#!/bin/busybox sh\n/bin/busybox echo broken-init-ran\nexit 3\n"))
	w.copyFile("bin/busybox", busybox)
	w.charDevice("dev/console", 5, 1)
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	res, err := boot(context.Background(), qemu, kernel, initrd, 256, 3*time.Minute, nil, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	msg := res.failure()
	for _, want := range []string{"the guest did not boot to its tests", "guest console:", "broken-init-ran", "Attempted to kill init"} {
		if !strings.Contains(msg, want) {
			t.Errorf("failure message lacks %q:\n%s", want, msg)
		}
	}
}
