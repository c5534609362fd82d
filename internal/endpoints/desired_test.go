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

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

func TestAddressTypes(t *testing.T) {
	v4f, v6f := corev1.IPv4Protocol, corev1.IPv6Protocol
	cases := []struct {
		name         string
		status, spec []corev1.IPFamily
		want         []discoveryv1.AddressType
	}{
		{"both empty: not known yet", nil, nil, nil},
		{"status IPv4", []corev1.IPFamily{v4f}, nil, []discoveryv1.AddressType{v4}},
		{"status dual, primary order kept", []corev1.IPFamily{v6f, v4f}, nil, []discoveryv1.AddressType{v6, v4}},
		{"status wins over spec", []corev1.IPFamily{v4f}, []corev1.IPFamily{v6f}, []discoveryv1.AddressType{v4}},
		{"spec used while status is empty", nil, []corev1.IPFamily{v6f}, []discoveryv1.AddressType{v6}},
		{"unknown family ignored", []corev1.IPFamily{"IPv5", v4f}, nil, []discoveryv1.AddressType{v4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := newSvc(families(tc.status...), specFamilies(tc.spec...))
			if got := AddressTypes(svc); !slices.Equal(got, tc.want) {
				t.Errorf("AddressTypes = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSelects(t *testing.T) {
	cases := []struct {
		name string
		svc  *v1alpha1.Service
		want bool
	}{
		{"ClusterIP with selector", newSvc(), true},
		{"headless with selector", newSvc(headless()), true},
		{"NodePort with selector", newSvc(withType(corev1.ServiceTypeNodePort)), true},
		{"LoadBalancer with selector", newSvc(withType(corev1.ServiceTypeLoadBalancer)), true},
		{"nil selector", newSvc(withSelector(nil)), false},
		{"empty selector", newSvc(withSelector(map[string]string{})), false},
		{"ExternalName with selector", newSvc(withType(corev1.ServiceTypeExternalName)), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Selects(tc.svc); got != tc.want {
				t.Errorf("Selects = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestKeyOfPortsIsOrderIndependent(t *testing.T) {
	a := discoveryv1.EndpointPort{Name: ptr.To("a"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(int32(1))}
	b := discoveryv1.EndpointPort{Name: ptr.To("b"), Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(int32(2)), AppProtocol: ptr.To("dns")}
	if keyOfPorts([]discoveryv1.EndpointPort{a, b}) != keyOfPorts([]discoveryv1.EndpointPort{b, a}) {
		t.Errorf("keyOfPorts depends on order")
	}
	if keyOfPorts([]discoveryv1.EndpointPort{a}) == keyOfPorts([]discoveryv1.EndpointPort{a, b}) {
		t.Errorf("keyOfPorts does not tell port sets apart")
	}
	if keyOfPorts(nil) != keyOfPorts([]discoveryv1.EndpointPort{}) {
		t.Errorf("nil and empty port sets have different keys")
	}
}

// TestSelection checks which pods become endpoints. wantV4 nil means the Service only
// gets its placeholder slice.
func TestSelection(t *testing.T) {
	cases := []struct {
		name   string
		svc    *v1alpha1.Service
		pods   []*corev1.Pod
		wantV4 []string
	}{
		{
			name:   "matching pods in the namespace",
			svc:    newSvc(),
			pods:   []*corev1.Pod{numberedPod(1), numberedPod(2)},
			wantV4: []string{"pod-001", "pod-002"},
		},
		{
			name:   "pod in another namespace is left out",
			svc:    newSvc(),
			pods:   []*corev1.Pod{numberedPod(1), numberedPod(2, inNamespace("other"))},
			wantV4: []string{"pod-001"},
		},
		{
			name:   "pod not matching the selector is left out",
			svc:    newSvc(),
			pods:   []*corev1.Pod{numberedPod(1), numberedPod(2, podLabels(map[string]string{"app": "db"})), numberedPod(3, podLabels(nil))},
			wantV4: []string{"pod-001"},
		},
		{
			name: "every selector label must match; extra pod labels do not matter",
			svc:  newSvc(withSelector(map[string]string{"app": "web", "tier": "front"})),
			pods: []*corev1.Pod{
				numberedPod(1, podLabels(map[string]string{"app": "web", "tier": "front", "version": "v2"})),
				numberedPod(2, podLabels(map[string]string{"app": "web"})),
				numberedPod(3, podLabels(map[string]string{"app": "web", "tier": "back"})),
			},
			wantV4: []string{"pod-001"},
		},
		{
			name:   "pod without IP is left out",
			svc:    newSvc(),
			pods:   []*corev1.Pod{numberedPod(1), numberedPod(2, withIPs())},
			wantV4: []string{"pod-001"},
		},
		{
			name:   "pod whose only address is malformed is left out",
			svc:    newSvc(),
			pods:   []*corev1.Pod{numberedPod(1), numberedPod(2, withIPs("10.244.0.999"))},
			wantV4: []string{"pod-001"},
		},
		{
			name:   "status.podIPs alone is enough",
			svc:    newSvc(),
			pods:   []*corev1.Pod{numberedPod(1, withPodIPsOnly(ipv4Of(1)))},
			wantV4: []string{"pod-001"},
		},
		{
			name:   "Succeeded and Failed pods are left out",
			svc:    newSvc(),
			pods:   []*corev1.Pod{numberedPod(1), numberedPod(2, phase(corev1.PodSucceeded)), numberedPod(3, phase(corev1.PodFailed))},
			wantV4: []string{"pod-001"},
		},
		{
			name:   "Pending pod with an IP is an endpoint",
			svc:    newSvc(),
			pods:   []*corev1.Pod{numberedPod(1, phase(corev1.PodPending), ready(false))},
			wantV4: []string{"pod-001"},
		},
		{
			name:   "terminating pod is still an endpoint",
			svc:    newSvc(),
			pods:   []*corev1.Pod{numberedPod(1, deleting())},
			wantV4: []string{"pod-001"},
		},
		{
			name:   "unready pod is still an endpoint",
			svc:    newSvc(),
			pods:   []*corev1.Pod{numberedPod(1, ready(false))},
			wantV4: []string{"pod-001"},
		},
		{
			name:   "a pod listed twice gets one endpoint",
			svc:    newSvc(),
			pods:   []*corev1.Pod{numberedPod(1), numberedPod(1)},
			wantV4: []string{"pod-001"},
		},
		{
			name:   "no pod matches",
			svc:    newSvc(),
			pods:   []*corev1.Pod{numberedPod(1, inNamespace("other")), numberedPod(2, phase(corev1.PodFailed))},
			wantV4: nil,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI()
			step(t, api, Input{Service: tc.svc, Pods: tc.pods, NodeZones: testZones})
			got := api.list()
			if names := podNames(got, v4); !slices.Equal(names, tc.wantV4) {
				t.Errorf("IPv4 endpoints = %v, want %v", names, tc.wantV4)
			}
			if tc.wantV4 == nil && (len(got) != 1 || len(got[0].Endpoints) != 0) {
				t.Errorf("want only the placeholder slice, got %s", describeSlices(got))
			}
		})
	}
}

// TestNoManagedEndpoints: a Service that does not select (no selector, or
// ExternalName) has all its managed slices deleted and nothing created.
func TestNoManagedEndpoints(t *testing.T) {
	cases := []struct {
		name string
		svc  *v1alpha1.Service
	}{
		{"selector removed", newSvc(dualStack(), withSelector(nil))},
		{"selector emptied", newSvc(dualStack(), withSelector(map[string]string{}))},
		{"type changed to ExternalName", newSvc(dualStack(), withType(corev1.ServiceTypeExternalName))},
		{"selector removed and families unknown", newSvc(families(), withSelector(nil))},
	}
	var pods []*corev1.Pod
	for n := 1; n <= 150; n++ {
		pods = append(pods, dualPod(n))
	}
	for _, tc := range cases {
		t.Run(tc.name+", with slices", func(t *testing.T) {
			api := converged(t, Input{Service: newSvc(dualStack()), Pods: pods, NodeZones: testZones})
			before := api.list()
			if len(before) != 4 {
				t.Fatalf("setup: want 4 slices, got %s", describeSlices(before))
			}
			// An extra placeholder-looking slice is deleted too.
			api.put(placeholderSlice("svc-extra", v6))
			before = api.list()
			plan := step(t, api, Input{Service: tc.svc, Pods: pods, NodeZones: testZones})
			wantWrites(t, plan, 0, 0, len(before))
			if got := names(plan.Delete); !slices.Equal(got, names(before)) {
				t.Errorf("deleted %v, want all of %v", got, names(before))
			}
			if left := api.list(); len(left) != 0 {
				t.Errorf("slices left: %s", describeSlices(left))
			}
		})
		t.Run(tc.name+", without slices", func(t *testing.T) {
			plan := step(t, newFakeAPI(), Input{Service: tc.svc, Pods: pods, NodeZones: testZones})
			wantWrites(t, plan, 0, 0, 0)
		})
	}
}

// TestFamiliesUnknown: while neither status.ipFamilies nor spec.ipFamilies is set the
// plan is empty, whatever the pods and slices look like.
func TestFamiliesUnknown(t *testing.T) {
	base := Input{Service: newSvc(), Pods: numberedPods(1, 5), NodeZones: testZones}
	unknown := newSvc(families(), specFamilies())
	cases := []struct {
		name  string
		setup func(t *testing.T) *fakeAPI
		pods  []*corev1.Pod
	}{
		{"no slices, pods", func(*testing.T) *fakeAPI { return newFakeAPI() }, numberedPods(1, 5)},
		{"no slices, no pods", func(*testing.T) *fakeAPI { return newFakeAPI() }, nil},
		{"converged slices, pods changed", func(t *testing.T) *fakeAPI { return converged(t, base) },
			append(numberedPods(2, 5), numberedPod(6), numberedPod(3, ready(false)))},
		{"converged slices, pods gone", func(t *testing.T) *fakeAPI { return converged(t, base) }, nil},
		{"hand-edited slice", func(t *testing.T) *fakeAPI {
			api := converged(t, base)
			api.edit(t, "svc-abc0", func(s *discoveryv1.EndpointSlice) { s.Labels["team"] = "other"; s.OwnerReferences = nil })
			return api
		}, numberedPods(1, 5)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := tc.setup(t)
			before := api.list()
			plan := step(t, api, Input{Service: unknown, Pods: tc.pods, NodeZones: testZones})
			wantWrites(t, plan, 0, 0, 0)
			if !equality.Semantic.DeepEqual(before, api.list()) {
				t.Errorf("slices changed")
			}
		})
	}
}

// TestConditions checks ready/serving/terminating of one pod's endpoint.
func TestConditions(t *testing.T) {
	type conds struct{ ready, serving, terminating bool }
	cases := []struct {
		name string
		pnra bool
		opts []podOpt
		want conds
	}{
		{"ready", false, nil, conds{true, true, false}},
		{"unready", false, []podOpt{ready(false)}, conds{false, false, false}},
		{"no Ready condition", false, []podOpt{noConditions()}, conds{false, false, false}},
		{"Pending, unready", false, []podOpt{phase(corev1.PodPending), ready(false)}, conds{false, false, false}},
		{"terminating, ready", false, []podOpt{deleting()}, conds{false, true, true}},
		{"terminating, unready", false, []podOpt{deleting(), ready(false)}, conds{false, false, true}},
		{"publishNotReadyAddresses, ready", true, nil, conds{true, true, false}},
		{"publishNotReadyAddresses, unready", true, []podOpt{ready(false)}, conds{true, true, false}},
		{"publishNotReadyAddresses, no conditions", true, []podOpt{noConditions()}, conds{true, true, false}},
		{"publishNotReadyAddresses, terminating unready", true, []podOpt{deleting(), ready(false)}, conds{true, true, true}},
		{"publishNotReadyAddresses, terminating ready", true, []podOpt{deleting()}, conds{true, true, true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := []svcOpt{}
			if tc.pnra {
				opts = append(opts, publishNotReady())
			}
			api := newFakeAPI()
			step(t, api, Input{Service: newSvc(opts...), Pods: []*corev1.Pod{numberedPod(1, tc.opts...)}, NodeZones: testZones})
			_, ep := mustEndpoint(t, api.list(), v4, "pod-001")
			c := ep.Conditions
			if c.Ready == nil || c.Serving == nil || c.Terminating == nil {
				t.Fatalf("conditions must all be set, got %+v", c)
			}
			if got := (conds{*c.Ready, *c.Serving, *c.Terminating}); got != tc.want {
				t.Errorf("ready/serving/terminating = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestPortResolution checks the ports of the slice each pod lands in.
func TestPortResolution(t *testing.T) {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	named := func(name string) intstr.IntOrString { return intstr.FromString(name) }
	num := func(n int32) intstr.IntOrString { return intstr.FromInt32(n) }
	cases := []struct {
		name       string
		svc        *v1alpha1.Service
		pods       []*corev1.Pod
		wantPorts  map[string]string // pod -> ports of its slice
		wantSlices int               // IPv4 slices
	}{
		{
			name: "named port resolving to different numbers splits slices",
			svc:  newSvc(withPorts(svcPort("http", 80, named("http"), tcp))),
			pods: []*corev1.Pod{
				numberedPod(1, containerPorts(cport("http", 8080, tcp))),
				numberedPod(2, containerPorts(cport("http", 9090, tcp))),
				numberedPod(3, containerPorts(cport("http", 8080, tcp))),
			},
			wantPorts:  map[string]string{"pod-001": "[http/TCP/8080]", "pod-002": "[http/TCP/9090]", "pod-003": "[http/TCP/8080]"},
			wantSlices: 2,
		},
		{
			name: "pod without the named port lands in a slice without that port",
			svc:  newSvc(withPorts(svcPort("http", 80, named("http"), tcp), svcPort("metrics", 9100, num(9100), tcp))),
			pods: []*corev1.Pod{
				numberedPod(1, containerPorts(cport("http", 8080, tcp))),
				numberedPod(2, containerPorts(cport("grpc", 8080, tcp))),
			},
			wantPorts:  map[string]string{"pod-001": "[http/TCP/8080 metrics/TCP/9100]", "pod-002": "[metrics/TCP/9100]"},
			wantSlices: 2,
		},
		{
			name: "pod without the only (named) port lands in a slice with no ports",
			svc:  newSvc(withPorts(svcPort("http", 80, named("http"), tcp))),
			pods: []*corev1.Pod{
				numberedPod(1, containerPorts(cport("http", 8080, tcp))),
				numberedPod(2, containerPorts()),
			},
			wantPorts:  map[string]string{"pod-001": "[http/TCP/8080]", "pod-002": "[]"},
			wantSlices: 2,
		},
		{
			name:       "only pod lacks the only named port: endpoint in a port-less slice",
			svc:        newSvc(withPorts(svcPort("http", 80, named("http"), tcp))),
			pods:       []*corev1.Pod{numberedPod(1, containerPorts(cport("web", 8080, tcp)))},
			wantPorts:  map[string]string{"pod-001": "[]"},
			wantSlices: 1,
		},
		{
			name:       "a UDP container port does not satisfy a TCP service port",
			svc:        newSvc(withPorts(svcPort("http", 80, named("http"), tcp))),
			pods:       []*corev1.Pod{numberedPod(1, containerPorts(cport("http", 8080, udp)))},
			wantPorts:  map[string]string{"pod-001": "[]"},
			wantSlices: 1,
		},
		{
			name:       "a UDP service port resolves against a UDP container port",
			svc:        newSvc(withPorts(svcPort("dns", 53, named("dns"), udp))),
			pods:       []*corev1.Pod{numberedPod(1, containerPorts(cport("dns", 8080, tcp), cport("dns", 5353, udp)))},
			wantPorts:  map[string]string{"pod-001": "[dns/UDP/5353]"},
			wantSlices: 1,
		},
		{
			name:       "one name, two protocols, two service ports",
			svc:        newSvc(withPorts(svcPort("dns-tcp", 53, named("dns"), tcp), svcPort("dns-udp", 53, named("dns"), udp))),
			pods:       []*corev1.Pod{numberedPod(1, containerPorts(cport("dns", 5353, tcp), cport("dns", 5354, udp)))},
			wantPorts:  map[string]string{"pod-001": "[dns-tcp/TCP/5353 dns-udp/UDP/5354]"},
			wantSlices: 1,
		},
		{
			name:       "unset protocols default to TCP on both sides",
			svc:        newSvc(withPorts(svcPort("http", 80, named("http"), ""))),
			pods:       []*corev1.Pod{numberedPod(1, containerPorts(cport("http", 8080, "")))},
			wantPorts:  map[string]string{"pod-001": "[http/TCP/8080]"},
			wantSlices: 1,
		},
		{
			name:       "numeric targetPort 0 means the service port",
			svc:        newSvc(withPorts(svcPort("http", 80, num(0), tcp))),
			pods:       []*corev1.Pod{numberedPod(1)},
			wantPorts:  map[string]string{"pod-001": "[http/TCP/80]"},
			wantSlices: 1,
		},
		{
			name:       "unset targetPort means the service port",
			svc:        newSvc(withPorts(v1alpha1.ServicePort{Name: "http", Port: 443, Protocol: tcp})),
			pods:       []*corev1.Pod{numberedPod(1)},
			wantPorts:  map[string]string{"pod-001": "[http/TCP/443]"},
			wantSlices: 1,
		},
		{
			name:       "numeric targetPort needs no container port",
			svc:        newSvc(withPorts(svcPort("https", 443, num(8443), tcp))),
			pods:       []*corev1.Pod{numberedPod(1, containerPorts())},
			wantPorts:  map[string]string{"pod-001": "[https/TCP/8443]"},
			wantSlices: 1,
		},
		{
			name:       "sidecar init container (restartPolicy Always) ports count",
			svc:        newSvc(withPorts(svcPort("metrics", 9100, named("metrics"), tcp))),
			pods:       []*corev1.Pod{numberedPod(1, initContainer(true, cport("metrics", 9102, tcp)))},
			wantPorts:  map[string]string{"pod-001": "[metrics/TCP/9102]"},
			wantSlices: 1,
		},
		{
			name:       "plain init container ports do not count",
			svc:        newSvc(withPorts(svcPort("metrics", 9100, named("metrics"), tcp))),
			pods:       []*corev1.Pod{numberedPod(1, initContainer(false, cport("metrics", 9102, tcp)))},
			wantPorts:  map[string]string{"pod-001": "[]"},
			wantSlices: 1,
		},
		{
			name:       "regular container wins over a sidecar with the same port name",
			svc:        newSvc(withPorts(svcPort("http", 80, named("http"), tcp))),
			pods:       []*corev1.Pod{numberedPod(1, initContainer(true, cport("http", 9999, tcp)))},
			wantPorts:  map[string]string{"pod-001": "[http/TCP/8080]"},
			wantSlices: 1,
		},
		{
			name:       "port of a second regular container",
			svc:        newSvc(withPorts(svcPort("admin", 81, named("admin"), tcp))),
			pods:       []*corev1.Pod{numberedPod(1, extraContainer(cport("admin", 9000, tcp)))},
			wantPorts:  map[string]string{"pod-001": "[admin/TCP/9000]"},
			wantSlices: 1,
		},
		{
			name: "appProtocol is copied",
			svc: newSvc(withPorts(v1alpha1.ServicePort{Name: "http", Port: 80, TargetPort: num(8080), Protocol: tcp,
				AppProtocol: ptr.To("kubernetes.io/h2c")})),
			pods:       []*corev1.Pod{numberedPod(1)},
			wantPorts:  map[string]string{"pod-001": "[http/TCP/8080/kubernetes.io/h2c]"},
			wantSlices: 1,
		},
		{
			name:       "headless Service without ports",
			svc:        newSvc(headless(), withPorts()),
			pods:       []*corev1.Pod{numberedPod(1), numberedPod(2)},
			wantPorts:  map[string]string{"pod-001": "[]", "pod-002": "[]"},
			wantSlices: 1,
		},
		{
			name: "several ports keep the Service's order",
			svc: newSvc(withPorts(svcPort("web", 80, num(8080), tcp), svcPort("admin", 81, named("admin"), tcp),
				svcPort("dns", 53, num(5353), udp))),
			pods:       []*corev1.Pod{numberedPod(1, extraContainer(cport("admin", 9000, tcp)))},
			wantPorts:  map[string]string{"pod-001": "[web/TCP/8080 admin/TCP/9000 dns/UDP/5353]"},
			wantSlices: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI()
			step(t, api, Input{Service: tc.svc, Pods: tc.pods, NodeZones: testZones})
			got := api.list()
			for pod, want := range tc.wantPorts {
				s, _ := mustEndpoint(t, got, v4, pod)
				if ps := portsString(s.Ports); ps != want {
					t.Errorf("%s is in slice %s with ports %s, want %s", pod, s.Name, ps, want)
				}
			}
			if n := len(ofType(got, v4)); n != tc.wantSlices {
				t.Errorf("%d IPv4 slices, want %d: %s", n, tc.wantSlices, describeSlices(got))
			}
		})
	}
}

// TestNamedPortChangeMovesEndpoint: a pod whose named port changes number moves to the
// slice of its new port set, and the old slice loses it.
func TestNamedPortChangeMovesEndpoint(t *testing.T) {
	svc := newSvc(withPorts(svcPort("http", 80, intstr.FromString("http"), corev1.ProtocolTCP)))
	pods := numberedPods(1, 4)
	api := converged(t, Input{Service: svc, Pods: pods, NodeZones: testZones})
	pods[1] = numberedPod(2, containerPorts(cport("http", 9090, corev1.ProtocolTCP)))
	plan := step(t, api, Input{Service: svc, Pods: pods, NodeZones: testZones})
	wantWrites(t, plan, 1, 1, 0)
	s, _ := mustEndpoint(t, api.list(), v4, "pod-002")
	if ps := portsString(s.Ports); ps != "[http/TCP/9090]" {
		t.Errorf("pod-002 in slice with ports %s", ps)
	}
}

// TestEndpointFields checks everything but the conditions of one pod's endpoint.
func TestEndpointFields(t *testing.T) {
	cases := []struct {
		name               string
		zones              map[string]string
		opts               []podOpt
		wantNode, wantZone *string
		wantHostname       *string
	}{
		{name: "node-a in zone-a", zones: testZones, wantNode: ptr.To("node-a"), wantZone: ptr.To("zone-a")},
		{name: "node-b in zone-b", zones: testZones, opts: []podOpt{onNode("node-b")}, wantNode: ptr.To("node-b"), wantZone: ptr.To("zone-b")},
		{name: "node not in NodeZones: no zone", zones: testZones, opts: []podOpt{onNode("node-c")}, wantNode: ptr.To("node-c")},
		{name: "node without a zone label: no zone", zones: map[string]string{"node-a": ""}, wantNode: ptr.To("node-a")},
		{name: "nil NodeZones", zones: nil, wantNode: ptr.To("node-a")},
		{name: "unscheduled pod: no node, no zone", zones: testZones, opts: []podOpt{onNode("")}},
		{name: "hostname when subdomain is the Service", zones: testZones, opts: []podOpt{hostAndSubdomain("web-0", "svc")},
			wantNode: ptr.To("node-a"), wantZone: ptr.To("zone-a"), wantHostname: ptr.To("web-0")},
		{name: "no hostname for another subdomain", zones: testZones, opts: []podOpt{hostAndSubdomain("web-0", "other")},
			wantNode: ptr.To("node-a"), wantZone: ptr.To("zone-a")},
		{name: "no hostname without subdomain", zones: testZones, opts: []podOpt{hostAndSubdomain("web-0", "")},
			wantNode: ptr.To("node-a"), wantZone: ptr.To("zone-a")},
		{name: "no hostname without hostname", zones: testZones, opts: []podOpt{hostAndSubdomain("", "svc")},
			wantNode: ptr.To("node-a"), wantZone: ptr.To("zone-a")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI()
			step(t, api, Input{Service: newSvc(), Pods: []*corev1.Pod{numberedPod(7, tc.opts...)}, NodeZones: tc.zones})
			_, ep := mustEndpoint(t, api.list(), v4, "pod-007")
			want := discoveryv1.Endpoint{
				Addresses: []string{"10.244.0.7"},
				Conditions: discoveryv1.EndpointConditions{
					Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false),
				},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "pod-007", UID: "uid-pod-007"},
				NodeName:  tc.wantNode,
				Zone:      tc.wantZone,
				Hostname:  tc.wantHostname,
			}
			if !equality.Semantic.DeepEqual(*ep, want) {
				t.Errorf("endpoint =\n%#v\nwant\n%#v", *ep, want)
			}
		})
	}
}

// TestDualStackAddresses checks which address of a pod goes into which slices.
func TestDualStackAddresses(t *testing.T) {
	cases := []struct {
		name           string
		svc            *v1alpha1.Service
		pods           []*corev1.Pod
		wantV4, wantV6 []string          // pod names; nil = placeholder (or no slices of that type)
		wantAddr       map[string]string // "<type>/<pod>" -> address
		wantTypes      []discoveryv1.AddressType
	}{
		{
			name:      "dual-stack Service, dual-stack pods: one set of slices per type",
			svc:       newSvc(dualStack()),
			pods:      []*corev1.Pod{dualPod(1), dualPod(2)},
			wantV4:    []string{"pod-001", "pod-002"},
			wantV6:    []string{"pod-001", "pod-002"},
			wantAddr:  map[string]string{"IPv4/pod-001": "10.244.0.1", "IPv6/pod-001": "fd00:10:244::1", "IPv6/pod-002": "fd00:10:244::2"},
			wantTypes: []discoveryv1.AddressType{v4, v6},
		},
		{
			name:      "IPv4-only pod appears only in the IPv4 slices",
			svc:       newSvc(dualStack()),
			pods:      []*corev1.Pod{dualPod(1), numberedPod(2)},
			wantV4:    []string{"pod-001", "pod-002"},
			wantV6:    []string{"pod-001"},
			wantTypes: []discoveryv1.AddressType{v4, v6},
		},
		{
			name:      "IPv6-only pod appears only in the IPv6 slices",
			svc:       newSvc(dualStack()),
			pods:      []*corev1.Pod{dualPod(1), newPod("pod-003", withIPs(ipv6Of(3)))},
			wantV4:    []string{"pod-001"},
			wantV6:    []string{"pod-001", "pod-003"},
			wantAddr:  map[string]string{"IPv6/pod-003": "fd00:10:244::3"},
			wantTypes: []discoveryv1.AddressType{v4, v6},
		},
		{
			name:      "IPv4-only pods: IPv6 gets a placeholder",
			svc:       newSvc(dualStack()),
			pods:      []*corev1.Pod{numberedPod(1), numberedPod(2)},
			wantV4:    []string{"pod-001", "pod-002"},
			wantTypes: []discoveryv1.AddressType{v4, v6},
		},
		{
			name:      "IPv6-primary Service and pods",
			svc:       newSvc(families(corev1.IPv6Protocol, corev1.IPv4Protocol)),
			pods:      []*corev1.Pod{newPod("pod-001", withIPs(ipv6Of(1), ipv4Of(1)))},
			wantV4:    []string{"pod-001"},
			wantV6:    []string{"pod-001"},
			wantAddr:  map[string]string{"IPv4/pod-001": "10.244.0.1", "IPv6/pod-001": "fd00:10:244::1"},
			wantTypes: []discoveryv1.AddressType{v4, v6},
		},
		{
			name:      "single-stack IPv6 Service, dual-stack pods",
			svc:       newSvc(families(corev1.IPv6Protocol)),
			pods:      []*corev1.Pod{dualPod(1)},
			wantV6:    []string{"pod-001"},
			wantTypes: []discoveryv1.AddressType{v6},
		},
		{
			name:      "single-stack IPv4 Service, dual-stack pods",
			svc:       newSvc(),
			pods:      []*corev1.Pod{dualPod(1)},
			wantV4:    []string{"pod-001"},
			wantTypes: []discoveryv1.AddressType{v4},
		},
		{
			name:      "spec.ipFamilies used while status has none",
			svc:       newSvc(families(), specFamilies(corev1.IPv6Protocol)),
			pods:      []*corev1.Pod{dualPod(1)},
			wantV6:    []string{"pod-001"},
			wantTypes: []discoveryv1.AddressType{v6},
		},
		{
			name:      "IPv6 addresses are written in canonical form",
			svc:       newSvc(families(corev1.IPv6Protocol)),
			pods:      []*corev1.Pod{newPod("pod-005", withIPs("FD00:10:244:0:0:0:0:5"))},
			wantV6:    []string{"pod-005"},
			wantAddr:  map[string]string{"IPv6/pod-005": "fd00:10:244::5"},
			wantTypes: []discoveryv1.AddressType{v6},
		},
		{
			name:      "IPv4 from status.podIPs when status.podIP is IPv6",
			svc:       newSvc(),
			pods:      []*corev1.Pod{newPod("pod-004", withIPs(ipv6Of(4), ipv4Of(4)))},
			wantV4:    []string{"pod-004"},
			wantAddr:  map[string]string{"IPv4/pod-004": "10.244.0.4"},
			wantTypes: []discoveryv1.AddressType{v4},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI()
			step(t, api, Input{Service: tc.svc, Pods: tc.pods, NodeZones: testZones})
			got := api.list()
			if n := podNames(got, v4); !slices.Equal(n, tc.wantV4) {
				t.Errorf("IPv4 endpoints = %v, want %v", n, tc.wantV4)
			}
			if n := podNames(got, v6); !slices.Equal(n, tc.wantV6) {
				t.Errorf("IPv6 endpoints = %v, want %v", n, tc.wantV6)
			}
			var types []discoveryv1.AddressType
			for _, s := range got {
				if !slices.Contains(types, s.AddressType) {
					types = append(types, s.AddressType)
				}
			}
			slices.Sort(types)
			if !slices.Equal(types, tc.wantTypes) {
				t.Errorf("address types of slices = %v, want %v", types, tc.wantTypes)
			}
			for key, want := range tc.wantAddr {
				at, pod, _ := strings.Cut(key, "/")
				_, ep := mustEndpoint(t, got, discoveryv1.AddressType(at), pod)
				if !slices.Equal(ep.Addresses, []string{want}) {
					t.Errorf("%s addresses = %v, want [%s]", key, ep.Addresses, want)
				}
			}
		})
	}
}
