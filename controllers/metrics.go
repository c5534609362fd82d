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

package controllers

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/svcplane/svcplane/internal/ledger"
)

var (
	allocatorSizeDesc = prometheus.NewDesc("svcplane_allocator_size",
		"Number of values a range can hand out.", []string{"kind", "range"}, nil)
	allocatorUsedDesc = prometheus.NewDesc("svcplane_allocator_allocated",
		"Number of values currently allocated from a range.", []string{"kind", "range"}, nil)
)

// allocatorCollector reports the use of every range of a Book when scraped, so the
// numbers are never stale and the allocation path does no metrics work.
type allocatorCollector struct{ book *ledger.Book }

// NewAllocatorCollector returns a Prometheus collector of the Book's range use.
func NewAllocatorCollector(book *ledger.Book) prometheus.Collector {
	return allocatorCollector{book: book}
}

func (c allocatorCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- allocatorSizeDesc
	ch <- allocatorUsedDesc
}

func (c allocatorCollector) Collect(ch chan<- prometheus.Metric) {
	for _, u := range c.book.Usage() {
		ch <- prometheus.MustNewConstMetric(allocatorSizeDesc, prometheus.GaugeValue, float64(u.Size), u.Kind, u.Range)
		ch <- prometheus.MustNewConstMetric(allocatorUsedDesc, prometheus.GaugeValue, float64(u.Used), u.Kind, u.Range)
	}
}
