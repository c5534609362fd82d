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

package watch

// Addresses: the DNS server and kube-apiserver listen on 127.0.0.1. Cluster IPs
// are written into Services' status by the test, playing the manager, from
// 10.96.0.0/12 and fd00:10:96::/112; pods are 10.244.0.0/16; external names are
// under example.com, and no query leaves loopback (the server has no upstream).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/internal/dns"
	"github.com/svcplane/svcplane/test/controlplane"
)

// dnsUser is the identity the server reaches the API server with, bound to
// config/dns's ClusterRole, so that a permission missing there fails here.
const dnsUser = "svcplane-dns"

type env struct {
	client  client.Client
	addr    string // the DNS server, UDP and TCP
	health  string
	cancel  context.CancelFunc
	stopped chan error
}

// start starts a control plane and the DNS server watching it as config/dns's
// identity; it skips the test (fails it on CI) without the control plane.
func start(t *testing.T) *env {
	t.Helper()
	te := controlplane.Start(t)
	c := te.Client
	ctx := context.Background()

	user := te.UserWithRole(t, dnsUser, filepath.Join("config", "dns", "role.yaml"))
	for _, ns := range []string{"default", "shop"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && ns != "default" {
			t.Fatal(err)
		}
	}
	// One Service exists before the server starts: the first list must hold it.
	createService(t, c, clusterIPService("default", "early", "10.96.0.5"))

	zone := dns.NewZone("cluster.local", 30)
	w, err := New(user.Config(), zone)
	if err != nil {
		t.Fatal(err)
	}
	m, err := dns.NewMetrics(prometheus.NewRegistry(), zone)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{client: c, stopped: make(chan error, 2)}
	runCtx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	started := make(chan struct{})
	go func() { e.stopped <- w.Run(runCtx) }()
	go func() {
		e.stopped <- dns.Serve(runCtx, dns.NewHandler(zone, nil, m, logr.Discard()), dns.ServerOptions{
			Addr: "127.0.0.1:0", HealthAddr: "127.0.0.1:0", Ready: w.Synced,
			Started: func(a dns.Addrs) {
				e.addr, e.health = a.DNS.String(), a.Health.String()
				close(started)
			},
		}, logr.Discard())
	}()
	select {
	case <-started:
	case err := <-e.stopped:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-e.stopped; err != nil {
				t.Error(err)
			}
		}
	})
	return e
}

func clusterIPService(ns, name string, ips ...string) *v1alpha1.Service {
	s := &v1alpha1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	s.Spec.Ports = []v1alpha1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}
	s.Status.ClusterIPs = ips
	if len(ips) > 0 {
		s.Status.ClusterIP = ips[0]
	}
	return s
}

// createService creates svc and then writes its status, as the manager would.
func createService(t *testing.T, c client.Client, svc *v1alpha1.Service) {
	t.Helper()
	status := svc.Status
	if err := c.Create(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	if len(status.ClusterIPs) == 0 {
		return
	}
	svc.Status = status
	if err := c.Status().Update(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
}

func endpointSlice(ns, name, service string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{
			v1alpha1.LabelServiceName: service,
			v1alpha1.LabelManagedBy:   v1alpha1.ManagedByValue,
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
		Ports: []discoveryv1.EndpointPort{{
			Name: new("http"), Port: new(int32(8080)), Protocol: new(corev1.ProtocolTCP),
		}},
	}
}

func readyEndpoint(addr, hostname string, ready bool) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: new(ready)}}
	if hostname != "" {
		e.Hostname = new(hostname)
	}
	return e
}

// answer is what a query returned, one string per record, sorted, after the
// rcode: "NOERROR A 10.96.0.5".
func (e *env) answer(network, name string, qtype uint16) (string, error) {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	c := &mdns.Client{Net: network, Timeout: 2 * time.Second}
	resp, _, err := c.Exchange(m, e.addr)
	if err != nil {
		return "", err
	}
	var rrs []string
	for _, rr := range resp.Answer {
		f := strings.Fields(rr.String())
		rrs = append(rrs, strings.Join(f[3:], " "))
	}
	slices.Sort(rrs)
	return strings.TrimSpace(mdns.RcodeToString[resp.Rcode] + " " + strings.Join(rrs, " | ")), nil
}

// expect waits until the query answers want: the zone follows the API server
// through a watch.
func (e *env) expect(t *testing.T, network, name string, qtype uint16, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var got string
	var err error
	for time.Now().Before(deadline) {
		if got, err = e.answer(network, name, qtype); err == nil && got == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s %s over %s: got %q (error %v), want %q", mdns.TypeToString[qtype], name, network, got, err, want)
}

func TestWatchAnswers(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	c := e.client

	// Ready once synced, and the Service that existed before is there at once.
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + e.health + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never OK: %v", errors.Join(err, fmt.Errorf("status %v", resp)))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, err := e.answer("udp", "early.default.svc.cluster.local.", mdns.TypeA); err != nil || got != "NOERROR A 10.96.0.5" {
		t.Fatalf("a Service from before the start, right after /readyz: %q, %v", got, err)
	}

	// A dual-stack ClusterIP Service, over UDP and TCP.
	createService(t, c, clusterIPService("shop", "web", "10.96.0.10", "fd00:10:96::a"))
	e.expect(t, "udp", "web.shop.svc.cluster.local.", mdns.TypeA, "NOERROR A 10.96.0.10")
	e.expect(t, "tcp", "web.shop.svc.cluster.local.", mdns.TypeAAAA, "NOERROR AAAA fd00:10:96::a")
	e.expect(t, "udp", "_http._tcp.web.shop.svc.cluster.local.", mdns.TypeSRV, "NOERROR SRV 0 100 80 web.shop.svc.cluster.local.")
	e.expect(t, "udp", "10.0.96.10.in-addr.arpa.", mdns.TypePTR, "NOERROR PTR web.shop.svc.cluster.local.")

	// A headless Service and its slices: ready endpoints only, hostnames, SRV
	// on the endpoints' port; readiness changes follow.
	headless := &v1alpha1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"}}
	headless.Spec.ClusterIP = v1alpha1.ClusterIPNone
	headless.Spec.Ports = []v1alpha1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}
	createService(t, c, headless)
	e.expect(t, "udp", "db.shop.svc.cluster.local.", mdns.TypeA, "NXDOMAIN")
	slice := endpointSlice("shop", "db-abc", "db",
		readyEndpoint("10.244.1.10", "db-0", true),
		readyEndpoint("10.244.1.11", "", true),
		readyEndpoint("10.244.1.12", "db-2", false))
	if err := c.Create(ctx, slice); err != nil {
		t.Fatal(err)
	}
	e.expect(t, "udp", "db.shop.svc.cluster.local.", mdns.TypeA, "NOERROR A 10.244.1.10 | A 10.244.1.11")
	e.expect(t, "udp", "db-0.db.shop.svc.cluster.local.", mdns.TypeA, "NOERROR A 10.244.1.10")
	e.expect(t, "udp", "_http._tcp.db.shop.svc.cluster.local.", mdns.TypeSRV,
		"NOERROR SRV 0 50 8080 10-244-1-11.db.shop.svc.cluster.local. | SRV 0 50 8080 db-0.db.shop.svc.cluster.local.")
	e.expect(t, "udp", "10.1.244.10.in-addr.arpa.", mdns.TypePTR, "NOERROR PTR db-0.db.shop.svc.cluster.local.")
	slice.Endpoints[2].Conditions.Ready = new(true)
	if err := c.Update(ctx, slice); err != nil {
		t.Fatal(err)
	}
	e.expect(t, "udp", "db-2.db.shop.svc.cluster.local.", mdns.TypeA, "NOERROR A 10.244.1.12")
	// Slices of core Services (no service-name label) are not svcplane's.
	foreign := endpointSlice("shop", "db-core", "db", readyEndpoint("10.244.1.99", "", true))
	foreign.Labels = map[string]string{discoveryv1.LabelServiceName: "db"}
	if err := c.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}

	// ExternalName.
	ext := &v1alpha1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "payments"}}
	ext.Spec.Type = corev1.ServiceTypeExternalName
	ext.Spec.ExternalName = "pay.example.com"
	createService(t, c, ext)
	e.expect(t, "udp", "payments.shop.svc.cluster.local.", mdns.TypeA, "NOERROR CNAME pay.example.com.")

	// Deletions: the names go away, NXDOMAIN.
	if err := c.Delete(ctx, slice); err != nil {
		t.Fatal(err)
	}
	e.expect(t, "udp", "db.shop.svc.cluster.local.", mdns.TypeA, "NXDOMAIN")
	web := &v1alpha1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
	if err := c.Delete(ctx, web); err != nil {
		t.Fatal(err)
	}
	e.expect(t, "udp", "web.shop.svc.cluster.local.", mdns.TypeA, "NXDOMAIN")
	if _, err := e.answer("udp", "10.0.96.10.in-addr.arpa.", mdns.TypePTR); err != nil {
		t.Fatal(err) // not ours any more: SERVFAIL without an upstream, but an answer
	}
	if got, _ := e.answer("udp", "10.0.96.10.in-addr.arpa.", mdns.TypePTR); got != "SERVFAIL" {
		t.Fatalf("the PTR of a deleted Service without an upstream: %q", got)
	}
	// The foreign slice never showed.
	if got, _ := e.answer("udp", "10-244-1-99.db.shop.svc.cluster.local.", mdns.TypeA); got != "NXDOMAIN" {
		t.Fatalf("a core Service's slice answered: %q", got)
	}
}
