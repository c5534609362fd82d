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

// Command manager runs svcplane's controllers: it allocates ClusterIPs and node ports
// for networking.svcplane.io Services and maintains their EndpointSlices.
package main

import (
	"crypto/tls"
	"flag"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers"
	"github.com/svcplane/svcplane/controllers/allocation"
	"github.com/svcplane/svcplane/controllers/endpoints"
)

func main() {
	var (
		metricsAddr, probeAddr      string
		secureMetrics, enableHTTP2  bool
		leaderElect                 bool
		serviceCIDRs, nodePortRange string
		repairInterval, batchPeriod time.Duration
		concurrentServiceSyncs      int
		concurrentEndpointSyncs     int
		maxEndpointsPerSlice        int
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "The address the metrics endpoint binds to, e.g. :8443 (HTTPS) or :8080 (HTTP); 0 disables it.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS with authentication and authorization.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false, "Enable HTTP/2 for the metrics server (off by default: CVE-2023-44487, CVE-2023-39325).")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "The address the health and readiness probes bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so that only one manager replica is active.")
	flag.StringVar(&serviceCIDRs, "service-cluster-ip-range", "10.96.0.0/12", "CIDR from which ClusterIPs are allocated; two comma-separated CIDRs of different families for dual-stack, primary first. At most 2^20 addresses each.")
	flag.StringVar(&nodePortRange, "service-node-port-range", "30000-32767", "Port range from which node ports are allocated, inclusive.")
	flag.DurationVar(&repairInterval, "repair-interval", 3*time.Minute, "How often allocations are checked against every Service for duplicates, out-of-range values and leaks; 0 disables the check.")
	flag.IntVar(&concurrentServiceSyncs, "concurrent-service-syncs", 4, "Number of Services reconciled in parallel.")
	flag.IntVar(&maxEndpointsPerSlice, "max-endpoints-per-slice", endpoints.DefaultMaxEndpointsPerSlice, "The maximum number of endpoints in one EndpointSlice.")
	flag.DurationVar(&batchPeriod, "endpointslice-updates-batch-period", 0, "How long pod changes are batched before a Service's EndpointSlices are written; 0 writes at once.")
	flag.IntVar(&concurrentEndpointSyncs, "concurrent-service-endpoint-syncs", 5, "Number of Services whose EndpointSlices are synced in parallel.")
	opts := zap.Options{Development: true}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	cidrs, err := allocation.ParseServiceCIDRs(serviceCIDRs)
	if err != nil {
		fail(log, err, "invalid --service-cluster-ip-range")
	}
	book, err := allocation.NewBook(cidrs, nodePortRange)
	if err != nil {
		fail(log, err, "invalid allocation ranges")
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))

	var tlsOpts []func(*tls.Config)
	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: secureMetrics, TLSOpts: tlsOpts}
	if secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsOpts,
		HealthProbeBindAddress: probeAddr,
		LeaderElection:         leaderElect,
		LeaderElectionID:       "manager.networking.svcplane.io",
		// Pods are cached cluster-wide; their managed fields are never read.
		Cache: cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
	})
	if err != nil {
		fail(log, err, "unable to create manager")
	}
	metrics.Registry.MustRegister(controllers.NewAllocatorCollector(book))

	if err := (&controllers.AllocationReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                mgr.GetEventRecorder("svcplane-allocator"),
		Book:                    book,
		RepairInterval:          repairInterval,
		MaxConcurrentReconciles: concurrentServiceSyncs,
	}).SetupWithManager(mgr); err != nil {
		fail(log, err, "unable to create controller", "controller", "allocation")
	}

	if err := (&controllers.EndpointSliceReconciler{
		Client:                  mgr.GetClient(),
		MaxEndpointsPerSlice:    maxEndpointsPerSlice,
		BatchPeriod:             batchPeriod,
		MaxConcurrentReconciles: concurrentEndpointSyncs,
	}).SetupWithManager(mgr); err != nil {
		fail(log, err, "unable to create controller", "controller", "endpointslice")
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		fail(log, err, "unable to set up health check")
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		fail(log, err, "unable to set up ready check")
	}
	log.Info("starting manager", "serviceCIDRs", cidrs, "nodePorts", nodePortRange)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		fail(log, err, "manager stopped with an error")
	}
}

func fail(log interface {
	Error(error, string, ...any)
}, err error, msg string, kv ...any) {
	log.Error(err, msg, kv...)
	os.Exit(1)
}
