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

package iptables

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/svcplane/svcplane/dataplane/model"
)

// benchView returns an IPv4 view of services service ports with endpoints
// endpoints each, half of them on this node, a third of the ports with a node port.
func benchView(services, endpoints int) *model.View {
	v := &model.View{Family: model.IPv4, NodeName: "node-a", NodeAddresses: []netip.Addr{nodeIPv4},
		NodePortsOnAllAddresses: true, ClusterCIDR: clusterCIDR[model.IPv4]}
	clusterIPs := netip.MustParsePrefix("10.96.0.0/12").Addr()
	podIPs := netip.MustParsePrefix("10.128.0.0/9").Addr()
	for i := range services {
		clusterIPs = clusterIPs.Next()
		p := &model.ServicePort{
			Name:                  model.ServicePortName{Namespace: fmt.Sprintf("ns-%d", i/100), Name: fmt.Sprintf("svc-%d", i), Port: "http", Protocol: model.TCP},
			Port:                  80,
			ClusterIP:             clusterIPs,
			ExternalTrafficPolicy: model.PolicyCluster,
			InternalTrafficPolicy: model.PolicyCluster,
		}
		if i%3 == 0 {
			p.NodePort = uint16(30000 + i%2768)
		}
		for e := range endpoints {
			podIPs = podIPs.Next()
			p.Endpoints = append(p.Endpoints, model.Endpoint{Addr: podIPs, Port: 8080, Ready: true, Serving: true, Local: e%2 == 0})
		}
		v.ServicePorts = append(v.ServicePorts, p)
	}
	return v
}

// withEndpointChanged returns a copy of v in which one endpoint of one service
// port has a new address, as when a pod is replaced.
func withEndpointChanged(v *model.View, to string) *model.View {
	out := *v
	out.ServicePorts = append([]*model.ServicePort(nil), v.ServicePorts...)
	i := len(out.ServicePorts) / 2
	p := *out.ServicePorts[i]
	p.Endpoints = append([]model.Endpoint(nil), p.Endpoints...)
	p.Endpoints[3].Addr = netip.MustParseAddr(to)
	out.ServicePorts[i] = &p
	return &out
}

// BenchmarkRender renders 10,000 service ports with 10 endpoints each: a full sync,
// and the partial sync after one endpoint changed.
func BenchmarkRender(b *testing.B) {
	v := benchView(10000, 10)
	changed := withEndpointChanged(v, "10.255.255.1")

	// The agent keeps its renderer, and with it its buffers and name caches, for
	// its whole life: measure that steady state, not the first render's growth.
	b.Run("full", func(b *testing.B) {
		r := newRenderer(model.IPv4, DefaultMasqueradeBit)
		r.render(v, nil, true, nil)
		var out rendered
		b.ReportAllocs()
		for b.Loop() {
			out = r.render(v, nil, true, nil)
		}
		b.ReportMetric(float64(len(out.payload)), "payload-bytes")
		b.ReportMetric(float64(out.written), "service-ports-written")
	})
	// Each partial render goes from the last one's state to the next, alternating
	// between the two addresses of the changed endpoint, as syncs do.
	b.Run("partial-one-endpoint-changed", func(b *testing.B) {
		r := newRenderer(model.IPv4, DefaultMasqueradeBit)
		applied := r.render(v, nil, true, nil).services
		views := []*model.View{changed, v}
		applied = r.render(changed, applied, false, nil).services
		var out rendered
		b.ReportAllocs()
		i := 1
		for b.Loop() {
			out = r.render(views[i%2], applied, false, nil)
			applied = out.services
			i++
		}
		b.ReportMetric(float64(len(out.payload)), "payload-bytes")
		b.ReportMetric(float64(out.written), "service-ports-written")
	})
}

var (
	applyServices = flag.Int("apply.services", 10000, "service ports (with 10 endpoints each) BenchmarkApply loads")
	applyVariants = flag.String("apply.variants", "legacy", "comma-separated iptables variants BenchmarkApply runs: legacy, nft, or empty for the system's")
)

// BenchmarkApply applies the payloads of BenchmarkRender with the real
// iptables-restore, in a network namespace per variant: a full resync (every chain
// rewritten over the same rules) and the partial sync after one endpoint changed,
// alternating between two endpoints so that every run changes something. It also
// times what a partial sync does before its restore, listing the canaries
// (check-canaries), and the two ways of checking the hooks that Sync does not use:
// an iptables -C run per hook (check-hooks), and the same checks as -C lines at
// the top of each table of the partial payload (partial-with-hook-checks, to
// compare with partial-one-endpoint-changed). It needs root and the variant's
// tools, and is skipped otherwise.
//
// The nft variant is not run by default: iptables-nft-restore 1.8.9 --noflush takes
// time quadratic in the chains a payload writes, so loading 10,000 service ports
// (110,000 chains) takes on the order of ten minutes, before the first timed run.
// Run it with -apply.variants=nft (and a smaller -apply.services to taste).
func BenchmarkApply(b *testing.B) {
	for _, variant := range strings.Split(*applyVariants, ",") {
		b.Run("variant="+variant, func(b *testing.B) { benchmarkApply(b, strings.TrimSpace(variant)) })
	}
}

func benchmarkApply(b *testing.B, variant string) {
	e := testNetns(b, variant)
	ctx := context.Background()
	v := benchView(*applyServices, 10)
	changed := withEndpointChanged(v, "10.255.255.1")

	// Payloads live in the renderer's buffer until its next render: keep copies.
	r := newRenderer(model.IPv4, DefaultMasqueradeBit)
	full := r.render(v, nil, true, nil)
	full.payload = bytes.Clone(full.payload)
	toChanged := r.render(changed, full.services, false, nil)
	toChanged.payload = bytes.Clone(toChanged.payload)
	back := r.render(v, toChanged.services, false, nil)
	if err := e.Restore(ctx, model.IPv4, full.payload); err != nil {
		b.Fatal(err)
	}
	for i := len(hooks) - 1; i >= 0; i-- {
		if err := e.EnsureJump(ctx, model.IPv4, hooks[i]); err != nil {
			b.Fatal(err)
		}
	}

	b.Run("partial-one-endpoint-changed", func(b *testing.B) {
		i := 0
		for b.Loop() {
			payload := toChanged.payload
			if i%2 == 1 {
				payload = back.payload
			}
			i++
			if err := e.Restore(ctx, model.IPv4, payload); err != nil {
				b.Fatal(err)
			}
		}
		// Leave the namespace as the full benchmark expects it, whatever the
		// count of runs.
		if i%2 == 1 {
			if err := e.Restore(ctx, model.IPv4, back.payload); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(toChanged.payload)), "payload-bytes")
	})
	b.Run("partial-with-hook-checks", func(b *testing.B) {
		payloads := [][]byte{withHookChecks(toChanged.payload), withHookChecks(back.payload)}
		i := 0
		for b.Loop() {
			if err := e.Restore(ctx, model.IPv4, payloads[i%2]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		if i%2 == 1 {
			if err := e.Restore(ctx, model.IPv4, payloads[1]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("check-canaries", func(b *testing.B) {
		backend, err := New(Options{Executor: e, Families: []model.Family{model.IPv4}})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if flushed, err := backend.flushedTables(ctx, model.IPv4, canaryTables); err != nil || len(flushed) > 0 {
				b.Fatalf("flushed %v, %v", flushed, err)
			}
		}
		b.ReportMetric(float64(len(canaryTables)), "runs")
	})
	b.Run("check-hooks", func(b *testing.B) {
		for b.Loop() {
			for _, j := range hooks {
				if present, err := e.check(ctx, model.IPv4, j); err != nil || !present {
					b.Fatalf("hook %v: present %v, %v", j, present, err)
				}
			}
		}
		b.ReportMetric(float64(len(hooks)), "runs")
	})
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			if err := e.Restore(ctx, model.IPv4, full.payload); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(full.payload)), "payload-bytes")
	})
}

// withHookChecks returns payload with an iptables -C line for each hook at the
// top of its table, as a partial sync would check them in the payload itself.
func withHookChecks(payload []byte) []byte {
	var out []byte
	for line := range bytes.Lines(payload) {
		out = append(out, line...)
		if table, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("*")); ok {
			for _, j := range hooks {
				if j.Table == Table(table) {
					args := j.Args()
					args[slices.Index(args, "--comment")+1] = saveString(j.Comment)
					out = append(out, "-C "+j.Chain+" "+strings.Join(args, " ")+"\n"...)
				}
			}
		}
	}
	return out
}
