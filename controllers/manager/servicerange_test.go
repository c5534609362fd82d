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

// IP conventions: core Service ranges 10.96.0.0/12 (kubeadm's default) and
// fd00:10:96::/112; svcplane ranges chosen to overlap them or not.

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

func TestCoreRangeOverlap(t *testing.T) {
	kubernetesSvc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kubernetes"},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.96.0.1", ClusterIPs: []string{"10.96.0.1"}},
	}
	serviceCIDR := &networkingv1.ServiceCIDR{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"},
		Spec:       networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.96.0.0/12", "fd00:10:96::/112"}},
	}
	noCIDRs := interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		if _, ok := list.(*networkingv1.ServiceCIDRList); ok {
			return errors.New(`the server could not find the requested resource (get servicecidrs.networking.k8s.io)`)
		}
		return c.List(ctx, list, opts...)
	}}
	tests := []struct {
		name    string
		ours    string
		objects []client.Object
		funcs   *interceptor.Funcs
		want    string // substring of the overlap; "" for none
		wantErr bool
	}{
		{name: "kubeadm default against kubeadm default", ours: "10.96.0.0/12", objects: []client.Object{serviceCIDR, kubernetesSvc},
			want: "ServiceCIDR kubernetes: 10.96.0.0/12 overlaps 10.96.0.0/12"},
		{name: "a smaller range inside the core one", ours: "10.100.0.0/16", objects: []client.Object{serviceCIDR},
			want: "10.96.0.0/12 overlaps 10.100.0.0/16"},
		{name: "IPv6 secondary overlaps", ours: "10.200.0.0/16,fd00:10:96::/108", objects: []client.Object{serviceCIDR},
			want: "fd00:10:96::/112 overlaps fd00:10:96::/108"},
		{name: "disjoint ranges", ours: "10.200.0.0/16", objects: []client.Object{serviceCIDR, kubernetesSvc}},
		{name: "no ServiceCIDR API: the kubernetes Service's address", ours: "10.96.0.0/12", objects: []client.Object{kubernetesSvc},
			funcs: &noCIDRs, want: "Service default/kubernetes: 10.96.0.1 overlaps 10.96.0.0/12"},
		{name: "no ServiceCIDR API, kubernetes Service outside", ours: "10.200.0.0/16", objects: []client.Object{kubernetesSvc},
			funcs: &noCIDRs},
		{name: "no ServiceCIDR objects: the kubernetes Service's address", ours: "10.96.0.0/12", objects: []client.Object{kubernetesSvc},
			want: "Service default/kubernetes: 10.96.0.1 overlaps"},
		{name: "nothing to see", ours: "10.96.0.0/12", funcs: &noCIDRs, wantErr: true},
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ours []netip.Prefix
			for _, s := range strings.Split(tt.ours, ",") {
				ours = append(ours, netip.MustParsePrefix(s))
			}
			b := fake.NewClientBuilder().WithScheme(scheme).WithObjects(tt.objects...)
			if tt.funcs != nil {
				b = b.WithInterceptorFuncs(*tt.funcs)
			}
			check := &coreRangeCheck{reader: b.Build(), ours: ours}
			got, err := check.overlaps(context.Background())
			if (err != nil) != tt.wantErr {
				t.Fatalf("overlaps() error = %v, want error %v", err, tt.wantErr)
			}
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("overlaps() = %q, want %q", got, tt.want)
			}
			// Start never fails the manager, whatever it finds.
			if err := check.Start(context.Background()); err != nil {
				t.Errorf("Start() = %v, want nil", err)
			}
		})
	}
}
