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
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/moby/ipvs"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vishvananda/netns"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// ipvsGuestEnv names the job file when this program runs as the IPVS point's guest
// side, inside the VM.
const ipvsGuestEnv = "SVCPLANE_BENCH_IPVS_JOB"

// ipvsGuest runs the job at path inside the VM: each side's proxy in turn, in a network
// namespace of its own, measured as dataplaneWorkload measures both on the host, each
// result printed on the console for the host.
func ipvsGuest(path string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var job ipvsJob
	if err := json.Unmarshal(data, &job); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	b := &bench{kubeconfig: job.Kubeconfig, apiAddr: job.APIAddr, binDir: job.BinDir, k8sDir: job.K8sDir}
	if b.dir, err = os.MkdirTemp("", "bench-guest-"); err != nil {
		return err
	}
	// The guest's own client goes through a forwarder on its loopback too, so that the
	// API server's certificate (for 127.0.0.1) matches.
	self, err := netns.Get()
	if err != nil {
		return err
	}
	port, err := forwardAPIServer(ctx, self, job.APIAddr)
	if err != nil {
		return err
	}
	kubeconfig, err := b.kubeconfigFor(fmt.Sprintf("https://127.0.0.1:%d", port), "guest")
	if err != nil {
		return err
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	restCfg.QPS, restCfg.Burst = -1, 0
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	if b.c, err = client.NewWithWatch(restCfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	for _, side := range job.Sides {
		r := ipvsSide(ctx, b, job, side)
		line, err := json.Marshal(r)
		if err != nil {
			return err
		}
		fmt.Println(ipvsMarker + string(line))
		if r.Error != "" && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// ipvsSide runs and measures one side's proxy; a failure is in the result's Error, and
// the proxy and its namespace are gone when it returns.
func ipvsSide(ctx context.Context, b *bench, job ipvsJob, side string) *ipvsSideResult {
	out := &ipvsSideResult{Side: side}
	s, vs, rs, err := measureIPVSSide(ctx, b, job, side)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.Result, out.VirtualServers, out.RealServers = s, vs, rs
	return out
}

func measureIPVSSide(ctx context.Context, b *bench, job ipvsJob, side string) (s *proxySide, virtualServers, realServers int, err error) {
	x, err := b.startProxy(ctx, side, variantIPVS, fmt.Sprintf("ipvs-%d", job.Services))
	if err != nil {
		return nil, 0, 0, err
	}
	defer func() {
		x.p.stop()
		if err := x.ns.remove(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		if err != nil {
			// The log stays in the VM: show its end on the console, which the
			// host keeps.
			showTail(x.p.log.Name(), 40)
		}
	}()
	s = &proxySide{}
	// TCG runs 10-20x slower than the host: a full sync of 10,000 ports takes minutes.
	limit := 10*time.Minute + time.Duration(job.Services)*100*time.Millisecond
	if err := waitUntil(ctx, limit, guestPoll, func() (bool, error) {
		h, err := x.syncs(ctx)
		if err != nil {
			return false, fmt.Errorf("waiting for its first sync: %w", err)
		}
		if h.Count == 0 {
			return false, nil
		}
		s.FirstSyncReady = time.Since(x.started)
		s.FirstSync = seconds(h.Sum / float64(h.Count))
		return true, nil
	}); err != nil {
		return nil, 0, 0, err
	}
	fmt.Printf("%s: first sync %s, idle for %s\n", side, ms(s.FirstSync), job.Idle)

	h0, err := x.syncs(ctx)
	if err != nil {
		return nil, 0, 0, err
	}
	u0, err := x.p.usage()
	if err != nil {
		return nil, 0, 0, err
	}
	select {
	case <-time.After(job.Idle):
	case <-ctx.Done():
		return nil, 0, 0, ctx.Err()
	}
	h1, err := x.syncs(ctx)
	if err != nil {
		return nil, 0, 0, err
	}
	u1, err := x.p.usage()
	if err != nil {
		return nil, 0, 0, err
	}
	s.IdleSyncs, s.IdleCPU = h1.Count-h0.Count, u1.CPUSeconds-u0.CPUSeconds

	// Only this side's objects change, so that the other side starts from the same
	// Services and endpoints.
	shows := func(svc int, addrs ...string) func() (bool, error) {
		return func() (bool, error) { return ipvsShows(ctx, b.c, x.ns.name, job.Namespace, side, svc, addrs) }
	}
	if s.EndpointSync, s.EndpointSyncs, err = measureGuestChange(ctx, x, shows(0, movedEndpoint), func() error {
		return moveEndpointOf(ctx, b.c, job.Namespace, side)
	}); err != nil {
		return nil, 0, 0, fmt.Errorf("one endpoint changed: %w", err)
	}
	var newAddrs []string
	for k := range job.EndpointsPer {
		newAddrs = append(newAddrs, podIP(job.Services*16+k))
	}
	if s.ServiceSync, s.ServiceSyncs, err = measureGuestChange(ctx, x, shows(job.Services, newAddrs...), func() error {
		for _, obj := range dataplaneObjects(side, job.Namespace, job.Services, job.EndpointsPer) {
			if err := b.c.Create(ctx, obj); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, 0, 0, fmt.Errorf("one new Service: %w", err)
	}

	u, err := x.p.usage()
	if err != nil {
		return nil, 0, 0, err
	}
	s.RSS, s.PeakRSS, s.CPU = u.RSS, u.PeakRSS, u.CPUSeconds
	virtualServers, realServers, err = countIPVS(x.ns.name)
	if err != nil {
		return nil, 0, 0, err
	}
	return s, virtualServers, realServers, nil
}

// guestPoll is how often the guest scrapes the proxy's metrics. The VM has one
// emulated CPU, which the proxy shares with this program: a scrape every 100 ms, as
// on the host, would take a visible part of it (kube-proxy's exposition is large).
const guestPoll = time.Second

// measureGuestChange makes one change and returns the sync time x spent until the
// kernel shows the change (done) and x went quiet again (no further sync for 5 s: a
// TCG guest is slow), and in how many syncs; measureChange's logic at guestPoll. The
// kernel check matters here: a sync of kube-proxy's in the VM can take minutes, and
// one that started before the change's second half (a Service, then its slice)
// arrived must not end the measurement.
func measureGuestChange(ctx context.Context, x *proxy, done func() (bool, error), change func() error) (time.Duration, uint64, error) {
	before, err := x.syncs(ctx)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if err := change(); err != nil {
		return 0, 0, err
	}
	var last histogram
	quietSince := time.Time{}
	if err := waitUntil(ctx, 30*time.Minute, guestPoll, func() (bool, error) {
		h, err := x.syncs(ctx)
		if err != nil {
			return false, err
		}
		if h.Count == before.Count {
			return false, nil // not synced yet
		}
		if h.Count != last.Count {
			last, quietSince = h, time.Now()
			return false, nil
		}
		if time.Since(quietSince) < 5*time.Second {
			return false, nil
		}
		return done()
	}); err != nil {
		return 0, 0, err
	}
	fmt.Printf("change in place after %s\n", time.Since(start).Round(100*time.Millisecond))
	d := last.sub(before)
	return seconds(d.Sum), d.Count, nil
}

// moveEndpointOf gives the first endpoint of side's slice of Service 0 a new address.
func moveEndpointOf(ctx context.Context, c client.Client, ns, side string) error {
	label := discoveryv1.LabelServiceName
	if side == sideSvcplane {
		label = v1alpha1.LabelServiceName
	}
	var list discoveryv1.EndpointSliceList
	if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{label: "svc-0"}); err != nil {
		return err
	}
	if len(list.Items) != 1 {
		return fmt.Errorf("found %d %s slices of svc-0, want 1", len(list.Items), side)
	}
	s := &list.Items[0]
	s.Endpoints[0].Addresses = []string{movedEndpoint}
	return c.Update(ctx, s)
}

// movedEndpoint is the address moveEndpointOf gives an endpoint of Service 0.
const movedEndpoint = "10.127.255.254"

// ipvsShows reports whether the kernel in the named network namespace has a real
// server at each of addrs under side's Service svc (its cluster IP, port 80).
func ipvsShows(ctx context.Context, c client.Client, nsName, ns, side string, svc int, addrs []string) (bool, error) {
	key := client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("svc-%d", svc)}
	var ip string
	if side == sideSvcplane {
		var s v1alpha1.Service
		if err := c.Get(ctx, key, &s); err != nil {
			return false, err
		}
		ip = s.Status.ClusterIP
	} else {
		var s corev1.Service
		if err := c.Get(ctx, key, &s); err != nil {
			return false, err
		}
		ip = s.Spec.ClusterIP
	}
	if ip == "" {
		return false, nil
	}
	h, err := ipvs.New("/run/netns/" + nsName)
	if err != nil {
		return false, err
	}
	defer h.Close()
	vs, err := h.GetService(&ipvs.Service{AddressFamily: syscall.AF_INET, Address: net.ParseIP(ip).To4(), Protocol: syscall.IPPROTO_TCP, Port: 80})
	if err != nil {
		return false, nil //nolint:nilerr // not there yet
	}
	dests, err := h.GetDestinations(vs)
	if err != nil {
		return false, err
	}
	have := map[string]bool{}
	for _, d := range dests {
		if d.Weight > 0 {
			have[d.Address.String()] = true
		}
	}
	for _, a := range addrs {
		if !have[a] {
			return false, nil
		}
	}
	return true, nil
}

// countIPVS counts the virtual servers and real servers in the named network namespace.
func countIPVS(nsName string) (virtualServers, realServers int, err error) {
	h, err := ipvs.New("/run/netns/" + nsName)
	if err != nil {
		return 0, 0, err
	}
	defer h.Close()
	svcs, err := h.GetServices()
	if err != nil {
		return 0, 0, err
	}
	for _, svc := range svcs {
		dests, err := h.GetDestinations(svc)
		if err != nil {
			return 0, 0, err
		}
		realServers += len(dests)
	}
	return len(svcs), realServers, nil
}

// showTail prints the last n lines of the file at path to stdout.
func showTail(path string, n int) {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	fmt.Printf("--- the last %d lines of %s:\n", min(n, len(lines)), path)
	for _, l := range lines[max(0, len(lines)-n):] {
		fmt.Println(l)
	}
}
