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

package world

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Fixed addresses and names of the world; see the package documentation.
const (
	// ServerPort is the port every pod's servers listen on, TCP (HTTP) and UDP.
	ServerPort = 8080

	uplinkName = "uplink" // the node's interface towards the client
	podIfName  = "eth0"   // the interface inside a pod or the client
	linkBits   = 24       // prefix length of the node <-> client link
	linkBits6  = 64       // the same for IPv6, a link's usual /64
)

var (
	// ClusterCIDR is the pod network.
	ClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")
	// PodGateway is the node's address on every pod link.
	PodGateway = netip.MustParseAddr("10.244.1.1")
	// NodeIP is the node's address towards the client: its InternalIP.
	NodeIP = netip.MustParseAddr("203.0.113.1")
	// ClientIP is the client's address.
	ClientIP = netip.MustParseAddr("203.0.113.2")

	// ClusterCIDRv6 is the pod network's IPv6 prefix.
	ClusterCIDRv6 = netip.MustParsePrefix("fd00:10:244::/48")
	// PodGatewayIPv6 is the node's IPv6 address on every pod link.
	PodGatewayIPv6 = netip.MustParseAddr("fd00:10:244:1::1")
	// NodeIPv6 is the node's IPv6 address towards the client: its second
	// InternalIP.
	NodeIPv6 = netip.MustParseAddr("2001:db8:1::1")
	// ClientIPv6 is the client's IPv6 address.
	ClientIPv6 = netip.MustParseAddr("2001:db8:1::2")

	firstPodIP   = netip.MustParseAddr("10.244.1.10")
	firstPodIPv6 = netip.MustParseAddr("fd00:10:244:1::a")
)

// Pod is one pod of the world.
type Pod struct {
	// Name is the pod's name, the answer of its server.
	Name string
	// Netns is the pod's network namespace.
	Netns string
	// IP is the pod's IPv4 address, its primary one.
	IP netip.Addr
	// IPv6 is the pod's IPv6 address.
	IPv6 netip.Addr
}

// World is a built world. It is JSON-encodable, so that a process re-executed
// inside the node's namespace can pick it up (Env, FromEnv).
type World struct {
	// Prefix starts the name of every namespace of the world: the prefix given
	// to Create and the creator's process ID.
	Prefix string
	// Node and Client are the node's and the client's network namespaces.
	Node, Client string
	Pods         []Pod

	servers []*exec.Cmd
}

// Create builds a world whose namespaces are named prefix-PID-*, with one pod per
// name in pods. On error it removes what it created. The caller must Destroy the
// world, also when it panics or is signalled (Supervise helps with that).
func Create(prefix string, pods ...string) (w *World, err error) {
	w = &World{Prefix: fmt.Sprintf("%s-%d", prefix, os.Getpid())}
	w.Node, w.Client = w.Prefix+"-node", w.Prefix+"-client"
	ip, ip6 := firstPodIP, firstPodIPv6
	for _, name := range pods {
		w.Pods = append(w.Pods, Pod{Name: name, Netns: w.Prefix + "-pod-" + name, IP: ip, IPv6: ip6})
		ip, ip6 = ip.Next(), ip6.Next()
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, w.Destroy())
		}
	}()

	for _, ns := range w.namespaces() {
		if err := run("ip", "netns", "add", ns); err != nil {
			return w, err
		}
		if err := run("ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
			return w, err
		}
	}
	link := func(addr netip.Addr, bits int) string { return netip.PrefixFrom(addr, bits).String() }
	host := func(addr netip.Addr) string { return netip.PrefixFrom(addr, addr.BitLen()).String() }
	// IPv6 addresses are added with nodad: Duplicate Address Detection would
	// keep each one tentative, unusable, for about a second, and nothing else
	// on these links could hold them.
	steps := [][]string{
		{"ip", "-n", w.Node, "link", "add", uplinkName, "type", "veth", "peer", "name", podIfName, "netns", w.Client},
		{"ip", "-n", w.Node, "addr", "add", link(NodeIP, linkBits), "dev", uplinkName},
		{"ip", "-n", w.Node, "addr", "add", link(NodeIPv6, linkBits6), "dev", uplinkName, "nodad"},
		{"ip", "-n", w.Node, "link", "set", uplinkName, "up"},
		{"ip", "-n", w.Client, "addr", "add", link(ClientIP, linkBits), "dev", podIfName},
		{"ip", "-n", w.Client, "addr", "add", link(ClientIPv6, linkBits6), "dev", podIfName, "nodad"},
		{"ip", "-n", w.Client, "link", "set", podIfName, "up"},
		{"ip", "-n", w.Node, "route", "add", "default", "via", ClientIP.String()},
		{"ip", "-n", w.Node, "-6", "route", "add", "default", "via", ClientIPv6.String(), "dev", uplinkName},
		{"ip", "netns", "exec", w.Node, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward && echo 1 > /proc/sys/net/ipv6/conf/all/forwarding"},
	}
	for i, p := range w.Pods {
		hostIf := "pod" + strconv.Itoa(i)
		steps = append(steps,
			[]string{"ip", "-n", w.Node, "link", "add", hostIf, "type", "veth", "peer", "name", podIfName, "netns", p.Netns},
			[]string{"ip", "-n", w.Node, "addr", "add", host(PodGateway), "dev", hostIf},
			[]string{"ip", "-n", w.Node, "addr", "add", host(PodGatewayIPv6), "dev", hostIf, "nodad"},
			[]string{"ip", "-n", w.Node, "link", "set", hostIf, "up"},
			[]string{"ip", "-n", w.Node, "route", "add", host(p.IP), "dev", hostIf},
			[]string{"ip", "-n", w.Node, "route", "add", host(p.IPv6), "dev", hostIf},
			[]string{"ip", "-n", p.Netns, "addr", "add", host(p.IP), "dev", podIfName},
			[]string{"ip", "-n", p.Netns, "addr", "add", host(p.IPv6), "dev", podIfName, "nodad"},
			[]string{"ip", "-n", p.Netns, "link", "set", podIfName, "up"},
			[]string{"ip", "-n", p.Netns, "route", "add", PodGateway.String(), "dev", podIfName, "scope", "link"},
			[]string{"ip", "-n", p.Netns, "route", "add", "default", "via", PodGateway.String(), "dev", podIfName},
			[]string{"ip", "-n", p.Netns, "route", "add", PodGatewayIPv6.String(), "dev", podIfName},
			[]string{"ip", "-n", p.Netns, "route", "add", "default", "via", PodGatewayIPv6.String(), "dev", podIfName},
		)
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return w, err
		}
	}
	return w, nil
}

// namespaces returns the world's namespaces, the node's first.
func (w *World) namespaces() []string {
	out := []string{w.Node, w.Client}
	for _, p := range w.Pods {
		out = append(out, p.Netns)
	}
	return out
}

// Pod returns the pod named name.
func (w *World) Pod(name string) (Pod, bool) {
	for _, p := range w.Pods {
		if p.Name == name {
			return p, true
		}
	}
	return Pod{}, false
}

// StartServers starts every pod's server and returns once each listens.
func (w *World) StartServers() error {
	for _, p := range w.Pods {
		cmd, err := w.Command(p.Netns, []string{envRole + "=" + roleServer, envPod + "=" + p.Name})
		if err != nil {
			return err
		}
		cmd.Stdout = nil
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting the server of %s: %w", p.Name, err)
		}
		w.servers = append(w.servers, cmd)
		ready := make(chan error, 1)
		go func() {
			line, err := bufio.NewReader(out).ReadString('\n')
			if err == nil && line != serverReady+"\n" {
				err = fmt.Errorf("unexpected %q", line)
			}
			ready <- err
		}()
		select {
		case err := <-ready:
			if err != nil {
				return fmt.Errorf("the server of %s did not start: %w", p.Name, err)
			}
		case <-time.After(10 * time.Second):
			return fmt.Errorf("the server of %s did not start within 10s", p.Name)
		}
	}
	return nil
}

// Command returns a command running this very binary inside netns, with env added
// to its environment and args as its arguments. It dies with its parent.
func (w *World) Command(netns string, env []string, args ...string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", netns, exe}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// ip execs the binary, which keeps the death signal: a harness killed
	// outright does not leave servers behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd, nil
}

// Env returns the environment variable that hands w to a process re-executed with
// Command; FromEnv reads it there.
func (w *World) Env() string {
	b, _ := json.Marshal(w)
	return envWorld + "=" + string(b)
}

// FromEnv returns the world Env handed to this process; nil when none was.
func FromEnv() (*World, error) {
	s := os.Getenv(envWorld)
	if s == "" {
		return nil, nil
	}
	var w World
	if err := json.Unmarshal([]byte(s), &w); err != nil {
		return nil, fmt.Errorf("%s: %w", envWorld, err)
	}
	return &w, nil
}

// Destroy stops the servers, ends every process still inside the world's
// namespaces (a control plane a crashed test left running) and deletes the
// namespaces, which deletes their interfaces. It is safe to call more than once.
func (w *World) Destroy() error {
	for _, cmd := range w.servers {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	w.servers = nil
	var errs []error
	for _, ns := range w.namespaces() {
		errs = append(errs, removeNamespace(ns))
	}
	return errors.Join(errs...)
}

// removeNamespace kills what runs in ns and deletes it; a namespace that does not
// exist is not an error.
func removeNamespace(ns string) error {
	if _, err := os.Stat("/run/netns/" + ns); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	return run("ip", "netns", "del", ns)
}

// SweepLeftovers removes the namespaces of worlds named with prefix whose creating
// process no longer runs: what a run killed outright left behind. Worlds of live
// processes (a demo running while the test does) are left alone.
func SweepLeftovers(prefix string) error {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return fmt.Errorf("ip netns list: %w", err)
	}
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `-(\d+)-`)
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		m := re.FindStringSubmatch(fields[0])
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || processExists(pid) {
			continue
		}
		errs = append(errs, removeNamespace(fields[0]))
	}
	return errors.Join(errs...)
}

func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Unsupported returns why no world can be built here, or "" when one can: it
// needs root, a kernel with IPv6, and the ip, iptables and ip6tables tools.
func Unsupported() string {
	if os.Geteuid() != 0 {
		return "needs root to create network namespaces"
	}
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		return "needs a kernel with IPv6 (the world is dual-stack)"
	}
	for _, tool := range []string{"ip", "iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "needs " + tool + " on PATH"
		}
	}
	return ""
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
