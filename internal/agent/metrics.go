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

package agent

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/svcplane/svcplane/dataplane"
	"github.com/svcplane/svcplane/dataplane/model"
)

// metrics are the agent's Prometheus metrics.
type metrics struct {
	syncDuration       prometheus.Histogram
	syncFailures       prometheus.Counter
	lastSync           prometheus.Gauge
	rulesWritten       *prometheus.CounterVec
	programmingLatency prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "svcplane_agent_sync_duration_seconds",
			Help:    "How long one sync took: listing the cache, building the desired state and writing it to the kernel.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15), // 1ms to 16s
		}),
		syncFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "svcplane_agent_sync_failures_total",
			Help: "Syncs that failed; each is retried as a full resync.",
		}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "svcplane_agent_last_sync_timestamp_seconds",
			Help: "When the last successful sync ended, in seconds since the Unix epoch.",
		}),
		rulesWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "svcplane_agent_rules_written_bytes_total",
			Help: "Bytes of rules written to the kernel by successful syncs (the iptables-restore input), per IP family.",
		}, []string{"family"}),
		programmingLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "svcplane_agent_network_programming_latency_seconds",
			Help: "From the last change of a Service or EndpointSlice (its endpoints.kubernetes.io/last-change-trigger-time " +
				"annotation, else the newest managedFields time, whole seconds) to the end of the sync that put it into the kernel.",
			Buckets: []float64{0.25, 0.5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 45, 60, 120, 300},
		}),
	}
	collectors := []prometheus.Collector{m.syncDuration, m.syncFailures, m.lastSync, m.rulesWritten, m.programmingLatency}
	for i, c := range collectors {
		if err := reg.Register(c); err != nil {
			// A second agent in one process (a test) shares the first's metrics.
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			collectors[i] = are.ExistingCollector
		}
	}
	m.syncDuration = collectors[0].(prometheus.Histogram)
	m.syncFailures = collectors[1].(prometheus.Counter)
	m.lastSync = collectors[2].(prometheus.Gauge)
	m.rulesWritten = collectors[3].(*prometheus.CounterVec)
	m.programmingLatency = collectors[4].(prometheus.Histogram)
	return m, nil
}

// observeSync records a sync that ran from start to end with result err.
func (m *metrics) observeSync(b dataplane.Backend, start, end time.Time, err error) {
	m.syncDuration.Observe(end.Sub(start).Seconds())
	if err != nil {
		m.syncFailures.Inc()
		return
	}
	m.lastSync.Set(float64(end.UnixNano()) / 1e9)
	// Only backends that say how much they wrote (dataplane.WriteReporter).
	wr, ok := b.(dataplane.WriteReporter)
	if !ok {
		return
	}
	for _, f := range model.Families {
		if n, ok := wr.BytesWritten(f, start); ok {
			m.rulesWritten.WithLabelValues(f.String()).Add(float64(n))
		}
	}
}
