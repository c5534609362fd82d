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

// Command endpointslice-bench measures how fast and how frugally svcplane's
// EndpointSlice reconciler follows pod changes. Against the test control plane (or the
// cluster named by --kubeconfig) it runs the manager's reconcilers in-process, creates
// --services Services with --pods-per-service ready pods each, then flips the readiness
// of random pods at --rate per second for --duration and reports the latency from each
// pod status write to the slice showing it (p50/p90/p99/max) and the EndpointSlice
// writes per pod change.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers"
	"github.com/svcplane/svcplane/internal/endpoints"
	"github.com/svcplane/svcplane/internal/ledger"
	"github.com/svcplane/svcplane/test/controlplane"
)

func main() {
	var (
		services, podsPerService, workers int
		rate                              float64
		duration, batchPeriod             time.Duration
		assets, kubeconfig                string
	)
	flag.IntVar(&services, "services", 1000, "Number of Services.")
	flag.IntVar(&podsPerService, "pods-per-service", 10, "Pods selected by each Service.")
	flag.Float64Var(&rate, "rate", 20, "Pod readiness flips per second.")
	flag.DurationVar(&duration, "duration", 30*time.Second, "How long to flip readiness.")
	flag.DurationVar(&batchPeriod, "batch-period", 0, "The reconciler's --endpointslice-updates-batch-period.")
	flag.IntVar(&workers, "workers", 16, "Parallel API clients for setup.")
	flag.StringVar(&assets, "assets", "", "Directory with kube-apiserver and etcd, when no --kubeconfig is given (default: $KUBEBUILDER_ASSETS, else bin/k8s in the repository).")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	// controller-runtime registers --kubeconfig: given, it names the cluster to use
	// instead of a local control plane.
	kubeconfig = flag.Lookup("kubeconfig").Value.String()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))

	if err := run(services, podsPerService, workers, rate, duration, batchPeriod, assets, kubeconfig); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(services, podsPerService, workers int, rate float64, duration, batchPeriod time.Duration, assets, kubeconfig string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var cfg *rest.Config
	if kubeconfig != "" {
		c, err := ctrl.GetConfig()
		if err != nil {
			return err
		}
		cfg = c
	} else {
		abs, err := filepath.Abs(assets)
		if assets == "" {
			abs, err = controlplane.Assets()
		}
		if err != nil {
			return err
		}
		env := &envtest.Environment{
			CRDDirectoryPaths:     []string{"config/crd/bases"},
			ErrorIfCRDPathMissing: true,
			BinaryAssetsDirectory: abs,
		}
		c, err := env.Start()
		if err != nil {
			return fmt.Errorf("starting the control plane: %w", err)
		}
		defer func() { _ = env.Stop() }()
		cfg = c
	}
	cfg.QPS, cfg.Burst = 1000, 2000

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	if err := startManager(ctx, cfg, scheme, batchPeriod); err != nil {
		return err
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "eps-bench-"}}
	if err := c.Create(ctx, ns); err != nil {
		return err
	}
	fmt.Printf("setup: %d Services x %d pods in namespace %s\n", services, podsPerService, ns.Name)
	start := time.Now()
	pods, err := setup(ctx, c, ns.Name, services, podsPerService, workers)
	if err != nil {
		return err
	}
	tr := newTracker()
	stopWatch, err := tr.watch(ctx, cfg, ns.Name)
	if err != nil {
		return err
	}
	defer stopWatch()
	total := services * podsPerService
	if err := waitFor(ctx, 10*time.Minute, func() bool { return tr.readyEndpoints() == total }); err != nil {
		return fmt.Errorf("waiting for %d ready endpoints (have %d): %w", total, tr.readyEndpoints(), err)
	}
	fmt.Printf("setup: all %d endpoints ready after %s\n", total, time.Since(start).Round(time.Millisecond))

	// The measured phase: flip random pods at a steady rate.
	writesBefore := tr.writes.Load()
	interval := time.Duration(float64(time.Second) / rate)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	deadline := time.Now().Add(duration)
	flips := 0
	ready := make(map[string]bool, len(pods))
	for _, p := range pods {
		ready[p.Name] = true
	}
	for time.Now().Before(deadline) {
		<-ticker.C
		pod := pods[rand.IntN(len(pods))]
		if tr.pending(pod.Name) {
			continue // its previous flip has not shown yet; pick another next tick
		}
		want := !ready[pod.Name]
		tr.expect(pod.Name, want)
		if err := setReady(ctx, c, pod, want); err != nil {
			return err
		}
		ready[pod.Name] = want
		flips++
	}
	if err := waitFor(ctx, time.Minute, func() bool { return tr.outstanding() == 0 }); err != nil {
		return fmt.Errorf("%d flips never showed in a slice: %w", tr.outstanding(), err)
	}
	// Let trailing writes (there should be none) land before counting.
	time.Sleep(2 * time.Second)
	writes := tr.writes.Load() - writesBefore

	lat := tr.latencies()
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(100 * time.Microsecond)
	}
	fmt.Printf("flips: %d at %.0f/s over %s, batch period %s\n", flips, rate, duration, batchPeriod)
	fmt.Printf("latency pod status write -> slice: p50 %s  p90 %s  p99 %s  max %s\n", pct(0.50), pct(0.90), pct(0.99), lat[len(lat)-1].Round(100*time.Microsecond))
	fmt.Printf("EndpointSlice writes: %d for %d pod changes = %.2f writes per change\n", writes, flips, float64(writes)/float64(flips))
	return nil
}

func startManager(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, batchPeriod time.Duration) error {
	cidrs, _ := ledger.ParseServiceCIDRs("10.96.0.0/12")
	book, err := ledger.NewBook(cidrs, "30000-32767")
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return err
	}
	if err := (&controllers.AllocationReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("svcplane-allocator"),
		Book: book, MaxConcurrentReconciles: 4,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&controllers.EndpointSliceReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("svcplane-endpointslice"),
		MaxEndpointsPerSlice: endpoints.DefaultMaxEndpointsPerSlice,
		BatchPeriod:          batchPeriod, MaxConcurrentReconciles: 5,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
			os.Exit(1)
		}
	}()
	return nil
}

// setup creates the Services and their ready pods with a pool of workers.
func setup(ctx context.Context, c client.Client, ns string, services, podsPerService, workers int) ([]*corev1.Pod, error) {
	type job struct{ svc, pod int }
	jobs := make(chan job)
	var (
		mu   sync.Mutex
		pods []*corev1.Pod
		errs = make(chan error, workers)
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := createOne(ctx, c, ns, j.svc, j.pod, &mu, &pods); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for s := range services {
		for p := -1; p < podsPerService; p++ { // -1 is the Service itself
			select {
			case jobs <- job{s, p}:
			case err := <-errs:
				close(jobs)
				return nil, err
			}
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	return pods, nil
}

func createOne(ctx context.Context, c client.Client, ns string, s, p int, mu *sync.Mutex, pods *[]*corev1.Pod) error {
	app := map[string]string{"app": fmt.Sprintf("svc-%d", s)}
	if p < 0 {
		return c.Create(ctx, &v1alpha1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("svc-%d", s)},
			Spec:       v1alpha1.ServiceSpec{Selector: app, Ports: []v1alpha1.ServicePort{{Name: "http", Port: 80}}},
		})
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("svc-%d-pod-%d", s, p), Labels: app},
		Spec:       corev1.PodSpec{NodeName: "bench-node", Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app"}}},
	}
	if err := c.Create(ctx, pod); err != nil {
		return err
	}
	// 10.128.0.0/9 holds 2^23 pod addresses: one per pod, from its index.
	n := s*1000 + p
	ip := fmt.Sprintf("10.%d.%d.%d", 128+n>>16&0x7f, n>>8&0xff, n&0xff)
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if err := c.Status().Update(ctx, pod); err != nil {
		return err
	}
	mu.Lock()
	*pods = append(*pods, pod)
	mu.Unlock()
	return nil
}

func setReady(ctx context.Context, c client.Client, pod *corev1.Pod, ready bool) error {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	patch := client.MergeFrom(pod.DeepCopy())
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
	return c.Status().Patch(ctx, pod, patch)
}

func waitFor(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// tracker follows every EndpointSlice write in the namespace through a watch: it
// counts them and times each expected readiness change.
type tracker struct {
	writes atomic.Int64

	mu      sync.Mutex
	ready   map[string]bool // pod name -> ready, as the slices show it
	want    map[string]expectation
	results []time.Duration
}

type expectation struct {
	ready bool
	since time.Time
}

func newTracker() *tracker {
	return &tracker{ready: map[string]bool{}, want: map[string]expectation{}}
}

func (t *tracker) expect(pod string, ready bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.want[pod] = expectation{ready: ready, since: time.Now()}
}

func (t *tracker) pending(pod string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.want[pod]
	return ok
}

func (t *tracker) outstanding() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.want)
}

func (t *tracker) readyEndpoints() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, r := range t.ready {
		if r {
			n++
		}
	}
	return n
}

func (t *tracker) latencies() []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.results)
}

func (t *tracker) observe(s *discoveryv1.EndpointSlice) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ep := range s.Endpoints {
		if ep.TargetRef == nil || ep.Conditions.Ready == nil {
			continue
		}
		name, ready := ep.TargetRef.Name, *ep.Conditions.Ready
		t.ready[name] = ready
		if w, ok := t.want[name]; ok && w.ready == ready {
			t.results = append(t.results, now.Sub(w.since))
			delete(t.want, name)
		}
	}
}

// watch starts a raw watch on the namespace's EndpointSlices. A watch, rather than an
// informer, sees every single write.
func (t *tracker) watch(ctx context.Context, cfg *rest.Config, ns string) (func(), error) {
	wc, err := client.NewWithWatch(cfg, client.Options{})
	if err != nil {
		return nil, err
	}
	w, err := wc.Watch(ctx, &discoveryv1.EndpointSliceList{}, client.InNamespace(ns))
	if err != nil {
		return nil, err
	}
	go func() {
		for ev := range w.ResultChan() {
			s, ok := ev.Object.(*discoveryv1.EndpointSlice)
			if !ok {
				continue
			}
			switch ev.Type {
			case watch.Added, watch.Modified, watch.Deleted:
				t.writes.Add(1)
			}
			if ev.Type != watch.Deleted {
				t.observe(s)
			}
		}
	}()
	return w.Stop, nil
}
