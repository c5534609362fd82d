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

package e2e

// Addresses: see package world. The DNS server runs in the node's namespace,
// on the pod gateway 10.244.1.1 port 53 (every pod's route to the node); its
// upstream is a resolver this test runs on the node's loopback, answering
// names under example.test (a reserved TLD) with 192.0.2.80 (TEST-NET-1), an
// address nothing sends to. Queries leave the pods' namespaces only for the
// node's.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/internal/dns"
	"github.com/svcplane/svcplane/internal/dns/watch"
	"github.com/svcplane/svcplane/test/e2e/world"
)

const (
	// dnsPort is the DNS server's port on the pod gateway.
	dnsPort = 53
	// upstreamAnswer is what the test's upstream answers for names under
	// example.test.
	upstreamAnswer = "192.0.2.80"
)

// startDNS runs svcplane's DNS server in the node's namespace, on the pod
// gateway, with an upstream on loopback, until the test ends; it returns once
// the server is ready (its caches synced).
func startDNS(t *testing.T) string {
	t.Helper()
	upstream := startExampleUpstream(t)
	zone := dns.NewZone("cluster.local", 5)
	wt, err := watch.New(cl.Config, zone)
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := dns.NewForwarder([]string{upstream})
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := dns.NewMetrics(prometheus.NewRegistry(), zone)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 2)
	started := make(chan struct{})
	go func() { errc <- wt.Run(ctx) }()
	addr := net.JoinHostPort(world.PodGateway.String(), fmt.Sprint(dnsPort))
	go func() {
		errc <- dns.Serve(ctx, dns.NewHandler(zone, fwd, metrics, logr.Discard()), dns.ServerOptions{
			Addr:    addr,
			Started: func(dns.Addrs) { close(started) },
		}, logr.Discard())
	}()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-errc; err != nil {
				t.Error(err)
			}
		}
	})
	select {
	case <-started:
	case err := <-errc:
		t.Fatal(err)
	}
	eventually(t, programmed, func() error {
		if !wt.Synced() {
			return errors.New("the DNS server's caches have not synced")
		}
		return nil
	})
	return addr
}

// startExampleUpstream runs a resolver on the node's loopback that answers A
// questions under example.test. with upstreamAnswer and NXDOMAIN for the rest.
func startExampleUpstream(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := mdns.HandlerFunc(func(rw mdns.ResponseWriter, req *mdns.Msg) {
		resp := new(mdns.Msg)
		resp.SetReply(req)
		q := req.Question[0]
		switch {
		case !strings.HasSuffix(strings.ToLower(q.Name), ".example.test."):
			resp.Rcode = mdns.RcodeNameError
		case q.Qtype == mdns.TypeA:
			resp.Answer = append(resp.Answer, &mdns.A{
				Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60},
				A:   net.ParseIP(upstreamAnswer),
			})
		}
		_ = rw.WriteMsg(resp)
	})
	srv := &mdns.Server{PacketConn: pc, Handler: h}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

// records returns the answer section's data of type rrtype, sorted.
func records(m *mdns.Msg, rrtype uint16) []string {
	var out []string
	for _, rr := range m.Answer {
		if rr.Header().Rrtype != rrtype {
			continue
		}
		f := strings.Fields(rr.String())
		out = append(out, strings.Join(f[4:], " "))
	}
	slices.Sort(out)
	return out
}

// expectRecords waits until name resolves, from netns, to want records of
// rrtype (asking for qtype).
func expectRecords(t *testing.T, netns, server, network, name string, qtype, rrtype uint16, want []string) *mdns.Msg {
	t.Helper()
	var last *mdns.Msg
	eventually(t, programmed, func() error {
		resp, err := world.Resolve(netns, server, network, name, qtype)
		if err != nil {
			return err
		}
		last = resp
		if resp.Rcode != mdns.RcodeSuccess {
			return fmt.Errorf("%s %s: %s", mdns.TypeToString[qtype], name, mdns.RcodeToString[resp.Rcode])
		}
		if got := records(resp, rrtype); !slices.Equal(got, want) {
			return fmt.Errorf("%s %s over %s: %s records %q, want %q", mdns.TypeToString[qtype], name, network, mdns.TypeToString[rrtype], got, want)
		}
		return nil
	})
	return last
}

func TestDNS(t *testing.T) {
	requireWorld(t)
	server := startDNS(t)
	podA := podNetns(t, "pod-a")
	ns := cl.Namespace

	t.Run("ClusterIP Service: resolve, then connect through the agent's rules", func(t *testing.T) {
		svc := create(t, dualStackService("dns-web"))
		name := "dns-web." + ns + ".svc.cluster.local."
		expectRecords(t, podA, server, "udp", name, mdns.TypeA, mdns.TypeA, []string{svc.Status.ClusterIP})
		expectRecords(t, podA, server, "tcp", name, mdns.TypeA, mdns.TypeA, []string{svc.Status.ClusterIP})
		expectRecords(t, podA, server, "udp", name, mdns.TypeAAAA, mdns.TypeAAAA, []string{clusterIPOf(t, svc, corev1.IPv6Protocol)})
		expectRecords(t, podA, server, "udp", "_http._tcp."+name, mdns.TypeSRV, mdns.TypeSRV, []string{"0 100 80 " + name})
		// Connect to the address the name resolved to, from the pod.
		resp, err := world.Resolve(podA, server, "udp", name, mdns.TypeA)
		if err != nil {
			t.Fatal(err)
		}
		ip := records(resp, mdns.TypeA)[0]
		url := hostURL(ip, 80)
		get := fromNetns(podA)
		waitServing(t, get, url)
		expectAllPodsAnswer(t, get, url)
		// And back: the cluster IP's PTR names the Service.
		rev, err := mdns.ReverseAddr(ip)
		if err != nil {
			t.Fatal(err)
		}
		expectRecords(t, podA, server, "udp", rev, mdns.TypePTR, mdns.TypePTR, []string{name})
	})

	t.Run("headless Service: the ready pods", func(t *testing.T) {
		svc := &v1alpha1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "dns-headless", Namespace: ns},
			Spec: v1alpha1.ServiceSpec{
				ClusterIP: v1alpha1.ClusterIPNone,
				Selector:  webService("").Spec.Selector,
				Ports:     []v1alpha1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(world.ServerPort)}},
			},
		}
		createUnallocated(t, svc)
		name := "dns-headless." + ns + ".svc.cluster.local."
		// A single-stack (IPv4) headless Service: an SRV record per pod, each
		// named by its address, on the pods' port.
		var pods, srv []string
		for _, p := range w.Pods {
			pods = append(pods, p.IP.String())
			srv = append(srv, fmt.Sprintf("0 %d %d %s.%s", 100/len(w.Pods), world.ServerPort, strings.ReplaceAll(p.IP.String(), ".", "-"), name))
		}
		slices.Sort(pods)
		slices.Sort(srv)
		expectRecords(t, podA, server, "udp", name, mdns.TypeA, mdns.TypeA, pods)
		expectRecords(t, podA, server, "udp", "_http._tcp."+name, mdns.TypeSRV, mdns.TypeSRV, srv)
		// A pod's own name, straight to it: no cluster IP, no agent rule.
		podB := mustPod(t, "pod-b")
		podName := strings.ReplaceAll(podB.IP.String(), ".", "-") + "." + name
		resp := expectRecords(t, podA, server, "udp", podName, mdns.TypeA, mdns.TypeA, []string{podB.IP.String()})
		answers, err := w.Get(t.Context(), podA, hostURL(records(resp, mdns.TypeA)[0], world.ServerPort), 1)
		if err != nil || len(answers) != 1 || answers[0] != "pod-b" {
			t.Fatalf("pod-b by its name: %q, %v", answers, err)
		}
		// A pod turning unready leaves the answer.
		setPodReady(t, "pod-c", false)
		podC := mustPod(t, "pod-c")
		expectRecords(t, podA, server, "udp", name, mdns.TypeA, mdns.TypeA, slices.DeleteFunc(slices.Clone(pods), func(s string) bool { return s == podC.IP.String() }))
		setPodReady(t, "pod-c", true)
		expectRecords(t, podA, server, "udp", name, mdns.TypeA, mdns.TypeA, pods)
	})

	t.Run("ExternalName Service: a CNAME, chased upstream", func(t *testing.T) {
		svc := &v1alpha1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "dns-external", Namespace: ns},
			Spec:       v1alpha1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "shop.example.test"},
		}
		createUnallocated(t, svc)
		name := "dns-external." + ns + ".svc.cluster.local."
		resp := expectRecords(t, podA, server, "udp", name, mdns.TypeA, mdns.TypeCNAME, []string{"shop.example.test."})
		if got := records(resp, mdns.TypeA); !slices.Equal(got, []string{upstreamAnswer}) {
			t.Fatalf("the CNAME's target resolved to %q, want %s", got, upstreamAnswer)
		}
	})

	t.Run("through a cluster DNS Service, as a pod's resolv.conf points it", func(t *testing.T) {
		// config/dns's Service, here without a selector (the server runs in this
		// process, not in a pod) and with the endpoint a person would write:
		// the server's address. The agent DNATs the pod's query to it.
		svc := &v1alpha1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "dns-cluster", Namespace: ns},
			Spec: v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP},
			}},
		}
		svc = create(t, svc)
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: "dns-cluster-manual", Namespace: ns, Labels: map[string]string{
				v1alpha1.LabelServiceName: svc.Name,
				v1alpha1.LabelManagedBy:   "e2e.svcplane.io",
			}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{
				Addresses:  []string{world.PodGateway.String()},
				Conditions: discoveryv1.EndpointConditions{Ready: new(true)},
			}},
			Ports: []discoveryv1.EndpointPort{
				{Name: new("dns"), Port: new(int32(dnsPort)), Protocol: new(corev1.ProtocolUDP)},
				{Name: new("dns-tcp"), Port: new(int32(dnsPort)), Protocol: new(corev1.ProtocolTCP)},
			},
		}
		if err := cl.Client.Create(t.Context(), slice); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := cl.Client.Delete(context.Background(), slice); err != nil && !apierrors.IsNotFound(err) {
				t.Error(err)
			}
		})
		clusterDNS := net.JoinHostPort(svc.Status.ClusterIP, "53")
		name := "dns-cluster." + ns + ".svc.cluster.local."
		for _, network := range []string{"udp", "tcp"} {
			expectRecords(t, podA, clusterDNS, network, name, mdns.TypeA, mdns.TypeA, []string{svc.Status.ClusterIP})
		}
	})

	t.Run("names outside the cluster go upstream", func(t *testing.T) {
		expectRecords(t, podA, server, "udp", "www.example.test.", mdns.TypeA, mdns.TypeA, []string{upstreamAnswer})
		resp, err := world.Resolve(podA, server, "udp", "nothing.invalid.", mdns.TypeA)
		if err != nil || resp.Rcode != mdns.RcodeNameError {
			t.Fatalf("an unknown outside name: %v, %v", resp, err)
		}
		resp, err = world.Resolve(podA, server, "udp", "gone.default.svc.cluster.local.", mdns.TypeA)
		if err != nil || resp.Rcode != mdns.RcodeNameError || !resp.Authoritative {
			t.Fatalf("an unknown Service: %v, %v", resp, err)
		}
	})
}

// createUnallocated creates svc, which gets no cluster IP (headless or
// ExternalName), and deletes it when the test ends.
func createUnallocated(t *testing.T, svc *v1alpha1.Service) {
	t.Helper()
	if err := cl.Client.Create(t.Context(), svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cl.Client.Delete(context.Background(), svc); err != nil && !apierrors.IsNotFound(err) {
			t.Error(err)
		}
	})
}
