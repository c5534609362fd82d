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

package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/dataplane"
	"github.com/svcplane/svcplane/dataplane/model"
	"github.com/svcplane/svcplane/internal/healthcheck"
)

// Options configures an Agent.
type Options struct {
	// NodeName is the name of the node the agent runs on; required.
	NodeName string
	// Config is the node-wide dataplane configuration.
	Config model.Config
	// Backend programs the kernel; required.
	Backend dataplane.Backend
	// Runner bounds how often the Backend syncs.
	Runner dataplane.RunnerConfig
	// HealthCheckBindAddress is the address health check node ports listen on;
	// every address of the node when empty.
	HealthCheckBindAddress string
	// HealthzBindAddress and MetricsBindAddress are where /healthz and /metrics
	// are served; "" or "0" serves nothing.
	HealthzBindAddress string
	MetricsBindAddress string
	// Registry receives the agent's metrics, and /metrics serves what it gathers;
	// a registry of the agent's own when nil. The agent's command passes
	// controller-runtime's, which also holds the client-go and Go runtime metrics.
	Registry RegistererGatherer
	// Clock is the clock of the metrics and /healthz; the real one when nil.
	Clock clock.PassiveClock
}

// RegistererGatherer is a Prometheus registry.
type RegistererGatherer interface {
	prometheus.Registerer
	prometheus.Gatherer
}

// Agent keeps one node's dataplane in line with the API server.
type Agent struct {
	restCfg *rest.Config
	opts    Options
	scheme  *runtime.Scheme
	now     func() time.Time

	runner  *dataplane.Runner
	health  *healthcheck.Health
	hc      *healthcheck.Server
	metrics *metrics
	changes changeLog

	// events counts the changes the handlers have seen; syncedEvents is its value
	// when the last successful sync started (only sync touches it), so that a
	// periodic partial sync with nothing new is skipped.
	events       atomic.Uint64
	syncedEvents uint64
	synced       bool

	// lastHealthCheckErr is the text of the last error hc.Sync returned, ""
	// when it succeeded; only sync touches it.
	lastHealthCheckErr string

	cache cache.Cache
}

// New returns an Agent reading the API server of restCfg; Run starts it.
func New(restCfg *rest.Config, opts Options) (*Agent, error) {
	var errs []error
	if opts.NodeName == "" {
		errs = append(errs, errors.New("a node name is required"))
	}
	if opts.Backend == nil {
		errs = append(errs, errors.New("a backend is required"))
	}
	if err := opts.Config.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	syncPeriod := opts.Runner.SyncPeriod
	if syncPeriod == 0 {
		syncPeriod = dataplane.DefaultSyncPeriod
	}

	a := &Agent{restCfg: restCfg, opts: opts, now: opts.Clock.Now, scheme: runtime.NewScheme()}
	utilruntime.Must(clientgoscheme.AddToScheme(a.scheme))
	utilruntime.Must(v1alpha1.AddToScheme(a.scheme))
	// kube-proxy's rule: unhealthy once a change has waited two full resync
	// periods, which a working agent never lets happen.
	a.health = healthcheck.NewHealth(2*syncPeriod, opts.Clock)
	var err error
	if a.metrics, err = newMetrics(opts.Registry); err != nil {
		return nil, err
	}
	// A backend with metrics of its own (conntrack.Backend's counts) shows them
	// beside the agent's.
	if c, ok := opts.Backend.(prometheus.Collector); ok {
		var are prometheus.AlreadyRegisteredError
		if err := opts.Registry.Register(c); err != nil && !errors.As(err, &are) {
			return nil, err
		}
	}
	runnerCfg := opts.Runner
	if runnerCfg.Check == nil {
		// A flushed chain is repaired within seconds, not at the next full sync.
		runnerCfg.Check = dataplane.CheckBackend(opts.Backend)
	}
	if a.runner, err = dataplane.NewRunner(a.sync, runnerCfg); err != nil {
		return nil, err
	}
	return a, nil
}

// Run watches the API server and keeps the node programmed until ctx is done. The
// first sync happens once every watch has listed what exists, so the agent never
// applies the empty state of a cache still filling up. It returns an error when it
// cannot start (a bind address in use, no access to the API server); the kernel
// objects it programmed stay in place when it returns, so that traffic keeps
// flowing through a restart. Run may be called once.
func (a *Agent) Run(ctx context.Context) error {
	log := logf.FromContext(ctx).WithValues("node", a.opts.NodeName)
	ctx = logf.IntoContext(ctx, log)
	ctx, cancel := context.WithCancel(ctx)
	var servers sync.WaitGroup
	defer func() {
		cancel()
		servers.Wait()
	}()

	a.hc = healthcheck.NewServer(a.opts.HealthCheckBindAddress, log.WithName("healthcheck"))
	defer a.hc.Close()
	// A /healthz or /metrics server that stops stops the agent.
	errc := make(chan error, 2)
	// Until the first sync the node's rules may be stale: a change is pending.
	a.health.QueuedUpdate()

	// Listeners open before anything else, so that an address in use stops the
	// agent at once rather than after the caches have synced.
	for _, ep := range []struct {
		path, addr string
		h          http.Handler
	}{
		{"/healthz", a.opts.HealthzBindAddress, a.health},
		{"/metrics", a.opts.MetricsBindAddress, promhttp.HandlerFor(a.opts.Registry, promhttp.HandlerOpts{})},
	} {
		if ep.addr == "" || ep.addr == "0" {
			continue
		}
		ln, err := net.Listen("tcp", ep.addr)
		if err != nil {
			return fmt.Errorf("serving %s: %w", ep.path, err)
		}
		mux := http.NewServeMux()
		mux.Handle(ep.path, ep.h)
		log.Info("serving", "path", ep.path, "address", ln.Addr().String())
		servers.Go(func() {
			if err := healthcheck.ServeListener(ctx, ln, mux); err != nil {
				errc <- fmt.Errorf("serving %s on %s: %w", ep.path, ep.addr, err)
			}
		})
	}

	if err := a.startCache(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	log.Info("caches synced; starting to sync the node")
	a.runner.Run()

	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		a.runner.Loop(ctx)
	}()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		cancel()
	}
	<-loopDone
	return err
}

// startCache starts watching Services, svcplane's EndpointSlices and the node,
// and returns once the cache holds everything that exists.
func (a *Agent) startCache(ctx context.Context) error {
	// The slices of svcplane Services carry networking.svcplane.io/service-name,
	// whoever manages them (svcplane for Services with a selector, a person or
	// controller for Services without); core Services' slices never do.
	hasService, err := labels.NewRequirement(v1alpha1.LabelServiceName, selection.Exists, nil)
	if err != nil {
		return err
	}
	c, err := cache.New(a.restCfg, cache.Options{
		Scheme: a.scheme,
		ByObject: map[client.Object]cache.ByObject{
			&discoveryv1.EndpointSlice{}: {Label: labels.NewSelector().Add(*hasService)},
			&corev1.Node{}:               {Field: fields.OneTermEqualSelector("metadata.name", a.opts.NodeName)},
		},
	})
	if err != nil {
		return fmt.Errorf("creating the cache: %w", err)
	}
	for _, obj := range []client.Object{&v1alpha1.Service{}, &discoveryv1.EndpointSlice{}, &corev1.Node{}} {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("watching %T: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(a.handler(obj)); err != nil {
			return fmt.Errorf("watching %T: %w", obj, err)
		}
	}
	cacheErr := make(chan error, 1)
	go func() { cacheErr <- c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		select {
		case err := <-cacheErr:
			return fmt.Errorf("starting the cache: %w", err)
		default:
			return fmt.Errorf("waiting for the cache: %w", context.Cause(ctx))
		}
	}
	a.cache = c
	return nil
}

// desired builds the node's desired state from the cache.
func (a *Agent) desired(ctx context.Context) (*model.State, error) {
	// The cache's objects are shared, not copied: model.Build only reads them.
	var services v1alpha1.ServiceList
	if err := a.cache.List(ctx, &services, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	var epSlices discoveryv1.EndpointSliceList
	if err := a.cache.List(ctx, &epSlices, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	node := model.NodeInfo{Name: a.opts.NodeName}
	var n corev1.Node
	if err := a.cache.Get(ctx, client.ObjectKey{Name: a.opts.NodeName}, &n, client.UnsafeDisableDeepCopy); err == nil {
		node = model.NodeInfoFromNode(&n)
	} else if client.IgnoreNotFound(err) != nil {
		return nil, err
	}

	svcs := make([]*v1alpha1.Service, len(services.Items))
	for i := range services.Items {
		svcs[i] = &services.Items[i]
	}
	eps := make([]*discoveryv1.EndpointSlice, len(epSlices.Items))
	for i := range epSlices.Items {
		eps[i] = &epSlices.Items[i]
	}
	st := model.Build(svcs, eps, node, a.opts.Config)
	return &st, nil
}

// sync is the Runner's SyncFunc: one pass from the cache to the kernel.
func (a *Agent) sync(ctx context.Context, full bool) error {
	log := logf.FromContext(ctx)
	events := a.events.Load()
	if !full && a.synced && events == a.syncedEvents && !draining(a.opts.Backend) {
		// Nothing changed since the last successful sync, and the tamper check
		// looks after the kernel between syncs: a partial sync would write the
		// same rules again, which at 10,000 service ports costs seconds of
		// iptables-legacy for nothing. Full resyncs still run every
		// --full-sync-period.
		log.V(2).Info("nothing changed since the last sync; skipped")
		return nil
	}
	start := a.now()
	changed := a.changes.take()
	a.health.SyncStarted()

	st, err := a.desired(ctx)
	if err == nil {
		err = dataplane.SyncBackend(a.opts.Backend, func() *model.State { return st })(ctx, full)
	}
	end := a.now()
	a.metrics.observeSync(a.opts.Backend, start, end, err)
	a.health.SyncEnded(err)
	if err != nil {
		// The changes are not in the kernel yet: their latency is measured when a
		// later sync puts them there.
		a.changes.putBack(changed)
		if ctx.Err() != nil {
			// Stopped mid-sync: not a failure of the node, nothing to report.
			log.V(1).Info("sync interrupted by shutdown", "full", full)
			return err
		}
		log.Error(err, "sync failed; the next one will be a full resync", "full", full)
		return err
	}
	a.syncedEvents, a.synced = events, true
	for _, t := range changed {
		a.metrics.programmingLatency.Observe(max(0, end.Sub(t).Seconds()))
	}
	// The health check node ports report on the endpoints the rules now use.
	a.reportHealthCheckErr(log, a.hc.Sync(healthcheck.FromState(st)))
	log.V(1).Info("synced", "full", full, "duration", end.Sub(start),
		"servicePorts", len(st.IPv4.ServicePorts)+len(st.IPv6.ServicePorts))
	return nil
}

// draining reports whether b (the IPVS mode) has real servers draining at weight
// 0: only a sync removes them once their connections end, so periodic syncs must
// run even when nothing changes.
func draining(b dataplane.Backend) bool {
	d, ok := b.(interface{ Draining() bool })
	return ok && d.Draining()
}

// reportHealthCheckErr logs err, what the health check node ports' Sync returned,
// when it differs from the last one: a port another process holds fails every
// sync, once a second at most, and one line says as much as a thousand.
func (a *Agent) reportHealthCheckErr(log logr.Logger, err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg == a.lastHealthCheckErr {
		return
	}
	a.lastHealthCheckErr = msg
	if err != nil {
		log.Error(err, "serving health check node ports; retried on every sync, logged again when it changes")
		return
	}
	log.Info("serving every health check node port again")
}
