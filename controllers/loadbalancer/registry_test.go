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
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// stub is a Provider that does nothing; the registry only routes to it.
type stub struct{ name string }

func (s *stub) GetLoadBalancer(context.Context, *v1alpha1.Service) (*corev1.LoadBalancerStatus, bool, error) {
	return nil, false, nil
}

func (s *stub) GetLoadBalancerName(svc *v1alpha1.Service) string { return DefaultName(svc) }

func (s *stub) EnsureLoadBalancer(context.Context, *v1alpha1.Service, []*corev1.Node) (*corev1.LoadBalancerStatus, error) {
	return &corev1.LoadBalancerStatus{}, nil
}

func (s *stub) UpdateLoadBalancer(context.Context, *v1alpha1.Service, []*corev1.Node) error {
	return nil
}

func (s *stub) EnsureLoadBalancerDeleted(context.Context, *v1alpha1.Service) error { return nil }

var _ Provider = &stub{}

func TestRegistryRegister(t *testing.T) {
	tests := []struct {
		name    string
		p       Provider
		wantErr string
	}{
		{name: "ippool", p: &stub{}},
		{name: "example.com/static", p: &stub{}},
		{name: "ippool", p: &stub{}, wantErr: `load balancer provider "ippool" is already registered`},
		{name: "none", p: &stub{}, wantErr: `load balancer provider name "none" is reserved`},
		{name: "", p: &stub{}, wantErr: `invalid load balancer provider name ""`},
		{name: "Not Valid!", p: &stub{}, wantErr: `invalid load balancer provider name "Not Valid!"`},
		{name: "nil", p: nil, wantErr: `load balancer provider "nil" is nil`},
	}
	r := NewRegistry()
	for _, tt := range tests {
		err := r.Register(tt.name, tt.p)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("Register(%q) = %v, want nil", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
			t.Errorf("Register(%q) = %v, want an error starting %q", tt.name, err, tt.wantErr)
		}
	}
	if got, want := r.Names(), []string{"example.com/static", "ippool"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
}

func TestRegistryForClass(t *testing.T) {
	ippool, static := &stub{name: "ippool"}, &stub{name: "static"}
	newRegistry := func(def string) *Registry {
		r := NewRegistry()
		if err := r.Register("ippool", ippool); err != nil {
			t.Fatal(err)
		}
		if err := r.Register("example.com/static", static); err != nil {
			t.Fatal(err)
		}
		if err := r.SetDefault(def); err != nil {
			t.Fatal(err)
		}
		return r
	}
	class := func(s string) *string { return &s }
	tests := []struct {
		name     string
		def      string
		class    *string
		wantName string
		want     Provider
	}{
		{name: "no class goes to the default", def: "ippool", class: nil, wantName: "ippool", want: ippool},
		{name: "another default", def: "example.com/static", class: nil, wantName: "example.com/static", want: static},
		{name: "a registered class goes to its provider", def: "ippool", class: class("example.com/static"), wantName: "example.com/static", want: static},
		{name: "the default's own class", def: "example.com/static", class: class("ippool"), wantName: "ippool", want: ippool},
		{name: "an unregistered class is someone else's", def: "ippool", class: class("metallb.io/metallb"), want: nil},
		{name: "no default leaves classless Services alone", def: "none", class: nil, want: nil},
		{name: "empty default is none", def: "", class: nil, want: nil},
		{name: "no default still routes classes", def: "none", class: class("ippool"), wantName: "ippool", want: ippool},
		{name: "an empty class is not the default", def: "ippool", class: class(""), want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, p, ok := newRegistry(tt.def).ForClass(tt.class)
			if ok != (tt.want != nil) || p != tt.want || name != tt.wantName {
				t.Errorf("ForClass = (%q, %v, %v), want (%q, %v)", name, p, ok, tt.wantName, tt.want)
			}
		})
	}
}

func TestRegistrySetDefaultUnknown(t *testing.T) {
	r := NewRegistry()
	if err := r.Register("ippool", &stub{}); err != nil {
		t.Fatal(err)
	}
	err := r.SetDefault("cloud")
	if err == nil || err.Error() != `unknown load balancer provider "cloud": registered are ippool, or "none" to disable the default` {
		t.Errorf("SetDefault(cloud) = %v", err)
	}
	if r.Default() != "" {
		t.Errorf("a failed SetDefault changed the default to %q", r.Default())
	}
}
