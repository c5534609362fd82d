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

// Addresses: the server and a fake upstream listen on 127.0.0.1 (port 0);
// upstream answers are in 192.0.2.0/24 (TEST-NET-1), pods in 10.244.0.0/16.

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// startUpstream runs a resolver on loopback that answers A questions for names
// under example.com. with 192.0.2.53, and SERVFAIL for anything else.
func startUpstream(t *testing.T) string {
	t.Helper()
	// listen picks one port free for both UDP and TCP, as the server does.
	pc, ln, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		resp := new(mdns.Msg)
		resp.SetReply(req)
		q := req.Question[0]
		if !strings.HasSuffix(q.Name, "example.com.") {
			resp.Rcode = mdns.RcodeServerFailure
		} else if q.Qtype == mdns.TypeA {
			resp.Answer = append(resp.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 53)})
		}
		_ = w.WriteMsg(resp)
	})
	for _, s := range []*mdns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		go func() { _ = s.ActivateAndServe() }()
		t.Cleanup(func() { _ = s.Shutdown() })
	}
	return addr
}

// closedAddr returns a loopback UDP address nothing listens on.
func closedAddr(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

type testServer struct {
	addr, health, metrics string
	ready                 *atomic.Bool
}

// startServer serves specZone, plus a headless Service "big" of n endpoints,
// with the given upstreams, on loopback.
func startServer(t *testing.T, upstreams []string) *testServer {
	t.Helper()
	z := specZone()
	bigZone(z)

	var up Upstream
	if len(upstreams) > 0 {
		f, err := NewForwarder(upstreams)
		if err != nil {
			t.Fatal(err)
		}
		up = f
	}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, z)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{ready: &atomic.Bool{}}
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, NewHandler(z, up, m, logr.Discard()), ServerOptions{
			Addr:        "127.0.0.1:0",
			HealthAddr:  "127.0.0.1:0",
			MetricsAddr: "127.0.0.1:0",
			Metrics:     promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
			Ready:       ts.ready.Load,
			Started: func(a Addrs) {
				ts.addr, ts.health, ts.metrics = a.DNS.String(), a.Health.String(), a.Metrics.String()
				close(started)
			},
		}, logr.Discard())
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ts
}

func exchange(t *testing.T, network, addr string, m *mdns.Msg) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: mdns.MaxMsgSize}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %v: %v", network, m.Question, err)
	}
	return resp
}

func question(name string, qtype uint16) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

func TestServer(t *testing.T) {
	ts := startServer(t, []string{startUpstream(t)})

	t.Run("A over UDP, authoritative", func(t *testing.T) {
		resp := exchange(t, "udp", ts.addr, question("kubernetes.default.svc.cluster.local.", mdns.TypeA))
		if resp.Rcode != mdns.RcodeSuccess || !resp.Authoritative || len(resp.Answer) != 1 || resp.Answer[0].(*mdns.A).A.String() != "10.3.0.1" {
			t.Fatalf("%v", resp)
		}
	})
	t.Run("SRV over TCP", func(t *testing.T) {
		resp := exchange(t, "tcp", ts.addr, question("_https._tcp.kubernetes.default.svc.cluster.local.", mdns.TypeSRV))
		if len(resp.Answer) != 1 || resp.Answer[0].(*mdns.SRV).Port != 443 || len(resp.Extra) != 1 {
			t.Fatalf("%v", resp)
		}
	})
	t.Run("NXDOMAIN with the SOA", func(t *testing.T) {
		resp := exchange(t, "udp", ts.addr, question("nope.default.svc.cluster.local.", mdns.TypeA))
		if resp.Rcode != mdns.RcodeNameError || len(resp.Ns) != 1 || resp.Ns[0].Header().Rrtype != mdns.TypeSOA {
			t.Fatalf("%v", resp)
		}
	})
	t.Run("truncated to 512 bytes without EDNS0", func(t *testing.T) {
		c := &mdns.Client{Net: "udp", Timeout: 5 * time.Second}
		m := question("big.shop.svc.cluster.local.", mdns.TypeA)
		resp, _, err := c.Exchange(m, ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		resp.Compress = true // as the server packed it
		packed, _ := resp.Pack()
		if !resp.Truncated || len(packed) > 512 || resp.IsEdns0() != nil {
			t.Fatalf("truncated %v, %d bytes, OPT %v", resp.Truncated, len(packed), resp.IsEdns0())
		}
	})
	t.Run("truncated to the server's 1232 bytes with a larger EDNS0 buffer", func(t *testing.T) {
		m := question("big.shop.svc.cluster.local.", mdns.TypeA)
		m.SetEdns0(4096, true)
		resp := exchange(t, "udp", ts.addr, m)
		resp.Compress = true
		packed, _ := resp.Pack()
		opt := resp.IsEdns0()
		if !resp.Truncated || len(packed) > MaxUDPSize || opt == nil || opt.UDPSize() != MaxUDPSize || !opt.Do() {
			t.Fatalf("truncated %v, %d bytes, OPT %v", resp.Truncated, len(packed), opt)
		}
	})
	t.Run("whole over TCP", func(t *testing.T) {
		resp := exchange(t, "tcp", ts.addr, question("big.shop.svc.cluster.local.", mdns.TypeA))
		if resp.Truncated || len(resp.Answer) != 100 {
			t.Fatalf("truncated %v, %d answers", resp.Truncated, len(resp.Answer))
		}
	})
	t.Run("BADVERS for EDNS version 1", func(t *testing.T) {
		m := question("kubernetes.default.svc.cluster.local.", mdns.TypeA)
		m.SetEdns0(1232, false)
		m.IsEdns0().SetVersion(1)
		resp := exchange(t, "udp", ts.addr, m)
		if resp.Rcode != mdns.RcodeBadVers {
			t.Fatalf("rcode %d: %v", resp.Rcode, resp)
		}
	})
	t.Run("forwarded", func(t *testing.T) {
		resp := exchange(t, "udp", ts.addr, question("www.example.com.", mdns.TypeA))
		if resp.Rcode != mdns.RcodeSuccess || len(resp.Answer) != 1 || resp.Answer[0].(*mdns.A).A.String() != "192.0.2.53" {
			t.Fatalf("%v", resp)
		}
	})
	t.Run("ExternalName chased upstream", func(t *testing.T) {
		resp := exchange(t, "udp", ts.addr, question("foo.default.svc.cluster.local.", mdns.TypeA))
		got := rrStrings(resp.Answer)
		want := []string{"foo.default.svc.cluster.local. 30 IN CNAME www.example.com.", "www.example.com. 60 IN A 192.0.2.53"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("%q, want %q", got, want)
		}
	})
	t.Run("upstream SERVFAIL passed on", func(t *testing.T) {
		resp := exchange(t, "udp", ts.addr, question("www.example.org.", mdns.TypeA))
		if resp.Rcode != mdns.RcodeServerFailure {
			t.Fatalf("%v", resp)
		}
	})
	t.Run("zone transfer refused", func(t *testing.T) {
		resp := exchange(t, "tcp", ts.addr, question("cluster.local.", mdns.TypeAXFR))
		if resp.Rcode != mdns.RcodeRefused {
			t.Fatalf("%v", resp)
		}
	})
	t.Run("CHAOS class refused", func(t *testing.T) {
		m := question("dns-version.cluster.local.", mdns.TypeTXT)
		m.Question[0].Qclass = mdns.ClassCHAOS
		if resp := exchange(t, "udp", ts.addr, m); resp.Rcode != mdns.RcodeRefused {
			t.Fatalf("%v", resp)
		}
	})
	for _, op := range []int{mdns.OpcodeNotify, mdns.OpcodeUpdate, mdns.OpcodeStatus, mdns.OpcodeIQuery} {
		t.Run("NOTIMP for opcode "+mdns.OpcodeToString[op], func(t *testing.T) {
			m := question("cluster.local.", mdns.TypeSOA)
			m.Opcode = op
			resp := exchange(t, "udp", ts.addr, m)
			if resp.Rcode != mdns.RcodeNotImplemented || resp.Opcode != op {
				t.Fatalf("%v", resp)
			}
		})
	}
	t.Run("FORMERR for two questions", func(t *testing.T) {
		m := question("cluster.local.", mdns.TypeSOA)
		m.Question = append(m.Question, m.Question[0])
		if resp := exchange(t, "udp", ts.addr, m); resp.Rcode != mdns.RcodeFormatError {
			t.Fatalf("%v", resp)
		}
	})
	t.Run("FORMERR for a malformed question, over UDP and TCP", func(t *testing.T) {
		// A header announcing one question, then a name whose label runs past
		// the end of the message.
		raw := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 40, 'a', 'b'}
		for _, network := range []string{"udp", "tcp"} {
			resp := rawExchange(t, network, ts.addr, raw)
			if resp.Id != 0x1234 || resp.Rcode != mdns.RcodeFormatError || !resp.Response {
				t.Errorf("%s: %v", network, resp)
			}
		}
	})

	t.Run("probes and metrics", func(t *testing.T) {
		get := func(url string) (int, string) {
			t.Helper()
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, _ := get("http://" + ts.health + "/healthz"); code != http.StatusOK {
			t.Errorf("/healthz %d", code)
		}
		if code, _ := get("http://" + ts.health + "/readyz"); code != http.StatusServiceUnavailable {
			t.Errorf("/readyz before the caches synced: %d", code)
		}
		ts.ready.Store(true)
		if code, _ := get("http://" + ts.health + "/readyz"); code != http.StatusOK {
			t.Errorf("/readyz after the caches synced: %d", code)
		}
		_, body := get("http://" + ts.metrics + "/metrics")
		for _, want := range []string{
			`svcplane_dns_queries_total{rcode="NOERROR",source="zone",type="A"}`,
			`svcplane_dns_queries_total{rcode="NXDOMAIN",source="zone",type="A"}`,
			`svcplane_dns_queries_total{rcode="NOERROR",source="upstream",type="A"}`,
			`svcplane_dns_queries_total{rcode="FORMERR",source="zone",type="other"} 3`,
			`svcplane_dns_queries_total{rcode="NOTIMP",source="zone",type="SOA"} 4`,
			`svcplane_dns_query_duration_seconds_bucket{source="zone",le="+Inf"}`,
			"svcplane_dns_cache_services 9",
			"svcplane_dns_cache_endpointslices 6",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

// rawExchange sends raw bytes and parses the answer.
func rawExchange(t *testing.T, network, addr string, raw []byte) *mdns.Msg {
	t.Helper()
	conn, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, mdns.MaxMsgSize)
	var n int
	if network == "tcp" {
		if _, err := conn.Write(binary.BigEndian.AppendUint16(nil, uint16(len(raw)))); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(raw); err != nil {
			t.Fatal(err)
		}
		var l uint16
		if err := binary.Read(conn, binary.BigEndian, &l); err != nil {
			t.Fatal(err)
		}
		if n, err = io.ReadFull(conn, buf[:l]); err != nil {
			t.Fatal(err)
		}
	} else {
		if _, err := conn.Write(raw); err != nil {
			t.Fatal(err)
		}
		if n, err = conn.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	resp := new(mdns.Msg)
	if err := resp.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestUpstreamFailures(t *testing.T) {
	t.Run("no upstream answers", func(t *testing.T) {
		ts := startServer(t, []string{closedAddr(t), closedAddr(t)})
		resp := exchange(t, "udp", ts.addr, question("www.example.com.", mdns.TypeA))
		if resp.Rcode != mdns.RcodeServerFailure {
			t.Fatalf("%v", resp)
		}
		// The zone still answers.
		resp = exchange(t, "udp", ts.addr, question("kubernetes.default.svc.cluster.local.", mdns.TypeA))
		if resp.Rcode != mdns.RcodeSuccess || len(resp.Answer) != 1 {
			t.Fatalf("%v", resp)
		}
		// An ExternalName's CNAME stands alone.
		resp = exchange(t, "udp", ts.addr, question("foo.default.svc.cluster.local.", mdns.TypeA))
		if resp.Rcode != mdns.RcodeSuccess || len(resp.Answer) != 1 || resp.Answer[0].Header().Rrtype != mdns.TypeCNAME {
			t.Fatalf("%v", resp)
		}
	})
	t.Run("the second upstream answers when the first does not", func(t *testing.T) {
		ts := startServer(t, []string{closedAddr(t), startUpstream(t)})
		resp := exchange(t, "udp", ts.addr, question("www.example.com.", mdns.TypeA))
		if resp.Rcode != mdns.RcodeSuccess || len(resp.Answer) != 1 {
			t.Fatalf("%v", resp)
		}
	})
	t.Run("no upstream configured", func(t *testing.T) {
		ts := startServer(t, nil)
		resp := exchange(t, "udp", ts.addr, question("www.example.com.", mdns.TypeA))
		if resp.Rcode != mdns.RcodeServerFailure || resp.RecursionAvailable {
			t.Fatalf("%v", resp)
		}
	})
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestRotation checks that a headless Service's addresses come in turns, so that
// clients taking the first one spread over the endpoints.
func TestRotation(t *testing.T) {
	h := NewHandler(specZone(), nil, nil, logr.Discard())
	firsts := map[string]bool{}
	for range 6 {
		resp, _ := h.Answer(context.Background(), question("headless.default.svc.cluster.local.", mdns.TypeA), "udp")
		if len(resp.Answer) != 3 {
			t.Fatalf("%v", resp)
		}
		firsts[resp.Answer[0].(*mdns.A).A.String()] = true
	}
	if len(firsts) != 3 {
		t.Fatalf("first addresses over 6 answers: %v, want all 3", firsts)
	}
}

// TestNotReady checks that names of the zone get SERVFAIL, not a cacheable
// NXDOMAIN, until the caches have synced, while other names are forwarded.
func TestNotReady(t *testing.T) {
	f, err := NewForwarder([]string{startUpstream(t)})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(specZone(), f, nil, logr.Discard())
	var ready atomic.Bool
	h.SetReady(ready.Load)
	ask := func(name string) int {
		resp, _ := h.Answer(context.Background(), question(name, mdns.TypeA), "udp")
		return resp.Rcode
	}
	if rc := ask("nope.default.svc.cluster.local."); rc != mdns.RcodeServerFailure {
		t.Errorf("before sync: %s, want SERVFAIL", mdns.RcodeToString[rc])
	}
	if rc := ask("www.example.com."); rc != mdns.RcodeSuccess {
		t.Errorf("an outside name before sync: %s, want NOERROR from the upstream", mdns.RcodeToString[rc])
	}
	ready.Store(true)
	if rc := ask("nope.default.svc.cluster.local."); rc != mdns.RcodeNameError {
		t.Errorf("after sync: %s, want NXDOMAIN", mdns.RcodeToString[rc])
	}
}
