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

package modebench

// Addresses: cluster IPs from 10.96.0.0/12, endpoints from 10.128.0.0/9 (none of
// them reachable, only programmed), and the measured Service's endpoints at
// 10.200.0.1-10 on the namespace's loopback, where the benchmark listens.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/svcplane/svcplane/dataplane"
	"github.com/svcplane/svcplane/dataplane/iptables"
	"github.com/svcplane/svcplane/dataplane/model"
	"github.com/svcplane/svcplane/dataplane/nftables"
)

var (
	portsFlag   = flag.String("modebench.ports", "1000", "comma-separated numbers of service ports (10 endpoints each) to compare the modes at")
	modesFlag   = flag.String("modebench.modes", "iptables,nftables", "comma-separated modes to compare")
	changesFlag = flag.Int("modebench.changes", 20, "one-service changes timed per run")
	connectsN   = flag.Int("modebench.connects", 2000, "connections timed per latency measurement")
	variantFlag = flag.String("modebench.iptables-variant", "legacy", "the iptables tools of the iptables mode: legacy, nft, or empty for the system's")
)

const envInner = "SVCPLANE_MODEBENCH_INNER"

// TestMain re-runs the test binary inside a fresh network namespace, which it
// removes afterwards, so that the benchmarks program and connect through a kernel
// that nothing else uses.
func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(envInner) != "" {
		os.Exit(m.Run())
	}
	if b := flag.Lookup("test.bench"); b == nil || b.Value.String() == "" {
		os.Exit(m.Run()) // no benchmark asked for: no namespace needed
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "modebench needs root to create a network namespace")
			os.Exit(1)
		}
		fmt.Println("modebench: skipped, needs root to create a network namespace")
		os.Exit(m.Run())
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	ns := "svcp-bench-" + hex.EncodeToString(suffix[:])
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "creating network namespace: %v: %s\n", err, out)
		os.Exit(1)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, os.Args[0]}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), envInner+"=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err := cmd.Run()
	if out, derr := exec.Command("ip", "netns", "del", ns).CombinedOutput(); derr != nil {
		fmt.Fprintf(os.Stderr, "deleting network namespace %s: %v: %s\n", ns, derr, out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// benchState returns an IPv4 state of n service ports with 10 endpoints each, a
// third of them with a node port. The last one's endpoints are the loopback
// addresses the benchmark listens on.
func benchState(n int) *model.State {
	v := model.View{Family: model.IPv4, NodeName: "node-a", NodeAddresses: []netip.Addr{netip.MustParseAddr("192.168.0.10")},
		NodePortsOnAllAddresses: true, ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16")}
	clusterIP := netip.MustParseAddr("10.96.0.0")
	podIP := netip.MustParseAddr("10.128.0.0")
	for i := range n {
		clusterIP = clusterIP.Next()
		p := &model.ServicePort{
			Name:                  model.ServicePortName{Namespace: fmt.Sprintf("ns-%d", i/100), Name: fmt.Sprintf("svc-%05d", i), Port: "http", Protocol: model.TCP},
			Port:                  80,
			ClusterIP:             clusterIP,
			ExternalTrafficPolicy: model.PolicyCluster,
			InternalTrafficPolicy: model.PolicyCluster,
		}
		if i%3 == 0 {
			p.NodePort = uint16(30000 + i%2768)
		}
		for e := range 10 {
			podIP = podIP.Next()
			if i == n-1 {
				podIP = netip.AddrFrom4([4]byte{10, 200, 0, byte(e + 1)})
			}
			p.Endpoints = append(p.Endpoints, model.Endpoint{Addr: podIP, Port: 8080, Ready: true, Serving: true})
		}
		v.ServicePorts = append(v.ServicePorts, p)
	}
	return &model.State{IPv4: v, IPv6: model.View{Family: model.IPv6}}
}

// withEndpoint returns st with one endpoint of its middle service port at addr.
func withEndpoint(st *model.State, addr netip.Addr) *model.State {
	out := *st
	out.IPv4.ServicePorts = slices.Clone(st.IPv4.ServicePorts)
	i := len(out.IPv4.ServicePorts) / 2
	p := *out.IPv4.ServicePorts[i]
	p.Endpoints = slices.Clone(p.Endpoints)
	p.Endpoints[3].Addr = addr
	out.IPv4.ServicePorts[i] = &p
	return &out
}

// stats are one sync's numbers, whichever the mode.
type stats struct {
	full          bool
	render, apply time.Duration
	bytes         int
}

type backend interface {
	dataplane.Backend
	dataplane.FullSyncer
	last() stats
}

type iptablesBackend struct{ *iptables.Backend }

func (b iptablesBackend) last() stats {
	s := b.LastSync(model.IPv4)
	return stats{full: s.Full, render: s.Render, apply: s.Apply, bytes: s.PayloadBytes}
}

type nftablesBackend struct{ *nftables.Backend }

func (b nftablesBackend) last() stats {
	s := b.LastSync(model.IPv4)
	return stats{full: s.Full, render: s.Render, apply: s.Apply, bytes: s.Bytes()}
}

func newBackend(b *testing.B, mode string) backend {
	b.Helper()
	switch mode {
	case "iptables":
		be, err := iptables.New(iptables.Options{Executor: &iptables.Exec{Variant: *variantFlag}, Families: []model.Family{model.IPv4}})
		if err != nil {
			b.Fatal(err)
		}
		return iptablesBackend{be}
	case "nftables":
		nft, err := knftables.New(knftables.IPv4Family, nftables.TableName, knftables.UseNetlink)
		if err != nil {
			b.Fatal(err)
		}
		be, err := nftables.New(nftables.Options{Interfaces: map[model.Family]knftables.Interface{model.IPv4: nft}, TableIntact: nftables.NetlinkIntact})
		if err != nil {
			b.Fatal(err)
		}
		return nftablesBackend{be}
	}
	b.Fatalf("unknown mode %q", mode)
	return nil
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err == nil {
			out = append(out, n)
		}
	}
	return out
}

// setup brings the namespace's loopback up with the measured Service's endpoint
// addresses, and listens on them.
func setup(b *testing.B) {
	b.Helper()
	if os.Getenv(envInner) == "" {
		b.Skip("not in the benchmark's network namespace (needs root)")
	}
	run := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil && !strings.Contains(string(out), "File exists") {
			b.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "link", "set", "lo", "up")
	for e := range 10 {
		run("ip", "addr", "add", fmt.Sprintf("10.200.0.%d/32", e+1), "dev", "lo")
	}
	// A route for the cluster IPs, so that a connect gets as far as the nat
	// OUTPUT hook, which DNATs it to the loopback endpoints.
	run("ip", "route", "add", "10.96.0.0/12", "dev", "lo")
	l, err := net.Listen("tcp", ":8080")
	if err != nil {
		if strings.Contains(err.Error(), "in use") {
			return // an earlier benchmark of this process listens already
		}
		b.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// BenchmarkModes compares the modes at each -modebench.ports size: a full sync on
// a clean node (the agent's start), a full resync over the same rules (the
// periodic one), one changed Service, and TCP connects to a ClusterIP with 100
// Services programmed and with the size's.
func BenchmarkModes(b *testing.B) {
	setup(b)
	ctx := context.Background()
	for _, n := range ints(*portsFlag) {
		st := benchState(n)
		for _, mode := range strings.Split(*modesFlag, ",") {
			b.Run(fmt.Sprintf("mode=%s/ports=%d", mode, n), func(b *testing.B) {
				be := newBackend(b, mode)
				defer func() {
					if err := be.Cleanup(ctx); err != nil {
						b.Error(err)
					}
				}()
				report := func(b *testing.B, s stats) {
					b.ReportMetric(s.render.Seconds(), "render-s")
					b.ReportMetric(s.apply.Seconds(), "apply-s")
					b.ReportMetric(float64(s.bytes), "bytes")
				}
				b.Run("first-full-sync", func(b *testing.B) {
					for b.Loop() {
						if err := be.Cleanup(ctx); err != nil {
							b.Fatal(err)
						}
						if err := be.Sync(ctx, st); err != nil {
							b.Fatal(err)
						}
					}
					report(b, be.last())
				})
				b.Run("full-resync", func(b *testing.B) {
					for b.Loop() {
						be.RequestFullSync()
						if err := be.Sync(ctx, st); err != nil {
							b.Fatal(err)
						}
					}
					report(b, be.last())
				})
				b.Run("one-service-changed", func(b *testing.B) {
					states := []*model.State{withEndpoint(st, netip.MustParseAddr("10.255.255.1")), st}
					if err := be.Sync(ctx, st); err != nil { // the first sync of a backend is a full one
						b.Fatal(err)
					}
					var worst time.Duration
					var last stats
					changes := 0
					for b.Loop() {
						for i := range *changesFlag {
							start := time.Now()
							if err := be.Sync(ctx, states[i%2]); err != nil {
								b.Fatal(err)
							}
							worst = max(worst, time.Since(start))
							if last = be.last(); last.full {
								b.Fatal("a one-service change made a full sync")
							}
							changes++
						}
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(changes)/1e6, "ms/change")
					b.ReportMetric(float64(worst.Nanoseconds())/1e6, "worst-ms")
					report(b, last)
				})
				b.Run("connect", func(b *testing.B) {
					target := st.IPv4.ServicePorts[n-1].ClusterIP
					small := benchState(100)
					// The measured Service is the last one at either size.
					for _, tc := range []struct {
						name string
						st   *model.State
						ip   netip.Addr
					}{{"services=100", small, small.IPv4.ServicePorts[99].ClusterIP}, {fmt.Sprintf("services=%d", n), st, target}} {
						b.Run(tc.name, func(b *testing.B) {
							be.RequestFullSync()
							if err := be.Sync(ctx, tc.st); err != nil {
								b.Fatal(err)
							}
							addr := netip.AddrPortFrom(tc.ip, 80).String()
							var samples []time.Duration
							for b.Loop() {
								for range *connectsN {
									start := time.Now()
									c, err := net.DialTimeout("tcp", addr, time.Second)
									if err != nil {
										b.Fatal(err)
									}
									samples = append(samples, time.Since(start))
									c.Close()
								}
							}
							slices.Sort(samples)
							b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds())/1e3, "p50-µs")
							b.ReportMetric(float64(samples[len(samples)*99/100].Nanoseconds())/1e3, "p99-µs")
						})
					}
				})
			})
		}
	}
}
