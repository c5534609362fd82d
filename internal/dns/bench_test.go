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
	"context"
	"fmt"
	"testing"

	"github.com/go-logr/logr"
	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// BenchmarkAnswer measures the handler alone (no sockets) with 10,000
// Services, metrics included, and the packing the server then does:
// hack/dns-bench measures the whole server over loopback.
func BenchmarkAnswer(b *testing.B) {
	const n = 10000
	z := NewZone("cluster.local", 30)
	for i := range n {
		z.SetService(svc(fmt.Sprintf("ns-%d", i%100), fmt.Sprintf("svc-%d", i), []string{fmt.Sprintf("10.96.%d.%d", i/256, i%256)},
			svcPort("http", corev1.ProtocolTCP, 80), svcPort("metrics", corev1.ProtocolTCP, 9090)))
		z.SetEndpointSlice(slice(fmt.Sprintf("ns-%d", i%100), fmt.Sprintf("svc-%d-abc", i), fmt.Sprintf("svc-%d", i), discoveryv1.AddressTypeIPv4,
			[]ep{{addrs: []string{fmt.Sprintf("10.244.%d.%d", i/250, i%250+1)}}}))
	}
	m, err := NewMetrics(prometheus.NewRegistry(), z)
	if err != nil {
		b.Fatal(err)
	}
	h := NewHandler(z, nil, m, logr.Discard())
	for _, k := range []struct {
		name  string
		qtype uint16
		qname string
	}{
		{"A", mdns.TypeA, "svc-%d.ns-%d.svc.cluster.local."},
		{"SRV", mdns.TypeSRV, "_http._tcp.svc-%d.ns-%d.svc.cluster.local."},
		{"NXDOMAIN", mdns.TypeA, "missing-%d.ns-%d.svc.cluster.local."},
	} {
		reqs := make([]*mdns.Msg, 1024)
		for i := range reqs {
			reqs[i] = question(fmt.Sprintf(k.qname, i*7%n, i*7%n%100), k.qtype)
		}
		b.Run(k.name, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, mdns.MaxMsgSize)
			i := 0
			for b.Loop() {
				resp, _ := h.Answer(context.Background(), reqs[i%len(reqs)], "udp")
				if _, err := resp.PackBuffer(buf); err != nil {
					b.Fatal(err)
				}
				m.observe(k.qtype, resp.Rcode, false, 0)
				i++
			}
		})
	}
}
