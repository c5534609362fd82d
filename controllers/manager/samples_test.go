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

package manager

// IP conventions: the samples' (Services from 10.96.0.0/12, load balancer pools in
// 192.0.2.10-192.0.2.99 and 198.51.100.0/28); the Node at 203.0.113.1.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers"
	"github.com/svcplane/svcplane/test/controlplane"
)

// TestSamples runs the manager as cmd/manager wires it (NewManager, every flag at its
// default) against a real API server, applies config/samples in the kustomization's
// order, and checks what the README shows: every Service allocated, requested values
// honoured, both LoadBalancers given an address from their pool; and that the happy
// path stays quiet: no Warning event, no ERROR in the manager's log.
func TestSamples(t *testing.T) {
	root, err := controlplane.Root()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ctrl.SetLogger(zap.New(zap.WriteTo(logs), zap.UseDevMode(true)))

	env := controlplane.Start(t)
	restCfg, c := env.Config, env.Client

	var cfg Config
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	cfg.BindFlags(fs, Options{})
	if err := fs.Parse([]string{"--metrics-bind-address=0", "--health-probe-bind-address=0"}); err != nil {
		t.Fatal(err)
	}
	mgr, err := NewManager(restCfg, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})

	// A Node, as a kubelet (or make run's podsim) registers one: without any, every
	// load balancer warns that no node can take its traffic.
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}
	if err := c.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	node.Status = corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "203.0.113.1"}},
	}
	if err := c.Status().Update(ctx, node); err != nil {
		t.Fatal(err)
	}

	for _, obj := range samples(t, filepath.Join(root, "config", "samples")) {
		if obj.GetKind() == "Service" {
			obj.SetNamespace("default")
		}
		if err := c.Create(ctx, obj); err != nil {
			t.Fatalf("creating %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
	}

	// Every Service is allocated and every LoadBalancer has its address.
	var services v1alpha1.ServiceList
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := c.List(ctx, &services, client.InNamespace("default")); err != nil {
			return false, err
		}
		for _, svc := range services.Items {
			cond := meta.FindStatusCondition(svc.Status.Conditions, controllers.ConditionAllocated)
			if cond == nil || cond.Status != metav1.ConditionTrue || cond.ObservedGeneration != svc.Generation {
				return false, nil
			}
			if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && len(svc.Status.LoadBalancer.Ingress) == 0 {
				return false, nil
			}
		}
		return len(services.Items) > 0, nil
	})
	if err != nil {
		t.Fatalf("samples not all allocated with addresses: %v\n%s", err, describe(services.Items))
	}
	byName := map[string]v1alpha1.Service{}
	for _, svc := range services.Items {
		byName[svc.Name] = svc
	}
	for name, want := range map[string]string{
		"clusterip-requested":    "10.96.100.100",
		"headless":               "None",
		"loadbalancer-requested": "198.51.100.10", // from the reserved pool, as asked
	} {
		svc := byName[name]
		got := svc.Status.ClusterIP
		if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			got = svc.Status.LoadBalancer.Ingress[0].IP
		}
		if got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
	if ports := byName["nodeport-requested"].Status.Ports; len(ports) != 3 || ports[0].NodePort != 30080 || ports[1].NodePort != 30053 || ports[2].NodePort != 30053 {
		t.Errorf("nodeport-requested: node ports %+v, want 30080, 30053, 30053", ports)
	}
	if ip := byName["loadbalancer"].Status.LoadBalancer.Ingress[0].IP; !strings.HasPrefix(ip, "192.0.2.") {
		t.Errorf("loadbalancer: ingress %s, want one from the default pool 192.0.2.10-192.0.2.99", ip)
	}

	// The happy path stays quiet for a while after it settled.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		var events corev1.EventList
		if err := c.List(ctx, &events, client.InNamespace("default")); err != nil {
			t.Fatal(err)
		}
		for _, e := range events.Items {
			if e.Type == corev1.EventTypeWarning {
				t.Errorf("Warning event on %s %s: %s: %s", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
			}
		}
		if t.Failed() {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	out := logs.String()
	if !strings.Contains(out, "Starting workers") {
		t.Fatalf("the manager's log was not captured (another test set the logger first?):\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "\tERROR\t") {
			t.Errorf("ERROR in the manager's log: %s", line)
		}
	}
}

// samples decodes the objects of dir's kustomization, in its resources' order
// (the samples set sortOptions to fifo).
func samples(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		SortOptions struct {
			Order string `json:"order"`
		} `json:"sortOptions"`
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(raw, &k); err != nil {
		t.Fatal(err)
	}
	if k.SortOptions.Order != "fifo" {
		t.Fatalf("config/samples applies in kind order (sortOptions.order %q): pools would come after the Services that use them", k.SortOptions.Order)
	}
	var objs []*unstructured.Unstructured
	for _, file := range k.Resources {
		raw, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), len(raw))
		for {
			obj := &unstructured.Unstructured{}
			if err := dec.Decode(&obj.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				t.Fatalf("%s: %v", file, err)
			}
			if len(obj.Object) > 0 {
				objs = append(objs, obj)
			}
		}
	}
	return objs
}

func describe(services []v1alpha1.Service) string {
	var b strings.Builder
	for _, svc := range services {
		b.WriteString(svc.Name + ": ")
		for _, c := range svc.Status.Conditions {
			b.WriteString(c.Type + "=" + string(c.Status) + " (" + c.Reason + ": " + c.Message + ") ")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// syncBuffer is a bytes.Buffer the manager's goroutines may write to while the test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
