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

package dns

import (
	"errors"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// countedTypes are the query types counted under their own name; every other
// type is counted as "other", so that a client sending random types cannot
// grow the metrics without bound.
var countedTypes = map[uint16]string{}

func init() {
	for _, t := range []uint16{mdns.TypeA, mdns.TypeAAAA, mdns.TypeSRV, mdns.TypePTR, mdns.TypeCNAME,
		mdns.TypeTXT, mdns.TypeSOA, mdns.TypeNS, mdns.TypeMX, mdns.TypeANY, mdns.TypeHTTPS, mdns.TypeSVCB} {
		countedTypes[t] = mdns.TypeToString[t]
	}
}

// Metrics are the server's Prometheus metrics.
type Metrics struct {
	queries          *prometheus.CounterVec
	duration         *prometheus.HistogramVec
	upstreamFailures prometheus.Counter
	// observers caches the two histogram children, one per source.
	zoneDuration, upstreamDuration prometheus.Observer
	// counters caches the queries counters by type, rcode and source: looking
	// one up by its label values hashes them, on every query.
	counters sync.Map // counterKey -> prometheus.Counter
}

type counterKey struct {
	qtype     uint16
	rcode     int
	forwarded bool
}

// NewMetrics registers the server's metrics with reg, including gauges of the
// zone's size.
func NewMetrics(reg prometheus.Registerer, zone *Zone) (*Metrics, error) {
	m := &Metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "svcplane_dns_queries_total",
			Help: "DNS queries answered, by query type (\"other\" for rare ones), response code and source (zone or upstream).",
		}, []string{"type", "rcode", "source"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "svcplane_dns_query_duration_seconds",
			Help:    "From reading a query to writing its answer, by source (zone or upstream).",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 17), // 50µs to 3.3s
		}, []string{"source"}),
		upstreamFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "svcplane_dns_upstream_failures_total",
			Help: "Forwarded queries no upstream answered (answered SERVFAIL).",
		}),
	}
	gauge := func(name, help string, f func(Sizes) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(f(zone.Sizes())) })
	}
	collectors := []prometheus.Collector{
		m.queries, m.duration, m.upstreamFailures,
		gauge("svcplane_dns_cache_services", "Services in the cache.", func(s Sizes) int { return s.Services }),
		gauge("svcplane_dns_cache_endpointslices", "EndpointSlices in the cache.", func(s Sizes) int { return s.EndpointSlices }),
		gauge("svcplane_dns_cache_endpoints", "Ready endpoints of headless Services, by hostname.", func(s Sizes) int { return s.Endpoints }),
		gauge("svcplane_dns_cache_reverse_names", "Addresses with a PTR record.", func(s Sizes) int { return s.ReverseNames }),
	}
	var errs []error
	for _, c := range collectors {
		errs = append(errs, reg.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m.zoneDuration = m.duration.WithLabelValues("zone")
	m.upstreamDuration = m.duration.WithLabelValues("upstream")
	return m, nil
}

// observe counts one answered query.
func (m *Metrics) observe(qtype uint16, rcode int, forwarded bool, d time.Duration) {
	if _, ok := countedTypes[qtype]; !ok {
		qtype = 0 // "other"
	}
	if _, ok := mdns.RcodeToString[rcode]; !ok {
		rcode = -1 // "other"
	}
	key := counterKey{qtype, rcode, forwarded}
	c, ok := m.counters.Load(key)
	if !ok {
		t, rc, source := "other", "other", "zone"
		if qtype != 0 {
			t = countedTypes[qtype]
		}
		if rcode >= 0 {
			rc = mdns.RcodeToString[rcode]
		}
		if forwarded {
			source = "upstream"
		}
		c, _ = m.counters.LoadOrStore(key, m.queries.WithLabelValues(t, rc, source))
	}
	c.(prometheus.Counter).Inc()
	if forwarded {
		m.upstreamDuration.Observe(d.Seconds())
	} else {
		m.zoneDuration.Observe(d.Seconds())
	}
}
