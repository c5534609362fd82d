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

package example

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers/loadbalancer"
)

// Addresses: load balancer addresses from 192.0.2.0/24 and 2001:db8::/32, node
// addresses from 198.51.100.0/24.

var ctx = context.Background()

// device records what the provider published, and can refuse it.
type device struct {
	published [][]LoadBalancer
	fail      error
}

func (d *device) publish(_ context.Context, lbs []LoadBalancer) error {
	if d.fail != nil {
		return d.fail
	}
	d.published = append(d.published, lbs)
	return nil
}

func (d *device) last() []LoadBalancer {
	if len(d.published) == 0 {
		return nil
	}
	return d.published[len(d.published)-1]
}

func service(name string, mutate ...func(*v1alpha1.Service)) *v1alpha1.Service {
	s := &v1alpha1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: types.UID("uid-" + name)},
		Spec: v1alpha1.ServiceSpec{
			Type:  corev1.ServiceTypeLoadBalancer,
			Ports: []v1alpha1.ServicePort{{Name: "http", Port: 80}, {Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}},
		},
		Status: v1alpha1.ServiceStatus{Ports: []v1alpha1.ServicePortStatus{
			{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, NodePort: 30080},
			{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, NodePort: 30053},
		}},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func node(name, ip string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if ip != "" {
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: ip}}
	}
	return n
}

func newProvider(t *testing.T, d *device) *Provider {
	t.Helper()
	table, err := ParseAddresses("shop/web=192.0.2.10,2001:db8::10; shop/api=192.0.2.11")
	if err != nil {
		t.Fatal(err)
	}
	return New(table, d.publish)
}

func TestEnsureUpdateDelete(t *testing.T) {
	d := &device{}
	p := newProvider(t, d)
	web := service("web")
	nodes := []*corev1.Node{node("n1", "198.51.100.1"), node("n2", "198.51.100.2"), node("bare", "")}

	st, err := p.EnsureLoadBalancer(ctx, web, nodes)
	if err != nil {
		t.Fatal(err)
	}
	proxy := corev1.LoadBalancerIPModeProxy
	want := &corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "192.0.2.10", IPMode: &proxy}, {IP: "2001:db8::10", IPMode: &proxy}}}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("status = %+v, want %+v", st, want)
	}
	wantLB := LoadBalancer{
		Name: loadbalancer.DefaultName(web), Service: "shop/web", Addresses: []string{"192.0.2.10", "2001:db8::10"},
		Listeners: []Listener{
			{Protocol: corev1.ProtocolTCP, Port: 80, Backends: []string{"198.51.100.1:30080", "198.51.100.2:30080"}},
			{Protocol: corev1.ProtocolUDP, Port: 53, Backends: []string{"198.51.100.1:30053", "198.51.100.2:30053"}},
		},
	}
	if got := d.last(); !reflect.DeepEqual(got, []LoadBalancer{wantLB}) {
		t.Errorf("published %+v, want %+v", got, wantLB)
	}

	if err := p.UpdateLoadBalancer(ctx, web, nodes[:1]); err != nil {
		t.Fatal(err)
	}
	if got := d.last()[0].Listeners[0].Backends; !reflect.DeepEqual(got, []string{"198.51.100.1:30080"}) {
		t.Errorf("after the update, backends %v", got)
	}
	if err := p.UpdateLoadBalancer(ctx, service("api"), nodes); err == nil {
		t.Error("updating a load balancer that does not exist succeeded")
	}

	if _, err := p.EnsureLoadBalancer(ctx, service("api"), nodes); err != nil {
		t.Fatal(err)
	}
	if got := d.last(); len(got) != 2 || got[0].Service != "shop/api" || got[1].Service != "shop/web" {
		t.Errorf("published %+v, want both, sorted", got)
	}

	if err := p.EnsureLoadBalancerDeleted(ctx, web); err != nil {
		t.Fatal(err)
	}
	if _, exists, _ := p.GetLoadBalancer(ctx, web); exists {
		t.Error("deleted load balancer exists")
	}
	published := len(d.published)
	if err := p.EnsureLoadBalancerDeleted(ctx, web); err != nil || len(d.published) != published {
		t.Errorf("deleting again: %v, published %d times more", err, len(d.published)-published)
	}
}

func TestEnsureErrors(t *testing.T) {
	tests := []struct {
		name    string
		svc     *v1alpha1.Service
		wantErr string
	}{
		{name: "not in the table", svc: service("db"), wantErr: "no address is configured for Service shop/db"},
		{name: "asks for another address", svc: service("web", func(s *v1alpha1.Service) { s.Spec.LoadBalancerIP = "192.0.2.99" }),
			wantErr: "requested address 192.0.2.99 is not among the addresses configured for Service shop/web"},
		{name: "no node port", svc: service("web", func(s *v1alpha1.Service) { s.Status.Ports = s.Status.Ports[:1] }),
			wantErr: "port 53/UDP has no node port to forward to"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &device{}
			p := newProvider(t, d)
			if _, err := p.EnsureLoadBalancer(ctx, tt.svc, nil); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
			if len(d.published) != 0 {
				t.Error("a failed ensure published")
			}
		})
	}
}

func TestAFailedPublishChangesNothing(t *testing.T) {
	d := &device{}
	p := newProvider(t, d)
	web := service("web")
	if _, err := p.EnsureLoadBalancer(ctx, web, nil); err != nil {
		t.Fatal(err)
	}
	d.fail = errors.New("device unreachable")
	if err := p.EnsureLoadBalancerDeleted(ctx, web); err == nil || !strings.Contains(err.Error(), "device unreachable") {
		t.Fatalf("delete = %v, want the device's error", err)
	}
	if _, exists, _ := p.GetLoadBalancer(ctx, web); !exists {
		t.Error("a delete the device refused forgot the load balancer: it would leak")
	}
	if _, err := p.EnsureLoadBalancer(ctx, service("api"), nil); err == nil {
		t.Error("an ensure the device refused succeeded")
	}
	if _, exists, _ := p.GetLoadBalancer(ctx, service("api")); exists {
		t.Error("an ensure the device refused is remembered")
	}
	d.fail = nil
	if err := p.EnsureLoadBalancerDeleted(ctx, web); err != nil {
		t.Fatal(err)
	}
}

func TestParseAddresses(t *testing.T) {
	tests := []struct {
		text    string
		want    map[types.NamespacedName][]string
		wantErr string
	}{
		{text: "", want: map[types.NamespacedName][]string{}},
		{text: "a/web=192.0.2.1; b/api = 2001:db8::1 , 192.0.2.2 ;", want: map[types.NamespacedName][]string{
			{Namespace: "a", Name: "web"}: {"192.0.2.1"},
			{Namespace: "b", Name: "api"}: {"2001:db8::1", "192.0.2.2"},
		}},
		{text: "web=192.0.2.1", wantErr: "want namespace/name=address"},
		{text: "a/web", wantErr: "want namespace/name=address"},
		{text: "a/web=192.0.2.1,192.0.2.2", wantErr: "at most one address per IP family"},
		{text: "a/web=192.0.2.1;a/web=192.0.2.2", wantErr: "listed twice"},
		{text: "a/web=example.com", wantErr: `"example.com" is not an IP address`},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			got, err := ParseAddresses(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			text := map[types.NamespacedName][]string{}
			for k, ips := range got {
				for _, ip := range ips {
					text[k] = append(text[k], ip.String())
				}
			}
			if !reflect.DeepEqual(text, tt.want) {
				t.Errorf("ParseAddresses = %v, want %v", text, tt.want)
			}
		})
	}
}

func TestPublishFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lb.json")
	publish := PublishFile(path)
	lbs := []LoadBalancer{{Name: "a1", Service: "shop/web", Addresses: []string{"192.0.2.10"}, Listeners: []Listener{{Protocol: corev1.ProtocolTCP, Port: 80, Backends: []string{}}}}}
	if err := publish(ctx, lbs); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []LoadBalancer
	if err := json.Unmarshal(data, &got); err != nil || !reflect.DeepEqual(got, lbs) {
		t.Errorf("file holds %s (%v)", data, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	if err := PublishFile(filepath.Join(t.TempDir(), "missing", "lb.json"))(ctx, lbs); err == nil {
		t.Error("publishing into a missing directory succeeded")
	}
}
