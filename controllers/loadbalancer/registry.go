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
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// None is the default provider name that disables the default provider: Services
// without a loadBalancerClass are then left to another controller.
const None = "none"

// Registry maps provider names to providers and picks the provider of a Service. A
// provider's name is the loadBalancerClass that selects it; the default provider
// also serves Services with no class, as kube's service controller serves them for
// the cloud provider. Register and SetDefault while wiring, before the manager
// starts; after that a Registry is only read and is safe for concurrent use.
type Registry struct {
	providers map[string]Provider
	def       string
}

// NewRegistry returns an empty Registry with no default provider.
func NewRegistry() *Registry {
	return &Registry{providers: map[string]Provider{}}
}

// Register adds a provider under name, which must be a valid loadBalancerClass (a
// qualified name such as "ippool" or "example.com/static"), must not be "none", and
// must not be taken.
func (r *Registry) Register(name string, p Provider) error {
	if p == nil {
		return fmt.Errorf("load balancer provider %q is nil", name)
	}
	if name == None {
		return fmt.Errorf("load balancer provider name %q is reserved: it disables the default provider", None)
	}
	if errs := validation.IsQualifiedName(name); len(errs) > 0 {
		return fmt.Errorf("invalid load balancer provider name %q: %s", name, strings.Join(errs, "; "))
	}
	if _, taken := r.providers[name]; taken {
		return fmt.Errorf("load balancer provider %q is already registered", name)
	}
	r.providers[name] = p
	return nil
}

// SetDefault makes the provider registered under name serve Services that have no
// loadBalancerClass. "none" and "" leave them to another controller.
func (r *Registry) SetDefault(name string) error {
	if name == None || name == "" {
		r.def = ""
		return nil
	}
	if _, ok := r.providers[name]; !ok {
		return fmt.Errorf("unknown load balancer provider %q: registered are %s, or %q to disable the default", name, strings.Join(r.Names(), ", "), None)
	}
	r.def = name
	return nil
}

// Default returns the name of the default provider, or "" when there is none.
func (r *Registry) Default() string { return r.def }

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.providers))
	for name := range r.providers {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Get returns the provider registered under name.
func (r *Registry) Get(name string) (Provider, bool) {
	p, ok := r.providers[name]
	return p, ok
}

// ForClass returns the provider that serves a Service with the given
// loadBalancerClass and the name it is registered under: the default provider for
// nil, the provider of that name otherwise. ok is false when the class is someone
// else's (or there is no default): such Services are left alone, as kube's service
// controller leaves Services whose class it does not own.
func (r *Registry) ForClass(class *string) (name string, p Provider, ok bool) {
	name = r.def
	if class != nil {
		name = *class
	}
	if name == "" {
		return "", nil, false
	}
	p, ok = r.providers[name]
	if !ok {
		return "", nil, false
	}
	return name, p, true
}
