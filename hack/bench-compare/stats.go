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
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/procfs"
)

// percentile returns the p-quantile (0 < p <= 1) of sorted by the nearest-rank method:
// the smallest value that at least p of the values do not exceed.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// latencySummary is the usual quantiles of one side's latencies.
type latencySummary struct {
	N                  int
	P50, P90, P99, Max time.Duration
}

func summarize(lat []time.Duration) latencySummary {
	s := slices.Clone(lat)
	slices.Sort(s)
	if len(s) == 0 {
		return latencySummary{}
	}
	return latencySummary{N: len(s), P50: percentile(s, 0.50), P90: percentile(s, 0.90), P99: percentile(s, 0.99), Max: s[len(s)-1]}
}

// procUsage is what /proc says about one process: CPU seconds (its own and those of the
// children it waited for, such as iptables-restore) and its peak resident set.
type procUsage struct {
	CPUSeconds float64
	PeakRSS    uint64 // bytes, VmHWM
	RSS        uint64 // bytes, now
}

// usageOf reads /proc/<pid>/stat and /proc/<pid>/status through procfs.
func usageOf(fs procfs.FS, pid int) (procUsage, error) {
	p, err := fs.Proc(pid)
	if err != nil {
		return procUsage{}, err
	}
	st, err := p.Stat()
	if err != nil {
		return procUsage{}, err
	}
	status, err := p.NewStatus()
	if err != nil {
		return procUsage{}, err
	}
	// USER_HZ is 100 on every Linux architecture that Go supports (procfs assumes it too).
	children := float64(st.CUTime+st.CSTime) / 100
	return procUsage{CPUSeconds: st.CPUTime() + children, PeakRSS: status.VmHWM, RSS: uint64(st.ResidentMemory())}, nil
}

// histogram is the running total of one Prometheus histogram: how many observations
// and their sum, in seconds.
type histogram struct {
	Count uint64
	Sum   float64
}

// sub returns the observations made between before and h.
func (h histogram) sub(before histogram) histogram {
	return histogram{Count: h.Count - before.Count, Sum: h.Sum - before.Sum}
}

// parseMetrics reads a Prometheus text exposition.
func parseMetrics(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// histogramOf returns the histogram called name, summed over its label sets; a missing
// family is a zero histogram (no observation yet).
func histogramOf(families map[string]*dto.MetricFamily, name string) (histogram, error) {
	f, ok := families[name]
	if !ok {
		return histogram{}, nil
	}
	if f.GetType() != dto.MetricType_HISTOGRAM {
		return histogram{}, fmt.Errorf("metric %s is a %s, not a histogram", name, f.GetType())
	}
	var h histogram
	for _, m := range f.GetMetric() {
		h.Count += m.GetHistogram().GetSampleCount()
		h.Sum += m.GetHistogram().GetSampleSum()
	}
	return h, nil
}

// firstSyncOf returns the duration of a proxy's first sync from its histogram called
// name, and false until it has one. The agent syncs both IP families in one sync, one
// observation; kube-proxy runs one proxier per family, in parallel, each observing
// under its ip_family label, and its IPv6 one (no Services here) finishes first: the
// average over both, or the IPv6 one alone, would halve kube-proxy's time. So the
// first sync is done once every series has an observation, and the IPv4 one (where
// the workload's Services are) when the series are per family; it took as long as the
// longest of them, as they ran at the same time.
func firstSyncOf(families map[string]*dto.MetricFamily, name string) (time.Duration, bool, error) {
	f, ok := families[name]
	if !ok {
		return 0, false, nil
	}
	if f.GetType() != dto.MetricType_HISTOGRAM {
		return 0, false, fmt.Errorf("metric %s is a %s, not a histogram", name, f.GetType())
	}
	var longest float64
	perFamily, ipv4 := false, false
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "ip_family" {
				perFamily, ipv4 = true, ipv4 || l.GetValue() == "IPv4"
			}
		}
		h := m.GetHistogram()
		if h.GetSampleCount() == 0 {
			return 0, false, nil
		}
		longest = max(longest, h.GetSampleSum()/float64(h.GetSampleCount()))
	}
	if len(f.GetMetric()) == 0 || (perFamily && !ipv4) {
		return 0, false, nil
	}
	return time.Duration(longest * float64(time.Second)), true, nil
}

// valueOf returns the sum of the counter or gauge called name over the label sets that
// carry every label in match.
func valueOf(families map[string]*dto.MetricFamily, name string, match map[string]string) float64 {
	f, ok := families[name]
	if !ok {
		return 0
	}
	var v float64
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		ok := true
		for k, want := range match {
			if have[k] != want {
				ok = false
			}
		}
		if !ok {
			continue
		}
		switch {
		case m.Counter != nil:
			v += m.GetCounter().GetValue()
		case m.Gauge != nil:
			v += m.GetGauge().GetValue()
		case m.Untyped != nil:
			v += m.GetUntyped().GetValue()
		}
	}
	return v
}

// ratio is a/b formatted for a table, "—" when either side is missing.
func ratio(a, b float64) string {
	if a <= 0 || b <= 0 || math.IsNaN(a) || math.IsNaN(b) {
		return "—"
	}
	return fmt.Sprintf("%.2f", a/b)
}
