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

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/svcplane/svcplane/test/vm"
)

// variantIPVS is both proxies in IPVS mode. This machine's kernel has no IPVS, so the
// point runs in a VM of Debian's kernel (test/vm): the agent and kube-proxy run one
// after the other in the same boot, each in a network namespace of its own inside
// the VM, fed through the harness's API server on the host. kube-proxy's iptables
// rules go through iptables-legacy.
var variantIPVS = variant{Name: "ipvs", Tools: "legacy",
	AgentArgs: []string{"--mode=ipvs"}, KubeProxyArgs: []string{"--proxy-mode=ipvs"}}

// ipvsAPIAddr is where the guest reaches the host's API server: QEMU's guestfwd to
// the host's loopback.
var ipvsAPIAddr = netip.AddrPortFrom(netip.MustParseAddr("10.0.2.100"), 6443)

// ipvsModules are loaded at the guest's boot: IPVS, the agent's filter stage
// (nftables), and kube-proxy's ipsets and iptables-legacy rules with the matches and
// targets its IPVS mode writes.
var ipvsModules = []string{
	"crc32c_generic", "ip_vs", "ip_vs_rr", "nf_conntrack", "dummy",
	"nf_tables", "nf_nat", "nft_chain_nat", "nft_nat", "nft_masq", "nft_reject", "nft_reject_ipv4", "nft_reject_ipv6",
	"ip_set", "ip_set_hash_ip", "ip_set_hash_ipport", "ip_set_hash_ipportip", "ip_set_hash_ipportnet", "ip_set_hash_net", "ip_set_bitmap_port",
	"x_tables", "ip_tables", "iptable_nat", "iptable_filter", "iptable_mangle", "ip6_tables", "ip6table_nat", "ip6table_filter", "ip6table_mangle",
	"xt_set", "xt_comment", "xt_mark", "xt_MASQUERADE", "xt_conntrack", "xt_addrtype", "xt_nat", "xt_tcpudp", "xt_multiport", "xt_physdev",
	"ipt_REJECT", "ip6t_REJECT",
}

// ipvsTools are the host programs the guest needs, copied with their libraries:
// nft for the agent's filter stage; ip for the harness's network namespaces;
// ipset and iptables-legacy for kube-proxy.
var ipvsTools = []string{"/usr/sbin/nft", "/usr/sbin/ipset", "/usr/bin/ip",
	"/usr/sbin/iptables-legacy", "/usr/sbin/iptables-legacy-save", "/usr/sbin/iptables-legacy-restore",
	"/usr/sbin/ip6tables-legacy", "/usr/sbin/ip6tables-legacy-save", "/usr/sbin/ip6tables-legacy-restore"}

// ipvsMarker starts the guest's result lines on the console; the rest of each is JSON.
const ipvsMarker = "bench-compare-ipvs: "

// ipvsJob is what the host asks of the guest.
type ipvsJob struct {
	Kubeconfig     []byte // the admin kubeconfig; its server is rewritten in the guest
	APIAddr        string // the API server as the guest reaches it
	BinDir, K8sDir string // where the binaries are, at their host paths
	Namespace      string
	Services       int // service ports already created, each with EndpointsPer endpoints
	EndpointsPer   int
	Idle           time.Duration
	Sides          []string // in the order they run
}

// ipvsSideResult is one proxy's result as the guest prints it.
type ipvsSideResult struct {
	Side   string
	Result *proxySide `json:",omitempty"`
	// VirtualServers and RealServers are what the proxy programmed, counted in its
	// network namespace at the end.
	VirtualServers, RealServers int
	Error                       string `json:",omitempty"`
}

// parseIPVSLine reads one console line: a side's result when it carries ipvsMarker.
func parseIPVSLine(line string) (*ipvsSideResult, bool, error) {
	i := strings.Index(line, ipvsMarker)
	if i < 0 {
		return nil, false, nil
	}
	var r ipvsSideResult
	if err := json.Unmarshal([]byte(line[i+len(ipvsMarker):]), &r); err != nil {
		return nil, true, fmt.Errorf("a result line the guest printed does not parse: %w", err)
	}
	if r.Side != sideSvcplane && r.Side != sideKube {
		return nil, true, fmt.Errorf("a result of unknown side %q", r.Side)
	}
	if r.Error == "" && r.Result == nil {
		return nil, true, fmt.Errorf("the %s result has neither numbers nor an error", r.Side)
	}
	return &r, true, nil
}

// ipvsWorkload measures the agent and kube-proxy in IPVS mode at one size, inside a VM.
func ipvsWorkload(ctx context.Context, b *bench, services, endpointsPer int, idle time.Duration) (*dataplanePoint, error) {
	ns, err := namespace(ctx, b.c, "dp-ipvs-")
	if err != nil {
		return nil, err
	}
	fmt.Printf("dataplane ipvs %d x %d: creating Services and slices in %s\n", services, endpointsPer, ns)
	if err := parallel(ctx, services, b.clients, func(i int) error { return createDataplaneService(ctx, b.c, ns, i, endpointsPer) }); err != nil {
		return nil, err
	}
	if err := waitAllocated(ctx, b.c, ns, services); err != nil {
		return nil, err
	}

	guest, err := b.guestBinary(ctx)
	if err != nil {
		return nil, err
	}
	_, portStr, err := net.SplitHostPort(b.apiAddr)
	if err != nil {
		return nil, err
	}
	apiPort, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, err
	}
	job := ipvsJob{Kubeconfig: b.kubeconfig, APIAddr: ipvsAPIAddr.String(), BinDir: b.binDir, K8sDir: b.k8sDir,
		Namespace: ns, Services: services, EndpointsPer: endpointsPer, Idle: idle, Sides: []string{sideSvcplane, sideKube}}
	data, err := json.Marshal(job)
	if err != nil {
		return nil, err
	}
	jobPath := filepath.Join(b.dir, fmt.Sprintf("ipvs-job-%d.json", services))
	if err := os.WriteFile(jobPath, data, 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(b.dir, fmt.Sprintf("vm-ipvs-%d.log", services))
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer log.Close()

	pt := &dataplanePoint{Variant: variantIPVS.Name, Services: services, Sides: map[string]*proxySide{},
		Note: "Inside a VM (Debian's kernel, QEMU TCG without KVM, one vCPU): the agent, then kube-proxy, in the same boot, " +
			"each in a network namespace of its own; TCG emulates the CPU, so only the ratio carries over to a real node."}
	var errs []error
	m := vm.Machine{
		Modules:  ipvsModules,
		Binaries: append([]string{b.bin("agent"), b.bin("kube-proxy")}, ipvsTools...),
		Files:    map[string]string{"/bench/bench-compare": guest, "/bench/job.json": jobPath},
		Command:  []string{"/bench/bench-compare"},
		Env:      []string{ipvsGuestEnv + "=/bench/job.json"},
		Forwards: []vm.Forward{{GuestAddr: ipvsAPIAddr.Addr(), GuestPort: int(ipvsAPIAddr.Port()), HostPort: apiPort}},
		// The initramfs (the three Go binaries: about 250 MB) lives in the guest's
		// memory next to both proxies.
		MemoryMiB: 3072 + services/2,
		Timeout:   3 * time.Hour,
	}
	fmt.Printf("dataplane ipvs %d x %d: booting the VM (guest log %s)\n", services, endpointsPer, logPath)
	res, err := vm.Boot(ctx, m, func(line string) {
		fmt.Fprintln(log, line)
		r, ok, err := parseIPVSLine(line)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !ok:
		case r.Error != "":
			errs = append(errs, fmt.Errorf("%s in the VM: %s", r.Side, r.Error))
		default:
			pt.Sides[r.Side] = r.Result
			fmt.Printf("dataplane ipvs %d x %d: %s done: first sync %s, %d virtual servers, %d real servers\n",
				services, endpointsPer, r.Side, ms(r.Result.FirstSync), r.VirtualServers, r.RealServers)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("the VM: %w (guest log %s)", err, logPath)
	}
	if res.Exit != 0 {
		errs = append(errs, fmt.Errorf("the guest exited with status %d (guest log %s)", res.Exit, logPath))
	}
	for _, side := range job.Sides {
		if pt.Sides[side] == nil {
			errs = append(errs, fmt.Errorf("no result from %s (guest log %s)", side, logPath))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return pt, nil
}

// guestBinary builds this program statically (the guest has no libc) into the run's
// directory, once.
func (b *bench) guestBinary(ctx context.Context) (string, error) {
	out := filepath.Join(b.dir, "bench-compare-static")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./hack/bench-compare")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if data, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("CGO_ENABLED=0 go build ./hack/bench-compare: %v\n%s", err, data)
	}
	return out, nil
}
