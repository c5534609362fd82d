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

// The agent against a real kube-apiserver (envtest) and the iptables backend's
// Fake: what it watches ends up in the rules, what it must not watch does not, and
// the health check node ports and metrics follow. No manager runs: the test writes
// Service status and EndpointSlices itself. Addresses: cluster IPs from
// 10.96.0.0/12, pods from 10.244.0.0/16 (node-a's 10.244.1.0/24, node-b's
// 10.244.2.0/24), node-a at 192.0.2.10; listeners on 127.0.0.1.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/dataplane"
	"github.com/svcplane/svcplane/dataplane/iptables"
	"github.com/svcplane/svcplane/dataplane/model"
	"github.com/svcplane/svcplane/test/controlplane"
)

// startAPIServer starts envtest with the svcplane CRDs, or skips the test (fails
// it on CI) without the control plane binaries.
func startAPIServer(t *testing.T) (*rest.Config, client.Client) {
	t.Helper()
	e := controlplane.Start(t)
	return e.Config, e.Client
}

func freePort(t *testing.T) int32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return int32(ln.Addr().(*net.TCPAddr).Port)
}

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func slice(name, service string, labels map[string]string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	if labels == nil {
		labels = map[string]string{v1alpha1.LabelServiceName: service, v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue}
	}
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: "default", Labels: labels},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(8080)), Protocol: ptr.To(corev1.ProtocolTCP)}},
		Endpoints:   eps,
	}
}

func endpoint(addr, node string, ready bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: []string{addr}, NodeName: ptr.To(node), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}}
}

// healthCheck returns the status code and local endpoint count the health check
// node port answers.
func healthCheck(port int32) (int, int, error) {
	c := http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body struct{ LocalEndpoints int }
	if err := json.Unmarshal(raw, &body); err != nil {
		return 0, 0, fmt.Errorf("%q: %w", raw, err)
	}
	return resp.StatusCode, body.LocalEndpoints, nil
}

// metricValue returns the value of the metric family name (a counter, a gauge or
// a histogram's sample count), summed over its series.
func metricValue(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			// The getters return zero for the kinds m is not.
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

func TestAgentProgramsWhatItWatches(t *testing.T) {
	cfg, c := startAPIServer(t)
	ctx := t.Context()
	hcPort := freePort(t)

	// Everything exists before the agent starts: its first sync must hold it all.
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}
	if err := c.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.10"}}
	if err := c.Status().Update(ctx, node); err != nil {
		t.Fatal(err)
	}
	svc := &v1alpha1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: v1alpha1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Selector:              map[string]string{"app": "web"},
			Ports:                 []v1alpha1.ServicePort{{Name: "http", Port: 80}},
		},
	}
	if err := c.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	svc.Status.ClusterIP, svc.Status.ClusterIPs = "10.96.0.10", []string{"10.96.0.10"}
	svc.Status.Ports = []v1alpha1.ServicePortStatus{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, NodePort: 30080}}
	svc.Status.HealthCheckNodePort = hcPort
	if err := c.Status().Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	ours := slice("web-abcde", "web", nil, endpoint("10.244.1.5", "node-a", true), endpoint("10.244.2.6", "node-b", true))
	// A core Service's slice of the same name: not the agent's business.
	core := slice("web-core", "web", map[string]string{discoveryv1.LabelServiceName: "web"}, endpoint("10.244.9.9", "node-a", true))
	for _, s := range []*discoveryv1.EndpointSlice{ours, core} {
		if err := c.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	fake := iptables.NewFake()
	backend, err := iptables.New(iptables.Options{Executor: fake, Families: []model.Family{model.IPv4}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	a, err := New(cfg, Options{
		NodeName:               "node-a",
		Config:                 model.Config{ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}},
		Backend:                backend,
		Runner:                 dataplane.RunnerConfig{MinSyncPeriod: 10 * time.Millisecond},
		HealthCheckBindAddress: "127.0.0.1",
		Registry:               reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	eventually(t, "first sync", func() error {
		if len(fake.Restores(model.IPv4)) == 0 {
			return errors.New("no sync yet")
		}
		return nil
	})
	first := string(fake.Restores(model.IPv4)[0])
	for _, want := range []string{"-d 10.96.0.10/32", "--to-destination 10.244.1.5:8080", "--to-destination 10.244.2.6:8080", "--dport 30080"} {
		if !strings.Contains(first, want) {
			t.Errorf("the first sync has no %q:\n%s", want, first)
		}
	}
	if strings.Contains(fake.Dump(), "10.244.9.9") {
		t.Errorf("the core Service's slice was programmed:\n%s", fake.Dump())
	}
	eventually(t, "health check node port with one local endpoint", func() error {
		code, n, err := healthCheck(hcPort)
		if err == nil && (code != http.StatusOK || n != 1) {
			err = fmt.Errorf("got %d with %d local endpoints", code, n)
		}
		return err
	})
	if ok, _ := a.health.Healthy(); !ok {
		t.Error("unhealthy after syncing")
	}

	// The local endpoint turns unready, and the first write of that fails: the
	// retry (a full resync) applies it.
	fake.FailNextRestore(errors.New("iptables-restore: resource temporarily unavailable"))
	ours.Endpoints[0].Conditions.Ready = ptr.To(false)
	if err := c.Update(ctx, ours); err != nil {
		t.Fatal(err)
	}
	eventually(t, "unready endpoint removed", func() error {
		if strings.Contains(fake.Dump(), "10.244.1.5:8080") {
			return errors.New("10.244.1.5 still has a DNAT rule")
		}
		return nil
	})
	if got := metricValue(t, reg, "svcplane_agent_sync_failures_total"); got != 1 {
		t.Errorf("svcplane_agent_sync_failures_total = %v, want 1", got)
	}
	if code, n, err := healthCheck(hcPort); err != nil || code != http.StatusServiceUnavailable || n != 0 {
		t.Errorf("health check without local endpoints: got %d, %d, %v; want 503 with 0", code, n, err)
	}

	// Deleting the Service removes its rules and its health check node port.
	if err := c.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Service's rules removed", func() error {
		if d := fake.Dump(); strings.Contains(d, "default/web") {
			return fmt.Errorf("rules naming default/web remain:\n%s", d)
		}
		return nil
	})
	eventually(t, "health check node port closed", func() error {
		if _, _, err := healthCheck(hcPort); err == nil {
			return errors.New("still answering")
		}
		return nil
	})

	for _, name := range []string{
		"svcplane_agent_sync_duration_seconds",
		"svcplane_agent_last_sync_timestamp_seconds",
		"svcplane_agent_rules_written_bytes_total",
		// The slice update and the deletion; objects listed at start do not count.
		"svcplane_agent_network_programming_latency_seconds",
	} {
		if got := metricValue(t, reg, name); got <= 0 {
			t.Errorf("%s = %v, want > 0", name, got)
		}
	}
}
