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

package controllers

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers/loadbalancer"
	"github.com/svcplane/svcplane/controllers/loadbalancer/ippool"
)

// Address conventions: the fake provider hands out 203.0.113.0/24 (TEST-NET-3);
// LoadBalancerIPPools use 192.0.2.0/24 (TEST-NET-1), 198.51.100.0/24 (TEST-NET-2) and
// 2001:db8::/32, each pool restricted to its spec's namespace so that specs never draw
// from each other's pools. The suite's default provider is ippool, as cmd/manager's:
// LoadBalancer Services of other containers find no pool and stay <pending>. Cluster
// IPs and node ports are the suite's (see allocation_controller_test.go).

const (
	// fakeClass is the fake provider's name: the class that selects it.
	fakeClass = "test.svcplane.io/fake"
	// The suite's backoff: short, so that retries are seen in well under a second.
	testMinRetry = 200 * time.Millisecond
	testMaxRetry = 3 * time.Second
)

// fakeLB is the recording provider every manager of the suite shares: like a
// cloud's load balancers, what it holds outlives a manager restart.
var fakeLB = newFakeProvider()

// suiteLoadBalancing configures the load balancer reconcilers as controllers/manager
// does, ippool the default, with the fake provider registered next to it. Setup
// wires them.
func suiteLoadBalancing() (*LoadBalancerIPPoolReconciler, *LoadBalancerReconciler) {
	GinkgoHelper()
	pools := ippool.New()
	registry := loadbalancer.NewRegistry()
	Expect(registry.Register(ippool.Name, pools)).To(Succeed())
	Expect(registry.Register(fakeClass, fakeLB)).To(Succeed())
	Expect(registry.SetDefault(ippool.Name)).To(Succeed())
	return &LoadBalancerIPPoolReconciler{Pools: pools}, &LoadBalancerReconciler{
		Providers:               registry,
		MinRetryDelay:           testMinRetry,
		MaxRetryDelay:           testMaxRetry,
		MaxConcurrentReconciles: 4,
	}
}

// fakeProvider is a strict, stateful provider: it remembers each load balancer and
// its nodes, records every call with whether the Service carried the finalizer in
// the API server at that moment, fails on injected errors, and rejects what a real
// provider could not do (an update of a load balancer that does not exist, a call
// before the Service's allocation).
type fakeProvider struct {
	mu             sync.Mutex
	lbs            map[types.NamespacedName]fakeBalancer
	calls          []fakeCall
	violations     []string
	ensureFailures map[types.NamespacedName][2]int // [failed so far, to fail]
	deleteFailures map[types.NamespacedName]int
	retryAfter     map[types.NamespacedName]time.Duration
	next           int
}

type fakeBalancer struct {
	ip    string
	nodes []string
}

type fakeCall struct {
	op        string // Ensure, Update or Delete
	nodes     []string
	at        time.Time
	finalized bool
}

var _ loadbalancer.Provider = (*fakeProvider)(nil)

func newFakeProvider() *fakeProvider {
	return &fakeProvider{
		lbs:            map[types.NamespacedName]fakeBalancer{},
		ensureFailures: map[types.NamespacedName][2]int{},
		deleteFailures: map[types.NamespacedName]int{},
		retryAfter:     map[types.NamespacedName]time.Duration{},
	}
}

func (f *fakeProvider) GetLoadBalancerName(svc *v1alpha1.Service) string {
	return loadbalancer.DefaultName(svc)
}

func (f *fakeProvider) GetLoadBalancer(_ context.Context, svc *v1alpha1.Service) (*corev1.LoadBalancerStatus, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	lb, ok := f.lbs[client.ObjectKeyFromObject(svc)]
	if !ok {
		return nil, false, nil
	}
	return fakeStatus(lb), true, nil
}

func (f *fakeProvider) EnsureLoadBalancer(ctx context.Context, svc *v1alpha1.Service, nodes []*corev1.Node) (*corev1.LoadBalancerStatus, error) {
	key := client.ObjectKeyFromObject(svc)
	finalized := finalizedInAPI(ctx, key)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fakeCall{op: "Ensure:" + key.String(), nodes: nodeNames(nodes), at: time.Now(), finalized: finalized})
	if len(svc.Status.ClusterIPs) == 0 {
		f.violations = append(f.violations, "EnsureLoadBalancer before allocation: "+key.String())
		return nil, fmt.Errorf("fake: %s has no cluster IP yet", key)
	}
	if d, ok := f.retryAfter[key]; ok {
		delete(f.retryAfter, key)
		return nil, loadbalancer.RetryAfter(d, fmt.Errorf("fake: still provisioning"))
	}
	if n := f.ensureFailures[key]; n[0] < n[1] {
		f.ensureFailures[key] = [2]int{n[0] + 1, n[1]}
		return nil, fmt.Errorf("fake: injected ensure failure %d of %d", n[0]+1, n[1])
	}
	lb, ok := f.lbs[key]
	if !ok {
		f.next++
		lb.ip = netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + f.next%254)}).String()
	}
	lb.nodes = nodeNames(nodes)
	f.lbs[key] = lb
	return fakeStatus(lb), nil
}

func (f *fakeProvider) UpdateLoadBalancer(ctx context.Context, svc *v1alpha1.Service, nodes []*corev1.Node) error {
	key := client.ObjectKeyFromObject(svc)
	finalized := finalizedInAPI(ctx, key)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fakeCall{op: "Update:" + key.String(), nodes: nodeNames(nodes), at: time.Now(), finalized: finalized})
	lb, ok := f.lbs[key]
	if !ok {
		f.violations = append(f.violations, "UpdateLoadBalancer of a missing load balancer: "+key.String())
		return fmt.Errorf("fake: no load balancer for %s", key)
	}
	lb.nodes = nodeNames(nodes)
	f.lbs[key] = lb
	return nil
}

func (f *fakeProvider) EnsureLoadBalancerDeleted(ctx context.Context, svc *v1alpha1.Service) error {
	key := client.ObjectKeyFromObject(svc)
	finalized := finalizedInAPI(ctx, key)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fakeCall{op: "Delete:" + key.String(), at: time.Now(), finalized: finalized})
	if f.deleteFailures[key] > 0 {
		f.deleteFailures[key]--
		return fmt.Errorf("fake: injected delete failure")
	}
	delete(f.lbs, key)
	return nil
}

// failEnsure makes the next n ensures of the Service fail.
func (f *fakeProvider) failEnsure(key types.NamespacedName, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ensureFailures[key] = [2]int{0, n}
}

// failDelete makes the next n deletes of the Service fail.
func (f *fakeProvider) failDelete(key types.NamespacedName, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleteFailures[key] = n
}

// retryOnce makes the next ensure of the Service ask to be called again after d.
func (f *fakeProvider) retryOnce(key types.NamespacedName, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.retryAfter[key] = d
}

// callsOf returns the Service's calls of one kind (Ensure, Update, Delete), oldest
// first.
func (f *fakeProvider) callsOf(key types.NamespacedName, op string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls {
		if c.op == op+":"+key.String() {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeProvider) has(key types.NamespacedName) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.lbs[key]
	return ok
}

func (f *fakeProvider) violationsSoFar() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.violations)
}

func fakeStatus(lb fakeBalancer) *corev1.LoadBalancerStatus {
	proxy := corev1.LoadBalancerIPModeProxy
	return &corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: lb.ip, IPMode: &proxy}}}
}

// finalizedInAPI reports whether the Service carries the cleanup finalizer in the API
// server right now (not in a cache).
func finalizedInAPI(ctx context.Context, key types.NamespacedName) bool {
	svc := &v1alpha1.Service{}
	if err := k8sClient.Get(ctx, key, svc); err != nil {
		return false
	}
	return controllerutil.ContainsFinalizer(svc, v1alpha1.FinalizerLoadBalancerCleanup)
}

func lbNamespace() string {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "lb-"}}
	Expect(k8sClient.Create(suiteCtx, ns)).To(Succeed())
	return ns.Name
}

// lbService is a LoadBalancer Service; options set its class, annotations and so on.
func lbService(ns, name string, mutate ...func(*v1alpha1.Service)) *v1alpha1.Service {
	return service(ns, name, append([]func(*v1alpha1.Service){ofType(corev1.ServiceTypeLoadBalancer)}, mutate...)...)
}

func withClass(class string) func(*v1alpha1.Service) {
	return func(s *v1alpha1.Service) { s.Spec.LoadBalancerClass = ptr.To(class) }
}

func withAnnotation(k, v string) func(*v1alpha1.Service) {
	return func(s *v1alpha1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
	}
}

func dualStack(s *v1alpha1.Service) {
	s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
}

func lbCondition(svc *v1alpha1.Service) *metav1.Condition {
	return meta.FindStatusCondition(svc.Status.Conditions, ConditionLoadBalancerReady)
}

// lbConditionOf waits for the LoadBalancerReady condition of the current generation
// to have the status and reason, and returns the Service.
func lbConditionOf(svc *v1alpha1.Service, status metav1.ConditionStatus, reason string) *v1alpha1.Service {
	GinkgoHelper()
	var out *v1alpha1.Service
	Eventually(func(g Gomega) {
		out = &v1alpha1.Service{}
		g.Expect(k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(svc), out)).To(Succeed())
		c := lbCondition(out)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.ObservedGeneration).To(Equal(out.Generation))
		g.Expect(c.Status).To(Equal(status), c.Message)
		g.Expect(c.Reason).To(Equal(reason), c.Message)
	}, timeout, 20*time.Millisecond).Should(Succeed())
	return out
}

// lbReady waits for the Service's load balancer to be ensured.
func lbReady(svc *v1alpha1.Service) *v1alpha1.Service {
	GinkgoHelper()
	return lbConditionOf(svc, metav1.ConditionTrue, ReasonEnsuredLoadBalancer)
}

func ingressIPs(svc *v1alpha1.Service) []string {
	var out []string
	for _, in := range svc.Status.LoadBalancer.Ingress {
		out = append(out, in.IP)
	}
	return out
}

// lbEvents returns "Type Reason: note" for every event about the Service.
func lbEvents(svc *v1alpha1.Service) []string {
	GinkgoHelper()
	list := &eventsv1.EventList{}
	Expect(k8sClient.List(suiteCtx, list, client.InNamespace(svc.Namespace))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "Service" && e.Regarding.Name == svc.Name {
			out = append(out, e.Type+" "+e.Reason+": "+e.Note)
		}
	}
	return out
}

// removeAndWait deletes every Service of the namespace and waits until they are gone,
// finalizers and all, so that no spec leaves a load balancer behind.
func removeAndWait(ns string) {
	GinkgoHelper()
	Expect(k8sClient.DeleteAllOf(suiteCtx, &v1alpha1.Service{}, client.InNamespace(ns))).To(Succeed())
	Eventually(func(g Gomega) {
		list := &v1alpha1.ServiceList{}
		g.Expect(k8sClient.List(suiteCtx, list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).To(BeEmpty())
	}, timeout).Should(Succeed())
}

// createPool creates a pool that only the namespace's Services may use, and deletes
// it when the spec ends.
func createPool(ns, name string, addresses []string, mutate ...func(*v1alpha1.LoadBalancerIPPool)) *v1alpha1.LoadBalancerIPPool {
	GinkgoHelper()
	pool := &v1alpha1.LoadBalancerIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.LoadBalancerIPPoolSpec{
			Addresses:         addresses,
			ServiceAllocation: &v1alpha1.LoadBalancerIPPoolServiceAllocation{Namespaces: []string{ns}},
		},
	}
	for _, m := range mutate {
		m(pool)
	}
	Expect(k8sClient.Create(suiteCtx, pool)).To(Succeed())
	DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(suiteCtx, pool))).To(Succeed()) })
	return pool
}

func manualPool(p *v1alpha1.LoadBalancerIPPool) { p.Spec.AutoAssign = ptr.To(false) }

// poolStatus waits for the pool's status to satisfy check and returns it.
func poolStatus(pool *v1alpha1.LoadBalancerIPPool, check func(Gomega, *v1alpha1.LoadBalancerIPPoolStatus)) *v1alpha1.LoadBalancerIPPoolStatus {
	GinkgoHelper()
	out := &v1alpha1.LoadBalancerIPPool{}
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(pool), out)).To(Succeed())
		g.Expect(out.Status.ObservedGeneration).To(Equal(out.Generation))
		check(g, &out.Status)
	}, timeout, 20*time.Millisecond).Should(Succeed())
	return &out.Status
}

func usage(used, free int64) func(Gomega, *v1alpha1.LoadBalancerIPPoolStatus) {
	return func(g Gomega, st *v1alpha1.LoadBalancerIPPoolStatus) {
		g.Expect([2]int64{st.Used, st.Free}).To(Equal([2]int64{used, free}), "used, free")
	}
}

var _ = Describe("LoadBalancer", func() {
	var ns string
	BeforeEach(func() { ns = lbNamespace() })
	AfterEach(func() {
		removeAndWait(ns)
		Expect(fakeLB.violationsSoFar()).To(BeEmpty())
	})

	It("adds the finalizer before provisioning, and then leaves the Service alone", func() {
		svc := lbReady(create(lbService(ns, "web", withClass(fakeClass))))
		key := client.ObjectKeyFromObject(svc)
		Expect(svc.Finalizers).To(ContainElement(v1alpha1.FinalizerLoadBalancerCleanup))
		Expect(svc.Status.LoadBalancer.Ingress).To(HaveLen(1))
		in := svc.Status.LoadBalancer.Ingress[0]
		Expect(in.IP).To(inCIDR("203.0.113.0/24"))
		Expect(in.IPMode).To(HaveValue(Equal(corev1.LoadBalancerIPModeProxy)), "the provider's ipMode is kept")
		Expect(lbCondition(svc).Message).To(Equal("Ensured load balancer"))

		ensures := fakeLB.callsOf(key, "Ensure")
		Expect(ensures).To(HaveLen(1))
		Expect(ensures[0].finalized).To(BeTrue(), "the finalizer is in the API server before the provider is called")
		Eventually(func() []string { return lbEvents(svc) }, timeout).Should(ContainElements(
			"Normal EnsuringLoadBalancer: Ensuring load balancer",
			"Normal EnsuredLoadBalancer: Ensured load balancer",
		))
		Eventually(func() string { return get(svc).Status.Display.ExternalIP }, timeout).Should(Equal(in.IP), "kubectl get shows the ingress")

		By("a second pass with nothing new calls nothing and writes nothing")
		rv := get(svc).ResourceVersion
		Consistently(func() string { return get(svc).ResourceVersion }, 2*time.Second, 100*time.Millisecond).Should(Equal(rv))
		Expect(fakeLB.callsOf(key, "Ensure")).To(HaveLen(1))
	})

	It("writes the ingress and the EXTERNAL-IP column that shows it in one status write", func() {
		wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
		w, err := wc.Watch(suiteCtx, &v1alpha1.ServiceList{}, client.InNamespace(ns), client.MatchingFields{"metadata.name": "column"})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()

		svc := lbReady(create(lbService(ns, "column", withClass(fakeClass))))
		ip := ingressIPs(svc)[0]
		var versions []string // "ingress display" of every version the watch saw
		Eventually(func() string {
			for {
				select {
				case e := <-w.ResultChan():
					if s, ok := e.Object.(*v1alpha1.Service); ok {
						versions = append(versions, fmt.Sprintf("%v %s", ingressIPs(s), s.Status.Display.ExternalIP))
					}
				default:
					return versions[len(versions)-1]
				}
			}
		}, timeout, 20*time.Millisecond).Should(Equal(fmt.Sprintf("[%s] %s", ip, ip)))
		for _, v := range versions {
			Expect(v).NotTo(Equal(fmt.Sprintf("[%s] <pending>", ip)), "a version showed the ingress but not its column: %v", versions)
		}
	})

	It("ensures again when the spec changes", func() {
		svc := lbReady(create(lbService(ns, "grow", withClass(fakeClass))))
		key := client.ObjectKeyFromObject(svc)
		update(svc, func(s *v1alpha1.Service) {
			s.Spec.Ports = append(s.Spec.Ports, v1alpha1.ServicePort{Name: "https", Port: 443})
		})
		Eventually(func() []fakeCall { return fakeLB.callsOf(key, "Ensure") }, timeout).Should(HaveLen(2))
		svc = lbReady(svc)
		Expect(svc.Status.Ports).To(HaveLen(2), "the provider was called after the new port got its node port")
	})

	It("retries a failing ensure with exponential backoff, keeping the finalizer, then provisions", func() {
		key := types.NamespacedName{Namespace: ns, Name: "flaky"}
		fakeLB.failEnsure(key, 2)
		svc := create(lbService(ns, key.Name, withClass(fakeClass)))
		Eventually(func() []string { return lbEvents(svc) }, timeout).Should(ContainElement(
			"Warning SyncLoadBalancerFailed: Error syncing load balancer: failed to ensure load balancer: fake: injected ensure failure 1 of 2"))
		svc = lbReady(svc)
		Expect(svc.Status.LoadBalancer.Ingress).To(HaveLen(1))
		Expect(lbEvents(svc)).To(ContainElement(
			"Warning SyncLoadBalancerFailed: Error syncing load balancer: failed to ensure load balancer: fake: injected ensure failure 2 of 2"))

		ensures := fakeLB.callsOf(key, "Ensure")
		Expect(ensures).To(HaveLen(3), "other writes to the Service do not cut the backoff short")
		Expect(ensures[1].at.Sub(ensures[0].at)).To(BeNumerically(">=", testMinRetry))
		Expect(ensures[2].at.Sub(ensures[1].at)).To(BeNumerically(">=", 2*testMinRetry), "the delay doubles")
		for _, c := range ensures {
			Expect(c.finalized).To(BeTrue())
		}
	})

	It("shows a failure in the condition while it backs off, and keeps the ingress it had", func() {
		svc := lbReady(create(lbService(ns, "keep", withClass(fakeClass))))
		key := client.ObjectKeyFromObject(svc)
		before := ingressIPs(svc)
		fakeLB.failEnsure(key, 1000)
		update(svc, func(s *v1alpha1.Service) { s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP })
		failing := lbConditionOf(svc, metav1.ConditionFalse, ReasonSyncLoadBalancerFailed)
		Expect(lbCondition(failing).Message).To(HavePrefix("failed to ensure load balancer: fake: injected ensure failure"))
		Expect(ingressIPs(failing)).To(Equal(before), "nothing provisioned is lost")

		fakeLB.failEnsure(key, 0)
		Expect(ingressIPs(lbReady(svc))).To(Equal(before))
	})

	It("honours a provider's retry-after delay without a failure event", func() {
		key := types.NamespacedName{Namespace: ns, Name: "slow"}
		fakeLB.retryOnce(key, 1500*time.Millisecond)
		svc := create(lbService(ns, key.Name, withClass(fakeClass)))
		pending := lbConditionOf(svc, metav1.ConditionFalse, ReasonPending)
		Expect(lbCondition(pending).Message).To(Equal("fake: still provisioning"))
		lbReady(svc)

		ensures := fakeLB.callsOf(key, "Ensure")
		Expect(ensures).To(HaveLen(2))
		Expect(ensures[1].at.Sub(ensures[0].at)).To(BeNumerically("~", 1500*time.Millisecond, 700*time.Millisecond))
		Expect(ensures[1].at.Sub(ensures[0].at)).To(BeNumerically(">=", 1500*time.Millisecond))
		Expect(warningEvents(svc)).NotTo(ContainElement(HavePrefix(ReasonSyncLoadBalancerFailed)))
	})

	It("deletes the load balancer, clears status and only then removes the finalizer, retrying a failed delete", func() {
		svc := lbReady(create(lbService(ns, "gone", withClass(fakeClass))))
		key := client.ObjectKeyFromObject(svc)
		fakeLB.failDelete(key, 1)

		wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
		w, err := wc.Watch(suiteCtx, &v1alpha1.ServiceList{}, client.InNamespace(ns), client.MatchingFields{"metadata.name": key.Name})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()

		remove(svc)
		type version struct {
			finalized, terminating bool
			ingress                int
		}
		var seen []version
		Eventually(func() bool {
			for {
				select {
				case e := <-w.ResultChan():
					s, ok := e.Object.(*v1alpha1.Service)
					if !ok {
						continue
					}
					seen = append(seen, version{controllerutil.ContainsFinalizer(s, v1alpha1.FinalizerLoadBalancerCleanup), !s.DeletionTimestamp.IsZero(), len(s.Status.LoadBalancer.Ingress)})
					if e.Type == watch.Deleted {
						return true
					}
				default:
					return false
				}
			}
		}, timeout, 20*time.Millisecond).Should(BeTrue())
		Expect(apierrors.IsNotFound(k8sClient.Get(suiteCtx, key, &v1alpha1.Service{}))).To(BeTrue())

		deletes := fakeLB.callsOf(key, "Delete")
		Expect(deletes).To(HaveLen(2), "the failed delete was retried")
		Expect(deletes[1].at.Sub(deletes[0].at)).To(BeNumerically(">=", testMinRetry))
		for _, c := range deletes {
			Expect(c.finalized).To(BeTrue(), "the finalizer stays until the provider deleted the load balancer")
		}
		Expect(fakeLB.has(key)).To(BeFalse())
		Expect(seen).To(ContainElement(version{finalized: true, terminating: true, ingress: 0}), "status is cleared while the finalizer still holds the Service")
		for _, v := range seen {
			if !v.finalized {
				Expect(v.ingress).To(BeZero(), "the finalizer never goes before the status: %+v", seen)
			}
		}
		Eventually(func() []string { return lbEvents(svc) }, timeout).Should(ContainElements(
			"Normal DeletingLoadBalancer: Deleting load balancer",
			"Warning SyncLoadBalancerFailed: Error syncing load balancer: failed to delete load balancer: fake: injected delete failure",
			"Normal DeletedLoadBalancer: Deleted load balancer",
		))
	})

	It("cleans up a Service that stops being a LoadBalancer", func() {
		svc := lbReady(create(lbService(ns, "shrink", withClass(fakeClass))))
		key := client.ObjectKeyFromObject(svc)
		// A class may only be set on LoadBalancers, so it goes too: the reconciler
		// remembers which provider served the Service.
		update(svc, func(s *v1alpha1.Service) { s.Spec.Type, s.Spec.LoadBalancerClass = corev1.ServiceTypeClusterIP, nil })
		Eventually(func(g Gomega) {
			s := get(svc)
			g.Expect(s.Finalizers).NotTo(ContainElement(v1alpha1.FinalizerLoadBalancerCleanup))
			g.Expect(s.Status.LoadBalancer.Ingress).To(BeEmpty())
			g.Expect(lbCondition(s)).To(BeNil())
		}, timeout).Should(Succeed())
		Expect(fakeLB.has(key)).To(BeFalse())
		Expect(fakeLB.callsOf(key, "Delete")).To(HaveLen(1))
		Eventually(func() string { return get(svc).Status.Display.ExternalIP }, timeout).Should(Equal("<none>"))
	})

	It("routes Services by loadBalancerClass, the classless to the default, and leaves a class nobody here registered alone", func() {
		createPool(ns, ns+"-routing", []string{"192.0.2.64/29"})
		explicit := lbReady(create(lbService(ns, "explicit", withClass(fakeClass))))
		Expect(ingressIPs(explicit)).To(ConsistOf(inCIDR("203.0.113.0/24")))
		pooled := lbReady(create(lbService(ns, "pooled", withClass(ippool.Name))))
		Expect(ingressIPs(pooled)).To(ConsistOf(inCIDR("192.0.2.64/29")))
		Expect(pooled.Status.LoadBalancer.Ingress[0].IPMode).To(HaveValue(Equal(corev1.LoadBalancerIPModeVIP)))
		classless := lbReady(create(lbService(ns, "classless")))
		Expect(ingressIPs(classless)).To(ConsistOf(inCIDR("192.0.2.64/29")), "the default provider is ippool")
		Expect(classless.Finalizers).To(ContainElement(v1alpha1.FinalizerLoadBalancerCleanup))
		for _, svc := range []*v1alpha1.Service{pooled, classless} {
			Expect(fakeLB.callsOf(client.ObjectKeyFromObject(svc), "Ensure")).To(BeEmpty())
		}

		elsewhere := allocated(create(lbService(ns, "elsewhere", withClass("example.com/elsewhere"))))
		Consistently(func(g Gomega) {
			s := get(elsewhere)
			g.Expect(s.Finalizers).To(BeEmpty())
			g.Expect(lbCondition(s)).To(BeNil())
			g.Expect(s.Status.LoadBalancer.Ingress).To(BeEmpty())
		}, time.Second, 100*time.Millisecond).Should(Succeed())
		Expect(fakeLB.callsOf(client.ObjectKeyFromObject(elsewhere), "Ensure")).To(BeEmpty())
		Expect(lbEvents(elsewhere)).NotTo(ContainElement(ContainSubstring("LoadBalancer")))
	})

	It("calls UpdateLoadBalancer, not EnsureLoadBalancer, when the eligible node set changes", Serial, func() {
		svc := lbReady(create(lbService(ns, "nodes", withClass(fakeClass))))
		key := client.ObjectKeyFromObject(svc)
		ensures := len(fakeLB.callsOf(key, "Ensure"))
		lastUpdate := func() []string {
			updates := fakeLB.callsOf(key, "Update")
			if len(updates) == 0 {
				return nil
			}
			return updates[len(updates)-1].nodes
		}

		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{GenerateName: "lb-node-"}}
		Expect(k8sClient.Create(suiteCtx, node)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(suiteCtx, node))).To(Succeed()) })
		Eventually(lastUpdate, timeout).Should(ContainElement(node.Name))
		Eventually(func() []string { return lbEvents(svc) }, timeout).Should(ContainElement("Normal UpdatedLoadBalancer: Updated load balancer with new hosts"))

		By("excluding the node from load balancers")
		node.Labels = map[string]string{corev1.LabelNodeExcludeBalancers: ""}
		Expect(k8sClient.Update(suiteCtx, node)).To(Succeed())
		Eventually(lastUpdate, timeout).ShouldNot(ContainElement(node.Name))

		By("a change that does not touch eligibility calls nothing")
		updates := len(fakeLB.callsOf(key, "Update"))
		node.Labels["team"] = "blue"
		Expect(k8sClient.Update(suiteCtx, node)).To(Succeed())
		Consistently(func() int { return len(fakeLB.callsOf(key, "Update")) }, time.Second, 100*time.Millisecond).Should(Equal(updates))
		Expect(fakeLB.callsOf(key, "Ensure")).To(HaveLen(ensures), "a node change never re-ensures")
		for _, c := range fakeLB.callsOf(key, "Update") {
			Expect(c.finalized).To(BeTrue())
		}
	})
})

var _ = Describe("The ippool provider", func() {
	var ns string
	BeforeEach(func() { ns = lbNamespace() })
	AfterEach(func() { removeAndWait(ns) })

	pooled := func(name string, mutate ...func(*v1alpha1.Service)) *v1alpha1.Service {
		return create(lbService(ns, name, append([]func(*v1alpha1.Service){withClass(ippool.Name)}, mutate...)...))
	}

	It("gives a dual-stack Service one address per family, with ipMode VIP, and counts them", func() {
		pool := createPool(ns, ns+"-dual", []string{"192.0.2.16-192.0.2.19", "2001:db8:16::/126"})
		svc := lbReady(pooled("dual", dualStack))
		Expect(svc.Status.IPFamilies).To(Equal([]corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}))
		Expect(svc.Status.LoadBalancer.Ingress).To(HaveLen(2))
		Expect(ingressIPs(svc)[0]).To(inRange("192.0.2.16", "192.0.2.19"))
		Expect(ingressIPs(svc)[1]).To(inCIDR("2001:db8:16::/126"))
		for _, in := range svc.Status.LoadBalancer.Ingress {
			Expect(in.IPMode).To(HaveValue(Equal(corev1.LoadBalancerIPModeVIP)))
		}
		st := poolStatus(pool, usage(2, 6))
		Expect(meta.IsStatusConditionTrue(st.Conditions, v1alpha1.PoolConditionValid)).To(BeTrue())
		Expect(meta.IsStatusConditionFalse(st.Conditions, v1alpha1.PoolConditionOverlapping)).To(BeTrue())

		By("releasing them when the Service goes")
		remove(svc)
		poolStatus(pool, usage(0, 8))
	})

	It("honours requested addresses and reports one another Service holds", func() {
		createPool(ns, ns+"-req", []string{"198.51.100.0/28"})
		first := lbReady(pooled("first", func(s *v1alpha1.Service) { s.Spec.LoadBalancerIP = "198.51.100.5" }))
		Expect(ingressIPs(first)).To(Equal([]string{"198.51.100.5"}))

		second := pooled("second", withAnnotation(v1alpha1.AnnotationLoadBalancerIPs, "198.51.100.5"))
		second = lbConditionOf(second, metav1.ConditionFalse, ReasonSyncLoadBalancerFailed)
		Expect(lbCondition(second).Message).To(Equal("failed to ensure load balancer: failed to allocate IP 198.51.100.5: provided IP is already allocated"))
		Eventually(func() []string { return warningEvents(second) }, timeout).Should(ContainElement(
			"SyncLoadBalancerFailed: Error syncing load balancer: failed to ensure load balancer: failed to allocate IP 198.51.100.5: provided IP is already allocated"))

		By("moving the first Service frees the address for the second")
		update(first, func(s *v1alpha1.Service) { s.Spec.LoadBalancerIP = "198.51.100.6" })
		Eventually(func() []string { return ingressIPs(get(first)) }, timeout).Should(Equal([]string{"198.51.100.6"}))
		Expect(ingressIPs(lbReady(second))).To(Equal([]string{"198.51.100.5"}))
	})

	It("reports an exhausted pool and gives the address as soon as one is free", func() {
		pool := createPool(ns, ns+"-small", []string{"198.51.100.200-198.51.100.201"}, manualPool)
		fromPool := withAnnotation(v1alpha1.AnnotationLoadBalancerIPPool, pool.Name)
		a := lbReady(pooled("a", fromPool))
		lbReady(pooled("b", fromPool))
		waiting := lbConditionOf(pooled("c", fromPool), metav1.ConditionFalse, ReasonSyncLoadBalancerFailed)
		Expect(lbCondition(waiting).Message).To(Equal(fmt.Sprintf(
			"failed to ensure load balancer: failed to allocate a load balancer IPv4 address from LoadBalancerIPPool %q: range is full", pool.Name)))
		Eventually(func() []string { return warningEvents(waiting) }, timeout).Should(ContainElement(ContainSubstring("range is full")))
		poolStatus(pool, usage(2, 0))

		remove(a)
		Expect(ingressIPs(lbReady(waiting))).To(Equal(ingressIPs(a)))
		poolStatus(pool, usage(2, 0))
	})

	It("waits for a pool that does not exist yet", func() {
		name := ns + "-later"
		svc := lbConditionOf(pooled("early", withAnnotation(v1alpha1.AnnotationLoadBalancerIPPool, name)), metav1.ConditionFalse, ReasonSyncLoadBalancerFailed)
		Expect(lbCondition(svc).Message).To(Equal(fmt.Sprintf("failed to ensure load balancer: LoadBalancerIPPool %q not found", name)))
		createPool(ns, name, []string{"198.51.100.64/30"}, manualPool)
		Expect(ingressIPs(lbReady(svc))).To(ConsistOf(inCIDR("198.51.100.64/30")))
	})

	It("keeps auto-assignment, namespaces and service selectors apart", func() {
		createPool(ns, ns+"-manual", []string{"192.0.2.80/30"}, manualPool)
		createPool(ns, ns+"-blue", []string{"192.0.2.84/30"}, func(p *v1alpha1.LoadBalancerIPPool) {
			p.Spec.ServiceAllocation.ServiceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "blue"}}
		})
		blue := lbReady(pooled("blue", func(s *v1alpha1.Service) { s.Labels = map[string]string{"team": "blue"} }))
		Expect(ingressIPs(blue)).To(ConsistOf(inCIDR("192.0.2.84/30")))
		red := lbConditionOf(pooled("red"), metav1.ConditionFalse, ReasonSyncLoadBalancerFailed)
		Expect(lbCondition(red).Message).To(Equal("failed to ensure load balancer: no LoadBalancerIPPool with IPv4 addresses auto-assigns to this Service"))
		named := lbReady(pooled("named", withAnnotation(v1alpha1.AnnotationLoadBalancerIPPool, ns+"-manual")))
		Expect(ingressIPs(named)).To(ConsistOf(inCIDR("192.0.2.80/30")))
	})

	It("reports invalid, oversized and overlapping entries and never hands out a shared address twice", func() {
		wide := createPool(ns, ns+"-wide", []string{"192.0.2.32-192.0.2.35", "192.0.2.50-192.0.2.40", "2001:db8:ffff::/64"}, manualPool)
		narrow := createPool(ns, ns+"-narrow", []string{"192.0.2.34/31"}, manualPool)
		st := poolStatus(wide, func(g Gomega, st *v1alpha1.LoadBalancerIPPoolStatus) {
			usage(0, 4+1<<20)(g, st)
			g.Expect(meta.IsStatusConditionTrue(st.Conditions, v1alpha1.PoolConditionOverlapping)).To(BeTrue())
		})
		valid := meta.FindStatusCondition(st.Conditions, v1alpha1.PoolConditionValid)
		Expect(valid.Status).To(Equal(metav1.ConditionFalse))
		Expect(valid.Reason).To(Equal(ippool.ReasonInvalidRange))
		Expect(valid.Message).To(ContainSubstring(`spec.addresses[1]: Invalid value: "192.0.2.50-192.0.2.40": the first address (192.0.2.50) is after the last (192.0.2.40)`))
		Expect(valid.Message).To(ContainSubstring(`spec.addresses[2]: Invalid value: "2001:db8:ffff::/64": holds 18446744073709551616 addresses; only the first 1048576 (2^20) are used`))
		overlap := meta.FindStatusCondition(st.Conditions, v1alpha1.PoolConditionOverlapping)
		Expect(overlap.Status).To(Equal(metav1.ConditionTrue))
		Expect(overlap.Message).To(ContainSubstring(narrow.Name))

		fromWide := withAnnotation(v1alpha1.AnnotationLoadBalancerIPPool, wide.Name)
		var got []string
		for i := range 4 {
			got = append(got, ingressIPs(lbReady(pooled(fmt.Sprintf("w%d", i), fromWide)))...)
		}
		Expect(got).To(ConsistOf("192.0.2.32", "192.0.2.33", "192.0.2.34", "192.0.2.35"))
		full := lbConditionOf(pooled("n", withAnnotation(v1alpha1.AnnotationLoadBalancerIPPool, narrow.Name)), metav1.ConditionFalse, ReasonSyncLoadBalancerFailed)
		Expect(lbCondition(full).Message).To(HaveSuffix("range is full"), "the shared addresses are taken through the other pool")
		poolStatus(narrow, usage(2, 0))
	})

	It("rejects malformed entries at admission", func() {
		pool := &v1alpha1.LoadBalancerIPPool{
			ObjectMeta: metav1.ObjectMeta{Name: ns + "-bad"},
			Spec:       v1alpha1.LoadBalancerIPPoolSpec{Addresses: []string{"192.0.2.1-2001:db8::1"}},
		}
		err := k8sClient.Create(suiteCtx, pool)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring("each entry must be a CIDR"))
	})
})

// These specs replace the suite's manager, so they run one at a time.
var _ = Describe("Load balancers across manager restarts", Serial, Ordered, func() {
	var ns string
	BeforeAll(func() { ns = lbNamespace() })
	AfterAll(func() { removeAndWait(ns) })

	It("keeps every address and hands out none twice afterwards", func() {
		// Four addresses per family: after three dual-stack Services only one of each
		// is left, so a provider that forgot what was held would hand out a taken one.
		pool := createPool(ns, ns+"-restart", []string{"192.0.2.200-192.0.2.203", "2001:db8:200::/126"})
		var before []*v1alpha1.Service
		for i := range 3 {
			before = append(before, lbReady(create(lbService(ns, fmt.Sprintf("pool-%d", i), withClass(ippool.Name), dualStack))))
		}
		viaFake := lbReady(create(lbService(ns, "fake", withClass(fakeClass))))
		poolStatus(pool, usage(6, 2))

		swapManager(suiteServiceCIDRs, suiteNodePorts)

		held := map[string]bool{}
		for _, svc := range append(before, viaFake) {
			after := lbReady(svc)
			Expect(after.Status.LoadBalancer).To(Equal(svc.Status.LoadBalancer))
			Expect(lbCondition(after).LastTransitionTime).To(Equal(lbCondition(svc).LastTransitionTime), "the condition never flapped")
			for _, ip := range ingressIPs(after) {
				held[ip] = true
			}
		}
		last := lbReady(create(lbService(ns, "after", withClass(ippool.Name), dualStack)))
		for _, ip := range ingressIPs(last) {
			Expect(held).NotTo(HaveKey(ip))
		}
		full := lbConditionOf(create(lbService(ns, "one-too-many", withClass(ippool.Name), dualStack)), metav1.ConditionFalse, ReasonSyncLoadBalancerFailed)
		Expect(lbCondition(full).Message).To(ContainSubstring("range is full"))
		poolStatus(pool, usage(8, 0))
	})
})

// inRange matches an address between first and last, inclusive.
func inRange(first, last string) OmegaMatcher {
	lo, hi := netip.MustParseAddr(first), netip.MustParseAddr(last)
	return WithTransform(func(s string) bool {
		ip, err := netip.ParseAddr(s)
		return err == nil && ip.Compare(lo) >= 0 && ip.Compare(hi) <= 0
	}, BeTrue())
}

// The tracker's decisions, the backoff, the fingerprint and the ipMode default are
// table-tested in controllers/loadbalancer (tracker_test.go).
