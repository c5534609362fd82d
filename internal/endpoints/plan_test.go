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

package endpoints

// IP conventions (see helpers_test.go): pod IPs in 10.244.0.0/16 and fd00:10:244::/64,
// nodes "node-a"/"node-b" in zones "zone-a"/"zone-b", namespace "ns", Service "svc".
// Every case goes through step(), which applies the plan to a fake API server and
// checks that Compute on the result writes nothing more (the fixpoint) and that the
// result satisfies checkInvariants.

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// placeholderSlice is an empty slice of svc (default Service) as a user or an older
// run would have left it, with a fixed name.
func placeholderSlice(name string, at discoveryv1.AddressType) *discoveryv1.EndpointSlice {
	svc := newSvc()
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:            name,
			Namespace:       testNS,
			Labels:          wantLabels(svc),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(svc, v1alpha1.GroupVersion.WithKind("Service"))},
		},
		AddressType: at,
		Ports:       []discoveryv1.EndpointPort{},
	}
}

// sliceNameOf is the name of the slice holding pod's endpoint of type at, or "".
func sliceNameOf(ss []*discoveryv1.EndpointSlice, at discoveryv1.AddressType, pod string) string {
	if s, _ := findEndpoint(ss, at, pod); s != nil {
		return s.Name
	}
	return ""
}

func withoutPod(pods []*corev1.Pod, name string) []*corev1.Pod {
	return slices.DeleteFunc(slices.Clone(pods), func(p *corev1.Pod) bool { return p.Name == name })
}

func replacingPod(pods []*corev1.Pod, p *corev1.Pod) []*corev1.Pod {
	out := slices.Clone(pods)
	for i := range out {
		if out[i].Name == p.Name {
			out[i] = p
		}
	}
	return out
}

// assertNoMoves checks that every endpoint present before and after is in the same
// slice: Compute never moves endpoints between slices needlessly.
func assertNoMoves(t *testing.T, before, after []*discoveryv1.EndpointSlice) {
	t.Helper()
	for _, at := range []discoveryv1.AddressType{v4, v6} {
		for _, pod := range podNames(before, at) {
			from, to := sliceNameOf(before, at, pod), sliceNameOf(after, at, pod)
			if to != "" && from != to {
				t.Errorf("%s endpoint of %s moved from %s to %s", at, pod, from, to)
			}
		}
	}
}

func TestSliceMetadata(t *testing.T) {
	wantOwner := metav1.OwnerReference{
		APIVersion: "networking.svcplane.io/v1alpha1", Kind: "Service", Name: "svc", UID: "svc-uid",
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}
	cases := []struct {
		name       string
		svc        *v1alpha1.Service
		pods       []*corev1.Pod
		wantLabels map[string]string
	}{
		{
			name: "Service labels copied, svcplane labels added",
			svc:  newSvc(),
			pods: numberedPods(1, 3),
			wantLabels: map[string]string{
				"team":                                   "payments",
				"networking.svcplane.io/service-name":    "svc",
				"endpointslice.kubernetes.io/managed-by": "endpointslice.svcplane.io",
			},
		},
		{
			name: "reserved Service labels are never copied",
			svc: newSvc(svcLabels(map[string]string{
				"team":                                   "payments",
				"kubernetes.io/service-name":             "svc",
				"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
				"service.kubernetes.io/headless":         "",
				"networking.svcplane.io/service-name":    "spoofed",
			})),
			pods: numberedPods(1, 3),
			wantLabels: map[string]string{
				"team":                                   "payments",
				"networking.svcplane.io/service-name":    "svc",
				"endpointslice.kubernetes.io/managed-by": "endpointslice.svcplane.io",
			},
		},
		{
			name: "Service without labels",
			svc:  newSvc(svcLabels(nil)),
			pods: numberedPods(1, 3),
			wantLabels: map[string]string{
				"networking.svcplane.io/service-name":    "svc",
				"endpointslice.kubernetes.io/managed-by": "endpointslice.svcplane.io",
			},
		},
		{
			name: "headless Service (clusterIP None)",
			svc:  newSvc(headless()),
			pods: numberedPods(1, 3),
			wantLabels: map[string]string{
				"team":                                   "payments",
				"networking.svcplane.io/service-name":    "svc",
				"endpointslice.kubernetes.io/managed-by": "endpointslice.svcplane.io",
				"service.kubernetes.io/headless":         "",
			},
		},
		{
			name: "headless by status.clusterIP only",
			svc: newSvc(func(s *v1alpha1.Service) {
				s.Spec.ClusterIP = ""
				s.Status.ClusterIP, s.Status.ClusterIPs = "None", []string{"None"}
			}),
			pods: numberedPods(1, 3),
			wantLabels: map[string]string{
				"team":                                   "payments",
				"networking.svcplane.io/service-name":    "svc",
				"endpointslice.kubernetes.io/managed-by": "endpointslice.svcplane.io",
				"service.kubernetes.io/headless":         "",
			},
		},
		{
			name: "placeholder slices carry the same metadata",
			svc:  newSvc(headless(), dualStack()),
			pods: nil,
			wantLabels: map[string]string{
				"team":                                   "payments",
				"networking.svcplane.io/service-name":    "svc",
				"endpointslice.kubernetes.io/managed-by": "endpointslice.svcplane.io",
				"service.kubernetes.io/headless":         "",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Service: tc.svc, Pods: tc.pods, NodeZones: testZones}
			plan := Compute(in)
			if len(plan.Create) == 0 {
				t.Fatalf("no creates: %s", describePlan(plan))
			}
			for _, s := range plan.Create {
				if s.Name != "" || s.GenerateName != "svc-" || s.Namespace != "ns" {
					t.Errorf("create has name %q generateName %q namespace %q, want \"\", \"svc-\", \"ns\"", s.Name, s.GenerateName, s.Namespace)
				}
				if !maps.Equal(s.Labels, tc.wantLabels) {
					t.Errorf("labels = %v, want %v", s.Labels, tc.wantLabels)
				}
				if !equality.Semantic.DeepEqual(s.OwnerReferences, []metav1.OwnerReference{wantOwner}) {
					t.Errorf("ownerReferences = %+v, want [%+v]", s.OwnerReferences, wantOwner)
				}
			}
			api := newFakeAPI()
			step(t, api, in)
		})
	}
}

// TestServiceLabelChange: relabelling the Service rewrites every slice's labels in
// place and nothing else.
func TestServiceLabelChange(t *testing.T) {
	in := Input{Service: newSvc(), Pods: numberedPods(1, 250), NodeZones: testZones}
	api := converged(t, in)
	before := api.list()
	in.Service = newSvc(svcLabels(map[string]string{"team": "checkout", "env": "prod"}))
	plan := step(t, api, in)
	wantWrites(t, plan, 0, 3, 0)
	after := api.list()
	assertNoMoves(t, before, after)
	for _, s := range after {
		if s.Labels["team"] != "checkout" || s.Labels["env"] != "prod" {
			t.Errorf("slice %s labels %v", s.Name, s.Labels)
		}
	}
}

func TestSlicing(t *testing.T) {
	cases := []struct {
		name      string
		pods      int
		max       int
		dual      bool
		wantSizes []int
	}{
		{"250 pods, max 100", 250, 100, false, []int{100, 100, 50}},
		{"250 pods, max 0 means 100", 250, 0, false, []int{100, 100, 50}},
		{"exactly 100", 100, 0, false, []int{100}},
		{"101", 101, 0, false, []int{100, 1}},
		{"one pod", 1, 0, false, []int{1}},
		{"25 pods, max 10", 25, 10, false, []int{10, 10, 5}},
		{"3 pods, max 1", 3, 1, false, []int{1, 1, 1}},
		{"1000 pods", 1000, 0, false, []int{100, 100, 100, 100, 100, 100, 100, 100, 100, 100}},
		{"250 dual-stack pods", 250, 0, true, []int{100, 100, 50}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var pods []*corev1.Pod
			opts := []svcOpt{}
			ats := []discoveryv1.AddressType{v4}
			if tc.dual {
				opts = append(opts, dualStack())
				ats = append(ats, v6)
			}
			for n := 1; n <= tc.pods; n++ {
				if tc.dual {
					pods = append(pods, dualPod(n))
				} else {
					pods = append(pods, numberedPod(n))
				}
			}
			api := newFakeAPI()
			plan := step(t, api, Input{Service: newSvc(opts...), Pods: pods, NodeZones: testZones, MaxEndpointsPerSlice: tc.max})
			wantWrites(t, plan, len(tc.wantSizes)*len(ats), 0, 0)
			for _, at := range ats {
				if got := sizes(ofType(api.list(), at)); !slices.Equal(got, tc.wantSizes) {
					t.Errorf("%s slice sizes = %v, want %v", at, got, tc.wantSizes)
				}
			}
		})
	}
}

// TestMinimalChurn starts from a converged state and checks that each small change
// costs the fewest writes, on the right slice, and moves no endpoint.
func TestMinimalChurn(t *testing.T) {
	cases := []struct {
		name                string
		base                int // pods 1..base, converged with max 100
		change              func([]*corev1.Pod) []*corev1.Pod
		create, update, del int
		check               func(t *testing.T, before, after []*discoveryv1.EndpointSlice, plan Plan)
	}{
		{
			name:   "(a) one pod turns unready: one update of its slice",
			base:   250,
			change: func(p []*corev1.Pod) []*corev1.Pod { return replacingPod(p, numberedPod(137, ready(false))) },
			update: 1,
			check: func(t *testing.T, before, after []*discoveryv1.EndpointSlice, plan Plan) {
				if want := sliceNameOf(before, v4, "pod-137"); plan.Update[0].Name != want {
					t.Errorf("updated %s, want %s (holding pod-137)", plan.Update[0].Name, want)
				}
				_, ep := mustEndpoint(t, after, v4, "pod-137")
				if *ep.Conditions.Ready || *ep.Conditions.Serving {
					t.Errorf("pod-137 conditions %+v", ep.Conditions)
				}
			},
		},
		{
			name:   "(b) one pod added: one update of the slice with room",
			base:   250,
			change: func(p []*corev1.Pod) []*corev1.Pod { return append(slices.Clone(p), numberedPod(251)) },
			update: 1,
			check: func(t *testing.T, before, after []*discoveryv1.EndpointSlice, plan Plan) {
				var roomy string
				for _, s := range before {
					if len(s.Endpoints) == 50 {
						roomy = s.Name
					}
				}
				if plan.Update[0].Name != roomy {
					t.Errorf("updated %s, want %s (the slice with 50 endpoints)", plan.Update[0].Name, roomy)
				}
				if got := sliceNameOf(after, v4, "pod-251"); got != roomy {
					t.Errorf("pod-251 in %s, want %s", got, roomy)
				}
			},
		},
		{
			name:   "(c) one pod removed: one update of its slice",
			base:   250,
			change: func(p []*corev1.Pod) []*corev1.Pod { return withoutPod(p, "pod-042") },
			update: 1,
			check: func(t *testing.T, before, after []*discoveryv1.EndpointSlice, plan Plan) {
				if want := sliceNameOf(before, v4, "pod-042"); plan.Update[0].Name != want {
					t.Errorf("updated %s, want %s", plan.Update[0].Name, want)
				}
				if got := sizes(after); !slices.Equal(got, []int{100, 99, 50}) {
					t.Errorf("sizes %v", got)
				}
			},
		},
		{
			name: "(d) a pod relabelled out of the selector: one update",
			base: 250,
			change: func(p []*corev1.Pod) []*corev1.Pod {
				return replacingPod(p, numberedPod(199, podLabels(map[string]string{"app": "canary"})))
			},
			update: 1,
			check: func(t *testing.T, before, after []*discoveryv1.EndpointSlice, plan Plan) {
				if want := sliceNameOf(before, v4, "pod-199"); plan.Update[0].Name != want {
					t.Errorf("updated %s, want %s", plan.Update[0].Name, want)
				}
			},
		},
		{
			name:   "(e) 100 new pods onto 3 full slices: one create",
			base:   300,
			change: func(p []*corev1.Pod) []*corev1.Pod { return append(slices.Clone(p), numberedPods(301, 400)...) },
			create: 1,
			check: func(t *testing.T, before, after []*discoveryv1.EndpointSlice, plan Plan) {
				if n := len(plan.Create[0].Endpoints); n != 100 {
					t.Errorf("created slice has %d endpoints, want 100", n)
				}
			},
		},
		{
			name:   "(f) nothing changed: no writes",
			base:   250,
			change: func(p []*corev1.Pod) []*corev1.Pod { return p },
		},
		{
			name:   "pods listed in another order: no writes",
			base:   250,
			change: func(p []*corev1.Pod) []*corev1.Pod { q := slices.Clone(p); slices.Reverse(q); return q },
		},
		{
			name: "one pod replaced by another: the slice that loses one takes the new one",
			base: 250,
			change: func(p []*corev1.Pod) []*corev1.Pod {
				return append(withoutPod(p, "pod-042"), numberedPod(251))
			},
			update: 1,
			check: func(t *testing.T, before, after []*discoveryv1.EndpointSlice, plan Plan) {
				want := sliceNameOf(before, v4, "pod-042")
				if plan.Update[0].Name != want || sliceNameOf(after, v4, "pod-251") != want {
					t.Errorf("updated %s, pod-251 in %s; want both %s", plan.Update[0].Name, sliceNameOf(after, v4, "pod-251"), want)
				}
			},
		},
		{
			name: "pod recreated under the same name with a new UID and IP: one update",
			base: 250,
			change: func(p []*corev1.Pod) []*corev1.Pod {
				return replacingPod(p, numberedPod(150, withUID("uid-pod-150-v2"), withIPs("10.244.9.150")))
			},
			update: 1,
		},
		{
			name:   "pod moves to node-b: one update with the new zone",
			base:   250,
			change: func(p []*corev1.Pod) []*corev1.Pod { return replacingPod(p, numberedPod(10, onNode("node-b"))) },
			update: 1,
			check: func(t *testing.T, before, after []*discoveryv1.EndpointSlice, plan Plan) {
				_, ep := mustEndpoint(t, after, v4, "pod-010")
				if deref(ep.Zone) != "zone-b" || deref(ep.NodeName) != "node-b" {
					t.Errorf("pod-010 node %v zone %v", deref(ep.NodeName), deref(ep.Zone))
				}
			},
		},
		{
			name:   "pod starts terminating: one update",
			base:   250,
			change: func(p []*corev1.Pod) []*corev1.Pod { return replacingPod(p, numberedPod(222, deleting())) },
			update: 1,
		},
		{
			name:   "40 pods added: they fit the slice with room",
			base:   250,
			change: func(p []*corev1.Pod) []*corev1.Pod { return append(slices.Clone(p), numberedPods(251, 290)...) },
			update: 1,
		},
		{
			name:   "60 pods added: too many for the slice with room, one create",
			base:   250,
			change: func(p []*corev1.Pod) []*corev1.Pod { return append(slices.Clone(p), numberedPods(251, 310)...) },
			create: 1,
			check: func(t *testing.T, before, after []*discoveryv1.EndpointSlice, plan Plan) {
				if n := len(plan.Create[0].Endpoints); n != 60 {
					t.Errorf("created slice has %d endpoints, want 60", n)
				}
			},
		},
		{
			name:   "150 pods added onto 3 full slices: two creates",
			base:   300,
			change: func(p []*corev1.Pod) []*corev1.Pod { return append(slices.Clone(p), numberedPods(301, 450)...) },
			create: 2,
		},
		{
			name: "one pod removed from each slice: three updates, no create",
			base: 250,
			change: func(p []*corev1.Pod) []*corev1.Pod {
				return withoutPod(withoutPod(withoutPod(p, "pod-001"), "pod-150"), "pod-250")
			},
			update: 3,
		},
		{
			name:   "all 50 pods of the last slice removed: one delete",
			base:   250,
			change: func(p []*corev1.Pod) []*corev1.Pod { return p[:200] },
			del:    1,
		},
		{
			name: "a full slice changes and a pod is added: the new pod goes to the slice with room",
			base: 250,
			change: func(p []*corev1.Pod) []*corev1.Pod {
				return append(replacingPod(p, numberedPod(5, ready(false))), numberedPod(251))
			},
			update: 2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pods := numberedPods(1, tc.base)
			in := Input{Service: newSvc(), Pods: pods, NodeZones: testZones, MaxEndpointsPerSlice: 100}
			api := converged(t, in)
			before := api.list()
			in.Pods = tc.change(pods)
			plan := step(t, api, in)
			wantWrites(t, plan, tc.create, tc.update, tc.del)
			after := api.list()
			assertNoMoves(t, before, after)
			if tc.check != nil && !t.Failed() {
				tc.check(t, before, after, plan)
			}
		})
	}
}

func TestDualStackTransitions(t *testing.T) {
	var pods []*corev1.Pod
	for n := 1; n <= 150; n++ {
		pods = append(pods, dualPod(n))
	}
	t.Run("IPv6 removed from the families: only the IPv6 slices are deleted", func(t *testing.T) {
		in := Input{Service: newSvc(dualStack()), Pods: pods, NodeZones: testZones}
		api := converged(t, in)
		before := api.list()
		in.Service = newSvc()
		plan := step(t, api, in)
		wantWrites(t, plan, 0, 0, 2)
		for _, s := range plan.Delete {
			if s.AddressType != v6 {
				t.Errorf("deleted %s of type %s", s.Name, s.AddressType)
			}
		}
		if !equality.Semantic.DeepEqual(ofType(before, v4), api.list()) {
			t.Errorf("IPv4 slices changed")
		}
	})
	t.Run("IPv6 added to the families: only IPv6 slices are created", func(t *testing.T) {
		in := Input{Service: newSvc(), Pods: pods, NodeZones: testZones}
		api := converged(t, in)
		in.Service = newSvc(dualStack())
		plan := step(t, api, in)
		wantWrites(t, plan, 2, 0, 0)
		for _, s := range plan.Create {
			if s.AddressType != v6 {
				t.Errorf("created a slice of type %s", s.AddressType)
			}
		}
	})
	t.Run("IPv6 placeholder replaced when IPv6 pods appear", func(t *testing.T) {
		in := Input{Service: newSvc(dualStack()), Pods: numberedPods(1, 3), NodeZones: testZones}
		api := converged(t, in)
		if n := len(ofType(api.list(), v6)); n != 1 {
			t.Fatalf("want one IPv6 placeholder, got %d", n)
		}
		in.Pods = []*corev1.Pod{dualPod(1), dualPod(2), dualPod(3)}
		step(t, api, in)
		if got := podNames(api.list(), v6); !slices.Equal(got, []string{"pod-001", "pod-002", "pod-003"}) {
			t.Errorf("IPv6 endpoints %v", got)
		}
	})
	t.Run("a pod losing its IPv6 address leaves only the IPv6 slice", func(t *testing.T) {
		in := Input{Service: newSvc(dualStack()), Pods: pods, NodeZones: testZones}
		api := converged(t, in)
		in.Pods = replacingPod(pods, numberedPod(7))
		plan := step(t, api, in)
		wantWrites(t, plan, 0, 1, 0)
		if plan.Update[0].AddressType != v6 {
			t.Errorf("updated a %s slice", plan.Update[0].AddressType)
		}
	})
}

// TestPlaceholder: a Service with no endpoints keeps exactly one empty slice per
// address type.
func TestPlaceholder(t *testing.T) {
	t.Run("no matching pod: one empty slice, no ports", func(t *testing.T) {
		api := newFakeAPI()
		plan := step(t, api, Input{Service: newSvc(), Pods: nil, NodeZones: testZones})
		wantWrites(t, plan, 1, 0, 0)
		s := plan.Create[0]
		if len(s.Endpoints) != 0 || len(s.Ports) != 0 || s.AddressType != v4 {
			t.Errorf("placeholder = %s", describeSlice(s))
		}
	})
	t.Run("dual stack: one empty slice per address type", func(t *testing.T) {
		api := newFakeAPI()
		plan := step(t, api, Input{Service: newSvc(dualStack()), Pods: []*corev1.Pod{numberedPod(1, podLabels(nil))}, NodeZones: testZones})
		wantWrites(t, plan, 2, 0, 0)
		var types []discoveryv1.AddressType
		for _, s := range plan.Create {
			types = append(types, s.AddressType)
			if len(s.Endpoints) != 0 || len(s.Ports) != 0 {
				t.Errorf("placeholder = %s", describeSlice(s))
			}
		}
		if !slices.Equal(types, []discoveryv1.AddressType{v4, v6}) {
			t.Errorf("placeholder types %v", types)
		}
	})
	t.Run("first pod appears: endpoints written, no empty slice left", func(t *testing.T) {
		in := Input{Service: newSvc(dualStack()), NodeZones: testZones}
		api := converged(t, in)
		in.Pods = []*corev1.Pod{dualPod(1)}
		plan := step(t, api, in)
		// The current code creates the new slices and deletes the placeholders (kube
		// would reuse the placeholders with one update each); either converges.
		t.Logf("placeholder -> first endpoint: %s", describePlan(plan))
		if plan.Writes() > 4 {
			t.Errorf("%d writes", plan.Writes())
		}
		for _, s := range api.list() {
			if len(s.Endpoints) == 0 {
				t.Errorf("empty slice %s left", s.Name)
			}
		}
	})
	t.Run("first pod lacking the named port reuses the placeholder", func(t *testing.T) {
		in := Input{Service: newSvc(withPorts(svcPort("http", 80, intstr.FromString("http"), corev1.ProtocolTCP))), NodeZones: testZones}
		api := converged(t, in)
		in.Pods = []*corev1.Pod{numberedPod(1, containerPorts())}
		plan := step(t, api, in)
		wantWrites(t, plan, 0, 1, 0)
		if plan.Update[0].Name != "svc-abc0" {
			t.Errorf("updated %s, want the placeholder svc-abc0", plan.Update[0].Name)
		}
	})
	t.Run("all pods gone: one placeholder remains", func(t *testing.T) {
		in := Input{Service: newSvc(dualStack()), NodeZones: testZones}
		for n := 1; n <= 150; n++ {
			in.Pods = append(in.Pods, dualPod(n))
		}
		api := converged(t, in)
		in.Pods = nil
		step(t, api, in)
		if got := api.list(); len(got) != 2 {
			t.Errorf("want 2 placeholders, got %s", describeSlices(got))
		}
	})
	t.Run("duplicate placeholders: one is deleted", func(t *testing.T) {
		api := newFakeAPI()
		api.put(placeholderSlice("svc-p1", v4))
		api.put(placeholderSlice("svc-p2", v4))
		plan := step(t, api, Input{Service: newSvc(), NodeZones: testZones})
		wantWrites(t, plan, 0, 0, 1)
	})
	t.Run("placeholder with stale labels is updated, not recreated", func(t *testing.T) {
		api := newFakeAPI()
		p := placeholderSlice("svc-p1", v4)
		p.Labels["team"] = "old"
		p.OwnerReferences = nil
		api.put(p)
		plan := step(t, api, Input{Service: newSvc(), NodeZones: testZones})
		wantWrites(t, plan, 0, 1, 0)
	})
	t.Run("placeholder with nil ports is left alone", func(t *testing.T) {
		api := newFakeAPI()
		p := placeholderSlice("svc-p1", v4)
		p.Ports = nil
		api.put(p)
		plan := step(t, api, Input{Service: newSvc(), NodeZones: testZones})
		wantWrites(t, plan, 0, 0, 0)
	})
	t.Run("empty slice with ports is not a placeholder", func(t *testing.T) {
		api := newFakeAPI()
		p := placeholderSlice("svc-p1", v4)
		p.Ports = []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(int32(8080))}}
		api.put(p)
		plan := step(t, api, Input{Service: newSvc(), NodeZones: testZones})
		if plan.Writes() == 0 {
			t.Errorf("no writes")
		}
	})
	t.Run("empty slice alongside endpoints is deleted", func(t *testing.T) {
		in := Input{Service: newSvc(), Pods: numberedPods(1, 3), NodeZones: testZones}
		api := converged(t, in)
		api.put(placeholderSlice("svc-p1", v4))
		plan := step(t, api, in)
		wantWrites(t, plan, 0, 0, 1)
	})
}

// TestRepair: hand edits to managed slices are undone.
func TestRepair(t *testing.T) {
	twoPorts := newSvc(withPorts(
		svcPort("http", 80, intstr.FromInt32(8080), corev1.ProtocolTCP),
		svcPort("metrics", 9100, intstr.FromInt32(9100), corev1.ProtocolTCP)))
	bogus := discoveryv1.Endpoint{
		Addresses:  []string{"10.244.200.200"},
		Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
	}
	cases := []struct {
		name                string
		svc                 *v1alpha1.Service
		max                 int
		edit                func(*discoveryv1.EndpointSlice) // applied to svc-abc0
		put                 *discoveryv1.EndpointSlice       // a slice added by hand
		create, update, del int
		tolerant            bool // only check the end state and fixpoint
	}{
		{name: "endpoint removed", edit: func(s *discoveryv1.EndpointSlice) { s.Endpoints = s.Endpoints[1:] }, update: 1},
		{name: "all endpoints removed", edit: func(s *discoveryv1.EndpointSlice) { s.Endpoints = nil }, update: 1},
		{name: "label value changed", edit: func(s *discoveryv1.EndpointSlice) { s.Labels["team"] = "other" }, update: 1},
		{name: "label removed", edit: func(s *discoveryv1.EndpointSlice) { delete(s.Labels, "team") }, update: 1},
		{name: "label added", edit: func(s *discoveryv1.EndpointSlice) { s.Labels["extra"] = "x" }, update: 1},
		{name: "headless label added", edit: func(s *discoveryv1.EndpointSlice) { s.Labels["service.kubernetes.io/headless"] = "" }, update: 1},
		{name: "bogus endpoint without targetRef", edit: func(s *discoveryv1.EndpointSlice) { s.Endpoints = append(s.Endpoints, bogus) }, update: 1},
		{name: "bogus endpoint of an unknown pod", edit: func(s *discoveryv1.EndpointSlice) {
			b := bogus
			b.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "ghost", UID: "uid-ghost"}
			s.Endpoints = append([]discoveryv1.Endpoint{b}, s.Endpoints...)
		}, update: 1},
		{name: "endpoint condition flipped", edit: func(s *discoveryv1.EndpointSlice) { s.Endpoints[2].Conditions.Ready = ptr.To(false) }, update: 1},
		{name: "endpoint conditions cleared", edit: func(s *discoveryv1.EndpointSlice) { s.Endpoints[2].Conditions = discoveryv1.EndpointConditions{} }, update: 1},
		{name: "endpoint address changed", edit: func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses = []string{"10.244.99.99"} }, update: 1},
		{name: "endpoint zone and hostname set", edit: func(s *discoveryv1.EndpointSlice) {
			s.Endpoints[0].Zone, s.Endpoints[0].Hostname = ptr.To("zone-x"), ptr.To("h")
		}, update: 1},
		{name: "endpoint hints set", edit: func(s *discoveryv1.EndpointSlice) {
			s.Endpoints[0].Hints = &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "zone-a"}}}
		}, update: 1},
		{name: "owner reference removed", edit: func(s *discoveryv1.EndpointSlice) { s.OwnerReferences = nil }, update: 1},
		{name: "owner reference demoted to controller=false", edit: func(s *discoveryv1.EndpointSlice) {
			s.OwnerReferences[0].Controller = ptr.To(false)
		}, update: 1},
		{name: "unrelated non-controller owner added", edit: func(s *discoveryv1.EndpointSlice) {
			s.OwnerReferences = append(s.OwnerReferences, metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "cm", UID: "uid-cm"})
		}},
		{name: "ports reordered", svc: twoPorts, edit: func(s *discoveryv1.EndpointSlice) { slices.Reverse(s.Ports) }, update: 1},
		{name: "unnamed port's name pointer cleared", svc: newSvc(withPorts(svcPort("", 80, intstr.FromInt32(8080), corev1.ProtocolTCP))),
			edit: func(s *discoveryv1.EndpointSlice) { s.Ports[0].Name = nil }, update: 1},
		{name: "port number changed", edit: func(s *discoveryv1.EndpointSlice) { s.Ports[0].Port = ptr.To(int32(9999)) }, tolerant: true},
		{name: "port removed", svc: twoPorts, edit: func(s *discoveryv1.EndpointSlice) { s.Ports = s.Ports[:1] }, tolerant: true},
		{name: "duplicate endpoint within a slice", edit: func(s *discoveryv1.EndpointSlice) {
			s.Endpoints = append(s.Endpoints, s.Endpoints[0])
		}, update: 1},
		{name: "slice over the maximum", max: 3, edit: func(s *discoveryv1.EndpointSlice) {
			s.Endpoints = append(s.Endpoints, bogus, bogus)
		}, update: 1},
		{name: "stray IPv6 slice in a single-stack Service", put: placeholderSlice("svc-stray", v6), del: 1},
		{name: "stray FQDN slice", put: placeholderSlice("svc-stray", discoveryv1.AddressTypeFQDN), del: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := tc.svc
			if svc == nil {
				svc = newSvc()
			}
			in := Input{Service: svc, Pods: numberedPods(1, 5), NodeZones: testZones, MaxEndpointsPerSlice: tc.max}
			api := converged(t, in)
			want := api.list()
			if tc.edit != nil {
				api.edit(t, "svc-abc0", tc.edit)
			}
			if tc.put != nil {
				api.put(tc.put)
			}
			plan := step(t, api, in)
			if !tc.tolerant {
				wantWrites(t, plan, tc.create, tc.update, tc.del)
				if tc.update == 1 && len(plan.Update) == 1 && plan.Update[0].Name != "svc-abc0" {
					t.Errorf("updated %s, want svc-abc0", plan.Update[0].Name)
				}
			} else {
				t.Logf("plan: %s", describePlan(plan))
			}
			// Endpoints are back to what they were.
			got := api.list()
			for _, pod := range podNames(want, v4) {
				_, w := findEndpoint(want, v4, pod)
				_, g := findEndpoint(got, v4, pod)
				if g == nil || !equality.Semantic.DeepEqual(*w, *g) {
					t.Errorf("endpoint of %s not restored: got %+v, want %+v", pod, g, *w)
				}
			}
		})
	}
}

// TestRepairDuplicateAcrossSlices: an endpoint listed in two slices is removed from
// one of them with one update.
func TestRepairDuplicateAcrossSlices(t *testing.T) {
	in := Input{Service: newSvc(), Pods: numberedPods(1, 5), NodeZones: testZones, MaxEndpointsPerSlice: 3}
	for _, tc := range []struct {
		name, from, to, pod string
	}{
		{"copy into the slice with room", "svc-abc0", "svc-abc1", "pod-001"},
		{"copy into the full slice", "svc-abc1", "svc-abc0", "pod-004"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := converged(t, in)
			before := api.list()
			if got := sizes(before); !slices.Equal(got, []int{3, 2}) {
				t.Fatalf("setup sizes %v", got)
			}
			_, ep := mustEndpoint(t, before, v4, tc.pod)
			api.edit(t, tc.to, func(s *discoveryv1.EndpointSlice) { s.Endpoints = append(s.Endpoints, *ep.DeepCopy()) })
			plan := step(t, api, in)
			wantWrites(t, plan, 0, 1, 0)
			if got := sliceNameOf(api.list(), v4, tc.pod); got != tc.from {
				t.Errorf("%s ended in %s, want %s", tc.pod, got, tc.from)
			}
		})
	}
}

// TestMaxEndpointsChange: lowering the maximum splits slices; raising it changes
// nothing.
func TestMaxEndpointsChange(t *testing.T) {
	cases := []struct {
		name                string
		pods                int
		from, to            int
		create, update, del int
		wantSizes           []int
	}{
		{"100 in one slice, 100 -> 50", 100, 100, 50, 1, 1, 0, []int{50, 50}},
		{"250 in three slices, 100 -> 50", 250, 100, 50, 2, 2, 0, []int{50, 50, 50, 50, 50}},
		{"100 in one slice, 100 -> 30", 100, 100, 30, 3, 1, 0, []int{30, 30, 30, 10}},
		{"100 in two slices, 50 -> 100: nothing", 100, 50, 100, 0, 0, 0, []int{50, 50}},
		{"100 in one slice, 100 -> 0 (default): nothing", 100, 100, 0, 0, 0, 0, []int{100}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Service: newSvc(), Pods: numberedPods(1, tc.pods), NodeZones: testZones, MaxEndpointsPerSlice: tc.from}
			api := converged(t, in)
			before := api.list()
			in.MaxEndpointsPerSlice = tc.to
			plan := step(t, api, in)
			wantWrites(t, plan, tc.create, tc.update, tc.del)
			if got := sizes(api.list()); !slices.Equal(got, tc.wantSizes) {
				t.Errorf("sizes %v, want %v", got, tc.wantSizes)
			}
			// Endpoints that fit stay where they were: each old slice keeps its first
			// endpoints.
			for _, s := range before {
				kept := epNames(api.get(s.Name))
				if n := min(len(s.Endpoints), cmp.Or(tc.to, DefaultMaxEndpointsPerSlice)); !slices.Equal(kept, epNames(s)[:n]) {
					t.Errorf("slice %s kept %v, want its first %d endpoints", s.Name, kept, n)
				}
			}
		})
	}
}

// TestRandomWalk applies random changes to pods, the Service and the slices, and checks
// after every step that one plan converges (step checks the fixpoint and invariants).
func TestRandomWalk(t *testing.T) {
	seeds, steps := uint64(6), 120
	if testing.Short() {
		seeds, steps = 2, 60
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 42))
			pods := map[int]*corev1.Pod{}
			nextPod := 1
			svcOpts := []svcOpt{dualStack(), withPorts(
				svcPort("http", 80, intstr.FromString("http"), corev1.ProtocolTCP),
				svcPort("dns", 53, intstr.FromInt32(5353), corev1.ProtocolUDP))}
			maxPer := 7
			api := newFakeAPI()
			for i := range steps {
				switch k := r.IntN(12); {
				case k < 3: // add a few pods
					for range 1 + r.IntN(8) {
						opts := []podOpt{}
						if r.IntN(3) == 0 {
							opts = append(opts, containerPorts(cport("http", 9090, corev1.ProtocolTCP)))
						}
						if r.IntN(4) == 0 {
							pods[nextPod] = numberedPod(nextPod, opts...)
						} else {
							pods[nextPod] = dualPod(nextPod, opts...)
						}
						nextPod++
					}
				case k < 5: // remove a pod
					if len(pods) > 0 {
						keys := slices.Sorted(maps.Keys(pods))
						delete(pods, keys[r.IntN(len(keys))])
					}
				case k < 8: // change a pod
					if len(pods) > 0 {
						keys := slices.Sorted(maps.Keys(pods))
						n := keys[r.IntN(len(keys))]
						p := pods[n].DeepCopy()
						switch r.IntN(6) {
						case 0:
							ready(r.IntN(2) == 0)(p)
						case 1:
							deleting()(p)
						case 2:
							onNode([]string{"node-a", "node-b", "node-c", ""}[r.IntN(4)])(p)
						case 3:
							containerPorts(cport("http", int32(8080+r.IntN(3)), corev1.ProtocolTCP))(p)
						case 4:
							p.Labels = map[string]string{"app": []string{"web", "db"}[r.IntN(2)]}
						case 5:
							hostAndSubdomain("h", []string{"svc", "x"}[r.IntN(2)])(p)
						}
						pods[n] = p
					}
				case k == 8: // change the maximum
					maxPer = []int{0, 3, 5, 7, 10}[r.IntN(5)]
				case k == 9: // change families or publishNotReadyAddresses
					switch r.IntN(4) {
					case 0:
						svcOpts = append(svcOpts, dualStack())
					case 1:
						svcOpts = append(svcOpts, families(corev1.IPv4Protocol))
					case 2:
						svcOpts = append(svcOpts, families(corev1.IPv6Protocol, corev1.IPv4Protocol))
					case 3:
						svcOpts = append(svcOpts, func(s *v1alpha1.Service) { s.Spec.PublishNotReadyAddresses = !s.Spec.PublishNotReadyAddresses })
					}
				default: // hand-edit a slice
					all := api.list()
					if len(all) == 0 {
						break
					}
					name := all[r.IntN(len(all))].Name
					api.edit(t, name, func(s *discoveryv1.EndpointSlice) {
						switch r.IntN(4) {
						case 0:
							if len(s.Endpoints) > 0 {
								s.Endpoints = s.Endpoints[1:]
							}
						case 1:
							s.Labels["team"] = "edited"
						case 2:
							s.OwnerReferences = nil
						case 3:
							if len(s.Endpoints) > 0 {
								s.Endpoints[0].Conditions.Ready = ptr.To(!deref(s.Endpoints[0].Conditions.Ready))
							}
						}
					})
				}
				var list []*corev1.Pod
				for _, k := range slices.Sorted(maps.Keys(pods)) {
					list = append(list, pods[k])
				}
				r.Shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })
				step(t, api, Input{Service: newSvc(svcOpts...), Pods: list, NodeZones: testZones, MaxEndpointsPerSlice: maxPer})
				if t.Failed() {
					t.Fatalf("failed at step %d", i)
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Regression tests for bugs found while writing these tests. Each states the input,
// what is expected and what the code once did instead.

// BUG: a slice carrying a controller reference to another object (typically the
// previous incarnation of a Service deleted and recreated under the same name, whose
// slices the garbage collector has not removed yet) is "repaired" by appending a second
// controller reference. The API server rejects that update ("Only one reference can
// have Controller set to true"), on every reconcile; without a garbage collector the
// Service never gets endpoints. kube's reconciler deletes slices not owned by the
// Service instead (reconciler.go, ownedBy) and never updates them.
func TestBugStaleControllerOwnerReference(t *testing.T) {
	old := newSvc(func(s *v1alpha1.Service) { s.UID = types.UID("old-svc-uid") })
	api := converged(t, Input{Service: old, Pods: numberedPods(1, 3), NodeZones: testZones})
	in := Input{Service: newSvc(), Pods: numberedPods(1, 3), NodeZones: testZones}
	in.Existing = api.list()
	plan := Compute(in)
	for _, u := range plan.Update {
		n := 0
		for _, r := range u.OwnerReferences {
			if deref(r.Controller) {
				n++
			}
		}
		if n > 1 {
			t.Errorf("update of %s carries %d controller ownerReferences: %+v", u.Name, n, u.OwnerReferences)
		}
	}
	step(t, api, in)
}

// BUG (churn): a slice whose ports were edited by hand is deleted and its endpoints are
// recreated in a new slice (one Create + one Delete) instead of one Update putting the
// ports back, as kube's finalize() does by turning a create+delete pair into an update.
func TestBugHandEditedPortsRecreated(t *testing.T) {
	in := Input{Service: newSvc(), Pods: numberedPods(1, 5), NodeZones: testZones}
	api := converged(t, in)
	api.edit(t, "svc-abc0", func(s *discoveryv1.EndpointSlice) { s.Ports[0].Port = ptr.To(int32(9999)) })
	plan := step(t, api, in)
	wantWrites(t, plan, 0, 1, 0)
}

// BUG (churn): "new ones fill slices that are being written anyway" only counts slices
// whose endpoints changed. A slice rewritten only to repair its labels/owner/port order
// is not offered the new endpoints, so they go to another slice: two writes where one
// would do.
func TestBugMetadataRepairDoesNotTakeNewEndpoints(t *testing.T) {
	in := Input{Service: newSvc(), Pods: numberedPods(1, 95), NodeZones: testZones, MaxEndpointsPerSlice: 50}
	api := converged(t, in) // svc-abc0: pod-001..050, svc-abc1: pod-051..095
	in.Pods = numberedPods(11, 95)
	step(t, api, in) // svc-abc0: 40 endpoints, svc-abc1: 45
	api.edit(t, "svc-abc0", func(s *discoveryv1.EndpointSlice) { s.Labels["team"] = "edited" })
	in.Pods = numberedPods(11, 96)
	// svc-abc0 must be written anyway (labels) and has room: pod-096 should go there.
	plan := step(t, api, in)
	wantWrites(t, plan, 0, 1, 0)
}

// BUG (minor): when the slice already holds an owner reference to the Service but with
// controller=false, update() appends a second reference to the same UID instead of
// fixing the existing one. It converges (the API server keeps both, as they differ),
// but the slice ends with two ownerReferences to svc-uid.
func TestBugOwnerReferenceDuplicatedWhenNotController(t *testing.T) {
	in := Input{Service: newSvc(), Pods: numberedPods(1, 3), NodeZones: testZones}
	api := converged(t, in)
	api.edit(t, "svc-abc0", func(s *discoveryv1.EndpointSlice) { s.OwnerReferences[0].Controller = ptr.To(false) })
	step(t, api, in)
	if refs := api.get("svc-abc0").OwnerReferences; len(refs) != 1 {
		t.Errorf("ownerReferences = %+v, want exactly one (controller) reference to svc-uid", refs)
	}
}

// BUG: a negative MaxEndpointsPerSlice (e.g. --max-endpoints-per-slice=-1; the flag is
// not validated) makes Compute panic with "slice bounds out of range" as soon as the
// Service has an endpoint. kube validates the flag to 1..1000.
func TestBugNegativeMaxEndpointsPanics(t *testing.T) {
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("Compute panicked: %v", r)
		}
	}()
	Compute(Input{Service: newSvc(), Pods: numberedPods(1, 3), NodeZones: testZones, MaxEndpointsPerSlice: -1})
}
