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

package ippool

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers/allocator"
	"github.com/svcplane/svcplane/controllers/loadbalancer"
)

var ctx = context.Background()

// harness is a Provider with its resyncs recorded.
type harness struct {
	*Provider
	t       *testing.T
	mu      sync.Mutex
	resyncs []types.NamespacedName
}

func newHarness(t *testing.T, pools ...*v1alpha1.LoadBalancerIPPool) *harness {
	h := &harness{Provider: New(), t: t}
	h.SetResync(func(keys ...types.NamespacedName) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.resyncs = append(h.resyncs, keys...)
	})
	for _, p := range pools {
		h.SetPool(p)
	}
	h.Restore(nil)
	h.takeResyncs()
	return h
}

func (h *harness) takeResyncs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, k := range h.resyncs {
		out = append(out, k.String())
	}
	h.resyncs = nil
	slices.Sort(out)
	return slices.Compact(out)
}

// ensure ensures the Service and fails the test on error; it returns the ingress IPs.
func (h *harness) ensure(svc *v1alpha1.Service) []string {
	h.t.Helper()
	st, err := h.EnsureLoadBalancer(ctx, svc, nil)
	if err != nil {
		h.t.Fatalf("EnsureLoadBalancer(%s/%s): %v", svc.Namespace, svc.Name, err)
	}
	var out []string
	for _, in := range st.Ingress {
		if in.IPMode == nil || *in.IPMode != corev1.LoadBalancerIPModeVIP {
			h.t.Errorf("ingress %s has ipMode %v, want VIP", in.IP, in.IPMode)
		}
		out = append(out, in.IP)
	}
	return out
}

// ensureFails ensures the Service and returns the error, failing the test if there
// is none.
func (h *harness) ensureFails(svc *v1alpha1.Service) string {
	h.t.Helper()
	st, err := h.EnsureLoadBalancer(ctx, svc, nil)
	if err == nil {
		h.t.Fatalf("EnsureLoadBalancer(%s/%s) = %v, want an error", svc.Namespace, svc.Name, st.Ingress)
	}
	return err.Error()
}

func (h *harness) usage(pool string) [2]int64 {
	h.t.Helper()
	st, ok := h.Status(pool)
	if !ok {
		h.t.Fatalf("no pool %q", pool)
	}
	return [2]int64{st.Used, st.Free}
}

func newPoolObj(name string, addresses ...string) *v1alpha1.LoadBalancerIPPool {
	return &v1alpha1.LoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1}, Spec: v1alpha1.LoadBalancerIPPoolSpec{Addresses: addresses}}
}

func manual(p *v1alpha1.LoadBalancerIPPool) *v1alpha1.LoadBalancerIPPool {
	p.Spec.AutoAssign = ptr.To(false)
	return p
}

func svc(ns, name string, mutate ...func(*v1alpha1.Service)) *v1alpha1.Service {
	s := &v1alpha1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(ns + "-" + name)},
		Spec:       v1alpha1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		Status:     v1alpha1.ServiceStatus{IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func families(f ...corev1.IPFamily) func(*v1alpha1.Service) {
	return func(s *v1alpha1.Service) { s.Status.IPFamilies = f }
}

func preferDual(s *v1alpha1.Service) {
	s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyPreferDualStack)
	s.Status.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
}

func annotate(k, v string) func(*v1alpha1.Service) {
	return func(s *v1alpha1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
	}
}

func fromPool(name string) func(*v1alpha1.Service) {
	return annotate(v1alpha1.AnnotationLoadBalancerIPPool, name)
}

func requestIPs(list string) func(*v1alpha1.Service) {
	return annotate(v1alpha1.AnnotationLoadBalancerIPs, list)
}

func ingress(s *v1alpha1.Service, ips ...string) *v1alpha1.Service {
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return s
}

func in(prefix string) func(string) bool {
	p := netip.MustParsePrefix(prefix)
	return func(s string) bool { return p.Contains(netip.MustParseAddr(s)) }
}

func TestAllocatesOneAddressPerFamilyInFamilyOrder(t *testing.T) {
	h := newHarness(t, newPoolObj("dual", "192.0.2.0/29", "2001:db8::/125"))
	tests := []struct {
		name  string
		svc   *v1alpha1.Service
		check []func(string) bool
	}{
		{"IPv4", svc("a", "v4"), []func(string) bool{in("192.0.2.0/29")}},
		{"IPv6", svc("a", "v6", families(corev1.IPv6Protocol)), []func(string) bool{in("2001:db8::/125")}},
		{"dual, IPv4 first", svc("a", "dual4", families(corev1.IPv4Protocol, corev1.IPv6Protocol)), []func(string) bool{in("192.0.2.0/29"), in("2001:db8::/125")}},
		{"dual, IPv6 first", svc("a", "dual6", families(corev1.IPv6Protocol, corev1.IPv4Protocol)), []func(string) bool{in("2001:db8::/125"), in("192.0.2.0/29")}},
		{"families from spec before allocation", svc("a", "spec", func(s *v1alpha1.Service) {
			s.Status.IPFamilies, s.Spec.IPFamilies = nil, []corev1.IPFamily{corev1.IPv6Protocol}
		}), []func(string) bool{in("2001:db8::/125")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := h.ensure(tt.svc)
			if len(got) != len(tt.check) {
				t.Fatalf("got %v, want %d addresses", got, len(tt.check))
			}
			for i, ok := range tt.check {
				if !ok(got[i]) {
					t.Errorf("address %d is %s, not of the expected family and pool", i, got[i])
				}
			}
			if again := h.ensure(tt.svc); !slices.Equal(again, got) {
				t.Errorf("a second ensure gave %v, want the same %v", again, got)
			}
			st, exists, err := h.GetLoadBalancer(ctx, tt.svc)
			if err != nil || !exists || len(st.Ingress) != len(got) {
				t.Errorf("GetLoadBalancer = %v, %v, %v", st, exists, err)
			}
		})
	}
	if got := h.usage("dual"); got != [2]int64{7, 9} {
		t.Errorf("usage = %v, want 3 of 8 IPv4 and 4 of 8 IPv6 addresses used", got)
	}
}

func TestDualStackPolicies(t *testing.T) {
	h := newHarness(t, newPoolObj("v4only", "192.0.2.0/30"))
	if got := h.ensure(svc("a", "prefer", preferDual)); len(got) != 1 || !in("192.0.2.0/30")(got[0]) {
		t.Errorf("PreferDualStack without IPv6 addresses got %v, want one IPv4 address", got)
	}
	require := svc("a", "require", families(corev1.IPv4Protocol, corev1.IPv6Protocol), func(s *v1alpha1.Service) {
		s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
	})
	if msg := h.ensureFails(require); msg != "no LoadBalancerIPPool with IPv6 addresses auto-assigns to this Service" {
		t.Errorf("RequireDualStack without IPv6 addresses: %q", msg)
	}
	if got := h.usage("v4only"); got != [2]int64{1, 3} {
		t.Errorf("usage = %v: the failed dual-stack ensure must not keep its IPv4 address", got)
	}
}

func TestRequestedAddresses(t *testing.T) {
	h := newHarness(t, newPoolObj("p", "192.0.2.0/28", "2001:db8::/124"), manual(newPoolObj("reserved", "198.51.100.0/30")))
	tests := []struct {
		name    string
		svc     *v1alpha1.Service
		want    []string
		wantErr string
	}{
		{name: "spec.loadBalancerIP", svc: svc("a", "legacy", func(s *v1alpha1.Service) { s.Spec.LoadBalancerIP = "192.0.2.5" }), want: []string{"192.0.2.5"}},
		{name: "annotation, per family", svc: svc("a", "pair", families(corev1.IPv4Protocol, corev1.IPv6Protocol), requestIPs("2001:db8::7,192.0.2.7")), want: []string{"192.0.2.7", "2001:db8::7"}},
		{name: "one family asked for, the other allocated", svc: svc("a", "half", families(corev1.IPv4Protocol, corev1.IPv6Protocol), requestIPs("2001:db8::8")), want: []string{"192.0.2.", "2001:db8::8"}},
		{name: "from a pool that does not auto-assign", svc: svc("a", "manual", requestIPs("198.51.100.2")), want: []string{"198.51.100.2"}},
		{name: "taken", svc: svc("b", "thief", requestIPs("192.0.2.5")), wantErr: "failed to allocate IP 192.0.2.5: provided IP is already allocated"},
		{name: "outside every pool", svc: svc("a", "lost", requestIPs("192.0.2.200")), wantErr: "the provided IP (192.0.2.200) is not in any LoadBalancerIPPool this Service may use"},
		{name: "outside the named pool", svc: svc("a", "wrong", requestIPs("192.0.2.9"), fromPool("reserved")), wantErr: `the provided IP (192.0.2.9) is not in LoadBalancerIPPool "reserved"`},
		{name: "a family the Service does not have", svc: svc("a", "v6", requestIPs("2001:db8::9")), wantErr: "requested address 2001:db8::9 is IPv6, but the Service's IP families are [IPv4]"},
		{name: "malformed", svc: svc("a", "bad", requestIPs("192.0.2.1,192.0.2.2")), wantErr: "may specify no more than one IP for each IP family"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantErr != "" {
				if msg := h.ensureFails(tt.svc); !strings.Contains(msg, tt.wantErr) {
					t.Errorf("error %q, want %q", msg, tt.wantErr)
				}
				return
			}
			got := h.ensure(tt.svc)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestChangingTheRequestMovesAndReleases(t *testing.T) {
	h := newHarness(t, newPoolObj("p", "192.0.2.0/29"))
	a := svc("a", "mover", requestIPs("192.0.2.1"))
	waiting := svc("a", "waiter", requestIPs("192.0.2.1"))
	h.ensure(a)
	h.ensureFails(waiting)
	h.takeResyncs()

	a.Annotations[v1alpha1.AnnotationLoadBalancerIPs] = "192.0.2.2"
	if got := h.ensure(a); !slices.Equal(got, []string{"192.0.2.2"}) {
		t.Fatalf("moved to %v", got)
	}
	if got := h.takeResyncs(); !slices.Equal(got, []string{"a/waiter"}) {
		t.Errorf("releasing 192.0.2.1 resynced %v, want the waiting Service", got)
	}
	if got := h.ensure(waiting); !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Errorf("the waiting Service got %v", got)
	}
	delete(a.Annotations, v1alpha1.AnnotationLoadBalancerIPs)
	if got := h.ensure(a); !slices.Equal(got, []string{"192.0.2.2"}) {
		t.Errorf("dropping the request keeps the address: got %v", got)
	}
}

func TestExhaustionAndRecovery(t *testing.T) {
	h := newHarness(t, manual(newPoolObj("small", "198.51.100.10-198.51.100.11")))
	a, b, c := svc("a", "a", fromPool("small")), svc("a", "b", fromPool("small")), svc("a", "c", fromPool("small"))
	got := append(h.ensure(a), h.ensure(b)...)
	slices.Sort(got)
	if !slices.Equal(got, []string{"198.51.100.10", "198.51.100.11"}) {
		t.Fatalf("got %v, want both addresses", got)
	}
	if pools := h.PoolsContaining(netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("203.0.113.1")); !slices.Equal(pools, []string{"small"}) {
		t.Errorf("PoolsContaining = %v, want the pool whose use taking the address changed", pools)
	}
	if msg := h.ensureFails(c); msg != `failed to allocate a load balancer IPv4 address from LoadBalancerIPPool "small": range is full` {
		t.Errorf("exhausted: %q", msg)
	}
	if got := h.usage("small"); got != [2]int64{2, 0} {
		t.Errorf("usage = %v", got)
	}

	freed := h.Holds(types.NamespacedName{Namespace: "a", Name: "a"})
	if err := h.EnsureLoadBalancerDeleted(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got := h.takeResyncs(); !slices.Equal(got, []string{"a/c"}) {
		t.Errorf("the release resynced %v, want the waiting Service", got)
	}
	if got := h.usage("small"); got != [2]int64{1, 1} {
		t.Errorf("usage after the release = %v", got)
	}
	if got := h.ensure(c); got[0] != freed[0].String() {
		t.Errorf("the waiting Service got %v, want the freed %v", got, freed)
	}
	if err := h.EnsureLoadBalancerDeleted(ctx, a); err != nil {
		t.Errorf("deleting twice: %v", err)
	}
	if _, exists, _ := h.GetLoadBalancer(ctx, a); exists {
		t.Error("a deleted load balancer still exists")
	}
}

func TestMissingPool(t *testing.T) {
	h := newHarness(t)
	early := svc("a", "early", fromPool("later"))
	if msg := h.ensureFails(early); msg != `LoadBalancerIPPool "later" not found` {
		t.Errorf("missing pool: %q", msg)
	}
	none := svc("a", "none")
	if msg := h.ensureFails(none); msg != "no LoadBalancerIPPool with IPv4 addresses auto-assigns to this Service" {
		t.Errorf("no pool at all: %q", msg)
	}
	h.SetPool(manual(newPoolObj("later", "192.0.2.64/30")))
	if got := h.takeResyncs(); !slices.Equal(got, []string{"a/early", "a/none"}) {
		t.Errorf("a new pool resynced %v, want every waiting Service", got)
	}
	h.ensure(early)
	h.ensureFails(none) // the new pool does not auto-assign
}

func TestSelection(t *testing.T) {
	blue := newPoolObj("blue", "192.0.2.0/30")
	blue.Spec.ServiceAllocation = &v1alpha1.LoadBalancerIPPoolServiceAllocation{
		Namespaces:      []string{"shop"},
		ServiceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "blue"}},
	}
	broken := newPoolObj("broken", "198.51.100.0/30")
	broken.Spec.ServiceAllocation = &v1alpha1.LoadBalancerIPPoolServiceAllocation{
		ServiceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Sometimes"}}},
	}
	h := newHarness(t, blue, broken)
	label := func(s *v1alpha1.Service) { s.Labels = map[string]string{"team": "blue"} }
	tests := []struct {
		name    string
		svc     *v1alpha1.Service
		wantErr string
	}{
		{name: "allowed", svc: svc("shop", "web", label)},
		{name: "wrong namespace", svc: svc("other", "web", label), wantErr: "no LoadBalancerIPPool with IPv4 addresses auto-assigns to this Service"},
		{name: "unselected", svc: svc("shop", "red"), wantErr: "no LoadBalancerIPPool with IPv4 addresses auto-assigns to this Service"},
		{name: "named but another namespace", svc: svc("other", "named", label, fromPool("blue")), wantErr: `LoadBalancerIPPool "blue" does not allow Services in namespace "other"`},
		{name: "named but unselected", svc: svc("shop", "named", fromPool("blue")), wantErr: `LoadBalancerIPPool "blue" does not select this Service's labels`},
		{name: "an invalid selector selects nothing", svc: svc("shop", "any", fromPool("broken")), wantErr: `LoadBalancerIPPool "broken" does not select`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantErr == "" {
				h.ensure(tt.svc)
				return
			}
			if msg := h.ensureFails(tt.svc); !strings.Contains(msg, tt.wantErr) {
				t.Errorf("error %q, want %q", msg, tt.wantErr)
			}
		})
	}
	st, _ := h.Status("broken")
	if st.ValidReason != ReasonInvalidServiceSelector || !strings.Contains(st.Problems[0], "the pool serves no Service") {
		t.Errorf("broken pool status: %+v", st)
	}
}

func TestPoolsAreTriedByName(t *testing.T) {
	h := newHarness(t, newPoolObj("b-second", "198.51.100.0/32"), newPoolObj("a-first", "192.0.2.0/32"))
	got := append(h.ensure(svc("a", "1")), h.ensure(svc("a", "2"))...)
	if !slices.Equal(got, []string{"192.0.2.0", "198.51.100.0"}) {
		t.Errorf("got %v, want a-first's address, then b-second's", got)
	}
	if msg := h.ensureFails(svc("a", "3")); msg != `failed to allocate a load balancer IPv4 address from LoadBalancerIPPools "a-first", "b-second": range is full` {
		t.Errorf("all full: %q", msg)
	}
}

func TestOverlappingPoolsNeverShareAnAddress(t *testing.T) {
	// x and y share 192.0.2.4-192.0.2.7: together they hold 12 addresses.
	h := newHarness(t, newPoolObj("x", "192.0.2.0/29"), newPoolObj("y", "192.0.2.4-192.0.2.11"), manual(newPoolObj("z", "198.51.100.0/30")))
	seen := map[string]bool{}
	for i := range 12 {
		ip := h.ensure(svc("a", fmt.Sprint(i)))[0]
		if seen[ip] || !in("192.0.2.0/28")(ip) {
			t.Fatalf("%s handed out twice, or from the wrong pool", ip)
		}
		seen[ip] = true
	}
	if msg := h.ensureFails(svc("a", "y", fromPool("y"))); !strings.HasSuffix(msg, "range is full") {
		t.Errorf("y is full through x: %q", msg)
	}
	if got := [3][2]int64{h.usage("x"), h.usage("y"), h.usage("z")}; got != [3][2]int64{{8, 0}, {8, 0}, {0, 4}} {
		t.Errorf("usage x, y, z = %v: each sees every one of its addresses used", got)
	}
	stX, _ := h.Status("x")
	stZ, _ := h.Status("z")
	if !slices.Equal(stX.Overlaps, []string{"y"}) || len(stZ.Overlaps) != 0 {
		t.Errorf("overlaps: x %v, z %v", stX.Overlaps, stZ.Overlaps)
	}

	// Releasing a shared address frees it in both pools.
	for i := range 12 {
		s := svc("a", fmt.Sprint(i))
		if ip := h.Holds(types.NamespacedName{Namespace: "a", Name: s.Name})[0]; ip == netip.MustParseAddr("192.0.2.5") {
			if err := h.EnsureLoadBalancerDeleted(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := [2][2]int64{h.usage("x"), h.usage("y")}; got != [2][2]int64{{7, 1}, {7, 1}} {
		t.Errorf("after releasing 192.0.2.5: usage x, y = %v", got)
	}
	if got := h.ensure(svc("a", "y", fromPool("y"))); !slices.Equal(got, []string{"192.0.2.5"}) {
		t.Errorf("y hands out the released shared address: got %v", got)
	}
}

func TestPoolValidity(t *testing.T) {
	h := newHarness(t, newPoolObj("p", "192.0.2.0/30", "192.0.2.2-192.0.2.5", "192.0.2.20-192.0.2.10", "2001:db8::/64"), newPoolObj("big", "2001:db8:1::/64"))
	st, _ := h.Status("p")
	if st.ValidReason != ReasonInvalidRange {
		t.Errorf("reason %q: an ignored entry outranks a truncated one", st.ValidReason)
	}
	want := []string{
		`spec.addresses[1]: Invalid value: "192.0.2.2-192.0.2.5": overlaps spec.addresses[0] (192.0.2.0/30)`,
		`spec.addresses[2]: Invalid value: "192.0.2.20-192.0.2.10": the first address (192.0.2.20) is after the last (192.0.2.10)`,
		`spec.addresses[3]: Invalid value: "2001:db8::/64": holds 18446744073709551616 addresses; only the first 1048576 (2^20) are used, up to 2001:db8::f:ffff`,
	}
	if !slices.Equal(st.Problems, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(st.Problems, "\n"), strings.Join(want, "\n"))
	}
	if st.Used+st.Free != 4+allocator.MaxIPRangeSize {
		t.Errorf("usable addresses %d: the ignored entries must not count", st.Used+st.Free)
	}
	if big, _ := h.Status("big"); big.ValidReason != ReasonRangeTooLarge {
		t.Errorf("big: %+v", big)
	}
}

func TestRestore(t *testing.T) {
	h := &harness{Provider: New(), t: t}
	h.SetPool(newPoolObj("p", "192.0.2.0/30", "2001:db8::/126"))
	older := ingress(svc("a", "older", families(corev1.IPv4Protocol, corev1.IPv6Protocol)), "192.0.2.1", "2001:db8::1")
	younger := ingress(svc("a", "younger"), "192.0.2.1")
	outside := ingress(svc("a", "outside"), "198.51.100.7", "not-an-ip")
	problems := h.Restore([]*v1alpha1.Service{older, younger, outside})
	if len(problems) != 1 || problems[0].Service.Name != "younger" || problems[0].Reason != ReasonLoadBalancerIPAlreadyAllocated ||
		problems[0].Message != `status.loadBalancer.ingress: Invalid value: "192.0.2.1": provided IP is already allocated to Service a/older; a new address will be allocated` {
		t.Fatalf("problems = %+v", problems)
	}
	if !h.Restored() {
		t.Error("Restored() is false after Restore")
	}
	if got := h.usage("p"); got != [2]int64{2, 6} {
		t.Errorf("usage after restore = %v", got)
	}
	if got := h.ensure(older); !slices.Equal(got, []string{"192.0.2.1", "2001:db8::1"}) {
		t.Errorf("the older Service keeps its addresses: got %v", got)
	}
	if got := h.ensure(younger); got[0] == "192.0.2.1" {
		t.Errorf("the younger Service kept a duplicate: %v", got)
	}

	// An address outside every pool stays held, and a pool created later does not
	// hand it out.
	h.SetPool(newPoolObj("late", "198.51.100.7/32"))
	if got := h.usage("late"); got != [2]int64{1, 0} {
		t.Errorf("usage of the late pool = %v, want the restored address held", got)
	}
	if msg := h.ensureFails(svc("a", "new", fromPool("late"))); !strings.HasSuffix(msg, "range is full") {
		t.Errorf("the late pool handed out a held address: %q", msg)
	}
}

func TestPoolChangesResyncHoldersAndMoveThem(t *testing.T) {
	h := newHarness(t, newPoolObj("old", "192.0.2.0/30"))
	holder := svc("a", "holder")
	before := h.ensure(holder)
	bystander := svc("a", "bystander")
	h.SetPool(newPoolObj("other", "198.51.100.0/30"))
	h.takeResyncs()
	h.ensure(bystander) // from "old", the first by name

	h.DeletePool("old")
	if got := h.takeResyncs(); !slices.Equal(got, []string{"a/bystander", "a/holder"}) {
		t.Errorf("deleting a pool resynced %v, want its holders", got)
	}
	if got := h.Holds(types.NamespacedName{Namespace: "a", Name: "holder"}); got[0].String() != before[0] {
		t.Errorf("the address stays held until the Service is ensured again: %v", got)
	}
	after := h.ensure(holder)
	if !in("198.51.100.0/30")(after[0]) {
		t.Errorf("after its pool went, the Service moved to %v", after)
	}

	// An unchanged pool is not rebuilt and resyncs nobody.
	h.SetPool(newPoolObj("other", "198.51.100.0/30"))
	if got := h.takeResyncs(); got != nil {
		t.Errorf("an unchanged pool resynced %v", got)
	}

	// Without any pool, a held address is kept rather than lost.
	h.DeletePool("other")
	if msg := h.ensureFails(holder); msg != "no LoadBalancerIPPool with IPv4 addresses auto-assigns to this Service" {
		t.Errorf("no pool: %q", msg)
	}
	if got := h.Holds(types.NamespacedName{Namespace: "a", Name: "holder"}); len(got) != 1 || got[0].String() != after[0] {
		t.Errorf("a failed ensure lost the address: %v", got)
	}
}

func TestUpdateIsANoOp(t *testing.T) {
	h := newHarness(t, newPoolObj("p", "192.0.2.0/30"))
	s := svc("a", "web")
	before := h.ensure(s)
	if err := h.UpdateLoadBalancer(ctx, s, []*corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}}); err != nil {
		t.Fatal(err)
	}
	if got := h.ensure(s); !slices.Equal(got, before) {
		t.Errorf("an update moved the address: %v -> %v", before, got)
	}
	if h.GetLoadBalancerName(s) != loadbalancer.DefaultName(s) {
		t.Error("the name is the default name")
	}
}

func TestConcurrentEnsuresNeverShareAnAddress(t *testing.T) {
	h := newHarness(t, newPoolObj("p", "192.0.2.0/26"))
	var wg sync.WaitGroup
	got := make([]string, 64)
	for i := range 64 {
		wg.Go(func() {
			st, err := h.EnsureLoadBalancer(ctx, svc("a", fmt.Sprint(i)), nil)
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = st.Ingress[0].IP
		})
	}
	wg.Wait()
	slices.Sort(got)
	if len(slices.Compact(got)) != 64 {
		t.Errorf("64 Services got %d distinct addresses", len(slices.Compact(got)))
	}
	if msg := h.ensureFails(svc("a", "extra")); !strings.HasSuffix(msg, "range is full") {
		t.Errorf("65th: %q", msg)
	}
}
