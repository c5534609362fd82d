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
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers"
)

// variant is one way of programming the node that both proxies support.
type variant struct {
	Name          string // as the report shows it
	AgentArgs     []string
	KubeProxyArgs []string
	// Tools names the iptables variant ("legacy", "nft") that both run, put first on
	// kube-proxy's PATH as plain iptables*; "" for nftables mode.
	Tools string
	// Sizes, when set, are this variant's service-port counts instead of
	// -dataplane-services' (iptables-nft:1000:5000 on the command line).
	Sizes []int
}

var (
	variantLegacy = variant{Name: "iptables-legacy", Tools: "legacy",
		AgentArgs: []string{"--mode=iptables", "--iptables-variant=legacy"}, KubeProxyArgs: []string{"--proxy-mode=iptables"}}
	variantIPTablesNFT = variant{Name: "iptables-nft", Tools: "nft",
		AgentArgs: []string{"--mode=iptables", "--iptables-variant=nft"}, KubeProxyArgs: []string{"--proxy-mode=iptables"}}
	variantNFTables = variant{Name: "nftables",
		AgentArgs: []string{"--mode=nftables"}, KubeProxyArgs: []string{"--proxy-mode=nftables"}}
)

// proxySide is what one proxy did at one point of the dataplane workload.
type proxySide struct {
	FirstSync      time.Duration // the first sync's own duration (its sync-duration metric)
	FirstSyncReady time.Duration // from the process's start to the end of its first sync
	IdleSyncs      uint64        // syncs during the idle window
	IdleCPU        float64       // CPU seconds during the idle window
	EndpointSync   time.Duration // sync time spent on one changed endpoint
	EndpointSyncs  uint64
	ServiceSync    time.Duration // sync time spent on one new Service
	ServiceSyncs   uint64
	NATRules       int // rules in the nat table (iptables variants)
	NATBytes       int // bytes of iptables-save -t nat
	RSS, PeakRSS   uint64
	CPU            float64 // CPU seconds of the whole point, iptables-restore included
}

// dataplanePoint is both proxies at one size and variant.
type dataplanePoint struct {
	Variant  string
	Services int // service ports
	Sides    map[string]*proxySide
	Note     string // how the point ran, when not as the others (the IPVS VM)
}

// proxy is one running proxy: its process, namespace and metrics endpoint.
type proxy struct {
	side    string
	p       *process
	ns      *netnsHandle
	metrics *http.Client
	url     string
	histo   string // its sync duration histogram
	started time.Time
}

func (x *proxy) syncs(ctx context.Context) (histogram, error) {
	if err := x.p.alive(); err != nil {
		return histogram{}, err
	}
	fams, err := scrape(ctx, x.metrics, x.url)
	if err != nil {
		//nolint:nilerr // a proxy whose metrics port does not answer yet has not synced yet: an empty histogram, not a failure
		return histogram{}, nil
	}
	return histogramOf(fams, x.histo)
}

// firstSync returns the duration of the proxy's first sync, and false until it is done
// (see firstSyncOf).
func (x *proxy) firstSync(ctx context.Context) (time.Duration, bool, error) {
	if err := x.p.alive(); err != nil {
		return 0, false, err
	}
	fams, err := scrape(ctx, x.metrics, x.url)
	if err != nil {
		//nolint:nilerr // a proxy whose metrics port does not answer yet has not synced yet
		return 0, false, nil
	}
	return firstSyncOf(fams, x.histo)
}

// dataplaneWorkload measures the agent and kube-proxy at one size: services selector-less
// Services of each kind with endpointsPer hand-made endpoints each (the same for both),
// each proxy in a network namespace of its own.
func dataplaneWorkload(ctx context.Context, b *bench, v variant, services, endpointsPer int, idle time.Duration) (*dataplanePoint, error) {
	if v.Name == variantIPVS.Name {
		return ipvsWorkload(ctx, b, services, endpointsPer, idle) // inside a VM: ipvs.go
	}
	ns, err := namespace(ctx, b.c, "dp-")
	if err != nil {
		return nil, err
	}
	fmt.Printf("dataplane %s %d x %d: creating Services and slices in %s\n", v.Name, services, endpointsPer, ns)
	if err := parallel(ctx, services, b.clients, func(i int) error { return createDataplaneService(ctx, b.c, ns, i, endpointsPer) }); err != nil {
		return nil, err
	}
	if err := waitAllocated(ctx, b.c, ns, services); err != nil {
		return nil, err
	}

	pt := &dataplanePoint{Variant: v.Name, Services: services, Sides: map[string]*proxySide{sideSvcplane: {}, sideKube: {}}}
	proxies := map[string]*proxy{}
	defer func() {
		for _, x := range proxies {
			x.p.stop()
			if err := x.ns.remove(); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}
	}()
	for _, side := range []string{sideSvcplane, sideKube} {
		x, err := b.startProxy(ctx, side, v, fmt.Sprintf("%s-%d", v.Name, services))
		if err != nil {
			return nil, err
		}
		proxies[side] = x
	}

	// First sync: both started together; each is done when its histogram counts a
	// sync. Both are polled in one loop, so that each one's time is its own. The
	// bound is generous: iptables-nft-restore 1.8.9 slows down as the chains grow,
	// 8.3 minutes at 5,000 service ports, and at 10,000 neither proxy had written
	// half its rules after an hour.
	pending := map[string]bool{sideSvcplane: true, sideKube: true}
	if err := waitUntil(ctx, 90*time.Minute, 100*time.Millisecond, func() (bool, error) {
		for side := range pending {
			x := proxies[side]
			d, done, err := x.firstSync(ctx)
			if err != nil {
				return false, fmt.Errorf("%s: waiting for its first sync: %w", side, err)
			}
			if done {
				s := pt.Sides[side]
				s.FirstSyncReady = time.Since(x.started)
				s.FirstSync = d
				delete(pending, side)
			}
		}
		return len(pending) == 0, nil
	}); err != nil {
		return nil, err
	}
	// Idle: nothing changes; whatever they do now is their idle cost.
	before := map[string]histogram{}
	cpu := map[string]float64{}
	for side, x := range proxies {
		h, err := x.syncs(ctx)
		if err != nil {
			return nil, err
		}
		u, err := x.p.usage()
		if err != nil {
			return nil, err
		}
		before[side], cpu[side] = h, u.CPUSeconds
	}
	select {
	case <-time.After(idle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for side, x := range proxies {
		h, err := x.syncs(ctx)
		if err != nil {
			return nil, err
		}
		u, err := x.p.usage()
		if err != nil {
			return nil, err
		}
		pt.Sides[side].IdleSyncs = h.Count - before[side].Count
		pt.Sides[side].IdleCPU = u.CPUSeconds - cpu[side]
	}

	// One endpoint changes: the first endpoint of Service 0 gets another address.
	d, n, err := measureChange(ctx, proxies, func() error { return moveEndpoint(ctx, b.c, ns) })
	if err != nil {
		return nil, fmt.Errorf("one endpoint changed: %w", err)
	}
	for side := range proxies {
		pt.Sides[side].EndpointSync, pt.Sides[side].EndpointSyncs = d[side], n[side]
	}
	// One new Service, with its endpoints.
	d, n, err = measureChange(ctx, proxies, func() error { return createDataplaneService(ctx, b.c, ns, services, endpointsPer) })
	if err != nil {
		return nil, fmt.Errorf("one new Service: %w", err)
	}
	for side := range proxies {
		pt.Sides[side].ServiceSync, pt.Sides[side].ServiceSyncs = d[side], n[side]
	}

	for side, x := range proxies {
		s := pt.Sides[side]
		u, err := x.p.usage()
		if err != nil {
			return nil, err
		}
		s.RSS, s.PeakRSS, s.CPU = u.RSS, u.PeakRSS, u.CPUSeconds
		if v.Tools != "" {
			out, err := exec.CommandContext(ctx, "ip", "netns", "exec", x.ns.name, "iptables-"+v.Tools+"-save", "-t", "nat").Output()
			if err != nil {
				return nil, fmt.Errorf("%s: iptables-%s-save: %w", side, v.Tools, err)
			}
			s.NATBytes, s.NATRules = len(out), countRules(out)
		}
	}
	zero := int64(0)
	for _, obj := range []client.Object{&corev1.Service{}, &v1alpha1.Service{}, &discoveryv1.EndpointSlice{}} {
		if err := b.c.DeleteAllOf(ctx, obj, client.InNamespace(ns), client.GracePeriodSeconds(zero)); err != nil {
			// The measurement is done; a slow collection delete (thousands of
			// Services) only leaves objects that the next point ignores.
			fmt.Fprintf(os.Stderr, "warning: cleaning %s: %v\n", ns, err)
		}
	}
	return pt, nil
}

// countRules counts the rules (lines appending to a chain) of an iptables-save dump.
func countRules(dump []byte) int {
	n := 0
	for line := range bytes.Lines(dump) {
		if bytes.HasPrefix(line, []byte("-A ")) {
			n++
		}
	}
	return n
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// measureChange makes one change and returns, per proxy, the sync time it spent until it
// went quiet again (no further sync for 3 s) and in how many syncs.
func measureChange(ctx context.Context, proxies map[string]*proxy, change func() error) (map[string]time.Duration, map[string]uint64, error) {
	before := map[string]histogram{}
	for side, x := range proxies {
		h, err := x.syncs(ctx)
		if err != nil {
			return nil, nil, err
		}
		before[side] = h
	}
	if err := change(); err != nil {
		return nil, nil, err
	}
	durs, counts := map[string]time.Duration{}, map[string]uint64{}
	for side, x := range proxies {
		var last histogram
		quietSince := time.Time{}
		if err := waitUntil(ctx, 10*time.Minute, 100*time.Millisecond, func() (bool, error) {
			h, err := x.syncs(ctx)
			if err != nil {
				return false, err
			}
			if h.Count == before[side].Count {
				return false, nil // not synced yet
			}
			if h.Count != last.Count {
				last, quietSince = h, time.Now()
				return false, nil
			}
			return time.Since(quietSince) >= 3*time.Second, nil
		}); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", side, err)
		}
		d := last.sub(before[side])
		durs[side], counts[side] = seconds(d.Sum), d.Count
	}
	return durs, counts, nil
}

// createDataplaneService creates Service i of both kinds, selector-less, with the same
// n endpoints in a hand-made slice each (managed by the harness, so that neither
// controller touches them).
func createDataplaneService(ctx context.Context, c client.Client, ns string, i, n int) error {
	for _, side := range []string{sideSvcplane, sideKube} {
		for _, obj := range dataplaneObjects(side, ns, i, n) {
			if err := c.Create(ctx, obj); err != nil {
				return err
			}
		}
	}
	return nil
}

// dataplaneObjects returns side's Service i and its slice of n endpoints: a svcplane
// Service and slice for the agent, a core Service and slice for kube-proxy.
func dataplaneObjects(side, ns string, i, n int) []client.Object {
	name := fmt.Sprintf("svc-%d", i)
	eps := make([]discoveryv1.Endpoint, n)
	for k := range eps {
		eps[k] = discoveryv1.Endpoint{Addresses: []string{podIP(i*16 + k)}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}
	}
	ports := []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, GenerateName: name + "-", Labels: map[string]string{v1alpha1.LabelManagedBy: "bench-compare"}},
		AddressType: discoveryv1.AddressTypeIPv4, Endpoints: eps, Ports: ports,
	}
	if side == sideSvcplane {
		slice.Labels[v1alpha1.LabelServiceName] = name
		return []client.Object{&v1alpha1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}}, slice}
	}
	slice.Labels[discoveryv1.LabelServiceName] = name
	return []client.Object{&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}}, slice}
}

// moveEndpoint gives the first endpoint of Service 0's slices (both kinds) a new address.
func moveEndpoint(ctx context.Context, c client.Client, ns string) error {
	var list discoveryv1.EndpointSliceList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return err
	}
	moved := 0
	for i := range list.Items {
		s := &list.Items[i]
		if s.Labels[v1alpha1.LabelServiceName] != "svc-0" && s.Labels[discoveryv1.LabelServiceName] != "svc-0" {
			continue
		}
		s.Endpoints[0].Addresses = []string{"10.127.255.254"}
		if err := c.Update(ctx, s); err != nil {
			return err
		}
		moved++
	}
	if moved != 2 {
		return fmt.Errorf("found %d slices of svc-0, want 2", moved)
	}
	return nil
}

// waitAllocated waits until the manager has allocated n svcplane Services in ns.
func waitAllocated(ctx context.Context, c client.Client, ns string, n int) error {
	return waitUntil(ctx, 20*time.Minute, 100*time.Millisecond, func() (bool, error) {
		var list v1alpha1.ServiceList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		done := 0
		for _, s := range list.Items {
			if meta.IsStatusConditionTrue(s.Status.Conditions, controllers.ConditionAllocated) {
				done++
			}
		}
		return done >= n, nil
	})
}

// startProxy starts side's proxy in a fresh network namespace, reaching the API server
// through a forwarder on that namespace's loopback.
func (b *bench) startProxy(ctx context.Context, side string, v variant, tag string) (*proxy, error) {
	nodeName := "bench-" + side
	nsh, err := createNetns(fmt.Sprintf("svcp-bench-%s-%d", side, os.Getpid()))
	if err != nil {
		return nil, err
	}
	port, err := forwardAPIServer(ctx, nsh.ns, b.apiAddr)
	if err != nil {
		_ = nsh.remove()
		return nil, err
	}
	kubeconfig, err := b.kubeconfigFor(fmt.Sprintf("https://127.0.0.1:%d", port), nodeName)
	if err != nil {
		_ = nsh.remove()
		return nil, err
	}
	x := &proxy{side: side, ns: nsh, metrics: metricsClient(nsh.ns), started: time.Now()}
	// Each side stands for a node of its own: the iptables tools' lock is a file, not
	// per network namespace, so with one /run/xtables.lock each side's restores wait for
	// the other's (kube-proxy's IPv6 sync failed on it at 10,000 service ports).
	lock := "XTABLES_LOCKFILE=" + filepath.Join(b.dir, "xtables-"+side+".lock")
	switch side {
	case sideSvcplane:
		x.url, x.histo = "http://127.0.0.1:10349/metrics", "svcplane_agent_sync_duration_seconds"
		args := append([]string{"--node-name=" + nodeName, "--cluster-cidr=10.128.0.0/9",
			"--metrics-bind-address=127.0.0.1:10349", "--healthz-bind-address=127.0.0.1:10356"}, v.AgentArgs...)
		x.p, err = startProcess(b.dir, "agent-"+tag, nsh.name, []string{"KUBECONFIG=" + kubeconfig, lock}, b.bin("agent"), args...)
	case sideKube:
		x.url, x.histo = "http://127.0.0.1:10249/metrics", "kubeproxy_sync_proxy_rules_duration_seconds"
		args := append([]string{"--kubeconfig=" + kubeconfig, "--hostname-override=" + nodeName, "--cluster-cidr=10.128.0.0/9",
			"--metrics-bind-address=127.0.0.1:10249", "--healthz-bind-address=127.0.0.1:10256",
			// Leave the conntrack sysctls alone: not what is measured.
			"--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0", "--conntrack-tcp-timeout-close-wait=0"}, v.KubeProxyArgs...)
		env := []string{lock}
		if v.Tools != "" {
			env = append(env, "PATH="+b.toolsDir(v.Tools)+":"+os.Getenv("PATH"))
		}
		x.p, err = startProcess(b.dir, "kube-proxy-"+tag, nsh.name, env, b.bin("kube-proxy"), args...)
	}
	if err != nil {
		_ = nsh.remove()
		return nil, err
	}
	x.started = time.Now()
	return x, nil
}

// toolsDir returns a directory whose iptables* commands are the given variant's, as
// kube-proxy's images select the variant with iptables-wrapper.
func (b *bench) toolsDir(variant string) string {
	dir := filepath.Join(b.dir, "iptables-"+variant)
	if _, err := os.Stat(dir); err == nil {
		return dir
	}
	_ = os.MkdirAll(dir, 0o755)
	for _, fam := range []string{"iptables", "ip6tables"} {
		for _, suffix := range []string{"", "-save", "-restore"} {
			target, err := exec.LookPath(fam + "-" + variant + suffix)
			if err != nil {
				continue
			}
			_ = os.Symlink(target, filepath.Join(dir, fam+suffix))
		}
	}
	return dir
}

// kubeconfigFor writes the admin kubeconfig with server as its address, for a
// component in a network namespace, and returns its path.
func (b *bench) kubeconfigFor(server, name string) (string, error) {
	cfg, err := clientcmd.Load(b.kubeconfig)
	if err != nil {
		return "", err
	}
	for _, cluster := range cfg.Clusters {
		cluster.Server = server
	}
	path := filepath.Join(b.dir, "kubeconfig-"+name)
	return path, clientcmd.WriteToFile(*cfg, path)
}

// createNodes registers the proxies' Nodes and the pods' Node, with an InternalIP each
// from 198.18.0.0/15 (RFC 2544, benchmarking).
func createNodes(ctx context.Context, c client.Client) error {
	for i, name := range []string{"bench-" + sideSvcplane, "bench-" + sideKube, "bench-node"} {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := c.Create(ctx, n); err != nil {
			return err
		}
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("198.18.0.%d", i+1)}}
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
		if err := c.Status().Update(ctx, n); err != nil {
			return err
		}
	}
	return nil
}
