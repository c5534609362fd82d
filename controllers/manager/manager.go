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

// Package manager is svcplane's manager as a library: its flags, its controllers and
// its load balancer providers, wired together. cmd/manager is a main around Run; a
// binary that brings load balancer providers of its own calls Run with them, as
// cmd/example-lb-manager does, and gets the very same manager, flags included. It is
// public, outside cmd/, because it is part of the provider extension API and because
// the envtest suites and the end-to-end harness start the manager that ships.
package manager

import (
	"cmp"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers"
	"github.com/svcplane/svcplane/controllers/loadbalancer"
	"github.com/svcplane/svcplane/controllers/loadbalancer/ippool"
	"github.com/svcplane/svcplane/internal/endpoints"
	"github.com/svcplane/svcplane/internal/ledger"
)

// ProviderFactory builds a load balancer provider. It is called once, after the
// command line is parsed, so it can read flags that its binary defined before
// calling Run.
type ProviderFactory func() (loadbalancer.Provider, error)

// Options are what a binary built on this package adds to the manager.
type Options struct {
	// Providers are load balancer providers to register besides the built-in
	// ippool, by name: the loadBalancerClass that selects them, and the value of
	// --load-balancer-provider that makes one the default.
	Providers map[string]ProviderFactory
	// DefaultLoadBalancerProvider is the default value of --load-balancer-provider;
	// empty means ippool.
	DefaultLoadBalancerProvider string
}

// Config holds the manager's settings, one field per flag.
type Config struct {
	MetricsAddr, ProbeAddr      string
	PprofAddr                   string
	SecureMetrics, EnableHTTP2  bool
	LeaderElect                 bool
	LeaderElectionNamespace     string
	LeaseDuration               time.Duration
	RenewDeadline               time.Duration
	RetryPeriod                 time.Duration
	DenyExternalIPs             bool
	ServiceCIDRs, NodePortRange string
	RepairInterval, BatchPeriod time.Duration
	ConcurrentServiceSyncs      int
	ConcurrentEndpointSyncs     int
	MaxEndpointsPerSlice        int
	LoadBalancerProvider        string
	ConcurrentLoadBalancerSyncs int
	LoadBalancerMinRetryDelay   time.Duration
	LoadBalancerMaxRetryDelay   time.Duration
}

// BindFlags defines the manager's flags on fs, with their defaults.
func (c *Config) BindFlags(fs *flag.FlagSet, opts Options) {
	names := append(slices.Sorted(maps.Keys(opts.Providers)), ippool.Name)
	slices.Sort(names)
	fs.StringVar(&c.MetricsAddr, "metrics-bind-address", "0", "The address the metrics endpoint binds to, e.g. :8443 (HTTPS) or :8080 (HTTP); 0 disables it.")
	fs.BoolVar(&c.SecureMetrics, "metrics-secure", true, "Serve metrics over HTTPS with authentication and authorization.")
	fs.BoolVar(&c.EnableHTTP2, "enable-http2", false, "Enable HTTP/2 for the metrics server (off by default: CVE-2023-44487, CVE-2023-39325).")
	fs.StringVar(&c.ProbeAddr, "health-probe-bind-address", ":8081", "The address the health and readiness probes bind to.")
	fs.StringVar(&c.PprofAddr, "pprof-bind-address", "", "The address Go's pprof profiles are served on over plain HTTP, without authentication (e.g. 127.0.0.1:6060); empty or 0 disables it.")
	fs.BoolVar(&c.LeaderElect, "leader-elect", false, "Elect a leader so that only one manager replica is active.")
	fs.StringVar(&c.LeaderElectionNamespace, "leader-election-namespace", "", "The namespace of the leader election Lease. Empty means the Pod's namespace in a cluster, else the namespace of the kubeconfig context, else kube-system.")
	// The defaults let the leader ride out an API server outage of a minute (it keeps
	// retrying its renewal for 75s) instead of exiting as kube-controller-manager's
	// 15s/10s/2s would after 10s; a standby takes over at most 90s after a leader
	// dies without releasing the Lease (a graceful stop releases it at once).
	fs.DurationVar(&c.LeaseDuration, "leader-elect-lease-duration", 90*time.Second, "How long a standby waits after the last observed renewal before it takes the lead.")
	fs.DurationVar(&c.RenewDeadline, "leader-elect-renew-deadline", 75*time.Second, "How long the leader keeps retrying to renew its Lease (e.g. through an API server outage) before it gives up the lead; shorter than --leader-elect-lease-duration.")
	fs.DurationVar(&c.RetryPeriod, "leader-elect-retry-period", 5*time.Second, "How often leader election clients try to acquire or renew the Lease.")
	fs.BoolVar(&c.DenyExternalIPs, "deny-external-ips", false, "Refuse every Service with spec.externalIPs (Allocated=False, reason ExternalIPsDenied), as kube-apiserver's DenyServiceExternalIPs admission plugin does.")
	fs.StringVar(&c.ServiceCIDRs, "service-cluster-ip-range", "10.96.0.0/12", "CIDR from which ClusterIPs are allocated; two comma-separated CIDRs of different families for dual-stack, primary first. At most 2^20 addresses each.")
	fs.StringVar(&c.NodePortRange, "service-node-port-range", "30000-32767", "Port range from which node ports are allocated, inclusive.")
	fs.DurationVar(&c.RepairInterval, "repair-interval", 3*time.Minute, "How often allocations are checked against every Service for duplicates, out-of-range values and leaks: at least 10s, or 0 to disable the check.")
	fs.IntVar(&c.ConcurrentServiceSyncs, "concurrent-service-syncs", controllers.DefaultConcurrentServiceSyncs, "Number of Services allocated in parallel (each pass is one status write to the API server).")
	fs.IntVar(&c.MaxEndpointsPerSlice, "max-endpoints-per-slice", endpoints.DefaultMaxEndpointsPerSlice, "The maximum number of endpoints in one EndpointSlice.")
	fs.DurationVar(&c.BatchPeriod, "endpointslice-updates-batch-period", 0, "How long pod changes are batched before a Service's EndpointSlices are written; 0 writes at once.")
	fs.IntVar(&c.ConcurrentEndpointSyncs, "concurrent-service-endpoint-syncs", 5, "Number of Services whose EndpointSlices are synced in parallel.")
	fs.StringVar(&c.LoadBalancerProvider, "load-balancer-provider", cmp.Or(opts.DefaultLoadBalancerProvider, ippool.Name),
		fmt.Sprintf("The load balancer provider of LoadBalancer Services without a loadBalancerClass: one of %v, or %q to leave them to another controller. A Service whose loadBalancerClass names a provider goes to it whatever this says.", names, loadbalancer.None))
	fs.IntVar(&c.ConcurrentLoadBalancerSyncs, "concurrent-load-balancer-syncs", 4, "Number of Services whose load balancers are synced in parallel.")
	fs.DurationVar(&c.LoadBalancerMinRetryDelay, "load-balancer-min-retry-delay", 5*time.Second, "Delay before a failed load balancer call is retried, doubled after each further failure.")
	fs.DurationVar(&c.LoadBalancerMaxRetryDelay, "load-balancer-max-retry-delay", 5*time.Minute, "Longest delay between retries of a failing load balancer call.")
}

// Minimum values of the period flags: below them a pass or a retry loop does little
// but load the API server and flood the log while it is down.
const (
	MinRepairInterval = 10 * time.Second
	MinRetryDelay     = 100 * time.Millisecond
	MinRetryPeriod    = time.Second
)

// Validate checks the numeric settings, naming the flag at fault; the ranges and
// the provider are checked where they are parsed.
func (c *Config) Validate() error {
	var errs []error
	check := func(ok bool, flagName string, value any, want string) {
		if !ok {
			errs = append(errs, fmt.Errorf("invalid --%s=%v: %s", flagName, value, want))
		}
	}
	// kube-controller-manager's bounds for --max-endpoints-per-slice.
	check(c.MaxEndpointsPerSlice >= 1 && c.MaxEndpointsPerSlice <= 1000, "max-endpoints-per-slice", c.MaxEndpointsPerSlice, "must be between 1 and 1000")
	check(c.BatchPeriod >= 0, "endpointslice-updates-batch-period", c.BatchPeriod, "must not be negative")
	check(c.RepairInterval == 0 || c.RepairInterval >= MinRepairInterval, "repair-interval", c.RepairInterval, fmt.Sprintf("must be at least %v (0 disables the repair pass)", MinRepairInterval))
	check(c.LoadBalancerMinRetryDelay >= MinRetryDelay, "load-balancer-min-retry-delay", c.LoadBalancerMinRetryDelay, fmt.Sprintf("must be at least %v", MinRetryDelay))
	if c.LeaderElect {
		check(c.RetryPeriod >= MinRetryPeriod, "leader-elect-retry-period", c.RetryPeriod, fmt.Sprintf("must be at least %v", MinRetryPeriod))
		// client-go's own rule: the renewal retries, with jitter, fit in the deadline.
		check(float64(c.RenewDeadline) > 1.2*float64(c.RetryPeriod), "leader-elect-renew-deadline", c.RenewDeadline,
			fmt.Sprintf("must be longer than 1.2 times --leader-elect-retry-period (%v)", c.RetryPeriod))
		check(c.LeaseDuration > c.RenewDeadline, "leader-elect-lease-duration", c.LeaseDuration,
			fmt.Sprintf("must be longer than --leader-elect-renew-deadline (%v)", c.RenewDeadline))
	}
	check(c.ConcurrentServiceSyncs >= 1, "concurrent-service-syncs", c.ConcurrentServiceSyncs, "must be at least 1")
	check(c.ConcurrentEndpointSyncs >= 1, "concurrent-service-endpoint-syncs", c.ConcurrentEndpointSyncs, "must be at least 1")
	check(c.ConcurrentLoadBalancerSyncs >= 1, "concurrent-load-balancer-syncs", c.ConcurrentLoadBalancerSyncs, "must be at least 1")
	check(c.LoadBalancerMaxRetryDelay >= c.LoadBalancerMinRetryDelay, "load-balancer-max-retry-delay", c.LoadBalancerMaxRetryDelay,
		fmt.Sprintf("must not be shorter than --load-balancer-min-retry-delay (%v)", c.LoadBalancerMinRetryDelay))
	return errors.Join(errs...)
}

// Run defines the manager's flags on the process's command line, parses it, and
// runs the manager until SIGTERM or SIGINT. A binary may define flags of its own
// before calling it. Errors are logged before they are returned.
func Run(opts Options) error {
	var cfg Config
	cfg.BindFlags(flag.CommandLine, opts)
	// Stack traces only for panics (--zap-stacktrace-level changes it): an API
	// server outage makes client-go log errors every few seconds, and a stack
	// trace each would bury the one warning that says what happened.
	zopts := zap.Options{Development: true, StacktraceLevel: zapcore.PanicLevel}
	zopts.BindFlags(flag.CommandLine)
	flag.Parse()
	processLogger = zap.New(zap.UseFlagOptions(&zopts))
	ctrl.SetLogger(processLogger)
	log := ctrl.Log.WithName("setup")

	restCfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "unable to load a kubeconfig")
		return err
	}
	if cfg.LeaderElect {
		cfg.LeaderElectionNamespace = leaderElectionNamespace(cfg.LeaderElectionNamespace)
		log.Info("leader election", "namespace", cmp.Or(cfg.LeaderElectionNamespace, "(the Pod's)"), "lease", leaderElectionID)
	}
	mgr, err := NewManager(restCfg, cfg, opts)
	if err != nil {
		log.Error(err, "unable to set up the manager")
		return err
	}
	log.Info("starting manager", "serviceCIDRs", cfg.ServiceCIDRs, "nodePorts", cfg.NodePortRange, "loadBalancerProvider", cfg.LoadBalancerProvider)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "manager stopped with an error")
		return err
	}
	return nil
}

// NewManager builds a manager on restCfg with every svcplane controller, configured
// by cfg, and the load balancer providers of opts next to the built-in ippool.
func NewManager(restCfg *rest.Config, cfg Config, opts Options) (ctrl.Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cidrs, err := ledger.ParseServiceCIDRs(cfg.ServiceCIDRs)
	if err != nil {
		return nil, fmt.Errorf("invalid --service-cluster-ip-range: %w", err)
	}
	book, err := ledger.NewBook(cidrs, cfg.NodePortRange)
	if err != nil {
		return nil, fmt.Errorf("invalid allocation ranges: %w", err)
	}
	registry, pools, err := newRegistry(cfg.LoadBalancerProvider, opts.Providers)
	if err != nil {
		return nil, err
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))

	var tlsOpts []func(*tls.Config)
	if !cfg.EnableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: cfg.MetricsAddr, SecureServing: cfg.SecureMetrics, TLSOpts: tlsOpts}
	if cfg.SecureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsOpts,
		HealthProbeBindAddress: cfg.ProbeAddr,
		PprofBindAddress:       cfg.PprofAddr,
		LeaderElection:         cfg.LeaderElect,
		LeaderElectionID:       leaderElectionID,
		// An empty namespace makes controller-runtime use the Pod's, and fail
		// outside a cluster; Run fills it in from the kubeconfig first.
		LeaderElectionNamespace: cfg.LeaderElectionNamespace,
		// A stopping leader hands over at once instead of making the standby
		// wait out the lease.
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 durationOrNil(cfg.LeaseDuration),
		RenewDeadline:                 durationOrNil(cfg.RenewDeadline),
		RetryPeriod:                   durationOrNil(cfg.RetryPeriod),
		// Pods are cached cluster-wide; their managed fields are never read.
		Cache: cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
	})
	if err != nil {
		return nil, fmt.Errorf("unable to create manager: %w", err)
	}
	if err := metrics.Registry.Register(controllers.NewAllocatorCollector(book)); err != nil {
		// A second manager in one process (a test) keeps reporting the first's.
		if !errors.As(err, &prometheus.AlreadyRegisteredError{}) {
			return nil, err
		}
	}

	allocation := &controllers.AllocationReconciler{
		Book:                    book,
		RepairInterval:          cfg.RepairInterval,
		MaxConcurrentReconciles: cfg.ConcurrentServiceSyncs,
		DenyExternalIPs:         cfg.DenyExternalIPs,
	}
	if err := controllers.Setup(mgr, controllers.Reconcilers{
		Allocation: allocation,
		EndpointSlice: &controllers.EndpointSliceReconciler{
			MaxEndpointsPerSlice:    cfg.MaxEndpointsPerSlice,
			BatchPeriod:             cfg.BatchPeriod,
			MaxConcurrentReconciles: cfg.ConcurrentEndpointSyncs,
		},
		Pool: &controllers.LoadBalancerIPPoolReconciler{Pools: pools},
		LoadBalancer: &controllers.LoadBalancerReconciler{
			Providers:               registry,
			MinRetryDelay:           cfg.LoadBalancerMinRetryDelay,
			MaxRetryDelay:           cfg.LoadBalancerMaxRetryDelay,
			MaxConcurrentReconciles: cfg.ConcurrentLoadBalancerSyncs,
		},
	}); err != nil {
		return nil, err
	}
	monitor, err := newAPIMonitor(restCfg, allocation.Resync)
	if err != nil {
		return nil, err
	}
	allocation.APIReachable = monitor.Reachable
	if err := mgr.Add(monitor); err != nil {
		return nil, err
	}

	if err := mgr.Add(&coreRangeCheck{reader: mgr.GetAPIReader(), ours: cidrs}); err != nil {
		return nil, fmt.Errorf("unable to set up the service range check: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("unable to set up health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("unable to set up ready check: %w", err)
	}
	// Not ready while the API server cannot be reached: nothing this manager
	// decides can be written then.
	if err := mgr.AddReadyzCheck("apiserver", monitor.Check); err != nil {
		return nil, fmt.Errorf("unable to set up ready check: %w", err)
	}
	return mgr, nil
}

// newRegistry registers the built-in ippool provider and the factories' providers,
// and makes defaultName the default.
func newRegistry(defaultName string, factories map[string]ProviderFactory) (*loadbalancer.Registry, *ippool.Provider, error) {
	registry := loadbalancer.NewRegistry()
	pools := ippool.New()
	if err := registry.Register(ippool.Name, pools); err != nil {
		return nil, nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(factories)) {
		if factories[name] == nil {
			return nil, nil, fmt.Errorf("load balancer provider %q has no factory", name)
		}
		provider, err := factories[name]()
		if err != nil {
			return nil, nil, fmt.Errorf("load balancer provider %q: %w", name, err)
		}
		if err := registry.Register(name, provider); err != nil {
			return nil, nil, err
		}
	}
	if err := registry.SetDefault(defaultName); err != nil {
		return nil, nil, fmt.Errorf("invalid --load-balancer-provider: %w", err)
	}
	return registry, pools, nil
}

// leaderElectionID names the leader election Lease.
const leaderElectionID = "manager.networking.svcplane.io"

// inClusterNamespacePath holds the Pod's namespace in a cluster.
const inClusterNamespacePath = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// leaderElectionNamespace returns the namespace for the leader election Lease:
// the flag's value, else "" in a cluster (controller-runtime then uses the Pod's
// namespace), else the namespace the kubeconfig context names, else kube-system,
// which exists on every cluster.
func leaderElectionNamespace(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if _, err := os.Stat(inClusterNamespacePath); err == nil {
		return ""
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if f := flag.Lookup("kubeconfig"); f != nil && f.Value.String() != "" {
		rules.ExplicitPath = f.Value.String()
	}
	raw, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).RawConfig()
	if err == nil {
		if kctx := raw.Contexts[raw.CurrentContext]; kctx != nil && kctx.Namespace != "" {
			return kctx.Namespace
		}
	}
	return "kube-system"
}

func durationOrNil(d time.Duration) *time.Duration {
	if d == 0 {
		return nil
	}
	return &d
}
