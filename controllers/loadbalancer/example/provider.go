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

// Package example is a complete, small load balancer provider to copy from when
// writing your own. It serves external load balancers whose addresses an operator
// assigned out of band (the pre-provisioned virtual IPs of a hardware load balancer,
// a router's static NAT): for each LoadBalancer Service it looks up the Service's
// address in a static table, works out what that load balancer must do (listen on
// the address at each Service port and forward to every eligible node's InternalIP
// at the port's node port), and hands the whole configuration to a Publish function,
// which programs the real device. cmd/example-lb-manager publishes it as a JSON file
// for an agent on the load balancer to apply.
//
// Because the device forwards to node ports, the ingress it reports has ipMode
// Proxy: nodes must not short-circuit traffic for the address, the device delivers
// it to a node port.
package example

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers/loadbalancer"
)

// Name is the provider's registered name: the loadBalancerClass that selects it.
// A domain-prefixed name keeps it apart from other controllers' classes.
const Name = "example.svcplane.io/static"

// LoadBalancer is the configuration of one load balancer on the device.
type LoadBalancer struct {
	// Name is the provider's stable name for it (loadbalancer.DefaultName).
	Name string `json:"name"`
	// Service is the Service it serves, as namespace/name.
	Service string `json:"service"`
	// Addresses are the addresses it listens on.
	Addresses []string `json:"addresses"`
	// Listeners are the Service's ports.
	Listeners []Listener `json:"listeners"`
}

// Listener is one Service port and where its traffic goes.
type Listener struct {
	Protocol corev1.Protocol `json:"protocol"`
	Port     int32           `json:"port"`
	// Backends are the eligible nodes at the port's node port.
	Backends []string `json:"backends"`
}

// Publish programs the device with the complete configuration. It is called with
// every load balancer after each change, from one goroutine at a time. An error
// fails the provider call, which the reconciler retries; the provider's own state
// only changes once Publish succeeded, so a failed call leaves nothing half done.
type Publish func(ctx context.Context, balancers []LoadBalancer) error

// Provider is the static provider. It is safe for concurrent use: one mutex
// serialises every call, which also keeps Publish calls in order.
type Provider struct {
	mu        sync.Mutex
	addresses map[types.NamespacedName][]netip.Addr
	balancers map[types.NamespacedName]LoadBalancer
	publish   Publish
}

var _ loadbalancer.Provider = (*Provider)(nil)

// New returns a provider that gives each Service of the table its addresses and
// publishes the configuration with publish (nil publishes nowhere).
func New(addresses map[types.NamespacedName][]netip.Addr, publish Publish) *Provider {
	if publish == nil {
		publish = func(context.Context, []LoadBalancer) error { return nil }
	}
	return &Provider{addresses: addresses, balancers: map[types.NamespacedName]LoadBalancer{}, publish: publish}
}

// GetLoadBalancerName implements loadbalancer.Provider.
func (p *Provider) GetLoadBalancerName(svc *v1alpha1.Service) string {
	return loadbalancer.DefaultName(svc)
}

// GetLoadBalancer implements loadbalancer.Provider.
func (p *Provider) GetLoadBalancer(_ context.Context, svc *v1alpha1.Service) (*corev1.LoadBalancerStatus, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	lb, ok := p.balancers[key(svc)]
	if !ok {
		return nil, false, nil
	}
	return status(lb), true, nil
}

// EnsureLoadBalancer implements loadbalancer.Provider. A Service that is not in the
// table, or asks for an address the table does not give it, is an error: the
// reconciler reports it and retries with backoff, so adding the Service to the table
// (and restarting the manager) is enough to fix it.
func (p *Provider) EnsureLoadBalancer(ctx context.Context, svc *v1alpha1.Service, nodes []*corev1.Node) (*corev1.LoadBalancerStatus, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	addrs, ok := p.addresses[key(svc)]
	if !ok {
		return nil, fmt.Errorf("no address is configured for Service %s", key(svc))
	}
	requested, err := loadbalancer.RequestedIPs(svc)
	if err != nil {
		return nil, err
	}
	for _, ip := range requested {
		if !slices.Contains(addrs, ip) {
			return nil, fmt.Errorf("requested address %s is not among the addresses configured for Service %s (%v)", ip, key(svc), addrs)
		}
	}
	lb := LoadBalancer{Name: p.GetLoadBalancerName(svc), Service: key(svc).String()}
	for _, ip := range addrs {
		lb.Addresses = append(lb.Addresses, ip.String())
	}
	if lb.Listeners, err = listeners(svc, nodes); err != nil {
		return nil, err
	}
	if err := p.commit(ctx, key(svc), &lb); err != nil {
		return nil, err
	}
	return status(lb), nil
}

// UpdateLoadBalancer implements loadbalancer.Provider: the backends follow the
// nodes; the addresses do not change.
func (p *Provider) UpdateLoadBalancer(ctx context.Context, svc *v1alpha1.Service, nodes []*corev1.Node) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	lb, ok := p.balancers[key(svc)]
	if !ok {
		// The reconciler sees that it does not exist and ensures it instead.
		return fmt.Errorf("load balancer %s of Service %s does not exist", p.GetLoadBalancerName(svc), key(svc))
	}
	var err error
	if lb.Listeners, err = listeners(svc, nodes); err != nil {
		return err
	}
	return p.commit(ctx, key(svc), &lb)
}

// EnsureLoadBalancerDeleted implements loadbalancer.Provider; deleting what does not
// exist succeeds.
func (p *Provider) EnsureLoadBalancerDeleted(ctx context.Context, svc *v1alpha1.Service) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.balancers[key(svc)]; !ok {
		return nil
	}
	return p.commit(ctx, key(svc), nil)
}

// commit publishes the configuration with lb set (nil: removed) and only then
// records it. The caller holds p.mu.
func (p *Provider) commit(ctx context.Context, k types.NamespacedName, lb *LoadBalancer) error {
	next := make(map[types.NamespacedName]LoadBalancer, len(p.balancers)+1)
	for key, v := range p.balancers {
		next[key] = v
	}
	if lb == nil {
		delete(next, k)
	} else {
		next[k] = *lb
	}
	all := make([]LoadBalancer, 0, len(next))
	for _, v := range next {
		all = append(all, v)
	}
	slices.SortFunc(all, func(a, b LoadBalancer) int { return cmp.Compare(a.Service, b.Service) })
	if err := p.publish(ctx, all); err != nil {
		return fmt.Errorf("publishing the load balancer configuration: %w", err)
	}
	p.balancers = next
	return nil
}

// listeners maps the Service's ports to the nodes' InternalIPs at the node ports
// svcplane allocated (status.ports).
func listeners(svc *v1alpha1.Service, nodes []*corev1.Node) ([]Listener, error) {
	var out []Listener
	for _, sp := range svc.Spec.Ports {
		proto := cmp.Or(sp.Protocol, corev1.ProtocolTCP)
		var nodePort int32
		for _, st := range svc.Status.Ports {
			if st.Port == sp.Port && st.Protocol == proto {
				nodePort = st.NodePort
			}
		}
		if nodePort == 0 {
			return nil, fmt.Errorf("port %d/%s has no node port to forward to; this provider needs allocateLoadBalancerNodePorts", sp.Port, proto)
		}
		l := Listener{Protocol: proto, Port: sp.Port, Backends: []string{}}
		for _, n := range nodes {
			if ip := internalIP(n); ip.IsValid() {
				l.Backends = append(l.Backends, netip.AddrPortFrom(ip, uint16(nodePort)).String())
			}
		}
		out = append(out, l)
	}
	return out, nil
}

func internalIP(n *corev1.Node) netip.Addr {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			if ip, err := netip.ParseAddr(a.Address); err == nil {
				return ip
			}
		}
	}
	return netip.Addr{}
}

func status(lb LoadBalancer) *corev1.LoadBalancerStatus {
	st := &corev1.LoadBalancerStatus{}
	proxy := corev1.LoadBalancerIPModeProxy
	for _, a := range lb.Addresses {
		st.Ingress = append(st.Ingress, corev1.LoadBalancerIngress{IP: a, IPMode: &proxy})
	}
	return st
}

func key(svc *v1alpha1.Service) types.NamespacedName {
	return types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
}

// ParseAddresses parses the address table: entries "namespace/name=address[,address]"
// (one address per IP family) separated by semicolons, e.g.
// "shop/web=192.0.2.10,2001:db8::10;shop/api=192.0.2.11".
func ParseAddresses(text string) (map[types.NamespacedName][]netip.Addr, error) {
	out := map[types.NamespacedName][]netip.Addr{}
	for entry := range strings.SplitSeq(text, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		svc, list, ok := strings.Cut(entry, "=")
		ns, name, okName := strings.Cut(strings.TrimSpace(svc), "/")
		if !ok || !okName || ns == "" || name == "" {
			return nil, fmt.Errorf("entry %q: want namespace/name=address[,address]", entry)
		}
		k := types.NamespacedName{Namespace: ns, Name: name}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("entry %q: Service %s is listed twice", entry, k)
		}
		for a := range strings.SplitSeq(list, ",") {
			ip, err := netip.ParseAddr(strings.TrimSpace(a))
			if err != nil || ip.Zone() != "" {
				return nil, fmt.Errorf("entry %q: %q is not an IP address", entry, strings.TrimSpace(a))
			}
			ip = ip.Unmap()
			for _, prev := range out[k] {
				if prev.Is4() == ip.Is4() {
					return nil, fmt.Errorf("entry %q: at most one address per IP family", entry)
				}
			}
			out[k] = append(out[k], ip)
		}
	}
	return out, nil
}

// PublishFile returns a Publish that writes the configuration to path as indented
// JSON, atomically (a temporary file renamed over it), for an agent on the device to
// pick up.
func PublishFile(path string) Publish {
	return func(_ context.Context, balancers []LoadBalancer) error {
		data, err := json.MarshalIndent(balancers, "", "  ")
		if err != nil {
			return err
		}
		tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name()) // a no-op once renamed
		if _, err := tmp.Write(append(data, '\n')); err != nil {
			tmp.Close()
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		return os.Rename(tmp.Name(), path)
	}
}
