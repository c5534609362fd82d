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
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/dataplane"
	"github.com/svcplane/svcplane/dataplane/iptables"
	"github.com/svcplane/svcplane/dataplane/model"
)

// TestIdleAgentDoesNotResync checks the idle cost: after its first sync over what
// already exists, an agent with nothing changing runs no further sync (neither one
// for the initial list nor periodic partial ones, with a --sync-period far shorter
// than the wait), while a change is still synced at once. Addresses: cluster IPs in
// 10.96.0.0/12, node 192.0.2.10 (TEST-NET-1).
func TestIdleAgentDoesNotResync(t *testing.T) {
	testIdleAgent(t, false)
}

// TestDrainingAgentResyncs checks that an agent whose backend has real servers
// draining (the IPVS mode) keeps its periodic syncs, which remove them once their
// connections end.
func TestDrainingAgentResyncs(t *testing.T) {
	testIdleAgent(t, true)
}

// drainingBackend is a backend that always has something draining.
type drainingBackend struct{ *iptables.Backend }

func (drainingBackend) Draining() bool { return true }

func testIdleAgent(t *testing.T, drains bool) {
	cfg, c := startAPIServer(t)
	ctx := t.Context()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}
	if err := c.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.10"}}
	if err := c.Status().Update(ctx, node); err != nil {
		t.Fatal(err)
	}
	createService := func(name, ip string) {
		t.Helper()
		svc := &v1alpha1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{{Name: "http", Port: 80}}}}
		if err := c.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
		svc.Status.ClusterIP, svc.Status.ClusterIPs = ip, []string{ip}
		svc.Status.Ports = []v1alpha1.ServicePortStatus{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}
		if err := c.Status().Update(ctx, svc); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		createService(fmt.Sprintf("web-%d", i), fmt.Sprintf("10.96.0.%d", 10+i))
	}

	fake := iptables.NewFake()
	backend, err := iptables.New(iptables.Options{Executor: fake, Families: []model.Family{model.IPv4}})
	if err != nil {
		t.Fatal(err)
	}
	var b dataplane.Backend = backend
	if drains {
		b = drainingBackend{backend}
	}
	reg := prometheus.NewRegistry()
	a, err := New(cfg, Options{
		NodeName: "node-a",
		Backend:  b,
		// A periodic sync every 200ms if the agent ran no-op syncs; full resyncs
		// out of reach of the test.
		Runner:   dataplane.RunnerConfig{MinSyncPeriod: 10 * time.Millisecond, SyncPeriod: 200 * time.Millisecond, FullSyncPeriod: time.Hour},
		Registry: reg,
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

	syncs := func() float64 { return metricValue(t, reg, "svcplane_agent_sync_duration_seconds") }
	eventually(t, "first sync", func() error {
		if syncs() == 0 {
			return errors.New("no sync yet")
		}
		return nil
	})
	time.Sleep(2 * time.Second) // ten sync periods
	if drains {
		if n := syncs(); n < 3 {
			t.Errorf("%v syncs in ten sync periods while draining, want periodic syncs", n)
		}
		return
	}
	if n := syncs(); n != 1 {
		t.Errorf("%v syncs with nothing changing after the first, want 1: no-op syncs cost seconds at scale", n)
	}
	if n := len(fake.Restores(model.IPv4)); n != 1 {
		t.Errorf("%d iptables-restore runs, want 1", n)
	}

	createService("new", "10.96.1.1")
	eventually(t, "the new Service synced", func() error {
		if syncs() < 2 {
			return errors.New("no sync for the change")
		}
		return nil
	})
}
