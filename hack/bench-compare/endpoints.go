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
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// Sides of a comparison.
const (
	sideSvcplane = "svcplane"
	sideKube     = "kubernetes"
)

// kubeManagedBy is the managed-by value of kube-controller-manager's EndpointSlices.
const kubeManagedBy = "endpointslice-controller.k8s.io"

// endpointsResult is one point of the endpoints workload.
type endpointsResult struct {
	Services, PodsPerService int
	Flips                    int
	Setup                    map[string]time.Duration // until the side showed every pod ready
	Lat                      map[string]latencySummary
	Raw                      map[string][]time.Duration
	Writes                   map[string]int64 // slice writes during the flips
	Usage                    map[string]procUsage
	CPUFlips                 map[string]float64 // CPU seconds during the flips
}

// endpointsWorkload starts svcplane's manager and kube-controller-manager (only its
// EndpointSlice controller), creates services svcplane Services and as many core
// Services with the same names and selectors, podsPerService ready pods for each, waits
// until both sides show every pod, then flips the readiness of random pods at rate per
// second for duration and times how long each flip takes to show in each side's slice.
func endpointsWorkload(ctx context.Context, b *bench, services, podsPerService int, rate float64, duration time.Duration) (*endpointsResult, error) {
	ns, err := namespace(ctx, b.c, "eps-")
	if err != nil {
		return nil, err
	}
	tag := fmt.Sprintf("%d", services)
	mgr, err := b.startManager("manager-endpoints-" + tag)
	if err != nil {
		return nil, err
	}
	defer mgr.stop()
	kcm, err := startProcess(b.dir, "kube-controller-manager-"+tag, "", nil, b.bin("kube-controller-manager"),
		"--kubeconfig="+b.kubeconfigPath,
		"--controllers=endpointslice-controller",
		"--leader-elect=false",
		// Neither side is throttled by its client: controller-runtime sends as fast as the
		// API server's priority and fairness lets it, so kube-controller-manager may too.
		"--kube-api-qps=10000", "--kube-api-burst=20000",
		"--secure-port=0",
		"--concurrent-service-endpoint-syncs=5",
	)
	if err != nil {
		return nil, err
	}
	defer kcm.stop()
	procs := map[string]*process{sideSvcplane: mgr, sideKube: kcm}

	tr := newSliceTracker()
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if err := follow(wctx, b.c, &discoveryv1.EndpointSliceList{}, ns, tr.handle); err != nil {
		return nil, err
	}

	fmt.Printf("endpoints %d x %d: creating Services and pods in %s\n", services, podsPerService, ns)
	begin := time.Now()
	pods := make([]*corev1.Pod, services*podsPerService)
	if err := parallel(ctx, services*(podsPerService+2), b.clients, func(i int) error {
		s, k := i/(podsPerService+2), i%(podsPerService+2)
		app := map[string]string{"app": fmt.Sprintf("svc-%d", s)}
		name := fmt.Sprintf("svc-%d", s)
		switch k {
		case podsPerService:
			return b.c.Create(ctx, &v1alpha1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: v1alpha1.ServiceSpec{Selector: app, Ports: []v1alpha1.ServicePort{{Name: "http", Port: 80}}}})
		case podsPerService + 1:
			return b.c.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: corev1.ServiceSpec{Selector: app, Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(80)}}}})
		}
		pod, err := readyPod(ctx, b.c, ns, s, k, app)
		pods[s*podsPerService+k] = pod
		return err
	}); err != nil {
		return nil, err
	}
	total := services * podsPerService
	res := &endpointsResult{Services: services, PodsPerService: podsPerService, Setup: map[string]time.Duration{},
		Lat: map[string]latencySummary{}, Raw: map[string][]time.Duration{}, Writes: map[string]int64{},
		Usage: map[string]procUsage{}, CPUFlips: map[string]float64{}}
	for _, side := range []string{sideSvcplane, sideKube} {
		if err := waitUntil(ctx, 20*time.Minute, 50*time.Millisecond, func() (bool, error) {
			return tr.readyCount(side) == total, procs[side].alive()
		}); err != nil {
			return nil, fmt.Errorf("%s: waiting for %d ready endpoints (have %d): %w", side, total, tr.readyCount(side), err)
		}
		res.Setup[side] = time.Since(begin)
	}
	fmt.Printf("endpoints %d x %d: both sides show all %d pods ready (svcplane %s, kubernetes %s)\n", services, podsPerService, total,
		res.Setup[sideSvcplane].Round(time.Millisecond), res.Setup[sideKube].Round(time.Millisecond))
	// Let the tails of setup settle so that the writes counted are the flips'.
	time.Sleep(3 * time.Second)

	before := map[string]procUsage{}
	writesBefore := map[string]int64{}
	for side, p := range procs {
		u, err := p.usage()
		if err != nil {
			return nil, err
		}
		before[side] = u
		writesBefore[side] = tr.writeCount(side)
	}
	interval := time.Duration(float64(time.Second) / rate)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	ready := make(map[string]bool, len(pods))
	for _, p := range pods {
		ready[p.Name] = true
	}
	deadline := time.Now().Add(duration)
	for time.Now().Before(deadline) {
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		pod := pods[rand.IntN(len(pods))]
		if tr.pending(pod.Name) {
			continue // its previous flip has not shown on both sides yet
		}
		want := !ready[pod.Name]
		tr.expect(pod.Name, want)
		if err := setReady(ctx, b.c, pod, want); err != nil {
			return nil, err
		}
		ready[pod.Name] = want
		res.Flips++
	}
	if err := waitUntil(ctx, 2*time.Minute, 50*time.Millisecond, func() (bool, error) { return tr.outstanding() == 0, nil }); err != nil {
		return nil, fmt.Errorf("%d flips never showed on both sides: %w", tr.outstanding(), err)
	}
	time.Sleep(2 * time.Second) // trailing writes, if any, are counted
	for side, p := range procs {
		u, err := p.usage()
		if err != nil {
			return nil, err
		}
		res.Usage[side] = u
		res.CPUFlips[side] = u.CPUSeconds - before[side].CPUSeconds
		res.Writes[side] = tr.writeCount(side) - writesBefore[side]
		res.Raw[side] = tr.latencies(side)
		res.Lat[side] = summarize(res.Raw[side])
	}
	// Leave nothing for the next point's processes to list.
	zero := int64(0)
	for _, obj := range []client.Object{&corev1.Pod{}, &corev1.Service{}, &v1alpha1.Service{}, &discoveryv1.EndpointSlice{}} {
		if err := b.c.DeleteAllOf(ctx, obj, client.InNamespace(ns), client.GracePeriodSeconds(zero)); err != nil {
			// The measurement is done; a slow collection delete (thousands of
			// Services) only leaves objects that the next point ignores.
			fmt.Fprintf(os.Stderr, "warning: cleaning %s: %v\n", ns, err)
		}
	}
	return res, nil
}

// readyPod creates pod k of Service s, bound to a node and reported Running and Ready
// with an address of its own (no kubelet runs: the harness plays it).
func readyPod(ctx context.Context, c client.Client, ns string, s, k int, labels map[string]string) (*corev1.Pod, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("svc-%d-pod-%d", s, k), Labels: labels},
		Spec:       corev1.PodSpec{NodeName: "bench-node", Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app"}}},
	}
	if err := c.Create(ctx, pod); err != nil {
		return nil, err
	}
	ip := podIP(s*1000 + k)
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	return pod, c.Status().Update(ctx, pod)
}

// podIP returns the n-th address of 10.128.0.0/9 (2^23 pod addresses).
func podIP(n int) string {
	return fmt.Sprintf("10.%d.%d.%d", 128+(n>>16)&0x7f, (n>>8)&0xff, n&0xff)
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

// sliceTracker follows every EndpointSlice write in a namespace through a raw watch
// (an informer could merge writes) and times, for each side separately, how long each
// expected readiness change takes to show in that side's slices.
type sliceTracker struct {
	mu      sync.Mutex
	writes  map[string]int64
	ready   map[string]map[string]bool        // side -> pod -> ready as the slices show it
	want    map[string]map[string]expectation // side -> pod -> what it should become
	results map[string][]time.Duration
}

type expectation struct {
	ready bool
	since time.Time
}

func newSliceTracker() *sliceTracker {
	t := &sliceTracker{writes: map[string]int64{}, ready: map[string]map[string]bool{},
		want: map[string]map[string]expectation{}, results: map[string][]time.Duration{}}
	for _, side := range []string{sideSvcplane, sideKube} {
		t.ready[side], t.want[side] = map[string]bool{}, map[string]expectation{}
	}
	return t
}

// sideOf names the side that manages s, "" for anyone else's slice.
func sideOf(s *discoveryv1.EndpointSlice) string {
	switch s.Labels[v1alpha1.LabelManagedBy] {
	case v1alpha1.ManagedByValue:
		return sideSvcplane
	case kubeManagedBy:
		return sideKube
	}
	return ""
}

// handle takes one watch event.
func (t *sliceTracker) handle(ev watch.Event) {
	s, ok := ev.Object.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	side := sideOf(s)
	if side == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.writes[side]++
	if ev.Type != watch.Deleted {
		t.observeLocked(side, s, time.Now())
	}
}

func (t *sliceTracker) observeLocked(side string, s *discoveryv1.EndpointSlice, now time.Time) {
	for _, ep := range s.Endpoints {
		if ep.TargetRef == nil || ep.Conditions.Ready == nil {
			continue
		}
		name, ready := ep.TargetRef.Name, *ep.Conditions.Ready
		t.ready[side][name] = ready
		if w, ok := t.want[side][name]; ok && w.ready == ready {
			t.results[side] = append(t.results[side], now.Sub(w.since))
			delete(t.want[side], name)
		}
	}
}

func (t *sliceTracker) expect(pod string, ready bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for side := range t.want {
		t.want[side][pod] = expectation{ready: ready, since: time.Now()}
	}
}

func (t *sliceTracker) pending(pod string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for side := range t.want {
		if _, ok := t.want[side][pod]; ok {
			return true
		}
	}
	return false
}

func (t *sliceTracker) outstanding() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for side := range t.want {
		n += len(t.want[side])
	}
	return n
}

func (t *sliceTracker) readyCount(side string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, r := range t.ready[side] {
		if r {
			n++
		}
	}
	return n
}

func (t *sliceTracker) writeCount(side string) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.writes[side]
}

func (t *sliceTracker) latencies(side string) []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.results[side])
}
