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

package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers"
	"github.com/svcplane/svcplane/controllers/loadbalancer"
	"github.com/svcplane/svcplane/controllers/loadbalancer/example"
	"github.com/svcplane/svcplane/controllers/manager"
	"github.com/svcplane/svcplane/test/controlplane"
)

// Addresses: load balancer addresses from 192.0.2.0/24, node addresses from
// 198.51.100.0/24.

func TestNewProvider(t *testing.T) {
	if _, err := newProvider("shop/web", ""); err == nil {
		t.Error("a malformed address table was accepted")
	}
	p, err := newProvider("shop/web=192.0.2.10", filepath.Join(t.TempDir(), "lb.json"))
	if err != nil || p == nil {
		t.Fatalf("newProvider = %v, %v", p, err)
	}
}

// TestManager runs the manager this binary runs (manager.NewManager with the static
// provider as the default) against a real kube-apiserver, as the README's "Testing
// with envtest" describes. It needs the control plane binaries: KUBEBUILDER_ASSETS,
// else bin/k8s (`make controlplane`); without them it is skipped, except on CI.
func TestManager(t *testing.T) {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	env := controlplane.Start(t)
	cfg, c := env.Config, env.Client

	// The manager's flags with their defaults, as a test would override them.
	var config manager.Config
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	config.BindFlags(fs, manager.Options{})
	if err := fs.Parse([]string{"--metrics-bind-address=0", "--health-probe-bind-address=0", "--load-balancer-min-retry-delay=100ms"}); err != nil {
		t.Fatal(err)
	}
	config.LoadBalancerProvider = example.Name
	file := filepath.Join(t.TempDir(), "lb.json")
	mgr, err := manager.NewManager(cfg, config, manager.Options{Providers: map[string]manager.ProviderFactory{
		example.Name: func() (loadbalancer.Provider, error) { return newProvider("shop/web=192.0.2.10", file) },
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})

	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}))
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	must(t, c.Create(ctx, node))
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.51.100.1"}}
	must(t, c.Status().Update(ctx, node))

	web := lbService("web")
	must(t, c.Create(ctx, web))
	waitFor(t, "web's load balancer", func() (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(web), web); err != nil {
			return false, err
		}
		in := web.Status.LoadBalancer.Ingress
		return len(in) == 1 && in[0].IP == "192.0.2.10" && in[0].IPMode != nil && *in[0].IPMode == corev1.LoadBalancerIPModeProxy, nil
	})
	var published []example.LoadBalancer
	data, err := os.ReadFile(file)
	must(t, err)
	must(t, json.Unmarshal(data, &published))
	if len(published) != 1 || len(published[0].Listeners) != 1 || !strings.HasPrefix(strings.Join(published[0].Listeners[0].Backends, ","), "198.51.100.1:") {
		t.Errorf("published %s", data)
	}

	db := lbService("db")
	must(t, c.Create(ctx, db))
	waitFor(t, "db's failure", func() (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(db), db); err != nil {
			return false, err
		}
		cond := meta.FindStatusCondition(db.Status.Conditions, controllers.ConditionLoadBalancerReady)
		return cond != nil && cond.Reason == controllers.ReasonSyncLoadBalancerFailed &&
			cond.Message == "failed to ensure load balancer: no address is configured for Service shop/db", nil
	})

	must(t, c.Delete(ctx, web))
	waitFor(t, "web's deletion", func() (bool, error) {
		err := c.Get(ctx, client.ObjectKeyFromObject(web), web)
		return client.IgnoreNotFound(err) == nil && err != nil, nil
	})
	data, err = os.ReadFile(file)
	must(t, err)
	if strings.TrimSpace(string(data)) != "[]" {
		t.Errorf("after the deletion the device still has %s", data)
	}
}

func lbService(name string) *v1alpha1.Service {
	return &v1alpha1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
		Spec: v1alpha1.ServiceSpec{
			Type:  corev1.ServiceTypeLoadBalancer,
			Ports: []v1alpha1.ServicePort{{Name: "http", Port: 80}},
		},
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it is true, for at most 20 seconds.
func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) { return cond() })
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
