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

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers/loadbalancer"
	"github.com/svcplane/svcplane/controllers/loadbalancer/ippool"
)

// nop is a provider that provisions nothing; the tests only route to it.
type nop struct{}

func (nop) GetLoadBalancer(context.Context, *v1alpha1.Service) (*corev1.LoadBalancerStatus, bool, error) {
	return nil, false, nil
}
func (nop) GetLoadBalancerName(svc *v1alpha1.Service) string { return loadbalancer.DefaultName(svc) }
func (nop) EnsureLoadBalancer(context.Context, *v1alpha1.Service, []*corev1.Node) (*corev1.LoadBalancerStatus, error) {
	return &corev1.LoadBalancerStatus{}, nil
}
func (nop) UpdateLoadBalancer(context.Context, *v1alpha1.Service, []*corev1.Node) error { return nil }
func (nop) EnsureLoadBalancerDeleted(context.Context, *v1alpha1.Service) error          { return nil }

func factory(p loadbalancer.Provider, err error) ProviderFactory {
	return func() (loadbalancer.Provider, error) { return p, err }
}

func TestNewRegistry(t *testing.T) {
	custom := map[string]ProviderFactory{"example.com/nop": factory(nop{}, nil)}
	tests := []struct {
		name        string
		def         string
		factories   map[string]ProviderFactory
		wantNames   []string
		wantDefault string
		wantErr     string
	}{
		{name: "built-in only", def: "ippool", wantNames: []string{"ippool"}, wantDefault: "ippool"},
		{name: "none disables the default", def: "none", wantNames: []string{"ippool"}, wantDefault: ""},
		{name: "a custom default", def: "example.com/nop", factories: custom, wantNames: []string{"example.com/nop", "ippool"}, wantDefault: "example.com/nop"},
		{name: "a custom provider next to the default ippool", def: "ippool", factories: custom, wantNames: []string{"example.com/nop", "ippool"}, wantDefault: "ippool"},
		{name: "an unknown default", def: "cloud", wantErr: `invalid --load-balancer-provider: unknown load balancer provider "cloud": registered are ippool, or "none" to disable the default`},
		{name: "the built-in name is taken", def: "ippool", factories: map[string]ProviderFactory{"ippool": factory(nop{}, nil)}, wantErr: `load balancer provider "ippool" is already registered`},
		{name: "a failing factory", def: "ippool", factories: map[string]ProviderFactory{"example.com/nop": factory(nil, errors.New("no credentials"))}, wantErr: `load balancer provider "example.com/nop": no credentials`},
		{name: "a missing factory", def: "ippool", factories: map[string]ProviderFactory{"example.com/nop": nil}, wantErr: `load balancer provider "example.com/nop" has no factory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			registry, pools, err := newRegistry(tt.def, tt.factories)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(registry.Names(), tt.wantNames) || registry.Default() != tt.wantDefault {
				t.Errorf("registered %v, default %q; want %v, %q", registry.Names(), registry.Default(), tt.wantNames, tt.wantDefault)
			}
			if p, _ := registry.Get(ippool.Name); p != loadbalancer.Provider(pools) {
				t.Error("the ippool provider fed by the pool reconciler is not the registered one")
			}
		})
	}
}

func TestFlags(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.BindFlags(fs, Options{Providers: map[string]ProviderFactory{"example.com/nop": factory(nop{}, nil)}})
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if c.LoadBalancerProvider != "ippool" || c.LoadBalancerMinRetryDelay != 5*time.Second || c.LoadBalancerMaxRetryDelay != 5*time.Minute ||
		c.ServiceCIDRs != "10.96.0.0/12" || c.NodePortRange != "30000-32767" || c.ProbeAddr != ":8081" || c.MetricsAddr != "0" {
		t.Errorf("defaults: %+v", c)
	}
	usage := fs.Lookup("load-balancer-provider").Usage
	if !strings.Contains(usage, "[example.com/nop ippool]") || !strings.Contains(usage, `"none"`) {
		t.Errorf("--load-balancer-provider help does not list the providers: %q", usage)
	}
	if err := fs.Parse([]string{"--load-balancer-provider=none", "--concurrent-load-balancer-syncs=8"}); err != nil {
		t.Fatal(err)
	}
	if c.LoadBalancerProvider != "none" || c.ConcurrentLoadBalancerSyncs != 8 {
		t.Errorf("parsed: %+v", c)
	}

	var d Config
	fs = flag.NewFlagSet("manager", flag.ContinueOnError)
	d.BindFlags(fs, Options{DefaultLoadBalancerProvider: "example.com/nop"})
	if d.LoadBalancerProvider != "example.com/nop" {
		t.Errorf("a binary's default provider: %q", d.LoadBalancerProvider)
	}
}

func TestNewManagerRejectsBadConfiguration(t *testing.T) {
	var c Config
	c.BindFlags(flag.NewFlagSet("manager", flag.ContinueOnError), Options{})
	if err := c.Validate(); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{name: "service CIDR", mutate: func(c *Config) { c.ServiceCIDRs = "10.0.0.0/8" }, wantErr: "specified --service-cluster-ip-range is too large"},
		{name: "provider", mutate: func(c *Config) { c.LoadBalancerProvider = "cloud" }, wantErr: "invalid --load-balancer-provider"},
		{name: "no endpoints per slice", mutate: func(c *Config) { c.MaxEndpointsPerSlice = 0 }, wantErr: "invalid --max-endpoints-per-slice=0: must be between 1 and 1000"},
		{name: "too many endpoints per slice", mutate: func(c *Config) { c.MaxEndpointsPerSlice = 1001 }, wantErr: "invalid --max-endpoints-per-slice=1001"},
		{name: "negative batch period", mutate: func(c *Config) { c.BatchPeriod = -time.Second }, wantErr: "invalid --endpointslice-updates-batch-period=-1s"},
		{name: "negative repair interval", mutate: func(c *Config) { c.RepairInterval = -time.Minute }, wantErr: "invalid --repair-interval=-1m0s"},
		{name: "repair interval below the minimum", mutate: func(c *Config) { c.RepairInterval = time.Nanosecond }, wantErr: "invalid --repair-interval=1ns: must be at least 10s (0 disables the repair pass)"},
		{name: "retry delay below the minimum", mutate: func(c *Config) { c.LoadBalancerMinRetryDelay = time.Millisecond }, wantErr: "invalid --load-balancer-min-retry-delay=1ms: must be at least 100ms"},
		{name: "leader election retry period", mutate: func(c *Config) { c.LeaderElect, c.RetryPeriod = true, time.Millisecond }, wantErr: "invalid --leader-elect-retry-period=1ms: must be at least 1s"},
		{name: "renew deadline", mutate: func(c *Config) { c.LeaderElect, c.RenewDeadline = true, 5*time.Second }, wantErr: "invalid --leader-elect-renew-deadline=5s: must be longer than 1.2 times --leader-elect-retry-period (5s)"},
		{name: "lease duration", mutate: func(c *Config) { c.LeaderElect, c.LeaseDuration = true, 60*time.Second }, wantErr: "invalid --leader-elect-lease-duration=1m0s: must be longer than --leader-elect-renew-deadline (1m15s)"},
		{name: "no workers", mutate: func(c *Config) { c.ConcurrentEndpointSyncs = 0 }, wantErr: "invalid --concurrent-service-endpoint-syncs=0"},
		{name: "retry delays", mutate: func(c *Config) { c.LoadBalancerMaxRetryDelay = time.Second }, wantErr: "invalid --load-balancer-max-retry-delay=1s: must not be shorter than --load-balancer-min-retry-delay (5s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := c
			tt.mutate(&cfg)
			// Configuration is checked before the API server is contacted, so no
			// rest.Config is needed.
			if _, err := NewManager(nil, cfg, Options{}); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewManager = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestLeaderElectionNamespace covers the default namespace of the leader election
// Lease outside a cluster: the kubeconfig context's, else kube-system.
func TestLeaderElectionNamespace(t *testing.T) {
	if _, err := os.Stat(inClusterNamespacePath); err == nil {
		t.Skip("running in a Pod: the Pod's namespace applies")
	}
	dir := t.TempDir()
	write := func(namespace string) string {
		path := filepath.Join(dir, "kubeconfig-"+namespace)
		content := `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: u
  user: {token: x}
contexts:
- name: ctx
  context: {cluster: c, user: u, namespace: "` + namespace + `"}
current-context: ctx
`
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Setenv("KUBECONFIG", write("team-a"))
	if got := leaderElectionNamespace(""); got != "team-a" {
		t.Errorf("with a context namespace: %q, want team-a", got)
	}
	if got := leaderElectionNamespace("explicit"); got != "explicit" {
		t.Errorf("with the flag: %q, want explicit", got)
	}
	t.Setenv("KUBECONFIG", write(""))
	if got := leaderElectionNamespace(""); got != "kube-system" {
		t.Errorf("without a context namespace: %q, want kube-system", got)
	}
}
