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
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// Address conventions: ingress addresses are from 192.0.2.0/24 (TEST-NET-1).

var (
	trackedKey = types.NamespacedName{Namespace: "ns", Name: "web"}
	lbStatus   = corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "192.0.2.1"}}}
)

func TestTrackerDecide(t *testing.T) {
	base := Want{UID: "u1", Provider: "p", Inputs: 1, Nodes: "n1", Finalized: true}
	with := func(mutate func(*Want)) Want {
		w := base
		mutate(&w)
		return w
	}
	failure := Failure{Reason: "SyncLoadBalancerFailed", Message: "boom"}
	tests := []struct {
		name string
		// setup acts on the tracker at time 0; the decision is taken at time now.
		setup    func(*Tracker)
		now      time.Duration
		want     Want
		op       Op
		wait     time.Duration
		failure  Failure
		known    bool
		provider string
	}{
		{name: "a new Service is ensured", want: base, op: OpEnsure},
		{name: "an ensured Service needs nothing",
			setup: func(tr *Tracker) { tr.Succeeded(trackedKey, base, lbStatus) },
			want:  base, op: OpNone, known: true, provider: "p"},
		{name: "new nodes only: update",
			setup: func(tr *Tracker) { tr.Succeeded(trackedKey, base, lbStatus) },
			want:  with(func(w *Want) { w.Nodes = "n1,n2" }), op: OpUpdate, known: true, provider: "p"},
		{name: "new inputs: ensure, even with new nodes",
			setup: func(tr *Tracker) { tr.Succeeded(trackedKey, base, lbStatus) },
			want:  with(func(w *Want) { w.Inputs, w.Nodes = 2, "n2" }), op: OpEnsure, known: true, provider: "p"},
		{name: "without the finalizer nothing counts as synced",
			setup: func(tr *Tracker) { tr.Succeeded(trackedKey, base, lbStatus) },
			want:  with(func(w *Want) { w.Finalized = false }), op: OpEnsure, known: true, provider: "p"},
		{name: "another provider: ensure",
			setup: func(tr *Tracker) { tr.Succeeded(trackedKey, base, lbStatus) },
			want:  with(func(w *Want) { w.Provider = "q" }), op: OpEnsure, known: true, provider: "p"},
		{name: "another Service of the same name starts afresh",
			setup: func(tr *Tracker) { tr.Succeeded(trackedKey, base, lbStatus) },
			want:  with(func(w *Want) { w.UID = "u2" }), op: OpEnsure},
		{name: "a failed ensure waits out its backoff",
			setup: func(tr *Tracker) { tr.Failed(trackedKey, base, OpEnsure, failure, 0) },
			now:   2 * time.Second, want: base, wait: 3 * time.Second, failure: failure},
		{name: "a failed ensure is made again once the backoff ran out",
			setup: func(tr *Tracker) { tr.Failed(trackedKey, base, OpEnsure, failure, 0) },
			now:   5 * time.Second, want: base, op: OpEnsure},
		{name: "a change cuts the backoff short",
			setup: func(tr *Tracker) { tr.Failed(trackedKey, base, OpEnsure, failure, 0) },
			now:   time.Second, want: with(func(w *Want) { w.Inputs = 2 }), op: OpEnsure},
		{name: "new nodes cut the backoff of a failed update short",
			setup: func(tr *Tracker) {
				tr.Succeeded(trackedKey, base, lbStatus)
				tr.Failed(trackedKey, with(func(w *Want) { w.Nodes = "n2" }), OpUpdate, failure, 0)
			},
			now: time.Second, want: with(func(w *Want) { w.Nodes = "n3" }), op: OpUpdate, known: true, provider: "p"},
		{name: "a failed update keeps what the provider reported",
			setup: func(tr *Tracker) {
				tr.Succeeded(trackedKey, base, lbStatus)
				tr.Failed(trackedKey, with(func(w *Want) { w.Nodes = "n2" }), OpUpdate, failure, 0)
			},
			now: time.Second, want: with(func(w *Want) { w.Nodes = "n2" }), wait: 4 * time.Second, failure: failure, known: true, provider: "p"},
		{name: "a retry-after delay is kept exactly",
			setup: func(tr *Tracker) { tr.Failed(trackedKey, base, OpEnsure, failure, 1500*time.Millisecond) },
			now:   time.Second, want: base, wait: 500 * time.Millisecond, failure: failure},
		{name: "a delete is made whatever was synced",
			setup: func(tr *Tracker) { tr.Succeeded(trackedKey, base, lbStatus) },
			want:  with(func(w *Want) { w.Delete = true }), op: OpDelete, known: true, provider: "p"},
		{name: "a failed delete backs off whatever the nodes",
			setup: func(tr *Tracker) {
				tr.Failed(trackedKey, with(func(w *Want) { w.Delete = true }), OpDelete, failure, 0)
			},
			now: time.Second, want: with(func(w *Want) { w.Delete, w.Nodes = true, "other" }), wait: 4 * time.Second, failure: failure},
		{name: "a failed ensure does not hold back a delete",
			setup: func(tr *Tracker) { tr.Failed(trackedKey, base, OpEnsure, failure, 0) },
			now:   time.Second, want: with(func(w *Want) { w.Delete = true }), op: OpDelete},
		{name: "a resync has the Service ensured again at once",
			setup: func(tr *Tracker) {
				tr.Succeeded(trackedKey, base, lbStatus)
				tr.Failed(trackedKey, with(func(w *Want) { w.Inputs = 2 }), OpEnsure, failure, 0)
				tr.Invalidate(trackedKey)
			},
			now: time.Second, want: with(func(w *Want) { w.Inputs = 2 }), op: OpEnsure, provider: "p"},
		{name: "a forgotten Service is new",
			setup: func(tr *Tracker) {
				tr.Succeeded(trackedKey, base, lbStatus)
				tr.Forget(trackedKey)
			},
			want: base, op: OpEnsure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
			tr := NewTracker(0, 0, clk)
			if tc.setup != nil {
				tc.setup(tr)
			}
			clk.SetTime(clk.Now().Add(tc.now))
			d := tr.Decide(trackedKey, tc.want)
			if d.Op != tc.op || d.Wait != tc.wait || d.Failure != tc.failure || d.Known != tc.known || d.Provider != tc.provider {
				t.Errorf("Decide = {op %v, wait %v, failure %+v, known %v, provider %q}, want {op %v, wait %v, failure %+v, known %v, provider %q}",
					d.Op, d.Wait, d.Failure, d.Known, d.Provider, tc.op, tc.wait, tc.failure, tc.known, tc.provider)
			}
			if d.Known && !reflect.DeepEqual(d.Status, lbStatus) {
				t.Errorf("Status = %+v, want %+v", d.Status, lbStatus)
			}
		})
	}
}

func TestTrackerFailedCountsAndResets(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
	tr := NewTracker(200*time.Millisecond, time.Second, clk)
	want := Want{UID: "u1", Provider: "p", Inputs: 1}
	var delays []time.Duration
	for range 4 {
		delays = append(delays, tr.Failed(trackedKey, want, OpEnsure, Failure{}, 0))
	}
	if exp := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second}; !reflect.DeepEqual(delays, exp) {
		t.Errorf("delays %v, want %v", delays, exp)
	}
	if got := tr.Failed(trackedKey, want, OpEnsure, Failure{Reason: "Pending"}, 3*time.Second); got != 3*time.Second {
		t.Errorf("retry-after delay %v, want 3s", got)
	}
	if n := tr.Failures(trackedKey, "u1"); n != 4 {
		t.Errorf("a retry-after counted as a failure: %d failures, want 4", n)
	}
	tr.Succeeded(trackedKey, want, lbStatus)
	if n := tr.Failures(trackedKey, "u1"); n != 0 {
		t.Errorf("%d failures after a success, want 0", n)
	}
	if got := tr.Failed(trackedKey, want, OpEnsure, Failure{}, 0); got != 200*time.Millisecond {
		t.Errorf("first delay after a success %v, want the minimum", got)
	}
}

func TestTrackerBackoff(t *testing.T) {
	tr := NewTracker(0, 0, nil)
	var got []time.Duration
	for n := 1; n <= 9; n++ {
		got = append(got, tr.Backoff(n))
	}
	exp := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 300 * time.Second, 300 * time.Second, 300 * time.Second}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("kube's backoff: %v, want %v", got, exp)
	}
	tr = NewTracker(200*time.Millisecond, 3*time.Second, nil)
	if d := tr.Backoff(1); d != 200*time.Millisecond {
		t.Errorf("Backoff(1) = %v", d)
	}
	if d := tr.Backoff(1000); d != 3*time.Second {
		t.Errorf("Backoff(1000) = %v: overflow after many failures", d)
	}
}

func TestDefaultIPMode(t *testing.T) {
	in := &corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{
		{IP: "192.0.2.1"},
		{IP: "192.0.2.2", IPMode: ptr.To(corev1.LoadBalancerIPModeProxy)},
		{Hostname: "lb.example.com"},
	}}
	out := DefaultIPMode(in)
	if m := out.Ingress[0].IPMode; m == nil || *m != corev1.LoadBalancerIPModeVIP {
		t.Errorf("an IP without ipMode gets VIP, as kube-apiserver defaults it: %v", m)
	}
	if m := out.Ingress[1].IPMode; m == nil || *m != corev1.LoadBalancerIPModeProxy {
		t.Errorf("the provider's ipMode is kept: %v", m)
	}
	if out.Ingress[2].IPMode != nil {
		t.Error("a hostname has no ipMode")
	}
	if in.Ingress[0].IPMode != nil {
		t.Error("the provider's status was modified")
	}
}

func TestFingerprint(t *testing.T) {
	svc := &v1alpha1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "u1"},
		Spec:       v1alpha1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []v1alpha1.ServicePort{{Port: 80}}},
	}
	base := Fingerprint(svc)
	same := svc.DeepCopy()
	same.Finalizers = []string{v1alpha1.FinalizerLoadBalancerCleanup}
	same.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.0.2.1"}}
	same.Status.Conditions = []metav1.Condition{{Type: "LoadBalancerReady"}}
	same.Status.Display.ExternalIP = "192.0.2.1"
	same.ResourceVersion = "42"
	if Fingerprint(same) != base {
		t.Error("what the reconciler writes itself changed the fingerprint")
	}
	for name, change := range map[string]func(*v1alpha1.Service){
		"annotation": func(s *v1alpha1.Service) {
			s.Annotations = map[string]string{v1alpha1.AnnotationLoadBalancerIPPool: "p"}
		},
		"label":     func(s *v1alpha1.Service) { s.Labels = map[string]string{"team": "blue"} },
		"spec":      func(s *v1alpha1.Service) { s.Spec.LoadBalancerSourceRanges = []string{"192.0.2.0/24"} },
		"node port": func(s *v1alpha1.Service) { s.Status.Ports = []v1alpha1.ServicePortStatus{{Port: 80, NodePort: 30080}} },
		"families":  func(s *v1alpha1.Service) { s.Status.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol} },
		"uid":       func(s *v1alpha1.Service) { s.UID = "u2" },
	} {
		changed := svc.DeepCopy()
		change(changed)
		if Fingerprint(changed) == base {
			t.Errorf("a change of the %s did not change the fingerprint", name)
		}
	}
}
