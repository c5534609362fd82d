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
	"errors"
	"net"
	"os"
	"testing"

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
