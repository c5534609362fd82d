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
	"testing"

	"github.com/go-logr/logr"
	mdns "github.com/miekg/dns"
)

// FuzzHandler feeds the handler whatever parses as a DNS message, as the server
// hands it what it read, and checks that the answer is one: it packs, it
// answers that query, and over UDP it fits the client's buffer. `make test`
// runs the seeds; `go test -fuzz=FuzzHandler ./internal/dns/` explores.
func FuzzHandler(f *testing.F) {
	seed := func(name string, qtype uint16, edns bool, mutate func(*mdns.Msg)) {
		m := question(name, qtype)
		if edns {
			m.SetEdns0(4096, true)
		}
		if mutate != nil {
			mutate(m)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	seed("kubernetes.default.svc.cluster.local.", mdns.TypeA, false, nil)
	seed("web.shop.svc.cluster.local.", mdns.TypeAAAA, true, nil)
	seed("big.shop.svc.cluster.local.", mdns.TypeA, false, nil)
	seed("big.shop.svc.cluster.local.", mdns.TypeANY, true, nil)
	seed("_https._tcp.headless.default.svc.cluster.local.", mdns.TypeSRV, true, nil)
	seed("my-pet.headless.default.svc.cluster.local.", mdns.TypeA, false, nil)
	seed("foo.default.svc.cluster.local.", mdns.TypeA, false, nil)
	seed("100.0.3.10.in-addr.arpa.", mdns.TypePTR, false, nil)
	seed("a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.", mdns.TypePTR, false, nil)
	seed("10-244-1-10.shop.pod.cluster.local.", mdns.TypeA, false, nil)
	seed("dns-version.cluster.local.", mdns.TypeTXT, false, nil)
	seed("cluster.local.", mdns.TypeSOA, false, nil)
	seed("www.example.com.", mdns.TypeA, false, nil)
	seed("cluster.local.", mdns.TypeAXFR, false, nil)
	seed("cluster.local.", mdns.TypeSOA, false, func(m *mdns.Msg) { m.Opcode = mdns.OpcodeNotify })
	seed("cluster.local.", mdns.TypeSOA, false, func(m *mdns.Msg) { m.Opcode = mdns.OpcodeUpdate })
	seed("cluster.local.", mdns.TypeSOA, true, func(m *mdns.Msg) { m.IsEdns0().SetVersion(1) })
	seed("cluster.local.", mdns.TypeSOA, false, func(m *mdns.Msg) { m.Question = append(m.Question, m.Question[0]) })
	seed("Web.Shop.SVC.cluster.local.", mdns.TypeA, false, func(m *mdns.Msg) { m.Question[0].Qclass = mdns.ClassCHAOS })
	seed("cluster.local.", mdns.TypeSOA, true, func(m *mdns.Msg) { m.Question = nil })

	z := specZone()
	bigZone(z)
	h := NewHandler(z, nil, nil, logr.Discard())
	f.Fuzz(func(t *testing.T, raw []byte, tcp bool) {
		req := new(mdns.Msg)
		if err := req.Unpack(raw); err != nil || req.Response {
			return // the server answers these itself (FORMERR) or drops them
		}
		network := "udp"
		if tcp {
			network = "tcp"
		}
		resp, _ := h.Answer(context.Background(), req, network)
		if resp == nil || !resp.Response || resp.Id != req.Id {
			t.Fatalf("no answer to %v: %v", req, resp)
		}
		if req.Opcode != mdns.OpcodeQuery && resp.Rcode != mdns.RcodeNotImplemented {
			t.Fatalf("opcode %d answered %s", req.Opcode, mdns.RcodeToString[resp.Rcode])
		}
		packed, err := resp.Pack()
		if err != nil {
			t.Fatalf("the answer to %v does not pack: %v\n%v", req, err, resp)
		}
		limit := mdns.MaxMsgSize
		if !tcp {
			limit = mdns.MinMsgSize
			if opt := req.IsEdns0(); opt != nil {
				limit = min(max(int(opt.UDPSize()), mdns.MinMsgSize), MaxUDPSize)
			}
		}
		if len(packed) > limit {
			t.Fatalf("%d bytes over %s, limit %d", len(packed), network, limit)
		}
	})
}

// bigZone adds a headless Service with 100 endpoints, whose answers need
// truncating over UDP.
func bigZone(z *Zone) {
	z.SetService(svc("shop", "big", []string{"None"}))
	var eps []ep
	for i := range 100 {
		eps = append(eps, ep{addrs: []string{"10.244.2." + itoa(i+1)}})
	}
	z.SetEndpointSlice(slice("shop", "big-1", "big", "IPv4", eps))
}
