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

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers"
)

// allocResult is one side of the allocation workload.
type allocResult struct {
	Lat   latencySummary
	Total time.Duration
	// Create is a svcplane create call alone; for core Services it is Lat.
	Create latencySummary
	// WatchLag runs from a svcplane create call's return to a watch (the harness's
	// own) showing the new Service: the delay the manager's informer shares before
	// it can allocate. Zero for core Services.
	WatchLag latencySummary
}

// allocWorkload creates n svcplane Services and then n core Services, each with
// clients parallel callers, in namespaces of their own. svcplane's latency runs from
// the create call to the watch showing Allocated=True; core's is the create call
// itself, because kube-apiserver allocates inside it.
func allocWorkload(ctx context.Context, c client.WithWatch, n, clients int) (svcp, core allocResult, err error) {
	nsSvcp, err := namespace(ctx, c, "alloc-svcp-")
	if err != nil {
		return svcp, core, err
	}
	nsCore, err := namespace(ctx, c, "alloc-core-")
	if err != nil {
		return svcp, core, err
	}

	// svcplane: a raw watch sees each status write as it lands.
	var (
		mu        sync.Mutex
		started   = map[string]time.Time{}
		created   = map[string]time.Time{} // when the create call returned
		added     = map[string]time.Time{} // when the watch showed the Service
		allocated = map[string]time.Time{}
		allDone   = make(chan struct{})
	)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if err := follow(wctx, c, &v1alpha1.ServiceList{}, nsSvcp, func(ev watch.Event) {
		s, ok := ev.Object.(*v1alpha1.Service)
		if !ok || ev.Type == watch.Deleted {
			return
		}
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if _, seen := added[s.Name]; !seen {
			added[s.Name] = now
		}
		if !meta.IsStatusConditionTrue(s.Status.Conditions, controllers.ConditionAllocated) {
			return
		}
		if _, seen := allocated[s.Name]; !seen {
			allocated[s.Name] = now
			if len(allocated) == n {
				close(allDone)
			}
		}
	}); err != nil {
		return svcp, core, err
	}
	begin := time.Now()
	if err := parallel(ctx, n, clients, func(i int) error {
		name := fmt.Sprintf("svc-%d", i)
		mu.Lock()
		started[name] = time.Now()
		mu.Unlock()
		err := c.Create(ctx, &v1alpha1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: nsSvcp, Name: name},
			Spec:       v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{{Name: "http", Port: 80}}},
		})
		mu.Lock()
		created[name] = time.Now()
		mu.Unlock()
		return err
	}); err != nil {
		return svcp, core, err
	}
	select {
	case <-allDone:
	case <-time.After(10 * time.Minute):
		return svcp, core, fmt.Errorf("only %d of %d svcplane Services allocated after 10 minutes", len(allocated), n)
	case <-ctx.Done():
		return svcp, core, ctx.Err()
	}
	mu.Lock()
	var lat, create, lag []time.Duration
	var last time.Time
	for name, at := range allocated {
		lat = append(lat, at.Sub(started[name]))
		create = append(create, created[name].Sub(started[name]))
		// The watch can show a Service before its create call returns.
		lag = append(lag, max(0, added[name].Sub(created[name])))
		if at.After(last) {
			last = at
		}
	}
	mu.Unlock()
	svcp = allocResult{Lat: summarize(lat), Total: last.Sub(begin), Create: summarize(create), WatchLag: summarize(lag)}

	// core: the create call is the whole allocation.
	coreLat := make([]time.Duration, n)
	begin = time.Now()
	if err := parallel(ctx, n, clients, func(i int) error {
		t := time.Now()
		err := c.Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: nsCore, Name: fmt.Sprintf("svc-%d", i)},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(80)}}},
		})
		coreLat[i] = time.Since(t)
		return err
	}); err != nil {
		return svcp, core, err
	}
	core = allocResult{Lat: summarize(coreLat), Total: time.Since(begin)}
	return svcp, core, nil
}

// fullPoint is the shape of the allocation point at a 99 %-full range: the prefix
// length of both Service ranges (kube-apiserver's and the manager's, the same size)
// and how many measured creates take them to 99 % full. The range stays small
// because kube-apiserver's core Service creates slow down as the range fills: on this
// 2-core machine, under load, filling a /18 went from about 35 to 12 creates a second
// and a measured create at 93 % of it exceeded the API server's 60 s request timeout.
type fullPoint struct {
	Bits     int
	Services int
}

// usable is the range's allocatable addresses: both allocators leave out the network
// and broadcast addresses.
func (f fullPoint) usable() int { return 1<<(32-f.Bits) - 2 }

// prefill is how many Services fill the range before the measured creates, so that
// 1 % of the range is still free after them: one address is already held (the
// kubernetes Service on the core side, the warm-up Service on svcplane's).
func (f fullPoint) prefill() int {
	return f.usable() - 1 - f.Services - (f.usable()+99)/100
}

// allocFullPoint is the allocation workload at a nearly full range: on a control plane
// of its own and with a manager of its own, both with a Service range of fp.Bits, it
// fills each side's range with fp.prefill() Services (not measured) and then measures
// fp.Services creates as allocWorkload does, which take both ranges to 99 % full.
func allocFullPoint(ctx context.Context, b *bench, fp fullPoint, clients int) (*allocPair, error) {
	fill := fp.prefill()
	if fp.Bits < 12 || fp.Bits > 30 || fill < 0 {
		return nil, fmt.Errorf("%d Services do not fit a /%d Service range with 1 %% left free", fp.Services, fp.Bits)
	}
	root, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	env, kubeconfig, err := controlPlane(root, b.k8sDir, fmt.Sprintf("10.0.0.0/%d", fp.Bits))
	if err != nil {
		return nil, err
	}
	defer func() { _ = env.Stop() }()
	fb := *b
	fb.kubeconfig = kubeconfig
	fb.kubeconfigPath = filepath.Join(b.dir, "kubeconfig-alloc-full")
	if err := os.WriteFile(fb.kubeconfigPath, kubeconfig, 0o600); err != nil {
		return nil, err
	}
	restCfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	restCfg.QPS, restCfg.Burst = -1, 0
	if fb.c, err = client.NewWithWatch(restCfg, client.Options{Scheme: b.c.Scheme()}); err != nil {
		return nil, err
	}
	mgr, err := fb.startManager("manager-alloc-full", fmt.Sprintf("--service-cluster-ip-range=10.96.0.0/%d", fp.Bits))
	if err != nil {
		return nil, err
	}
	defer mgr.stop()
	if err := warmUp(ctx, fb.c, mgr); err != nil {
		return nil, err
	}

	fmt.Printf("allocation at 99 %% full: filling each side's /%d with %s Services\n", fp.Bits, num(fill))
	nsSvcp, err := namespace(ctx, fb.c, "fill-svcp-")
	if err != nil {
		return nil, err
	}
	nsCore, err := namespace(ctx, fb.c, "fill-core-")
	if err != nil {
		return nil, err
	}
	if err := parallel(ctx, fill, clients, func(i int) error {
		return fb.c.Create(ctx, &v1alpha1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: nsSvcp, Name: fmt.Sprintf("fill-%d", i)},
			Spec:       v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{{Name: "http", Port: 80}}},
		})
	}); err != nil {
		return nil, fmt.Errorf("filling svcplane's range: %w", err)
	}
	if err := waitAllocated(ctx, fb.c, nsSvcp, fill); err != nil {
		return nil, fmt.Errorf("waiting for the manager to allocate the fill: %w (%v)", err, mgr.alive())
	}
	if err := parallel(ctx, fill, clients, func(i int) error {
		return fb.c.Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: nsCore, Name: fmt.Sprintf("fill-%d", i)},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(80)}}},
		})
	}); err != nil {
		return nil, fmt.Errorf("filling the core range: %w", err)
	}

	held := 1 + fill
	fmt.Printf("allocation at 99 %% full: %d Services by %d clients into ranges %.1f %% full\n", fp.Services, clients, 100*float64(held)/float64(fp.usable()))
	svcp, core, err := allocWorkload(ctx, fb.c, fp.Services, clients)
	if err != nil {
		return nil, err
	}
	return &allocPair{N: fp.Services, Svcplane: svcp, Core: core, Range: fmt.Sprintf("/%d", fp.Bits), Usable: fp.usable(), HeldBefore: held}, nil
}

// namespace creates a namespace named with prefix.
func namespace(ctx context.Context, c client.Client, prefix string) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	if err := c.Create(ctx, ns); err != nil {
		return "", err
	}
	return ns.Name, nil
}

// parallel calls f(0..n-1) from workers goroutines and returns the first error.
func parallel(ctx context.Context, n, workers int, f func(int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if err := f(i); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
loop:
	for i := range n {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break loop
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return ctx.Err()
	}
}
