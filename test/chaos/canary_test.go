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

package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/dataplane"
	"github.com/svcplane/svcplane/dataplane/iptables"
	"github.com/svcplane/svcplane/dataplane/model"
	"github.com/svcplane/svcplane/test/e2e/world"
)

// Addresses: the Service 10.96.0.10:80 with one endpoint 10.244.1.10:8080, in a
// network namespace of its own that nothing is sent to.

// TestCanaryRepair programs one Service into the real kernel's iptables inside a
// fresh network namespace with the agent's Runner (default periods: 30s resync,
// 5s tamper check), then flushes the nat table, and separately SVCP-SERVICES alone,
// while nothing changes: each time the rules are back within the check period,
// not at the next periodic resync.
func TestCanaryRepair(t *testing.T) {
	if why := world.Unsupported(); why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot run the canary test: %s", why)
		}
		t.Skip(why)
	}
	ns := fmt.Sprintf("svcp-chaos-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })

	ipt := &iptables.Exec{Prefix: []string{"ip", "netns", "exec", ns}}
	backend, err := iptables.New(iptables.Options{Executor: ipt, Families: []model.Family{model.IPv4}})
	if err != nil {
		t.Fatal(err)
	}
	st := model.Build([]*v1alpha1.Service{canaryService()}, []*discoveryv1.EndpointSlice{canarySlice()}, model.NodeInfo{Name: "node"}, model.Config{})
	runner, err := dataplane.NewRunner(dataplane.SyncBackend(backend, func() *model.State { return &st }),
		dataplane.RunnerConfig{Check: dataplane.CheckBackend(backend)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		runner.Loop(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = backend.Cleanup(context.Background())
	})
	runner.Run()

	servicesRules := func() int {
		rules, _, err := ipt.ListRules(context.Background(), model.IPv4, iptables.TableNAT, "SVCP-SERVICES")
		if err != nil {
			return 0
		}
		return len(rules)
	}
	waitRules := func(within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for servicesRules() == 0 {
			if time.Since(start) > within {
				t.Fatalf("SVCP-SERVICES still empty after %v", within)
			}
			time.Sleep(50 * time.Millisecond)
		}
		return time.Since(start)
	}
	waitRules(10 * time.Second)

	for _, tamper := range []struct {
		name string
		args []string
	}{
		{"iptables -t nat -F", []string{"iptables", "-w", "-t", "nat", "-F"}},
		{"iptables -t nat -F SVCP-SERVICES", []string{"iptables", "-w", "-t", "nat", "-F", "SVCP-SERVICES"}},
	} {
		// Let the last sync settle so that nothing but the check can notice.
		time.Sleep(2 * time.Second)
		args := append([]string{"netns", "exec", ns}, tamper.args...)
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", tamper.name, err, out)
		}
		if servicesRules() != 0 {
			t.Fatalf("%s left SVCP-SERVICES with rules", tamper.name)
		}
		repair := waitRules(20 * time.Second)
		t.Logf("FIGURE canary-repair: %s repaired in %v (check period %v, resync period %v)", tamper.name, repair.Round(time.Millisecond), dataplane.DefaultCheckPeriod, dataplane.DefaultSyncPeriod)
		if repair > dataplane.DefaultCheckPeriod+2*time.Second {
			t.Errorf("%s: repaired after %v; want within the %v check period", tamper.name, repair, dataplane.DefaultCheckPeriod)
		}
	}
}

func canaryService() *v1alpha1.Service {
	return &v1alpha1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: v1alpha1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: map[string]string{"app": "web"},
			Ports:    []v1alpha1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}},
		},
		Status: v1alpha1.ServiceStatus{
			ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"},
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
		},
	}
}

func canarySlice() *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "default", Name: "web-1",
			Labels: map[string]string{v1alpha1.LabelServiceName: "web"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{"10.244.1.10"},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			NodeName:   ptr.To("node"),
		}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(int32(8080))}},
	}
}
