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

// Addresses: the server, its probes and kube-apiserver on 127.0.0.1; the
// Service's cluster IP, written by the test playing the manager, is in
// 10.96.0.0/12.

import (
	"bytes"
	"context"
	"flag"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/test/controlplane"
)

// freeAddr returns a loopback address with a port free for UDP and TCP right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 10 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := pc.LocalAddr().String()
		ln, err := net.Listen("tcp", addr)
		pc.Close()
		if err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port")
	return ""
}

// decodeFile decodes the YAML file at path into obj.
func decodeFile(t *testing.T, path string, obj any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), len(raw)).Decode(obj); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestRun runs the command with config/dns's Deployment's flags (addresses and
// a few values overridden) against a control plane, as config/dns's identity,
// and asks it for a Service; on the way, the CRD accepts config/dns's Service.
func TestRun(t *testing.T) {
	te := controlplane.Start(t)
	c := te.Client
	ctx := t.Context()

	// config/dns's ClusterRole, bound to the user the command runs as.
	user := te.UserWithRole(t, "dns", filepath.Join("config", "dns", "role.yaml"))
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfigPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}

	// config/dns's Deployment and Service: its flags are the command's, and the
	// CRD accepts its Service, which selects its pods.
	var deploy appsv1.Deployment
	decodeFile(t, filepath.Join("..", "..", "config", "dns", "dns.yaml"), &deploy)
	var dnsSvc v1alpha1.Service
	decodeFile(t, filepath.Join("..", "..", "config", "dns", "service.yaml"), &dnsSvc)
	if !labels.SelectorFromSet(dnsSvc.Spec.Selector).Matches(labels.Set(deploy.Spec.Template.Labels)) {
		t.Errorf("config/dns: the Service's selector %v does not select the Deployment's pods %v", dnsSvc.Spec.Selector, deploy.Spec.Template.Labels)
	}
	dnsSvc.Namespace = "default"
	if err := c.Create(ctx, &dnsSvc); err != nil {
		t.Errorf("config/dns/service.yaml: %v", err)
	}
	args := deploy.Spec.Template.Spec.Containers[0].Args

	dnsAddr, healthAddr := freeAddr(t), freeAddr(t)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		// The Deployment's flags, then this test's: the last of a flag wins.
		done <- run(runCtx, flag.NewFlagSet("dns", flag.ContinueOnError), append(slices.Clone(args),
			"--kubeconfig="+kubeconfigPath,
			"--dns-bind-address="+dnsAddr,
			"--health-probe-bind-address="+healthAddr,
			"--metrics-bind-address=0",
			"--upstream=none",
			"--ttl=7",
			"--cluster-domain=example.internal",
		), prometheus.NewRegistry())
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})

	svc := &v1alpha1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}}
	svc.Spec.Ports = []v1alpha1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}
	if err := c.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	svc.Status.ClusterIP, svc.Status.ClusterIPs = "10.96.0.10", []string{"10.96.0.10"}
	if err := c.Status().Update(ctx, svc); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("run stopped: %v", err)
		default:
		}
		ready := false
		if resp, err := http.Get("http://" + healthAddr + "/readyz"); err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == http.StatusOK
		}
		if ready {
			m := new(mdns.Msg)
			m.SetQuestion("web.default.svc.example.internal.", mdns.TypeA)
			resp, _, err := (&mdns.Client{Timeout: time.Second}).Exchange(m, dnsAddr)
			if err == nil && len(resp.Answer) == 1 {
				a := resp.Answer[0].(*mdns.A)
				if a.A.String() != "10.96.0.10" || a.Hdr.Ttl != 7 {
					t.Fatalf("answer %v, want 10.96.0.10 with TTL 7", a)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the Service never resolved")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
