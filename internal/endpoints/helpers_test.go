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

// Conventions shared by every test in this package:
//
//   - Namespace "ns"; the Service is "svc" with UID "svc-uid", labels team=payments,
//     selector app=web, one port http 80 -> targetPort 8080/TCP, and
//     status.ipFamilies [IPv4] unless a test says otherwise.
//   - Pod IPv4 addresses are in 10.244.0.0/16: pod number n has 10.244.<n/256>.<n%256>.
//   - Pod IPv6 addresses are in fd00:10:244::/64: pod number n has fd00:10:244::<n in hex>.
//   - Numbered pods are "pod-001", "pod-002", ...; every pod's UID is "uid-<name>".
//   - Pods are ready, Running, on node "node-a", labelled app=web, with one container
//     port http 8080/TCP, unless an option says otherwise.
//   - Nodes are "node-a" in zone "zone-a" and "node-b" in zone "zone-b" (testZones).
//   - The fake API server names created slices "svc-abc0", "svc-abc1", ... in
//     creation order and never reuses a name.

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

const (
	testNS      = "ns"
	testSvcName = "svc"
	testSvcUID  = types.UID("svc-uid")
)

const (
	v4 = discoveryv1.AddressTypeIPv4
	v6 = discoveryv1.AddressTypeIPv6
)

// testZones is the NodeZones of every test: two nodes in two zones.
var testZones = map[string]string{"node-a": "zone-a", "node-b": "zone-b"}

// ipv4Of is pod n's address in 10.244.0.0/16.
func ipv4Of(n int) string { return fmt.Sprintf("10.244.%d.%d", n/256, n%256) }

// ipv6Of is pod n's address in fd00:10:244::/64, in canonical form.
func ipv6Of(n int) string {
	return netip.MustParseAddr(fmt.Sprintf("fd00:10:244::%x", n)).String()
}

// ---------------------------------------------------------------------------
// Pod builder

type podOpt func(*corev1.Pod)

// newPod returns a ready, Running pod on node-a labelled app=web with a container
// port http 8080/TCP and no IP.
func newPod(name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: testNS,
			UID:       types.UID("uid-" + name),
			Labels:    map[string]string{"app": "web"},
		},
		Spec: corev1.PodSpec{
			NodeName: "node-a",
			Containers: []corev1.Container{{
				Name:  "app",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
			}},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// podNamed returns the name of numbered pod n.
func podNamed(n int) string { return fmt.Sprintf("pod-%03d", n) }

// numberedPod is pod n with its IPv4 address only.
func numberedPod(n int, opts ...podOpt) *corev1.Pod {
	return newPod(podNamed(n), append([]podOpt{withIPs(ipv4Of(n))}, opts...)...)
}

// dualPod is pod n with its IPv4 and IPv6 addresses.
func dualPod(n int, opts ...podOpt) *corev1.Pod {
	return newPod(podNamed(n), append([]podOpt{withIPs(ipv4Of(n), ipv6Of(n))}, opts...)...)
}

// numberedPods are pods from..to inclusive, IPv4 only.
func numberedPods(from, to int, opts ...podOpt) []*corev1.Pod {
	var out []*corev1.Pod
	for n := from; n <= to; n++ {
		out = append(out, numberedPod(n, opts...))
	}
	return out
}

// withIPs sets status.podIP to the first address and status.podIPs to all of them.
func withIPs(addrs ...string) podOpt {
	return func(p *corev1.Pod) {
		p.Status.PodIP, p.Status.PodIPs = "", nil
		if len(addrs) > 0 {
			p.Status.PodIP = addrs[0]
		}
		for _, a := range addrs {
			p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: a})
		}
	}
}

// withPodIPsOnly sets status.podIPs but leaves status.podIP empty.
func withPodIPsOnly(addrs ...string) podOpt {
	return func(p *corev1.Pod) {
		p.Status.PodIP, p.Status.PodIPs = "", nil
		for _, a := range addrs {
			p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: a})
		}
	}
}

func ready(b bool) podOpt {
	return func(p *corev1.Pod) {
		status := corev1.ConditionFalse
		if b {
			status = corev1.ConditionTrue
		}
		p.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
			{Type: corev1.PodReady, Status: status},
		}
	}
}

func noConditions() podOpt { return func(p *corev1.Pod) { p.Status.Conditions = nil } }

func onNode(node string) podOpt { return func(p *corev1.Pod) { p.Spec.NodeName = node } }

func deleting() podOpt {
	return func(p *corev1.Pod) {
		ts := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		p.DeletionTimestamp = &ts
	}
}

func podLabels(l map[string]string) podOpt { return func(p *corev1.Pod) { p.Labels = l } }

func inNamespace(ns string) podOpt { return func(p *corev1.Pod) { p.Namespace = ns } }

func phase(ph corev1.PodPhase) podOpt { return func(p *corev1.Pod) { p.Status.Phase = ph } }

func withUID(uid string) podOpt { return func(p *corev1.Pod) { p.UID = types.UID(uid) } }

// containerPorts replaces the ports of the pod's only regular container.
func containerPorts(ports ...corev1.ContainerPort) podOpt {
	return func(p *corev1.Pod) { p.Spec.Containers[0].Ports = ports }
}

// extraContainer adds a second regular container.
func extraContainer(ports ...corev1.ContainerPort) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "extra", Ports: ports})
	}
}

// initContainer adds an init container; sidecar gives it restartPolicy Always.
func initContainer(sidecar bool, ports ...corev1.ContainerPort) podOpt {
	return func(p *corev1.Pod) {
		c := corev1.Container{Name: fmt.Sprintf("init-%d", len(p.Spec.InitContainers)), Ports: ports}
		if sidecar {
			c.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
		}
		p.Spec.InitContainers = append(p.Spec.InitContainers, c)
	}
}

func hostAndSubdomain(hostname, subdomain string) podOpt {
	return func(p *corev1.Pod) { p.Spec.Hostname, p.Spec.Subdomain = hostname, subdomain }
}

func cport(name string, port int32, proto corev1.Protocol) corev1.ContainerPort {
	return corev1.ContainerPort{Name: name, ContainerPort: port, Protocol: proto}
}

// ---------------------------------------------------------------------------
// Service builder

type svcOpt func(*v1alpha1.Service)

func newSvc(opts ...svcOpt) *v1alpha1.Service {
	s := &v1alpha1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:      testSvcName,
			Namespace: testNS,
			UID:       testSvcUID,
			Labels:    map[string]string{"team": "payments"},
		},
		Spec: v1alpha1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: map[string]string{"app": "web"},
			Ports:    []v1alpha1.ServicePort{svcPort("http", 80, intstr.FromInt32(8080), corev1.ProtocolTCP)},
		},
		Status: v1alpha1.ServiceStatus{
			ClusterIP:  "10.96.0.10",
			ClusterIPs: []string{"10.96.0.10"},
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func svcPort(name string, port int32, target intstr.IntOrString, proto corev1.Protocol) v1alpha1.ServicePort {
	return v1alpha1.ServicePort{Name: name, Port: port, TargetPort: target, Protocol: proto}
}

func withPorts(ports ...v1alpha1.ServicePort) svcOpt {
	return func(s *v1alpha1.Service) { s.Spec.Ports = ports }
}

func withSelector(sel map[string]string) svcOpt {
	return func(s *v1alpha1.Service) { s.Spec.Selector = sel }
}

func withType(t corev1.ServiceType) svcOpt {
	return func(s *v1alpha1.Service) {
		s.Spec.Type = t
		if t == corev1.ServiceTypeExternalName {
			s.Spec.ExternalName = "db.example.com"
			s.Spec.ClusterIP, s.Status.ClusterIP, s.Status.ClusterIPs = "", "", nil
		}
	}
}

// families sets status.ipFamilies (what the allocator decided).
func families(f ...corev1.IPFamily) svcOpt {
	return func(s *v1alpha1.Service) { s.Status.IPFamilies = f }
}

// specFamilies sets spec.ipFamilies (what the user asked for).
func specFamilies(f ...corev1.IPFamily) svcOpt {
	return func(s *v1alpha1.Service) { s.Spec.IPFamilies = f }
}

func dualStack() svcOpt { return families(corev1.IPv4Protocol, corev1.IPv6Protocol) }

func headless() svcOpt {
	return func(s *v1alpha1.Service) {
		s.Spec.ClusterIP = v1alpha1.ClusterIPNone
		s.Status.ClusterIP, s.Status.ClusterIPs = v1alpha1.ClusterIPNone, []string{v1alpha1.ClusterIPNone}
	}
}

func publishNotReady() svcOpt {
	return func(s *v1alpha1.Service) { s.Spec.PublishNotReadyAddresses = true }
}

func svcLabels(l map[string]string) svcOpt { return func(s *v1alpha1.Service) { s.Labels = l } }

// ---------------------------------------------------------------------------
// Fake API server

// fakeAPI holds the EndpointSlices of the namespace and applies Plans to them the way
// the API server would: creates get a generated name, updates must name an existing
// slice and carry its resourceVersion, deletes must name an existing slice. It rejects
// what the API server rejects in the fields Compute writes (more than one controller
// owner reference, an address of the wrong family, a changed addressType, too many
// endpoints or ports) and dedups identical owner references as the API server does.
type fakeAPI struct {
	slices   map[string]*discoveryv1.EndpointSlice
	nextName int
	nextRV   int
}

func newFakeAPI() *fakeAPI { return &fakeAPI{slices: map[string]*discoveryv1.EndpointSlice{}} }

// list returns deep copies of the stored slices, sorted by name.
func (a *fakeAPI) list() []*discoveryv1.EndpointSlice {
	out := make([]*discoveryv1.EndpointSlice, 0, len(a.slices))
	for _, name := range slices.Sorted(maps.Keys(a.slices)) {
		out = append(out, a.slices[name].DeepCopy())
	}
	return out
}

func (a *fakeAPI) get(name string) *discoveryv1.EndpointSlice {
	if s, ok := a.slices[name]; ok {
		return s.DeepCopy()
	}
	return nil
}

func (a *fakeAPI) bumpRV() string {
	a.nextRV++
	return strconv.Itoa(a.nextRV)
}

// put stores a slice as a user would create it with a fixed name, bypassing Compute.
func (a *fakeAPI) put(s *discoveryv1.EndpointSlice) {
	s = s.DeepCopy()
	s.ResourceVersion = a.bumpRV()
	a.slices[s.Name] = s
}

// edit changes a stored slice by hand, as `kubectl edit` would.
func (a *fakeAPI) edit(t *testing.T, name string, f func(*discoveryv1.EndpointSlice)) {
	t.Helper()
	s, ok := a.slices[name]
	if !ok {
		t.Fatalf("edit: no slice %q", name)
	}
	s = s.DeepCopy()
	f(s)
	s.ResourceVersion = a.bumpRV()
	a.slices[name] = s
}

// apply applies a plan atomically, or returns the first error the API server would.
func (a *fakeAPI) apply(p Plan) error {
	touched := map[string]string{}
	for _, s := range p.Update {
		if prev, dup := touched[s.Name]; dup {
			return fmt.Errorf("slice %q is written twice in one plan (%s and update)", s.Name, prev)
		}
		touched[s.Name] = "update"
	}
	for _, s := range p.Delete {
		if prev, dup := touched[s.Name]; dup {
			return fmt.Errorf("slice %q is written twice in one plan (%s and delete)", s.Name, prev)
		}
		touched[s.Name] = "delete"
	}
	next := maps.Clone(a.slices)
	for _, s := range p.Delete {
		if s.Name == "" {
			return fmt.Errorf("delete of a slice without a name")
		}
		if _, ok := next[s.Name]; !ok {
			return fmt.Errorf("delete %q: not found", s.Name)
		}
		delete(next, s.Name)
	}
	for _, s := range p.Update {
		cur, ok := a.slices[s.Name]
		if !ok {
			return fmt.Errorf("update %q: not found", s.Name)
		}
		if s.ResourceVersion != cur.ResourceVersion {
			return fmt.Errorf("update %q: resourceVersion %q, stored %q (conflict)", s.Name, s.ResourceVersion, cur.ResourceVersion)
		}
		if s.AddressType != cur.AddressType {
			return fmt.Errorf("update %q: addressType: field is immutable (%s -> %s)", s.Name, cur.AddressType, s.AddressType)
		}
		if s.Namespace != cur.Namespace || s.UID != cur.UID {
			return fmt.Errorf("update %q: namespace or uid changed", s.Name)
		}
		u := s.DeepCopy()
		if err := admit(u); err != nil {
			return fmt.Errorf("update %q: %w", s.Name, err)
		}
		u.ResourceVersion = a.bumpRV()
		next[s.Name] = u
	}
	for _, s := range p.Create {
		if s.Name != "" || s.GenerateName == "" {
			return fmt.Errorf("create: want only generateName, got name %q generateName %q", s.Name, s.GenerateName)
		}
		if s.ResourceVersion != "" || s.UID != "" {
			return fmt.Errorf("create: resourceVersion/uid must be empty")
		}
		c := s.DeepCopy()
		if err := admit(c); err != nil {
			return fmt.Errorf("create %s: %w", s.GenerateName, err)
		}
		c.Name = fmt.Sprintf("%sabc%d", c.GenerateName, a.nextName)
		a.nextName++
		c.UID = types.UID("uid-" + c.Name)
		c.ResourceVersion = a.bumpRV()
		next[c.Name] = c
	}
	a.slices = next
	return nil
}

// admit dedups identical owner references and validates what the API server would.
func admit(s *discoveryv1.EndpointSlice) error {
	var refs []metav1.OwnerReference
	for _, r := range s.OwnerReferences {
		if !slices.ContainsFunc(refs, func(o metav1.OwnerReference) bool { return equality.Semantic.DeepEqual(o, r) }) {
			refs = append(refs, r)
		}
	}
	s.OwnerReferences = refs
	controllers := 0
	for _, r := range refs {
		if r.Controller != nil && *r.Controller {
			controllers++
		}
	}
	if controllers > 1 {
		return fmt.Errorf("metadata.ownerReferences: Invalid value: Only one reference can have Controller set to true")
	}
	if s.Namespace != testNS {
		return fmt.Errorf("namespace %q, want %q", s.Namespace, testNS)
	}
	switch s.AddressType {
	case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN:
	default:
		return fmt.Errorf("addressType %q: unsupported", s.AddressType)
	}
	if len(s.Endpoints) > 1000 {
		return fmt.Errorf("endpoints: too many: %d", len(s.Endpoints))
	}
	if len(s.Ports) > 100 {
		return fmt.Errorf("ports: too many: %d", len(s.Ports))
	}
	names := map[string]bool{}
	for _, p := range s.Ports {
		n := deref(p.Name)
		if names[n] {
			return fmt.Errorf("ports: duplicate name %q", n)
		}
		names[n] = true
	}
	for i, ep := range s.Endpoints {
		if len(ep.Addresses) == 0 || len(ep.Addresses) > 100 {
			return fmt.Errorf("endpoints[%d].addresses: %d addresses", i, len(ep.Addresses))
		}
		for _, addr := range ep.Addresses {
			ip, err := netip.ParseAddr(addr)
			if s.AddressType == discoveryv1.AddressTypeFQDN {
				continue
			}
			if err != nil || ip.Is4() != (s.AddressType == discoveryv1.AddressTypeIPv4) {
				return fmt.Errorf("endpoints[%d].addresses: %q is not a valid %s address", i, addr, s.AddressType)
			}
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// Driving Compute

// step runs Compute against the fake API's slices, checks that Compute did not
// modify its input, applies the plan, and checks that the result is a fixpoint and
// satisfies the package invariants. It returns the plan.
func step(t *testing.T, api *fakeAPI, in Input) Plan {
	t.Helper()
	in.Existing = api.list()
	snapshot := deepCopyInput(in)
	plan := Compute(in)
	if !inputEqual(in, snapshot) {
		t.Errorf("Compute modified its input")
	}
	if err := api.apply(plan); err != nil {
		t.Fatalf("the API server rejects the plan: %v\nplan: %s", err, describePlan(plan))
	}
	assertFixpoint(t, api, in)
	checkInvariants(t, in, api.list())
	return plan
}

// assertFixpoint checks that Compute on the applied state writes nothing.
func assertFixpoint(t *testing.T, api *fakeAPI, in Input) {
	t.Helper()
	in.Existing = api.list()
	if again := Compute(in); again.Writes() != 0 {
		t.Errorf("not a fixpoint: Compute after applying the plan wants %d more writes: %s\nstate: %s",
			again.Writes(), describePlan(again), describeSlices(api.list()))
	}
}

// converged returns a fake API holding the converged slices of in, built from nothing
// in a single step.
func converged(t *testing.T, in Input) *fakeAPI {
	t.Helper()
	api := newFakeAPI()
	step(t, api, in)
	return api
}

type inputCopy struct {
	svc      *v1alpha1.Service
	pods     []*corev1.Pod
	zones    map[string]string
	existing []*discoveryv1.EndpointSlice
}

func deepCopyInput(in Input) inputCopy {
	c := inputCopy{zones: maps.Clone(in.NodeZones)}
	if in.Service != nil {
		c.svc = in.Service.DeepCopy()
	}
	for _, p := range in.Pods {
		c.pods = append(c.pods, p.DeepCopy())
	}
	for _, s := range in.Existing {
		c.existing = append(c.existing, s.DeepCopy())
	}
	return c
}

func inputEqual(in Input, c inputCopy) bool {
	return equality.Semantic.DeepEqual(in.Service, c.svc) &&
		equality.Semantic.DeepEqual(in.Pods, c.pods) &&
		equality.Semantic.DeepEqual(in.Existing, c.existing) &&
		maps.Equal(in.NodeZones, c.zones)
}

// ---------------------------------------------------------------------------
// Independent oracle and invariants

// wantLabels is the label set every managed slice of svc carries, written out
// independently of desiredLabels.
func wantLabels(svc *v1alpha1.Service) map[string]string {
	out := map[string]string{}
	for k, v := range svc.Labels {
		switch k {
		case "kubernetes.io/service-name", "endpointslice.kubernetes.io/managed-by", "service.kubernetes.io/headless":
		default:
			out[k] = v
		}
	}
	out["networking.svcplane.io/service-name"] = svc.Name
	out["endpointslice.kubernetes.io/managed-by"] = "endpointslice.svcplane.io"
	if svc.Spec.ClusterIP == "None" || svc.Status.ClusterIP == "None" {
		out["service.kubernetes.io/headless"] = ""
	}
	return out
}

// wantPods is the sorted names of the pods that should have an endpoint of address
// type at, written out independently of desiredGroups.
func wantPods(in Input, at discoveryv1.AddressType) []string {
	var out []string
	for _, p := range in.Pods {
		if p.Namespace != in.Service.Namespace || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		match := true
		for k, v := range in.Service.Spec.Selector {
			if got, ok := p.Labels[k]; !ok || got != v {
				match = false
			}
		}
		if match && addrOf(p, at) != "" {
			out = append(out, p.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func addrOf(p *corev1.Pod, at discoveryv1.AddressType) string {
	all := []string{p.Status.PodIP}
	for _, ip := range p.Status.PodIPs {
		all = append(all, ip.IP)
	}
	for _, s := range all {
		if ip, err := netip.ParseAddr(s); err == nil && ip.Is4() == (at == discoveryv1.AddressTypeIPv4) {
			return ip.String()
		}
	}
	return ""
}

// checkInvariants checks what must hold of any converged state.
func checkInvariants(t *testing.T, in Input, got []*discoveryv1.EndpointSlice) {
	t.Helper()
	svc := in.Service
	if !Selects(svc) {
		if len(got) != 0 {
			t.Errorf("a Service without managed endpoints keeps slices: %s", describeSlices(got))
		}
		return
	}
	ats := AddressTypes(svc)
	if len(ats) == 0 {
		return // families not known: nothing is touched
	}
	maxPer := cmp.Or(in.MaxEndpointsPerSlice, DefaultMaxEndpointsPerSlice)
	labels := wantLabels(svc)
	for _, s := range got {
		if !maps.Equal(s.Labels, labels) {
			t.Errorf("slice %s labels = %v, want %v", s.Name, s.Labels, labels)
		}
		if !metav1.IsControlledBy(s, svc) {
			t.Errorf("slice %s is not controlled by the Service: %+v", s.Name, s.OwnerReferences)
		}
		if !slices.Contains(ats, s.AddressType) {
			t.Errorf("slice %s has address type %s, Service families give %v", s.Name, s.AddressType, ats)
		}
		if len(s.Endpoints) > maxPer {
			t.Errorf("slice %s has %d endpoints, max %d", s.Name, len(s.Endpoints), maxPer)
		}
	}
	pods := map[string]*corev1.Pod{}
	for _, p := range in.Pods {
		if p.Namespace == svc.Namespace {
			pods[p.Name] = p
		}
	}
	for _, at := range ats {
		var nonEmpty, empty int
		seen := map[types.UID]string{}
		for _, s := range got {
			if s.AddressType != at {
				continue
			}
			if len(s.Endpoints) == 0 {
				empty++
				if len(s.Ports) != 0 {
					t.Errorf("empty slice %s has ports %s", s.Name, portsString(s.Ports))
				}
				continue
			}
			nonEmpty++
			for _, ep := range s.Endpoints {
				if ep.TargetRef == nil {
					t.Errorf("slice %s has an endpoint without targetRef: %v", s.Name, ep.Addresses)
					continue
				}
				if other, dup := seen[ep.TargetRef.UID]; dup {
					t.Errorf("%s endpoint of %s is in both %s and %s", at, ep.TargetRef.Name, other, s.Name)
				}
				seen[ep.TargetRef.UID] = s.Name
				if p := pods[ep.TargetRef.Name]; p != nil {
					if want := addrOf(p, at); !slices.Equal(ep.Addresses, []string{want}) {
						t.Errorf("slice %s: %s has addresses %v, want [%s]", s.Name, ep.TargetRef.Name, ep.Addresses, want)
					}
				}
			}
		}
		if nonEmpty > 0 && empty > 0 {
			t.Errorf("%s: %d empty slice(s) alongside %d non-empty: %s", at, empty, nonEmpty, describeSlices(got))
		}
		if nonEmpty == 0 && empty != 1 {
			t.Errorf("%s: no endpoints, want exactly one placeholder slice, got %d empty: %s", at, empty, describeSlices(got))
		}
		if gotPods, want := podNames(got, at), wantPods(in, at); !slices.Equal(gotPods, want) {
			t.Errorf("%s endpoints = %v, want %v", at, gotPods, want)
		}
	}
}

// ---------------------------------------------------------------------------
// Inspecting slices and plans

// podNames is the sorted target pod names of all endpoints of address type at.
func podNames(ss []*discoveryv1.EndpointSlice, at discoveryv1.AddressType) []string {
	var out []string
	for _, s := range ss {
		if s.AddressType == at {
			out = append(out, epNames(s)...)
		}
	}
	slices.Sort(out)
	return out
}

// epNames is a slice's endpoints' target pod names, in slice order.
func epNames(s *discoveryv1.EndpointSlice) []string {
	var out []string
	for _, ep := range s.Endpoints {
		if ep.TargetRef != nil {
			out = append(out, ep.TargetRef.Name)
		} else {
			out = append(out, "<no-ref:"+strings.Join(ep.Addresses, ",")+">")
		}
	}
	return out
}

func ofType(ss []*discoveryv1.EndpointSlice, at discoveryv1.AddressType) []*discoveryv1.EndpointSlice {
	var out []*discoveryv1.EndpointSlice
	for _, s := range ss {
		if s.AddressType == at {
			out = append(out, s)
		}
	}
	return out
}

// sizes is the sorted endpoint counts of the slices, largest first.
func sizes(ss []*discoveryv1.EndpointSlice) []int {
	var out []int
	for _, s := range ss {
		out = append(out, len(s.Endpoints))
	}
	slices.SortFunc(out, func(a, b int) int { return cmp.Compare(b, a) })
	return out
}

// findEndpoint returns the slice and endpoint of pod's address of type at.
func findEndpoint(ss []*discoveryv1.EndpointSlice, at discoveryv1.AddressType, pod string) (*discoveryv1.EndpointSlice, *discoveryv1.Endpoint) {
	for _, s := range ss {
		if s.AddressType != at {
			continue
		}
		for i := range s.Endpoints {
			if r := s.Endpoints[i].TargetRef; r != nil && r.Name == pod {
				return s, &s.Endpoints[i]
			}
		}
	}
	return nil, nil
}

// mustEndpoint is findEndpoint that fails the test when there is none.
func mustEndpoint(t *testing.T, ss []*discoveryv1.EndpointSlice, at discoveryv1.AddressType, pod string) (*discoveryv1.EndpointSlice, *discoveryv1.Endpoint) {
	t.Helper()
	s, ep := findEndpoint(ss, at, pod)
	if ep == nil {
		t.Fatalf("no %s endpoint for %s in %s", at, pod, describeSlices(ss))
	}
	return s, ep
}

func names(ss []*discoveryv1.EndpointSlice) []string {
	var out []string
	for _, s := range ss {
		out = append(out, cmp.Or(s.Name, s.GenerateName+"*"))
	}
	return out
}

func portsString(ps []discoveryv1.EndpointPort) string {
	var parts []string
	for _, p := range ps {
		s := fmt.Sprintf("%s/%s/%d", deref(p.Name), deref(p.Protocol), deref(p.Port))
		if p.AppProtocol != nil {
			s += "/" + *p.AppProtocol
		}
		parts = append(parts, s)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func describeSlice(s *discoveryv1.EndpointSlice) string {
	eps := epNames(s)
	if len(eps) > 6 {
		eps = append(eps[:3:3], fmt.Sprintf("...(%d)...", len(eps)-6), eps[len(eps)-3], eps[len(eps)-2], eps[len(eps)-1])
	}
	return fmt.Sprintf("%s %s ports=%s n=%d eps=%v", cmp.Or(s.Name, s.GenerateName+"*"), s.AddressType, portsString(s.Ports), len(s.Endpoints), eps)
}

func describeSlices(ss []*discoveryv1.EndpointSlice) string {
	var parts []string
	for _, s := range ss {
		parts = append(parts, describeSlice(s))
	}
	return "{" + strings.Join(parts, "; ") + "}"
}

func describePlan(p Plan) string {
	return fmt.Sprintf("create=%s update=%s delete=%v", describeSlices(p.Create), describeSlices(p.Update), names(p.Delete))
}

// wantWrites checks the plan's number of creates, updates and deletes.
func wantWrites(t *testing.T, p Plan, create, update, del int) {
	t.Helper()
	if len(p.Create) != create || len(p.Update) != update || len(p.Delete) != del {
		t.Errorf("plan has %d create / %d update / %d delete, want %d / %d / %d: %s",
			len(p.Create), len(p.Update), len(p.Delete), create, update, del, describePlan(p))
	}
}
