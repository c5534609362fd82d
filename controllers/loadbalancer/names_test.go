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

package loadbalancer

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// Addresses here are documentation addresses: 192.0.2.0/24 and 2001:db8::/32.

func TestRequestedIPs(t *testing.T) {
	tests := []struct {
		name       string
		annotation string
		legacy     string
		want       []string
		wantErr    string
	}{
		{name: "nothing"},
		{name: "legacy field", legacy: "192.0.2.10", want: []string{"192.0.2.10"}},
		{name: "annotation, one family", annotation: "2001:db8::10", want: []string{"2001:db8::10"}},
		{name: "annotation, both families in order", annotation: " 2001:db8::10 , 192.0.2.10", want: []string{"2001:db8::10", "192.0.2.10"}},
		{name: "IPv4-mapped is IPv4", annotation: "::ffff:192.0.2.10", want: []string{"192.0.2.10"}},
		{name: "both, agreeing", annotation: "192.0.2.10,2001:db8::10", legacy: "192.0.2.10", want: []string{"192.0.2.10", "2001:db8::10"}},
		{name: "both, disagreeing", annotation: "192.0.2.10", legacy: "192.0.2.11",
			wantErr: `spec.loadBalancerIP: Invalid value: "192.0.2.11": must be one of the addresses of the networking.svcplane.io/load-balancer-ips annotation when both are set`},
		{name: "two of a family", annotation: "192.0.2.10,192.0.2.11",
			wantErr: `metadata.annotations[networking.svcplane.io/load-balancer-ips]: Invalid value: "192.0.2.10,192.0.2.11": may specify no more than one IP for each IP family`},
		{name: "not an address", annotation: "192.0.2.0/24",
			wantErr: `metadata.annotations[networking.svcplane.io/load-balancer-ips]: Invalid value: "192.0.2.0/24": must be a comma-separated list of IP addresses (e.g. 192.0.2.10,2001:db8::10)`},
		{name: "a zone", annotation: "fe80::1%eth0", wantErr: "metadata.annotations[networking.svcplane.io/load-balancer-ips]: Invalid value"},
		{name: "an empty annotation is none", annotation: " ", legacy: "192.0.2.10", want: []string{"192.0.2.10"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &v1alpha1.Service{Spec: v1alpha1.ServiceSpec{LoadBalancerIP: tt.legacy}}
			if tt.annotation != "" {
				svc.Annotations = map[string]string{v1alpha1.AnnotationLoadBalancerIPs: tt.annotation}
			}
			got, err := RequestedIPs(svc)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("RequestedIPs = %v, %v; want an error starting %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var want []netip.Addr
			for _, s := range tt.want {
				want = append(want, netip.MustParseAddr(s))
			}
			if !slices.Equal(got, want) {
				t.Errorf("RequestedIPs = %v, want %v", got, want)
			}
		})
	}
}

func TestDefaultName(t *testing.T) {
	svc := &v1alpha1.Service{ObjectMeta: metav1.ObjectMeta{UID: "3d7e8b1a-5c4f-4b2e-9a61-0f2c8d9e7b34"}}
	// "a" + 32 hex digits cut to 32 characters, as k8s.io/cloud-provider names them.
	if got, want := DefaultName(svc), "a3d7e8b1a5c4f4b2e9a610f2c8d9e7b3"; got != want {
		t.Errorf("DefaultName = %q, want %q", got, want)
	}
}
