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
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseSizes(t *testing.T) {
	got, err := parseSizes("1000, 5_000,10000")
	if err != nil || len(got) != 3 || got[0] != 1000 || got[1] != 5000 || got[2] != 10000 {
		t.Errorf("parseSizes = %v, %v; want [1000 5000 10000]", got, err)
	}
	for _, bad := range []string{"", "0", "-5", "ten", ","} {
		if _, err := parseSizes(bad); err == nil {
			t.Errorf("parseSizes(%q) accepted", bad)
		}
	}
	vs, err := parseVariants("iptables-legacy,nftables")
	if err != nil || len(vs) != 2 || vs[0].Tools != "legacy" || vs[1].Tools != "" {
		t.Errorf("parseVariants = %+v, %v", vs, err)
	}
	if vs, err := parseVariants("ipvs"); err != nil || len(vs) != 1 || vs[0].Name != variantIPVS.Name {
		t.Errorf("parseVariants(ipvs) = %+v, %v; want the IPVS variant (it runs in a VM)", vs, err)
	}
	if vs, err := parseVariants("iptables-legacy, iptables-nft:1000:5_000"); err != nil || len(vs) != 2 || vs[0].Sizes != nil ||
		vs[1].Name != variantIPTablesNFT.Name || !reflect.DeepEqual(vs[1].Sizes, []int{1000, 5000}) {
		t.Errorf("parseVariants with sizes = %+v, %v; want iptables-nft at 1000 and 5000, legacy at -dataplane-services'", vs, err)
	}
	if _, err := parseVariants("iptables-nft:"); err == nil {
		t.Error("parseVariants accepted a variant with an empty size list")
	}
	if _, err := parseVariants("userspace"); err == nil {
		t.Error("parseVariants accepted userspace")
	}
	if w, err := parseWorkloads("alloc,dataplane"); err != nil || !w["alloc"] || w["endpoints"] || !w["dataplane"] {
		t.Errorf("parseWorkloads = %v, %v", w, err)
	}
	if _, err := parseWorkloads("dns"); err == nil {
		t.Error("parseWorkloads accepted dns")
	}
}

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	s := summarize(lat)
	if s.N != 100 || s.P50 != 50*time.Millisecond || s.P90 != 90*time.Millisecond || s.P99 != 99*time.Millisecond || s.Max != 100*time.Millisecond {
		t.Errorf("summarize = %+v", s)
	}
	if (summarize(nil) != latencySummary{}) {
		t.Error("summarize(nil) is not zero")
	}
}

// A scrape of both proxies' metrics as their /metrics endpoints serve them.
const exposition = `# HELP svcplane_agent_sync_duration_seconds How long one sync took.
# TYPE svcplane_agent_sync_duration_seconds histogram
svcplane_agent_sync_duration_seconds_bucket{le="0.001"} 0
svcplane_agent_sync_duration_seconds_bucket{le="+Inf"} 3
svcplane_agent_sync_duration_seconds_sum 4.5
svcplane_agent_sync_duration_seconds_count 3
# HELP kubeproxy_sync_proxy_rules_iptables_total [ALPHA] Total number of iptables rules owned by kube-proxy
# TYPE kubeproxy_sync_proxy_rules_iptables_total gauge
kubeproxy_sync_proxy_rules_iptables_total{table="filter"} 7
kubeproxy_sync_proxy_rules_iptables_total{table="nat"} 1645
`

func TestMetrics(t *testing.T) {
	fams, err := parseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	h, err := histogramOf(fams, "svcplane_agent_sync_duration_seconds")
	if err != nil || h.Count != 3 || h.Sum != 4.5 {
		t.Errorf("histogramOf = %+v, %v; want 3 observations summing to 4.5", h, err)
	}
	if d := h.sub(histogram{Count: 1, Sum: 4}); d.Count != 2 || d.Sum != 0.5 {
		t.Errorf("sub = %+v", d)
	}
	if h, err := histogramOf(fams, "kubeproxy_sync_proxy_rules_duration_seconds"); err != nil || h.Count != 0 {
		t.Errorf("a histogram not served yet = %+v, %v; want zero", h, err)
	}
	if _, err := histogramOf(fams, "kubeproxy_sync_proxy_rules_iptables_total"); err == nil {
		t.Error("histogramOf accepted a gauge")
	}
	if v := valueOf(fams, "kubeproxy_sync_proxy_rules_iptables_total", map[string]string{"table": "nat"}); v != 1645 {
		t.Errorf("valueOf nat = %v", v)
	}
	if n := countRules([]byte("*nat\n:SVCP-X - [0:0]\n-A SVCP-X -j RETURN\n-A PREROUTING -j SVCP-X\nCOMMIT\n")); n != 2 {
		t.Errorf("countRules = %d, want 2", n)
	}
	if ratio(1, 2) != "0.50" || ratio(0, 2) != "—" {
		t.Errorf("ratio(1, 2) = %s, ratio(0, 2) = %s", ratio(1, 2), ratio(0, 2))
	}
}

// TestFirstSync reads the first sync from the agent's one series and from kube-proxy's
// one per IP family, whose IPv6 proxier finishes first.
func TestFirstSync(t *testing.T) {
	const perFamily = `# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram
kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family="IPv6",le="+Inf"} 1
kubeproxy_sync_proxy_rules_duration_seconds_sum{ip_family="IPv6"} 0.1
kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv6"} 1
`
	const both = perFamily + `kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family="IPv4",le="+Inf"} 1
kubeproxy_sync_proxy_rules_duration_seconds_sum{ip_family="IPv4"} 3
kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv4"} 1
`
	for _, tc := range []struct {
		name, text, histogram string
		want                  time.Duration
		done                  bool
	}{
		{"agent", exposition, "svcplane_agent_sync_duration_seconds", 1500 * time.Millisecond, true},
		{"not served yet", exposition, "kubeproxy_sync_proxy_rules_duration_seconds", 0, false},
		{"IPv6 only", perFamily, "kubeproxy_sync_proxy_rules_duration_seconds", 0, false},
		{"both families", both, "kubeproxy_sync_proxy_rules_duration_seconds", 3 * time.Second, true},
	} {
		fams, err := parseMetrics(strings.NewReader(tc.text))
		if err != nil {
			t.Fatal(err)
		}
		if d, done, err := firstSyncOf(fams, tc.histogram); err != nil || done != tc.done || d != tc.want {
			t.Errorf("%s: firstSyncOf = %v, %v, %v; want %v, %v", tc.name, d, done, err, tc.want, tc.done)
		}
	}
}

// TestReport renders a report of a tiny made-up run twice into a page with hand-written
// sections: the generated part is replaced, the rest kept, the plots drawn.
func TestReport(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "performance.md")
	hand := "# Performance\n\nIntro.\n\n## Allocator\n\nHand-written numbers.\n"
	if err := os.WriteFile(path, []byte(hand), 0o644); err != nil {
		t.Fatal(err)
	}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	full := configFor(false).AllocFull
	r := &report{Config: configFor(true), Started: time.Now(), Finished: time.Now(), Machine: []string{"2 CPU cores"},
		Alloc: &allocPair{N: 10, Svcplane: allocResult{Lat: latencySummary{P50: ms(20), P99: ms(40), Max: ms(41)}, Total: ms(100),
			Create: latencySummary{P50: ms(12), P99: ms(22)}, WatchLag: latencySummary{P50: ms(3), P99: ms(7)}},
			Core: allocResult{Lat: latencySummary{P50: ms(10), P99: ms(20), Max: ms(21)}, Total: ms(50)}},
		AllocFull: &allocPair{N: 10, Svcplane: allocResult{Lat: latencySummary{P50: ms(30)}, Total: ms(300)},
			Core: allocResult{Lat: latencySummary{P50: ms(10)}, Total: ms(100)}, Range: "/19", Usable: full.usable(), HeldBefore: 1 + full.prefill()},
		Endpoints: []*endpointsResult{{Services: 3, PodsPerService: 2, Flips: 4,
			Setup:  map[string]time.Duration{sideSvcplane: ms(500), sideKube: ms(600)},
			Lat:    map[string]latencySummary{sideSvcplane: summarize([]time.Duration{ms(5), ms(9)}), sideKube: summarize([]time.Duration{ms(10), ms(20)})},
			Raw:    map[string][]time.Duration{sideSvcplane: {ms(5), ms(9)}, sideKube: {ms(10), ms(20)}},
			Writes: map[string]int64{sideSvcplane: 4, sideKube: 8}, CPUFlips: map[string]float64{sideSvcplane: 0.1, sideKube: 0.2},
			Usage: map[string]procUsage{sideSvcplane: {PeakRSS: 50e6}, sideKube: {PeakRSS: 100e6}}}},
		Dataplane: []*dataplanePoint{
			{Variant: "iptables-legacy", Services: 10, Sides: map[string]*proxySide{sideSvcplane: {FirstSync: ms(100), EndpointSync: ms(10), NATRules: 300, NATBytes: 30000}, sideKube: {FirstSync: ms(200), EndpointSync: ms(20), NATRules: 310, NATBytes: 31000}}},
			{Variant: "iptables-legacy", Services: 20, Sides: map[string]*proxySide{sideSvcplane: {FirstSync: ms(150), EndpointSync: ms(12)}, sideKube: {FirstSync: ms(300), EndpointSync: ms(30)}}},
		},
	}
	for range 2 {
		if err := r.write(path); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := string(got)
	for _, want := range []string{
		"## Allocator\n\nHand-written numbers.\n", "Intro.",
		"| p50 | 20 ms | 10 ms | 2.00 |", // allocation
		"| create call alone, p50 | 12 ms | 10 ms | 1.20 |",
		"| create call alone, p99 | 22 ms | 20 ms | 1.10 |",
		"each new svcplane Service 3.0 ms after its create call returned (p50; p99 7.0 ms)",
		"| p50 | 30 ms | 10 ms | 3.00 |", // allocation at 99 % full
		"7,108 addresses are held (86.8 %) when the measured creates start",
		"| p99 | 9.0 ms | 20 ms | 0.45 |", // endpoints
		"| slice writes per pod change | 1.00 | 2.00 | 0.50 |",
		"#### iptables-legacy, 20 service ports × 10 endpoints",
		"| first sync (its metric) | 150 ms | 300 ms | 0.50 |",
		"first sync 0.50, one endpoint changed 0.40",                                                    // headline at the largest size
		"allocation, 10 Services: p50 2.00 (20 ms vs 10 ms), all allocated 2.00",                        // headline
		"allocation, 10 Services into a nearly full /19: p50 3.00 (30 ms vs 10 ms), all allocated 3.00", // headline
		"images/bench-endpoints-cdf.png", "images/bench-dataplane-sync.png",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q:\n%s", want, page)
		}
	}
	if n := strings.Count(page, beginMarker); n != 1 {
		t.Errorf("%d generated sections after two writes, want 1", n)
	}
	if strings.Index(page, beginMarker) > strings.Index(page, "## Allocator") {
		t.Error("the generated section does not come before the hand-written ones")
	}
	for _, img := range []string{"bench-endpoints-cdf.png", "bench-dataplane-sync.png"} {
		data, err := os.ReadFile(filepath.Join(dir, "images", img))
		if err != nil || len(data) < 1000 || string(data[1:4]) != "PNG" {
			t.Errorf("plot %s: %d bytes, %v", img, len(data), err)
		}
	}
}
